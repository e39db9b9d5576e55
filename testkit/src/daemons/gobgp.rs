//! GoBGP 3.x (`gobgpd`) in a namespace: `gobgpd -f DIR/gobgpd.toml --api-hosts
//! 127.0.0.1:50051 -p --pprof-disable`, log (stdout+stderr) in `DIR/gobgpd.log`. The gRPC API
//! listens on the namespace's own loopback, so every GoBGP can use the same port; the CLI
//! (`gobgp -u 127.0.0.1 -p 50051 ...`) runs inside the namespace.
//!
//! The neighbors start admin-down; [`GoBgp::start`] adds the configured routes through the API
//! (`gobgp global rib add`), then enables the neighbors, so the first UPDATE already carries
//! them.
//!
//! Route refresh: `gobgp neighbor X softresetin` only re-runs the import policy over GoBGP's
//! Adj-RIB-In; GoBGP 3.10's CLI has no command that sends a ROUTE-REFRESH on the wire.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{
    dump_commands, dump_exited, normalize_community, poll, BgpDaemon, Family, Peer, Rib, RibRoute,
    Route,
};
use crate::netns::{Lab, Netns};

/// Port of GoBGP's gRPC API on the namespace's loopback.
pub const API_PORT: u16 = 50051;

/// GoBGP configuration builder.
#[derive(Clone, Debug)]
pub struct GoBgpConfig {
    pub asn: u32,
    pub router_id: String,
    pub peers: Vec<Peer>,
    /// Added through the API after start, before the neighbors are enabled.
    pub routes: Vec<Route>,
    /// BGP listen port (179; -1 = do not listen).
    pub listen_port: i32,
    /// Extra TOML appended to the config.
    pub extra: String,
}

impl GoBgpConfig {
    pub fn new(asn: u32, router_id: &str) -> GoBgpConfig {
        GoBgpConfig {
            asn,
            router_id: router_id.to_string(),
            peers: Vec::new(),
            routes: Vec::new(),
            listen_port: 179,
            extra: String::new(),
        }
    }
    pub fn peer(mut self, p: Peer) -> GoBgpConfig {
        self.peers.push(p);
        self
    }
    pub fn route(mut self, r: Route) -> GoBgpConfig {
        self.routes.push(r);
        self
    }

    /// The gobgpd.toml text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "[global.config]");
        let _ = writeln!(w, "  as = {}", self.asn);
        let _ = writeln!(w, "  router-id = \"{}\"", self.router_id);
        let _ = writeln!(w, "  port = {}", self.listen_port);
        for p in &self.peers {
            let _ = writeln!(w, "\n[[neighbors]]\n  [neighbors.config]");
            let _ = writeln!(w, "    neighbor-address = \"{}\"", p.address);
            let _ = writeln!(w, "    peer-as = {}", p.remote_as);
            let _ = writeln!(w, "    admin-down = true");
            let _ = writeln!(w, "  [neighbors.timers.config]");
            let _ = writeln!(w, "    hold-time = {}", p.hold_time);
            let _ = writeln!(w, "    keepalive-interval = {}", p.keepalive());
            let _ = writeln!(w, "    connect-retry = 1");
            let _ = writeln!(w, "    idle-hold-time-after-reset = 1");
            let _ = writeln!(w, "  [neighbors.transport.config]");
            if p.passive {
                let _ = writeln!(w, "    passive-mode = true");
            }
            if let Some(l) = &p.local_address {
                let _ = writeln!(w, "    local-address = \"{l}\"");
            }
            if let Some(port) = p.port {
                let _ = writeln!(w, "    remote-port = {port}");
            }
            for f in &p.families {
                let _ = writeln!(
                    w,
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]"
                );
                let _ = writeln!(w, "      afi-safi-name = \"{}-unicast\"", afi(*f));
            }
        }
        w.push_str(&self.extra);
        s
    }
}

fn afi(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

/// A running gobgpd.
pub struct GoBgp<'l> {
    lab: &'l Lab,
    ns: Netns,
    dir: PathBuf,
    log: PathBuf,
    pid: u32,
}

impl<'l> GoBgp<'l> {
    /// Starts gobgpd in `ns`, waits (10 s) for its API, adds the routes, enables the neighbors.
    pub fn start(lab: &'l Lab, ns: &Netns, config: &GoBgpConfig) -> GoBgp<'l> {
        let dir = lab.daemon_dir("gobgp", ns);
        let log = dir.join("gobgpd.log");
        let conf = dir.join("gobgpd.toml");
        std::fs::write(&conf, config.render()).expect("write gobgpd.toml");
        let mut c = ns.command("gobgpd");
        c.arg("-f").arg(&conf);
        c.args([
            "--api-hosts",
            &format!("127.0.0.1:{API_PORT}"),
            "-p",
            "--pprof-disable",
        ]);
        let pid = lab.spawn("gobgpd", c, &log);
        let g = GoBgp {
            lab,
            ns: ns.clone(),
            dir,
            log,
            pid,
        };
        let ok = poll(Duration::from_secs(10), || {
            if !g.lab.is_running(g.pid) {
                return Some(false);
            }
            g.gobgp(&["global"]).ok().map(|_| true)
        });
        if ok != Some(true) {
            g.fail("gobgpd did not come up (gobgp global does not answer)");
        }
        for r in &config.routes {
            if let Err(e) = g.announce(r) {
                g.fail(&e);
            }
        }
        for p in &config.peers {
            if let Err(e) = g.gobgp(&["neighbor", &p.address, "enable"]) {
                g.fail(&e);
            }
        }
        g
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `gobgp -u 127.0.0.1 -p 50051 ARGS...` inside the namespace; Ok(stdout).
    pub fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        let port = API_PORT.to_string();
        let mut a = vec!["-u", "127.0.0.1", "-p", &port];
        a.extend_from_slice(args);
        self.ns.exec("gobgp", &a)
    }

    /// `gobgp ARGS... -j`, parsed.
    pub fn gobgp_json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = args.to_vec();
        a.push("-j");
        let out = self.gobgp(&a)?;
        serde_json::from_str(&out).map_err(|e| format!("gobgp {args:?}: bad JSON ({e}): {out}"))
    }

    /// The neighbor's entry of `gobgp neighbor -j`.
    pub fn neighbor_json(&self, peer: &str) -> Option<Value> {
        self.gobgp_json(&["neighbor"]).ok().and_then(|v| {
            v.as_array()?
                .iter()
                .find(|n| n.pointer("/conf/neighbor_address").and_then(Value::as_str) == Some(peer))
                .cloned()
        })
    }
}

/// Parses `gobgp global rib -a AFI -j` (prefix -> [path]); keeps paths learnt from a neighbor
/// (those with `neighbor-ip`), best first.
pub fn parse_rib(v: &Value) -> Rib {
    let mut rib = Rib::new();
    let Some(map) = v.as_object() else { return rib };
    for (prefix, paths) in map {
        let paths: Vec<&Value> = paths
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p.get("neighbor-ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| ip != "<nil>" && !ip.is_empty())
            })
            .collect();
        let Some(p) = paths
            .iter()
            .find(|p| p.get("best").and_then(Value::as_bool) == Some(true))
            .or_else(|| paths.first())
        else {
            continue;
        };
        let mut r = RibRoute {
            prefix: prefix.clone(),
            peer: p
                .get("neighbor-ip")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..RibRoute::default()
        };
        for a in p
            .get("attrs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match a.get("type").and_then(Value::as_u64) {
                Some(2) => {
                    for seg in a
                        .get("as_paths")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        for n in seg
                            .get("asns")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            if let Some(n) = n.as_u64() {
                                r.as_path.push(n as u32);
                            }
                        }
                    }
                }
                Some(3) => {
                    r.next_hop = a.get("nexthop").and_then(Value::as_str).map(str::to_string)
                }
                Some(4) => r.med = a.get("metric").and_then(Value::as_u64).map(|n| n as u32),
                Some(5) => r.local_pref = a.get("value").and_then(Value::as_u64).map(|n| n as u32),
                Some(8) => {
                    for c in a
                        .get("communities")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(c) = c.as_u64() {
                            r.communities.push(normalize_community(&format!(
                                "{}:{}",
                                c >> 16,
                                c & 0xffff
                            )));
                        }
                    }
                }
                Some(14) if r.next_hop.is_none() => {
                    r.next_hop = a.get("nexthop").and_then(Value::as_str).map(str::to_string);
                }
                Some(32) => {
                    for c in a
                        .get("value")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let f = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
                        r.large_communities.push(format!(
                            "{}:{}:{}",
                            f("ASN"),
                            f("LocalData1"),
                            f("LocalData2")
                        ));
                    }
                }
                _ => {}
            }
        }
        rib.insert(prefix.clone(), r);
    }
    rib
}

impl BgpDaemon for GoBgp<'_> {
    fn kind(&self) -> &'static str {
        "gobgp"
    }

    fn state_dump(&self) -> String {
        let mut s = String::new();
        dump_exited(&mut s, self.lab, self.pid, "gobgpd");
        let cmds: [&[&str]; 3] = [
            &["neighbor"],
            &["global", "rib", "-a", "ipv4"],
            &["global", "rib", "-a", "ipv6"],
        ];
        dump_commands(&mut s, "gobgp", &cmds, 60, |a| self.gobgp(a));
        s
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    fn is_established(&self, peer: &str) -> bool {
        self.neighbor_json(peer)
            .is_some_and(|n| match n.pointer("/state/session_state") {
                Some(Value::Number(x)) => x.as_u64() == Some(6),
                Some(Value::String(s)) => s.eq_ignore_ascii_case("established"),
                _ => false,
            })
    }

    fn rib(&self, family: Family) -> Rib {
        self.gobgp_json(&["global", "rib", "-a", afi(family)])
            .map(|v| parse_rib(&v))
            .unwrap_or_default()
    }

    /// gobgpd logs `msg="received notification" Code=6 Communicated-Reason="TEXT" ...
    /// Subcode=2` and `Reason="notification-received code 6(cease) subcode 2(...)"` (and the
    /// same with "sent" for its own, which do not count).
    fn notification_received(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|s| {
            s.lines().any(|l| {
                (l.contains("received notification") || l.contains("notification-received"))
                    && l.contains(text)
            })
        })
    }

    /// Soft reset in (policy re-run); sends no ROUTE-REFRESH (see the module docs).
    fn route_refresh(&self, peer: &str, family: Family) -> Result<(), String> {
        self.gobgp(&["neighbor", peer, "softresetin", "-a", afi(family)])
            .map(|_| ())
    }

    fn announce(&self, r: &Route) -> Result<(), String> {
        let fam = afi(r.family());
        let nh = r.next_hop.clone().unwrap_or_else(|| match r.family() {
            Family::Ipv4 => "0.0.0.0".into(),
            Family::Ipv6 => "::".into(),
        });
        let mut args: Vec<String> = [
            "global", "rib", "add", "-a", fam, &r.prefix, "origin", "igp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["nexthop".into(), nh]);
        if !r.prepend.is_empty() {
            let p: Vec<String> = r.prepend.iter().map(|a| a.to_string()).collect();
            args.extend(["aspath".into(), p.join(",")]);
        }
        if let Some(m) = r.med {
            args.extend(["med".into(), m.to_string()]);
        }
        if !r.communities.is_empty() {
            args.extend(["community".into(), r.communities.join(",")]);
        }
        if !r.large_communities.is_empty() {
            args.extend(["large-community".into(), r.large_communities.join(",")]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.gobgp(&a).map(|_| ())
    }

    fn withdraw(&self, prefix: &str) -> Result<(), String> {
        self.gobgp(&[
            "global",
            "rib",
            "del",
            "-a",
            afi(Family::of(prefix)),
            prefix,
        ])
        .map(|_| ())
    }

    /// `gobgp neighbor X shutdown --reason MSG` (the `disable` command drops the reason in 3.10).
    fn shutdown_peer(&self, peer: &str, message: &str) -> Result<(), String> {
        self.gobgp(&["neighbor", peer, "shutdown", "--reason", message])
            .map(|_| ())
    }
}
