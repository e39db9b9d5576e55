//! ExaBGP 4.2 in a namespace, config `DIR/exabgp.conf`, log (stdout) `DIR/exabgp.log`.
//!
//! ExaBGP has no RIB to query: an API process (`DIR/recv.py`, appends to `DIR/received.jsonl`,
//! encoder json, `receive { parsed; update; notification; } neighbor-changes;`) logs every
//! received UPDATE, NOTIFICATION and state change as one JSON object per line; [`ExaBgp`]
//! replays that file as its RIB and session state. A second API process (`tail -F
//! DIR/exabgp.cmd`) relays the commands [`ExaBgp::command`] appends (announce, withdraw,
//! route-refresh, teardown).
//!
//! Limits of ExaBGP 4.2.21 seen here:
//! * a received ROUTE-REFRESH with enhanced route refresh negotiated crashes its peer loop, so
//!   the `route-refresh` capability is off unless [`ExaBgpConfig::route_refresh`] is set (then
//!   do not make the peer send a ROUTE-REFRESH);
//! * a received Cease/2 (or /4) WITH a shutdown communication cannot be decoded (Python
//!   `bytes % str` bug): ExaBGP sends NOTIFICATION 1/0 "can not decode update message of type
//!   3" and drops the session; the text is lost (see [`ExaBgp`]'s `notification_received`);
//! * teardown sends Cease/<subcode> whose data is the subcode's name: no custom shutdown text;
//!   with graceful restart negotiated it closes without NOTIFICATION (GR is not configured here);
//! * a passive ExaBGP listens through `exabgp.tcp.bind` (the local address of the first passive
//!   peer) on port 179; `Peer::port` is not supported.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{
    dump_exited, dump_lines, normalize_community, poll, BgpDaemon, Family, Peer, Rib, RibRoute,
    Route,
};
use crate::netns::{Lab, Netns};

/// The receive process: copies its stdin to the file. (Not `cat`: ExaBGP's pipe can be
/// non-blocking, and `cat` dies on EAGAIN, after which ExaBGP gives up and shuts down.)
const RECV_PY: &str = r#"#!/usr/bin/env python3
import os, select, sys
fd = sys.stdin.fileno()
with open("@OUT@", "ab", buffering=0) as out:
    while True:
        select.select([fd], [], [])
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not data:
            break
        out.write(data)
"#;

/// ExaBGP configuration builder.
#[derive(Clone, Debug)]
pub struct ExaBgpConfig {
    pub asn: u32,
    pub router_id: String,
    /// Each peer needs `local_address` (else the router id is used).
    pub peers: Vec<Peer>,
    /// Static routes sent to every peer (next hop default: the peer's local address).
    pub routes: Vec<Route>,
    /// Advertise the route-refresh capability (see the module docs).
    pub route_refresh: bool,
}

impl ExaBgpConfig {
    pub fn new(asn: u32, router_id: &str) -> ExaBgpConfig {
        ExaBgpConfig {
            asn,
            router_id: router_id.to_string(),
            peers: Vec::new(),
            routes: Vec::new(),
            route_refresh: false,
        }
    }
    pub fn peer(mut self, p: Peer) -> ExaBgpConfig {
        self.peers.push(p);
        self
    }
    pub fn route(mut self, r: Route) -> ExaBgpConfig {
        self.routes.push(r);
        self
    }
    pub fn route_refresh(mut self, on: bool) -> ExaBgpConfig {
        self.route_refresh = on;
        self
    }

    /// The exabgp.conf text.
    pub fn render(&self, dir: &Path) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "process fit-recv {{\n  run {};\n  encoder json;\n}}",
            dir.join("recv.py").display()
        );
        let _ = writeln!(
            w,
            "process fit-ctl {{\n  run /usr/bin/tail -n +1 -F {};\n  encoder text;\n}}",
            dir.join("exabgp.cmd").display()
        );
        for p in &self.peers {
            let local = p
                .local_address
                .clone()
                .unwrap_or_else(|| self.router_id.clone());
            let _ = writeln!(w, "neighbor {} {{", p.address);
            let _ = writeln!(w, "  router-id {};", self.router_id);
            let _ = writeln!(w, "  local-address {local};");
            let _ = writeln!(w, "  local-as {};", self.asn);
            let _ = writeln!(w, "  peer-as {};", p.remote_as);
            let _ = writeln!(w, "  hold-time {};", p.hold_time);
            let _ = writeln!(w, "  group-updates false;");
            if p.passive {
                let _ = writeln!(w, "  passive true;");
            }
            let _ = writeln!(w, "  capability {{");
            if self.route_refresh {
                let _ = writeln!(w, "    route-refresh;");
            }
            let _ = writeln!(w, "  }}\n  family {{");
            for f in &p.families {
                let _ = writeln!(w, "    {} unicast;", afi(*f));
            }
            let _ = writeln!(w, "  }}\n  static {{");
            for r in self
                .routes
                .iter()
                .filter(|r| p.families.contains(&r.family()))
            {
                let _ = writeln!(w, "    {};", route_spec(r, self.asn, &local));
            }
            let _ = writeln!(w, "  }}");
            let _ = writeln!(
                w,
                "  api {{\n    processes [ fit-recv ];\n    neighbor-changes;\n    \
                 receive {{ parsed; update; notification; }}\n  }}"
            );
            let _ = writeln!(w, "  api {{\n    processes [ fit-ctl ];\n  }}\n}}");
        }
        s
    }
}

fn afi(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

/// `route P next-hop NH [med M] as-path [ ASN ... ] [community [..]] [large-community [..]]`
/// (ExaBGP does not prepend its own AS: the path starts with it here).
fn route_spec(r: &Route, asn: u32, local: &str) -> String {
    let nh = r.next_hop.clone().unwrap_or_else(|| {
        if r.family() == Family::of(local) {
            local.to_string()
        } else {
            "self".to_string()
        }
    });
    let mut s = format!("route {} next-hop {nh}", r.prefix);
    if let Some(m) = r.med {
        let _ = write!(s, " med {m}");
    }
    let mut path = vec![asn];
    path.extend(&r.prepend);
    let path: Vec<String> = path.iter().map(|a| a.to_string()).collect();
    let _ = write!(s, " as-path [ {} ]", path.join(" "));
    if !r.communities.is_empty() {
        let _ = write!(s, " community [ {} ]", r.communities.join(" "));
    }
    if !r.large_communities.is_empty() {
        let _ = write!(s, " large-community [ {} ]", r.large_communities.join(" "));
    }
    s
}

/// A running ExaBGP.
pub struct ExaBgp<'l> {
    lab: &'l Lab,
    ns: Netns,
    dir: PathBuf,
    log: PathBuf,
    pid: u32,
    asn: u32,
    local: String,
}

impl<'l> ExaBgp<'l> {
    /// Starts ExaBGP in `ns` and waits (10 s) until it has loaded its configuration.
    pub fn start(lab: &'l Lab, ns: &Netns, config: &ExaBgpConfig) -> ExaBgp<'l> {
        use std::os::unix::fs::PermissionsExt;
        let dir = lab.daemon_dir("exabgp", ns);
        let log = dir.join("exabgp.log");
        let received = dir.join("received.jsonl");
        let recv = dir.join("recv.py");
        std::fs::write(
            &recv,
            RECV_PY.replace("@OUT@", &received.display().to_string()),
        )
        .expect("write recv.py");
        std::fs::set_permissions(&recv, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(&received, "").expect("received.jsonl");
        std::fs::write(dir.join("exabgp.cmd"), "").expect("exabgp.cmd");
        let conf = dir.join("exabgp.conf");
        std::fs::write(&conf, config.render(&dir)).expect("write exabgp.conf");
        let bind = config
            .peers
            .iter()
            .find(|p| p.passive)
            .map(|p| {
                p.local_address
                    .clone()
                    .unwrap_or_else(|| config.router_id.clone())
            })
            .unwrap_or_default();
        let mut c = ns.command("env");
        c.args([
            "exabgp.api.cli=false",
            "exabgp.daemon.user=root",
            "exabgp.daemon.drop=false",
            "exabgp.daemon.daemonize=false",
            &format!("exabgp.daemon.pid={}", dir.join("exabgp.pid").display()),
            "exabgp.log.destination=stdout",
            "exabgp.log.level=INFO",
            "exabgp.log.packets=true",
            &format!("exabgp.tcp.bind={bind}"),
            "exabgp.tcp.port=179",
            "exabgp",
        ])
        .arg(&conf);
        let pid = lab.spawn("exabgp", c, &log);
        let local = config
            .peers
            .first()
            .and_then(|p| p.local_address.clone())
            .unwrap_or_else(|| config.router_id.clone());
        let x = ExaBgp {
            lab,
            ns: ns.clone(),
            dir,
            log,
            pid,
            asn: config.asn,
            local,
        };
        let ok = poll(Duration::from_secs(10), || {
            if !x.lab.is_running(x.pid) {
                return Some(false);
            }
            x.log_contains("loaded new configuration successfully")
                .then_some(true)
        });
        if ok != Some(true) {
            x.fail("exabgp did not come up (did not load its configuration)");
        }
        x
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

    /// Sends an API command (appended to `DIR/exabgp.cmd`, relayed by `tail -F`).
    pub fn command(&self, cmd: &str) -> Result<(), String> {
        use std::io::Write as _;
        let path = self.dir.join("exabgp.cmd");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(f, "{cmd}").map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every JSON message the receive process logged, in order.
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Last state ("connected", "up", "down") reported for `peer`.
    pub fn peer_state(&self, peer: &str) -> Option<String> {
        self.messages()
            .iter()
            .filter(|m| m.get("type").and_then(Value::as_str) == Some("state"))
            .filter(|m| peer_of(m) == Some(peer))
            .filter_map(|m| m.pointer("/neighbor/state").and_then(Value::as_str))
            .next_back()
            .map(str::to_string)
    }
}

fn peer_of(m: &Value) -> Option<&str> {
    m.pointer("/neighbor/address/peer").and_then(Value::as_str)
}

/// Replays ExaBGP JSON messages into a RIB (one path per prefix; the last announcement wins,
/// withdrawals and a session going down remove routes).
pub fn replay(messages: &[Value], family: Family) -> Rib {
    let key = format!("{} unicast", afi(family));
    let mut rib = Rib::new();
    for m in messages {
        let peer = peer_of(m).map(str::to_string);
        match m.get("type").and_then(Value::as_str) {
            Some("state")
                if m.pointer("/neighbor/state").and_then(Value::as_str) == Some("down") =>
            {
                rib.retain(|_, r: &mut RibRoute| r.peer != peer);
            }
            Some("update") => {
                let Some(u) = m.pointer("/neighbor/message/update") else {
                    continue;
                };
                for w in u
                    .pointer(&format!("/withdraw/{}", key.replace('/', "~1")))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(p) = w.get("nlri").and_then(Value::as_str) {
                        rib.remove(p);
                    }
                }
                let Some(ann) = u
                    .get("announce")
                    .and_then(|a| a.get(&key))
                    .and_then(Value::as_object)
                else {
                    continue;
                };
                let attrs = u.get("attribute").cloned().unwrap_or(Value::Null);
                // An IPv6 next hop of global + link-local address (RFC 2545) is listed as two
                // next hops, each with the same NLRI: keep the global one (visited last).
                let mut ann: Vec<(&String, &Value)> = ann.iter().collect();
                ann.sort_by_key(|(nh, _)| !nh.to_ascii_lowercase().starts_with("fe80:"));
                for (nh, nlris) in ann {
                    for n in nlris.as_array().into_iter().flatten() {
                        let Some(p) = n.get("nlri").and_then(Value::as_str).or_else(|| n.as_str())
                        else {
                            continue;
                        };
                        rib.insert(p.to_string(), route_from(p, nh, &attrs, peer.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    rib
}

fn route_from(prefix: &str, nh: &str, a: &Value, peer: Option<String>) -> RibRoute {
    let nums = |v: &Value| -> Vec<u64> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect()
    };
    let joined = |k: &str| -> Vec<String> {
        a.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let parts: Vec<String> = nums(c).iter().map(|n| n.to_string()).collect();
                normalize_community(&parts.join(":"))
            })
            .collect()
    };
    let mut as_path: Vec<u32> = Vec::new();
    match a.get("as-path") {
        Some(Value::Array(v)) => {
            as_path = v
                .iter()
                .filter_map(Value::as_u64)
                .map(|n| n as u32)
                .collect()
        }
        Some(Value::Object(segs)) => {
            for seg in segs.values() {
                as_path.extend(
                    seg.get("value")
                        .map(nums)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|n| n as u32),
                );
            }
        }
        _ => {}
    }
    RibRoute {
        prefix: prefix.to_string(),
        as_path,
        communities: joined("community"),
        large_communities: joined("large-community"),
        med: a.get("med").and_then(Value::as_u64).map(|n| n as u32),
        local_pref: a
            .get("local-preference")
            .and_then(Value::as_u64)
            .map(|n| n as u32),
        next_hop: Some(nh.to_string()),
        peer,
    }
}

impl BgpDaemon for ExaBgp<'_> {
    fn kind(&self) -> &'static str {
        "exabgp"
    }

    fn state_dump(&self) -> String {
        let mut s = String::new();
        dump_exited(&mut s, self.lab, self.pid, "exabgp");
        dump_lines(
            &mut s,
            "received.jsonl (tail)",
            &super::tail_file(&self.dir.join("received.jsonl"), 15),
        );
        dump_lines(
            &mut s,
            "exabgp.cmd",
            &super::tail_file(&self.dir.join("exabgp.cmd"), 15),
        );
        s
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    fn is_established(&self, peer: &str) -> bool {
        self.peer_state(peer).as_deref() == Some("up")
    }

    fn rib(&self, family: Family) -> Rib {
        replay(&self.messages(), family)
    }

    /// Received NOTIFICATION messages (JSON, data decoded from hex when it is), the reason of a
    /// session going down because of a NOTIFICATION, or ExaBGP's log line about one.
    ///
    /// ExaBGP 4.2.21 cannot decode a Cease/2 or Cease/4 that carries a shutdown communication
    /// (`bytes % str` TypeError in `Notification.__init__`): it answers NOTIFICATION 1/0 and the
    /// session goes down with reason `... can not decode update message of type "3"`; the
    /// message text never reaches the JSON.
    fn notification_received(&self, text: &str) -> bool {
        let in_json = self.messages().iter().any(|m| {
            let kind = m.get("type").and_then(Value::as_str);
            // a session taken down by a NOTIFICATION: "notification received (6,2)" or, for
            // one ExaBGP could not decode, "notification sent (1,0) ... of type \"3\""
            (kind == Some("state")
                && m.pointer("/neighbor/reason")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.contains("notification") && r.contains(text)))
                || kind == Some("notification") && {
                    let raw = m.to_string();
                    let data = m
                        .pointer("/neighbor/message/notification/data")
                        .or_else(|| m.pointer("/notification/data"))
                        .and_then(Value::as_str)
                        .and_then(|d| hex::decode(d.trim_start_matches("0x")).ok())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    raw.contains(text) || data.contains(text)
                }
        });
        in_json
            || std::fs::read_to_string(&self.log).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.to_ascii_lowercase().contains("notification")
                        && l.contains("received")
                        && l.contains(text)
                })
            })
    }

    fn route_refresh(&self, peer: &str, family: Family) -> Result<(), String> {
        self.command(&format!(
            "neighbor {peer} announce route-refresh {} unicast",
            afi(family)
        ))
    }

    fn announce(&self, route: &Route) -> Result<(), String> {
        self.command(&format!(
            "announce {}",
            route_spec(route, self.asn, &self.local)
        ))
    }

    fn withdraw(&self, prefix: &str) -> Result<(), String> {
        let nh = if Family::of(prefix) == Family::of(&self.local) {
            self.local.clone()
        } else {
            "self".into()
        };
        self.command(&format!("withdraw route {prefix} next-hop {nh}"))
    }

    /// `neighbor X teardown 2`: Cease/2 without the message (ExaBGP 4.2 cannot send one).
    fn shutdown_peer(&self, peer: &str, _message: &str) -> Result<(), String> {
        self.command(&format!("neighbor {peer} teardown 2"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_prefers_the_global_ipv6_next_hop() {
        // ExaBGP 4.2.21's JSON for an MP_REACH_NLRI with next hop 2001:db8::1 + fe80::1
        let m: Value = serde_json::from_str(
            r#"{"type": "update", "neighbor": {"address": {"local": "192.0.2.2", "peer": "192.0.2.1"},
                "message": {"update": {"attribute": {"origin": "igp", "as-path": [65100, 65100],
                  "med": 10, "community": [[65100, 1]], "large-community": [[65100, 1, 2]]},
                  "announce": {"ipv6 unicast": {
                    "2001:db8::1": [{"nlri": "2001:db8:100::/64"}],
                    "fe80::1": [{"nlri": "2001:db8:100::/64"}]}}}}}}"#,
        )
        .unwrap();
        let rib = replay(&[m], Family::Ipv6);
        let r = &rib["2001:db8:100::/64"];
        assert_eq!(r.next_hop.as_deref(), Some("2001:db8::1"));
        assert_eq!(r.as_path, vec![65100, 65100]);
        assert_eq!(r.communities, vec!["65100:1"]);
        assert_eq!(r.large_communities, vec!["65100:1:2"]);
        assert_eq!(r.med, Some(10));
        assert_eq!(r.peer.as_deref(), Some("192.0.2.1"));
    }
}
