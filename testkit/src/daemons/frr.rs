//! FRR 8.4 `bgpd` (optionally with `zebra`, and `bfdd` with `--bfdctl DIR/bfdd.sock`, which
//! bgpd reaches through zebra) in a namespace, everything under a lab temp dir:
//! `-f DIR/bgpd.conf -i DIR/bgpd.pid -z DIR/zserv.api --vty_socket DIR -P 0`, `log file
//! DIR/bgpd.log`. Without zebra bgpd runs with `-Z` (`--no_zebra`): the BGP RIB (`show bgp ...
//! json`) works, next hops count as reachable, nothing is installed in the kernel.
//!
//! eBGP policy: FRR's default `bgp ebgp-requires-policy` stays on and is satisfied by route-map
//! `FIT-ALL` (permit everything) applied in and out on every neighbor.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::frr_daemon;
use super::{
    dump_commands, dump_exited, dump_lines, normalize_community, poll, BgpDaemon, Family, Peer,
    Rib, RibRoute, Route,
};
use crate::cmd::run;
use crate::netns::{Lab, Netns};

/// FRR configuration builder.
#[derive(Clone, Debug)]
pub struct FrrConfig {
    pub asn: u32,
    pub router_id: String,
    pub peers: Vec<Peer>,
    /// `network` statements (with a route-map setting the route's attributes).
    pub routes: Vec<Route>,
    /// Also run zebra (kernel routes); default false (`bgpd -Z`).
    pub zebra: bool,
    /// Extra lines inside `router bgp` (before the address families).
    pub extra_router: Vec<String>,
    /// Extra global lines (e.g. more route-maps).
    pub extra_global: Vec<String>,
    /// Also run bfdd (needs zebra, through which bgpd talks to it) with these lines as its
    /// config (`bfd` / `peer X` blocks); `None`: no bfdd.
    pub bfdd: Option<Vec<String>>,
}

impl FrrConfig {
    pub fn new(asn: u32, router_id: &str) -> FrrConfig {
        FrrConfig {
            asn,
            router_id: router_id.to_string(),
            peers: Vec::new(),
            routes: Vec::new(),
            zebra: false,
            extra_router: Vec::new(),
            extra_global: Vec::new(),
            bfdd: None,
        }
    }
    /// Run bfdd (and zebra) with `lines` as bfdd's config.
    pub fn with_bfdd(mut self, lines: &[&str]) -> FrrConfig {
        self.zebra = true;
        self.bfdd = Some(lines.iter().map(|l| l.to_string()).collect());
        self
    }
    pub fn peer(mut self, p: Peer) -> FrrConfig {
        self.peers.push(p);
        self
    }
    pub fn route(mut self, r: Route) -> FrrConfig {
        self.routes.push(r);
        self
    }
    pub fn with_zebra(mut self) -> FrrConfig {
        self.zebra = true;
        self
    }
    pub fn extra_router(mut self, line: &str) -> FrrConfig {
        self.extra_router.push(line.to_string());
        self
    }
    pub fn extra_global(mut self, line: &str) -> FrrConfig {
        self.extra_global.push(line.to_string());
        self
    }

    /// The bgpd.conf text (`log_file`: where bgpd logs).
    pub fn render(&self, log_file: &Path) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "hostname fit-frr");
        let _ = writeln!(w, "log file {} debugging", log_file.display());
        let _ = writeln!(w, "log timestamp precision 3");
        let _ = writeln!(w, "debug bgp neighbor-events");
        let _ = writeln!(w, "!\nroute-map FIT-ALL permit 10\nexit\n!");
        for r in &self.routes {
            w.push_str(&route_map(r));
        }
        for l in &self.extra_global {
            let _ = writeln!(w, "{l}");
        }
        let _ = writeln!(w, "router bgp {}", self.asn);
        let _ = writeln!(w, " bgp router-id {}", self.router_id);
        let _ = writeln!(w, " no bgp default ipv4-unicast");
        let _ = writeln!(w, " no bgp network import-check");
        let _ = writeln!(w, " bgp log-neighbor-changes");
        for p in &self.peers {
            let a = &p.address;
            let _ = writeln!(w, " neighbor {a} remote-as {}", p.remote_as);
            let _ = writeln!(w, " neighbor {a} timers {} {}", p.keepalive(), p.hold_time);
            let _ = writeln!(w, " neighbor {a} timers connect 1");
            let _ = writeln!(w, " neighbor {a} advertisement-interval 0");
            if p.passive {
                let _ = writeln!(w, " neighbor {a} passive");
            }
            if let Some(port) = p.port {
                let _ = writeln!(w, " neighbor {a} port {port}");
            }
            if let Some(l) = &p.local_address {
                let _ = writeln!(w, " neighbor {a} update-source {l}");
            }
        }
        for l in &self.extra_router {
            let _ = writeln!(w, " {l}");
        }
        for fam in [Family::Ipv4, Family::Ipv6] {
            let peers: Vec<&Peer> = self
                .peers
                .iter()
                .filter(|p| p.families.contains(&fam))
                .collect();
            let routes: Vec<&Route> = self.routes.iter().filter(|r| r.family() == fam).collect();
            if peers.is_empty() && routes.is_empty() {
                continue;
            }
            let _ = writeln!(w, " address-family {} unicast", afi(fam));
            for r in routes {
                let _ = writeln!(
                    w,
                    "  network {} route-map {}",
                    r.prefix,
                    map_name(&r.prefix)
                );
            }
            for p in peers {
                let a = &p.address;
                let _ = writeln!(w, "  neighbor {a} activate");
                let _ = writeln!(w, "  neighbor {a} route-map FIT-ALL in");
                let _ = writeln!(w, "  neighbor {a} route-map FIT-ALL out");
            }
            let _ = writeln!(w, " exit-address-family");
        }
        let _ = writeln!(w, "exit");
        s
    }
}

fn afi(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

fn map_name(prefix: &str) -> String {
    let s: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("FIT-NET-{s}")
}

fn route_map(r: &Route) -> String {
    let mut s = format!("route-map {} permit 10\n", map_name(&r.prefix));
    if !r.communities.is_empty() {
        let _ = writeln!(s, " set community {}", r.communities.join(" "));
    }
    if !r.large_communities.is_empty() {
        let _ = writeln!(s, " set large-community {}", r.large_communities.join(" "));
    }
    if let Some(m) = r.med {
        let _ = writeln!(s, " set metric {m}");
    }
    if !r.prepend.is_empty() {
        let p: Vec<String> = r.prepend.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(s, " set as-path prepend {}", p.join(" "));
    }
    s.push_str("exit\n!\n");
    s
}

/// A running FRR.
pub struct Frr<'l> {
    lab: &'l Lab,
    ns: Netns,
    dir: PathBuf,
    log: PathBuf,
    asn: u32,
    pids: Vec<u32>,
    extra_routes: RefCell<Vec<String>>,
}

impl<'l> Frr<'l> {
    /// Starts FRR in `ns` with its files in a lab temp dir named `frr-<ns suffix>`. Waits (10 s)
    /// until vtysh answers.
    pub fn start(lab: &'l Lab, ns: &Netns, config: &FrrConfig) -> Frr<'l> {
        let dir = lab.daemon_dir("frr", ns);
        let log = dir.join("bgpd.log");
        std::fs::write(dir.join("bgpd.conf"), config.render(&log)).expect("write bgpd.conf");
        // bgpd drops privileges to user frr (the vty group frrvty rules out running as root)
        let _ = frr_daemon::chown(&dir);
        let d = |f: &str| dir.join(f).display().to_string();
        let command = |daemon: &str, config: &str| {
            let mut c = ns.command(&frr_daemon::binary(daemon).display().to_string());
            frr_daemon::args(&mut c, &dir, daemon, &dir.join(config));
            c
        };
        let mut pids = Vec::new();
        if config.zebra {
            let mut c = command("zebra", "zebra.conf");
            c.args(["--log", &format!("file:{}", d("zebra.log"))]);
            std::fs::write(dir.join("zebra.conf"), "hostname fit-zebra\n").expect("zebra.conf");
            let _ = frr_daemon::chown(&dir);
            pids.push(lab.spawn("zebra", c, &dir.join("zebra.out")));
            let sock = dir.join("zserv.api");
            if poll(Duration::from_secs(10), || sock.exists().then_some(())).is_none() {
                panic!(
                    "zebra did not create {}:\n{}",
                    sock.display(),
                    super::tail_file(&dir.join("zebra.out"), 20)
                );
            }
        }
        if let Some(lines) = &config.bfdd {
            // bfdd: its own config and control socket; bgpd reaches it through zebra.
            let mut conf = format!(
                "hostname fit-bfdd\nlog file {} debugging\nlog timestamp precision 3\n",
                d("bfdd.log")
            );
            for l in lines {
                let _ = writeln!(conf, "{l}");
            }
            std::fs::write(dir.join("bfdd.conf"), conf).expect("bfdd.conf");
            let _ = frr_daemon::chown(&dir);
            let mut c = command("bfdd", "bfdd.conf");
            c.args(["--bfdctl", &d("bfdd.sock")]);
            pids.push(lab.spawn("bfdd", c, &dir.join("bfdd.out")));
        }
        let mut c = command("bgpd", "bgpd.conf");
        if !config.zebra {
            c.arg("-Z");
        }
        pids.push(lab.spawn("bgpd", c, &dir.join("bgpd.out")));
        let frr = Frr {
            lab,
            ns: ns.clone(),
            dir,
            log,
            asn: config.asn,
            pids,
            extra_routes: RefCell::new(Vec::new()),
        };
        let ok = poll(Duration::from_secs(10), || {
            if !frr.lab.is_running(frr.pids[frr.pids.len() - 1]) {
                return Some(false);
            }
            frr.vtysh("show bgp summary json").ok().map(|_| true)
        });
        if ok != Some(true) {
            frr.fail("bgpd did not come up (vtysh does not answer)");
        }
        frr
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn asn(&self) -> u32 {
        self.asn
    }
    /// PIDs of zebra (if any) and bgpd.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Runs vtysh commands (`-c` each, in order); Ok(stdout).
    pub fn vtysh_cmds(&self, cmds: &[&str]) -> Result<String, String> {
        let out = run(frr_daemon::vtysh_args(
            &mut Command::new("vtysh"),
            &self.dir,
            cmds,
        ))?;
        // vtysh exits 0 on some errors and prints them
        if out.starts_with('%') {
            return Err(format!("vtysh {cmds:?}: {out}"));
        }
        Ok(out)
    }

    /// Runs one vtysh command; Ok(stdout).
    pub fn vtysh(&self, cmd: &str) -> Result<String, String> {
        self.vtysh_cmds(&[cmd])
    }

    /// Runs a `... json` vtysh command and parses the output.
    pub fn vtysh_json(&self, cmd: &str) -> Result<Value, String> {
        let out = self.vtysh(cmd)?;
        serde_json::from_str(&out).map_err(|e| format!("vtysh {cmd:?}: bad JSON ({e}): {out}"))
    }

    /// A connection of its own to bgpd's vty socket, for polling without a vtysh process
    /// per query (see [`BgpdVty`]).
    pub fn bgpd_vty(&self) -> Result<BgpdVty, String> {
        BgpdVty::connect(&self.dir.join("bgpd.vty"))
    }

    /// Runs configuration commands (`configure terminal` first).
    pub fn configure(&self, lines: &[&str]) -> Result<(), String> {
        let mut cmds = vec!["configure terminal"];
        cmds.extend_from_slice(lines);
        let out = self.vtysh_cmds(&cmds)?;
        if out.contains("% ") {
            return Err(format!("vtysh config {lines:?}: {out}"));
        }
        Ok(())
    }

    /// `show bgp neighbors PEER json` for this peer.
    pub fn neighbor_json(&self, peer: &str) -> Option<Value> {
        self.vtysh_json(&format!("show bgp neighbors {peer} json"))
            .ok()
            .and_then(|v| v.get(peer).cloned())
    }
}

/// Parses `show bgp <afi> unicast json detail` (FRR 8.4: routes.PREFIX = [header, path...]).
/// One open connection to a daemon's vty socket, speaking what vtysh speaks: a command is
/// sent NUL-terminated, the daemon answers with its output followed by three NULs and a status
/// octet (0 = success). A query costs ~0.1 ms instead of a vtysh process (~10 ms of CPU), so a
/// benchmark can poll every few milliseconds without taking the CPU from the daemons it
/// measures. Every read and write has a timeout.
pub struct BgpdVty {
    stream: std::os::unix::net::UnixStream,
    path: PathBuf,
}

impl BgpdVty {
    const TIMEOUT: Duration = Duration::from_secs(10);

    pub fn connect(path: &Path) -> Result<Self, String> {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        stream
            .set_read_timeout(Some(Self::TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(Self::TIMEOUT)))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            stream,
            path: path.to_owned(),
        })
    }

    /// Runs one command; Ok(output) when the daemon reports success.
    pub fn run(&mut self, cmd: &str) -> Result<String, String> {
        use std::io::{Read, Write};
        let err = |e: std::io::Error| format!("{} {cmd:?}: {e}", self.path.display());
        let mut req = Vec::with_capacity(cmd.len() + 1);
        req.extend_from_slice(cmd.as_bytes());
        req.push(0);
        self.stream.write_all(&req).map_err(err)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = self.stream.read(&mut buf).map_err(err)?;
            if n == 0 {
                return Err(format!(
                    "{} {cmd:?}: connection closed",
                    self.path.display()
                ));
            }
            out.extend_from_slice(&buf[..n]);
            let len = out.len();
            if len >= 4 && out[len - 4..len - 1] == [0, 0, 0] {
                let status = out[len - 1];
                out.truncate(len - 4);
                let text = String::from_utf8_lossy(&out).into_owned();
                return if status == 0 {
                    Ok(text)
                } else {
                    Err(format!("{cmd:?}: status {status}: {text}"))
                };
            }
        }
    }

    /// Runs a `... json` command and parses the output.
    pub fn json(&mut self, cmd: &str) -> Result<Value, String> {
        let out = self.run(cmd)?;
        serde_json::from_str(&out).map_err(|e| format!("{cmd:?}: bad JSON ({e}): {out}"))
    }
}

pub fn parse_rib(v: &Value) -> Rib {
    let mut rib = Rib::new();
    let Some(routes) = v.get("routes").and_then(Value::as_object) else {
        return rib;
    };
    for (prefix, entries) in routes {
        let mut paths: Vec<&Value> = Vec::new();
        for e in entries.as_array().into_iter().flatten() {
            if let Some(ps) = e.get("paths").and_then(Value::as_array) {
                paths.extend(ps);
            } else if e.get("nexthops").is_some() || e.get("aspath").is_some() {
                paths.push(e);
            }
        }
        // only paths learnt from a peer
        paths.retain(|p| {
            let id = p
                .pointer("/peer/peerId")
                .and_then(Value::as_str)
                .unwrap_or("");
            !id.is_empty() && id != "(unspec)" && id != "0.0.0.0" && id != "::"
        });
        let best = paths
            .iter()
            .find(|p| {
                p.pointer("/bestpath/overall").and_then(Value::as_bool) == Some(true)
                    || p.get("bestpath").and_then(Value::as_bool) == Some(true)
            })
            .or_else(|| paths.first());
        let Some(p) = best else { continue };
        let strings = |ptr: &str| -> Vec<String> {
            p.pointer(ptr)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(normalize_community)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut as_path = Vec::new();
        for seg in p
            .pointer("/aspath/segments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for a in seg
                .get("list")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = a.as_u64() {
                    as_path.push(n as u32);
                }
            }
        }
        let num = |k: &str| p.get(k).and_then(Value::as_u64).map(|n| n as u32);
        rib.insert(
            prefix.clone(),
            RibRoute {
                prefix: prefix.clone(),
                as_path,
                communities: strings("/community/list"),
                large_communities: strings("/largeCommunity/list"),
                med: num("metric").or_else(|| num("med")),
                local_pref: num("locPrf").or_else(|| num("localpref")),
                next_hop: p
                    .pointer("/nexthops/0/ip")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                peer: p
                    .pointer("/peer/peerId")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        );
    }
    rib
}

impl Frr<'_> {
    /// Undoes [`BgpDaemon::shutdown_peer`]: `no neighbor X shutdown`.
    pub fn enable_peer(&self, peer: &str) -> Result<(), String> {
        let router = format!("router bgp {}", self.asn);
        let cmd = format!("no neighbor {peer} shutdown");
        self.configure(&[&router, &cmd, "exit"])
    }
}

impl BgpDaemon for Frr<'_> {
    fn kind(&self) -> &'static str {
        "frr"
    }

    fn state_dump(&self) -> String {
        let mut s = String::new();
        for p in &self.pids {
            dump_exited(&mut s, self.lab, *p, &format!("process {p}"));
        }
        let cmds: [&[&str]; 4] = [
            &["show bgp summary"],
            &["show bgp neighbors"],
            &["show bgp ipv4 unicast"],
            &["show bgp ipv6 unicast"],
        ];
        dump_commands(&mut s, "vtysh -c", &cmds, 60, |a| self.vtysh(a[0]));
        dump_lines(
            &mut s,
            "bgpd stdout",
            &super::tail_file(&self.dir.join("bgpd.out"), 10),
        );
        s
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    fn is_established(&self, peer: &str) -> bool {
        self.neighbor_json(peer)
            .and_then(|n| {
                n.get("bgpState")
                    .and_then(Value::as_str)
                    .map(|s| s == "Established")
            })
            .unwrap_or(false)
    }

    fn rib(&self, family: Family) -> Rib {
        self.vtysh_json(&format!("show bgp {} unicast json detail", afi(family)))
            .map(|v| parse_rib(&v))
            .unwrap_or_default()
    }

    /// FRR logs `%NOTIFICATION: received from neighbor X 6/2 (Cease/Administrative Shutdown)
    /// "message"`.
    fn notification_received(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|s| {
            s.lines().any(|l| {
                l.contains("%NOTIFICATION")
                    && l.contains("received from neighbor")
                    && l.contains(text)
            })
        })
    }

    fn route_refresh(&self, peer: &str, family: Family) -> Result<(), String> {
        self.vtysh(&format!("clear bgp {} unicast {peer} soft in", afi(family)))
            .map(|_| ())
    }

    fn announce(&self, route: &Route) -> Result<(), String> {
        let rm = route_map(route);
        // replace a route-map left from an earlier announcement of the prefix
        let no_rm = format!("no route-map {}", map_name(&route.prefix));
        let _ = self.configure(&[&no_rm]);
        let mut lines: Vec<&str> = rm.lines().filter(|l| *l != "!").collect();
        let router = format!("router bgp {}", self.asn);
        let af = format!("address-family {} unicast", afi(route.family()));
        let net = format!(
            "network {} route-map {}",
            route.prefix,
            map_name(&route.prefix)
        );
        lines.extend([
            router.as_str(),
            af.as_str(),
            net.as_str(),
            "exit-address-family",
            "exit",
        ]);
        self.configure(&lines)?;
        self.extra_routes.borrow_mut().push(route.prefix.clone());
        Ok(())
    }

    fn withdraw(&self, prefix: &str) -> Result<(), String> {
        let router = format!("router bgp {}", self.asn);
        let af = format!("address-family {} unicast", afi(Family::of(prefix)));
        let net = format!("no network {prefix}");
        self.configure(&[&router, &af, &net, "exit-address-family", "exit"])
    }

    fn shutdown_peer(&self, peer: &str, message: &str) -> Result<(), String> {
        let router = format!("router bgp {}", self.asn);
        let cmd = format!("neighbor {peer} shutdown message {message}");
        self.configure(&[&router, &cmd, "exit"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_bgp_json_detail() {
        // FRR 8.4 `show bgp ipv4 unicast json detail` (trimmed)
        let v: Value = serde_json::from_str(
            r#"{"routes": {
              "198.51.100.0/24": [{"prefix":"198.51.100.0/24","advertisedTo":{}},
                {"aspath":{"string":"65002","segments":[{"type":"as-sequence","list":[65002]}],"length":1},
                 "metric":50,"locPrf":100,"valid":true,"bestpath":{"overall":true},
                 "community":{"string":"64512:100 gshut","list":["64512:100","gshut","noPeer"]},
                 "largeCommunity":{"string":"65002:1:2","list":["65002:1:2"]},
                 "nexthops":[{"ip":"192.0.2.2","afi":"ipv4","used":true}],
                 "peer":{"peerId":"192.0.2.2","routerId":"192.0.2.2","type":"external"}}],
              "203.0.113.0/24": [{"prefix":"203.0.113.0/24"},
                {"aspath":{"string":"Local","segments":[],"length":0},"metric":7,
                 "bestpath":{"overall":true},"nexthops":[{"ip":"0.0.0.0"}],
                 "peer":{"peerId":"(unspec)"}}]
            }}"#,
        )
        .unwrap();
        let rib = parse_rib(&v);
        assert_eq!(rib.len(), 1, "{rib:?}");
        let r = &rib["198.51.100.0/24"];
        assert_eq!(r.as_path, vec![65002]);
        assert_eq!(r.communities, vec!["64512:100", "65535:0", "65535:65284"]);
        assert_eq!(r.large_communities, vec!["65002:1:2"]);
        assert_eq!(r.med, Some(50));
        assert_eq!(r.next_hop.as_deref(), Some("192.0.2.2"));
    }

    #[test]
    fn config_satisfies_ebgp_requires_policy() {
        let c = FrrConfig::new(65001, "192.0.2.1")
            .peer(Peer::new("192.0.2.2", 65002).passive())
            .render(Path::new("/tmp/x.log"));
        assert!(c.contains("neighbor 192.0.2.2 route-map FIT-ALL in"), "{c}");
        assert!(
            c.contains("neighbor 192.0.2.2 route-map FIT-ALL out"),
            "{c}"
        );
        assert!(c.contains("neighbor 192.0.2.2 passive"), "{c}");
        assert!(!c.contains("ebgp-requires-policy"), "{c}");
    }
}
