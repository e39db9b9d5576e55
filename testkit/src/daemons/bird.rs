//! BIRD 2 in a namespace: `bird -f -c DIR/bird.conf -s DIR/bird.ctl -P DIR/bird.pid`, log in
//! `DIR/bird.log`. One `protocol bgp` per peer, named `fit_p<n>` (see [`Bird::protocol`]);
//! originated routes are `protocol static` blackhole routes with communities set there and
//! MED / AS-path prepends set in the export filter (BIRD only sends an eBGP MED that the export
//! filter sets). Runtime [`BgpDaemon::announce`] / `withdraw` rewrite the config and run
//! `birdc configure`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{
    dump_commands, dump_exited, dump_lines, normalize_community, poll, BgpDaemon, Family, Peer,
    Rib, RibRoute, Route,
};
use crate::cmd::run;
use crate::netns::{Lab, Netns};

/// BIRD configuration builder.
#[derive(Clone, Debug)]
pub struct BirdConfig {
    pub asn: u32,
    pub router_id: String,
    pub peers: Vec<Peer>,
    pub routes: Vec<Route>,
    /// Extra lines appended to the config.
    pub extra: Vec<String>,
}

impl BirdConfig {
    pub fn new(asn: u32, router_id: &str) -> BirdConfig {
        BirdConfig {
            asn,
            router_id: router_id.to_string(),
            peers: Vec::new(),
            routes: Vec::new(),
            extra: Vec::new(),
        }
    }
    pub fn peer(mut self, p: Peer) -> BirdConfig {
        self.peers.push(p);
        self
    }
    pub fn route(mut self, r: Route) -> BirdConfig {
        self.routes.push(r);
        self
    }
    pub fn extra(mut self, line: &str) -> BirdConfig {
        self.extra.push(line.to_string());
        self
    }

    /// The bird.conf text.
    pub fn render(&self, log_file: &Path) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "log \"{}\" all;", log_file.display());
        let _ = writeln!(w, "router id {};", self.router_id);
        let _ = writeln!(w, "protocol device {{ }}");
        for fam in [Family::Ipv4, Family::Ipv6] {
            let routes: Vec<&Route> = self.routes.iter().filter(|r| r.family() == fam).collect();
            let ch = channel(fam);
            let _ = writeln!(w, "protocol static fit_static_{ch} {{\n  {ch};");
            for r in routes {
                let mut attrs = String::new();
                for c in &r.communities {
                    let _ = write!(attrs, " bgp_community.add(({}));", c.replace(':', ","));
                }
                for c in &r.large_communities {
                    let _ = write!(
                        attrs,
                        " bgp_large_community.add(({}));",
                        c.replace(':', ",")
                    );
                }
                let _ = writeln!(w, "  route {} blackhole {{{attrs} }};", r.prefix);
            }
            let _ = writeln!(w, "}}");
        }
        let _ = writeln!(w, "filter fit_export {{");
        for r in &self.routes {
            let mut body = String::new();
            if let Some(m) = r.med {
                let _ = write!(body, " bgp_med = {m};");
            }
            for a in r.prepend.iter().rev() {
                let _ = write!(body, " bgp_path.prepend({a});");
            }
            if !body.is_empty() {
                let _ = writeln!(w, "  if net = {} then {{{body} }}", r.prefix);
            }
        }
        let _ = writeln!(w, "  accept;\n}}");
        for (i, p) in self.peers.iter().enumerate() {
            let _ = writeln!(w, "protocol bgp {} {{", protocol_name(i));
            match &p.local_address {
                Some(l) => {
                    let _ = writeln!(w, "  local {l} as {};", self.asn);
                }
                None => {
                    let _ = writeln!(w, "  local as {};", self.asn);
                }
            }
            match p.port {
                Some(port) => {
                    let _ = writeln!(
                        w,
                        "  neighbor {} port {port} as {};",
                        p.address, p.remote_as
                    );
                }
                None => {
                    let _ = writeln!(w, "  neighbor {} as {};", p.address, p.remote_as);
                }
            }
            let _ = writeln!(
                w,
                "  hold time {}; keepalive time {};",
                p.hold_time,
                p.keepalive()
            );
            let _ = writeln!(
                w,
                "  connect delay time 1; connect retry time 2; error wait time 1, 5;"
            );
            if p.passive {
                let _ = writeln!(w, "  passive on;");
            }
            if p.extended_messages {
                let _ = writeln!(w, "  enable extended messages on;");
            }
            for fam in &p.families {
                let _ = writeln!(
                    w,
                    "  {} {{ import all; export filter fit_export; }};",
                    channel(*fam)
                );
            }
            let _ = writeln!(w, "}}");
        }
        for l in &self.extra {
            let _ = writeln!(w, "{l}");
        }
        s
    }
}

fn channel(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

fn protocol_name(i: usize) -> String {
    format!("fit_p{}", i + 1)
}

/// A running BIRD.
pub struct Bird<'l> {
    lab: &'l Lab,
    ns: Netns,
    dir: PathBuf,
    log: PathBuf,
    pid: u32,
    config: RefCell<BirdConfig>,
}

impl<'l> Bird<'l> {
    /// Checks the config (`bird -p`), starts BIRD in `ns` and waits (10 s) until birdc answers.
    pub fn start(lab: &'l Lab, ns: &Netns, config: &BirdConfig) -> Bird<'l> {
        let dir = lab.daemon_dir("bird", ns);
        let log = dir.join("bird.log");
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config.render(&log)).expect("write bird.conf");
        if let Err(e) = run(Command::new("bird").arg("-p").arg("-c").arg(&conf)) {
            panic!("bird rejects its config: {e}\n{}", config.render(&log));
        }
        let mut c = ns.command("bird");
        c.arg("-f").arg("-c").arg(&conf);
        c.arg("-s").arg(dir.join("bird.ctl"));
        c.arg("-P").arg(dir.join("bird.pid"));
        let pid = lab.spawn("bird", c, &dir.join("bird.out"));
        let b = Bird {
            lab,
            ns: ns.clone(),
            dir,
            log,
            pid,
            config: RefCell::new(config.clone()),
        };
        let ok = poll(Duration::from_secs(10), || {
            if !b.lab.is_running(b.pid) {
                return Some(false);
            }
            b.birdc(&["show", "status"]).ok().map(|_| true)
        });
        if ok != Some(true) {
            b.fail("bird did not come up (birdc does not answer)");
        }
        b
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

    /// `birdc -s DIR/bird.ctl ARGS...`; Ok(stdout).
    pub fn birdc(&self, args: &[&str]) -> Result<String, String> {
        let out = run(Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .args(args))?;
        Ok(out)
    }

    /// The `protocol bgp` name of the peer with this address (`fit_p<n>`).
    pub fn protocol(&self, peer: &str) -> Option<String> {
        self.config
            .borrow()
            .peers
            .iter()
            .position(|p| p.address == peer)
            .map(protocol_name)
    }

    fn protocol_or_err(&self, peer: &str) -> Result<String, String> {
        self.protocol(peer)
            .ok_or_else(|| format!("bird: no configured peer {peer}"))
    }

    fn reconfigure(&self) -> Result<(), String> {
        let conf = self.dir.join("bird.conf");
        std::fs::write(&conf, self.config.borrow().render(&self.log)).map_err(|e| e.to_string())?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(format!("birdc configure: {out}"))
        }
    }
}

/// Parses `birdc show route all` output: routes whose `Type:` is BGP, first (best) path per
/// prefix.
pub fn parse_routes(text: &str) -> Rib {
    let mut rib = Rib::new();
    let mut cur: Option<(RibRoute, bool)> = None; // (route, is_bgp)
    let mut last_prefix = String::new();
    let flush = |cur: &mut Option<(RibRoute, bool)>, rib: &mut Rib| {
        if let Some((r, true)) = cur.take() {
            rib.entry(r.prefix.clone()).or_insert(r);
        }
    };
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        let trimmed = line.trim_start();
        let indented = line.len() != trimmed.len();
        let first = trimmed.split_whitespace().next().unwrap_or("");
        let new_route = !indented && first.contains('/');
        let new_path =
            indented && (first == "unicast" || first == "blackhole" || first == "unreachable");
        if new_route || new_path {
            flush(&mut cur, &mut rib);
            if new_route {
                last_prefix = first.to_string();
            }
            let peer = trimmed
                .split_once('[')
                .and_then(|(_, r)| r.split_whitespace().next())
                .map(str::to_string);
            cur = Some((
                RibRoute {
                    prefix: last_prefix.clone(),
                    peer,
                    ..RibRoute::default()
                },
                false,
            ));
            continue;
        }
        let Some((r, is_bgp)) = cur.as_mut() else {
            continue;
        };
        let Some((key, val)) = trimmed.split_once(':') else {
            continue;
        };
        let val = val.trim();
        match key {
            "Type" => *is_bgp = val.starts_with("BGP"),
            "BGP.as_path" => {
                r.as_path = val
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|a| a.parse().ok())
                    .collect()
            }
            "BGP.next_hop" => r.next_hop = val.split_whitespace().next().map(str::to_string),
            "BGP.med" => r.med = val.parse().ok(),
            "BGP.local_pref" => r.local_pref = val.parse().ok(),
            "BGP.community" => r.communities = tuples(val),
            "BGP.large_community" => r.large_communities = tuples(val),
            _ => {}
        }
    }
    flush(&mut cur, &mut rib);
    rib
}

/// "(64512,100) (65535,0)" -> ["64512:100", "65535:0"]; "(1, 2, 3)" -> ["1:2:3"].
fn tuples(val: &str) -> Vec<String> {
    val.split('(')
        .filter_map(|t| t.split_once(')').map(|(inner, _)| inner))
        .map(|inner| {
            let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
            normalize_community(&parts.join(":"))
        })
        .collect()
}

impl BgpDaemon for Bird<'_> {
    fn kind(&self) -> &'static str {
        "bird"
    }

    fn state_dump(&self) -> String {
        let mut s = String::new();
        dump_exited(&mut s, self.lab, self.pid, "bird");
        let cmds: [&[&str]; 2] = [&["show", "protocols", "all"], &["show", "route", "all"]];
        dump_commands(&mut s, "birdc", &cmds, 80, |a| self.birdc(a));
        dump_lines(
            &mut s,
            "bird stdout/stderr",
            &super::tail_file(&self.dir.join("bird.out"), 10),
        );
        s
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    fn is_established(&self, peer: &str) -> bool {
        let Some(name) = self.protocol(peer) else {
            return false;
        };
        self.birdc(&["show", "protocols", "all", &name])
            .is_ok_and(|o| {
                o.lines().any(|l| {
                    l.trim() == "BGP state:          Established" || {
                        let t = l.trim();
                        t.starts_with("BGP state:") && t.ends_with("Established")
                    }
                })
            })
    }

    fn rib(&self, family: Family) -> Rib {
        let table = match family {
            Family::Ipv4 => "master4",
            Family::Ipv6 => "master6",
        };
        self.birdc(&["show", "route", "all", "table", table])
            .map(|o| parse_routes(&o))
            .unwrap_or_default()
    }

    /// BIRD logs `fit_p1: Received: Administrative shutdown: "message"`.
    fn notification_received(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|s| {
            s.lines()
                .any(|l| l.contains("Received:") && l.contains(text))
        })
    }

    fn route_refresh(&self, peer: &str, _family: Family) -> Result<(), String> {
        let name = self.protocol_or_err(peer)?;
        self.birdc(&["reload", "in", &name]).map(|_| ())
    }

    fn announce(&self, route: &Route) -> Result<(), String> {
        self.config.borrow_mut().routes.push(route.clone());
        self.reconfigure()
    }

    fn withdraw(&self, prefix: &str) -> Result<(), String> {
        self.config
            .borrow_mut()
            .routes
            .retain(|r| r.prefix != prefix);
        self.reconfigure()
    }

    fn shutdown_peer(&self, peer: &str, message: &str) -> Result<(), String> {
        let name = self.protocol_or_err(peer)?;
        self.birdc(&[
            "disable",
            &name,
            &format!("\"{}\"", message.replace('"', "'")),
        ])
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bgp_routes_and_skips_static_ones() {
        let text = "BIRD 2.0.12 ready.\nTable master4:\n\
198.51.100.0/24      unicast [fit_p1 23:31:08.570] * (100) [AS65001i]\n\
\tvia 192.0.2.1 on v1-a\n\
\tType: BGP univ\n\
\tBGP.origin: IGP\n\
\tBGP.as_path: 65001 65010\n\
\tBGP.next_hop: 192.0.2.1\n\
\tBGP.med: 50\n\
\tBGP.local_pref: 100\n\
\tBGP.community: (64512,100) (65535,0)\n\
\tBGP.large_community: (65001, 1, 2) (65001, 3, 4)\n\
\x20                    unicast [fit_p2 23:31:09.000] (100) [AS65003i]\n\
\tvia 192.0.2.3 on v2-c\n\
\tType: BGP univ\n\
\tBGP.as_path: 65003\n\
203.0.113.0/25       blackhole [fit_static_ipv4 23:31:08.570] * (200)\n\
\tType: static univ\n\
\tBGP.community: (65535,0) (64512,300)\n";
        let rib = parse_routes(text);
        assert_eq!(rib.len(), 1, "{rib:?}");
        let r = &rib["198.51.100.0/24"];
        assert_eq!(r.as_path, vec![65001, 65010]);
        assert_eq!(r.communities, vec!["64512:100", "65535:0"]);
        assert_eq!(r.large_communities, vec!["65001:1:2", "65001:3:4"]);
        assert_eq!(r.med, Some(50));
        assert_eq!(r.local_pref, Some(100));
        assert_eq!(r.next_hop.as_deref(), Some("192.0.2.1"));
        assert_eq!(r.peer.as_deref(), Some("fit_p1"));
    }

    #[test]
    fn renders_peers_and_routes() {
        let c = BirdConfig::new(65002, "192.0.2.2")
            .peer(Peer::new("192.0.2.1", 65001).passive())
            .route(
                Route::new("198.51.100.0/24")
                    .community("64512:100")
                    .med(5)
                    .prepend(&[1, 2]),
            )
            .render(Path::new("/tmp/x.log"));
        assert!(c.contains("neighbor 192.0.2.1 as 65001;"), "{c}");
        assert!(c.contains("passive on;"), "{c}");
        assert!(c.contains("bgp_community.add((64512,100));"), "{c}");
        assert!(
            c.contains("bgp_med = 5; bgp_path.prepend(2); bgp_path.prepend(1);"),
            "{c}"
        );
    }
}
