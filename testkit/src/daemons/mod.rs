//! Real daemons: BGP (FRR, BIRD 2, GoBGP, ExaBGP) and, for DNS failover, BIND 9 ([`bind`]), started in a [`crate::netns::Lab`] namespace
//! with every file under a lab temp directory, and a common [`BgpDaemon`] interface to wait for
//! sessions, read what the daemon received, check NOTIFICATIONs and trigger route refreshes.
//!
//! Every `wait_*` polls with a timeout and, on timeout, panics with the daemon's state and the
//! tail of its log, so a failing test says why.

pub mod bind;
pub mod bird;
pub mod etcd;
pub mod exabgp;
pub mod frr;
pub mod frr_daemon;
pub mod gobgp;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::poll::poll;

/// Address family (unicast).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// The family of a prefix or address (`:` means IPv6).
    pub fn of(addr: &str) -> Family {
        if addr.contains(':') {
            Family::Ipv6
        } else {
            Family::Ipv4
        }
    }
}

/// A BGP neighbor as configured on a daemon.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The neighbor's address (IPv4 or IPv6).
    pub address: String,
    /// The neighbor's AS.
    pub remote_as: u32,
    /// Our address for the session (default: none, the daemon picks; ExaBGP and GoBGP need it,
    /// see their modules).
    pub local_address: Option<String>,
    /// Only accept the session, never connect.
    pub passive: bool,
    /// Hold time in seconds (keepalive = hold / 3). Default 9.
    pub hold_time: u16,
    /// Families to activate. Default: the family of `address`.
    pub families: Vec<Family>,
    /// TCP port of the neighbor (default 179).
    pub port: Option<u16>,
    /// Advertise extended messages (RFC 8654) where that is not the daemon's default: BIRD's
    /// `enable extended messages`. FRR, ExaBGP and Ferry advertise them anyway; GoBGP has no
    /// support. Default false.
    pub extended_messages: bool,
}

impl Peer {
    pub fn new(address: &str, remote_as: u32) -> Peer {
        Peer {
            address: address.to_string(),
            remote_as,
            local_address: None,
            passive: false,
            hold_time: 9,
            families: vec![Family::of(address)],
            port: None,
            extended_messages: false,
        }
    }
    pub fn passive(mut self) -> Peer {
        self.passive = true;
        self
    }
    pub fn local_address(mut self, addr: &str) -> Peer {
        self.local_address = Some(addr.to_string());
        self
    }
    pub fn hold_time(mut self, secs: u16) -> Peer {
        self.hold_time = secs;
        self
    }
    pub fn families(mut self, families: &[Family]) -> Peer {
        self.families = families.to_vec();
        self
    }
    pub fn extended_messages(mut self) -> Peer {
        self.extended_messages = true;
        self
    }
    pub fn port(mut self, port: u16) -> Peer {
        self.port = Some(port);
        self
    }
    /// Keepalive interval: hold / 3 (at least 1).
    pub fn keepalive(&self) -> u16 {
        (self.hold_time / 3).max(1)
    }
}

/// A route a daemon originates. The peer receives AS path `[daemon AS] + prepend`.
#[derive(Clone, Debug, Default)]
pub struct Route {
    pub prefix: String,
    /// Next hop (default: the daemon's session address; FRR and BIRD ignore it and use self).
    pub next_hop: Option<String>,
    /// `"A:B"` communities.
    pub communities: Vec<String>,
    /// `"A:B:C"` large communities.
    pub large_communities: Vec<String>,
    pub med: Option<u32>,
    /// ASNs after the originator's own AS in the path the peer receives.
    pub prepend: Vec<u32>,
}

impl Route {
    pub fn new(prefix: &str) -> Route {
        Route {
            prefix: prefix.to_string(),
            ..Route::default()
        }
    }
    pub fn next_hop(mut self, nh: &str) -> Route {
        self.next_hop = Some(nh.to_string());
        self
    }
    pub fn community(mut self, c: &str) -> Route {
        self.communities.push(c.to_string());
        self
    }
    pub fn large_community(mut self, c: &str) -> Route {
        self.large_communities.push(c.to_string());
        self
    }
    pub fn med(mut self, med: u32) -> Route {
        self.med = Some(med);
        self
    }
    pub fn prepend(mut self, asns: &[u32]) -> Route {
        self.prepend = asns.to_vec();
        self
    }
    pub fn family(&self) -> Family {
        Family::of(&self.prefix)
    }
}

/// A route as a daemon received it (its best path), attributes normalised across daemons:
/// communities `"A:B"` (well-known ones numerically, e.g. `"65535:0"`), large communities
/// `"A:B:C"`, AS path flattened (AS_SETs inlined).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RibRoute {
    pub prefix: String,
    pub as_path: Vec<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub next_hop: Option<String>,
    /// Address of the peer the route came from, when the daemon says.
    pub peer: Option<String>,
}

/// Prefix -> best path.
pub type Rib = BTreeMap<String, RibRoute>;

/// What every daemon wrapper offers. The `wait_*` methods panic with state and log on timeout.
pub trait BgpDaemon {
    /// "frr", "bird", "gobgp", "exabgp".
    fn kind(&self) -> &'static str;
    /// Human-readable state (neighbors, RIB) for failure messages.
    fn state_dump(&self) -> String;
    /// The daemon's main log file.
    fn log_path(&self) -> &Path;
    /// Whether the session with `peer` (its address) is Established.
    fn is_established(&self, peer: &str) -> bool;
    /// Routes received from peers (not the daemon's own), best path per prefix.
    fn rib(&self, family: Family) -> Rib;
    /// Whether the daemon received a NOTIFICATION whose text (shutdown communication, or the
    /// daemon's rendering of code/subcode) contains `text`.
    fn notification_received(&self, text: &str) -> bool;
    /// Makes the daemon ask `peer` to resend its routes (ROUTE-REFRESH / soft reset in).
    /// Err(why) where the daemon cannot.
    fn route_refresh(&self, peer: &str, family: Family) -> Result<(), String>;
    /// Announces `route` to all peers now (in addition to the configured ones).
    fn announce(&self, route: &Route) -> Result<(), String>;
    /// Withdraws a route announced by config or [`BgpDaemon::announce`].
    fn withdraw(&self, prefix: &str) -> Result<(), String>;
    /// Administratively shuts the session with `peer` down: NOTIFICATION Cease/2 carrying
    /// `message` where the daemon can send one.
    fn shutdown_peer(&self, peer: &str, message: &str) -> Result<(), String>;

    /// Whether the log contains `text`.
    fn log_contains(&self, text: &str) -> bool {
        std::fs::read_to_string(self.log_path()).is_ok_and(|s| s.contains(text))
    }
    /// Last `lines` lines of the log.
    fn log_tail(&self, lines: usize) -> String {
        tail_file(self.log_path(), lines)
    }
    fn rib_ipv4(&self) -> Rib {
        self.rib(Family::Ipv4)
    }
    fn rib_ipv6(&self) -> Rib {
        self.rib(Family::Ipv6)
    }
    /// Panics with the reason, state and log tail.
    fn fail(&self, why: &str) -> ! {
        panic!(
            "{}: {why}\n----- {} state -----\n{}\n----- {} log tail ({}) -----\n{}",
            self.kind(),
            self.kind(),
            self.state_dump(),
            self.kind(),
            self.log_path().display(),
            self.log_tail(40)
        )
    }
    fn wait_established(&self, peer: &str, timeout: Duration) {
        if poll(timeout, || self.is_established(peer).then_some(())).is_none() {
            self.fail(&format!(
                "session with {peer} not Established after {timeout:?}"
            ));
        }
    }
    /// Waits until `prefix` is in the RIB and returns its best path.
    fn wait_route(&self, prefix: &str, timeout: Duration) -> RibRoute {
        let fam = Family::of(prefix);
        poll(timeout, || self.rib(fam).remove(prefix))
            .unwrap_or_else(|| self.fail(&format!("no route {prefix} after {timeout:?}")))
    }
    /// Waits until `prefix` is in the RIB with a path that satisfies `pred`.
    fn wait_route_where(
        &self,
        prefix: &str,
        timeout: Duration,
        pred: &dyn Fn(&RibRoute) -> bool,
    ) -> RibRoute {
        let fam = Family::of(prefix);
        poll(timeout, || self.rib(fam).remove(prefix).filter(|r| pred(r))).unwrap_or_else(|| {
            self.fail(&format!(
                "no route {prefix} matching the condition after {timeout:?} (now: {:?})",
                self.rib(fam).get(prefix)
            ))
        })
    }
    /// Waits until `prefix` is gone from the RIB.
    fn wait_no_route(&self, prefix: &str, timeout: Duration) {
        let fam = Family::of(prefix);
        if poll(timeout, || {
            (!self.rib(fam).contains_key(prefix)).then_some(())
        })
        .is_none()
        {
            self.fail(&format!("route {prefix} still present after {timeout:?}"));
        }
    }
    /// Waits until a NOTIFICATION containing `text` was received.
    fn wait_notification(&self, text: &str, timeout: Duration) {
        if poll(timeout, || self.notification_received(text).then_some(())).is_none() {
            self.fail(&format!(
                "no NOTIFICATION containing {text:?} received after {timeout:?}"
            ));
        }
    }
    /// Waits until the log contains `text`.
    fn wait_log(&self, text: &str, timeout: Duration) {
        if poll(timeout, || self.log_contains(text).then_some(())).is_none() {
            self.fail(&format!("log has no {text:?} after {timeout:?}"));
        }
    }
}

/// Last `lines` lines of a file ("(unreadable: ...)" if it cannot be read).
pub fn tail_file(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let all: Vec<&str> = s.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// Well-known community names as FRR/BIRD/GoBGP print them -> `"65535:N"`; others unchanged.
pub fn normalize_community(c: &str) -> String {
    let n = match c {
        "gshut" | "graceful-shutdown" | "gracefulShutdown" => Some(0),
        "accept-own" | "acceptOwn" => Some(1),
        "llgr-stale" | "llgrStale" => Some(6),
        "no-llgr" | "noLlgr" => Some(7),
        "blackhole" => Some(666),
        "no-export" | "noExport" => Some(65281),
        "no-advertise" | "noAdvertise" => Some(65282),
        "local-AS" | "local-as" | "localAs" | "no-export-subconfed" => Some(65283),
        "no-peer" | "noPeer" => Some(65284),
        _ => None,
    };
    match n {
        Some(n) => format!("65535:{n}"),
        None => c.to_string(),
    }
}

/// Appends "`what` exited: STATUS" to a state dump when the lab's process `pid` has exited.
pub fn dump_exited(out: &mut String, lab: &crate::netns::Lab, pid: u32, what: &str) {
    if !lab.is_running(pid) {
        let _ = writeln!(out, "{what} exited: {:?}", lab.exit_status(pid));
    }
}

/// Appends each command's output (its first `lines` lines, or the error) to a state dump,
/// titled `<program> <args>`.
pub fn dump_commands(
    out: &mut String,
    program: &str,
    commands: &[&[&str]],
    lines: usize,
    run: impl Fn(&[&str]) -> Result<String, String>,
) {
    for args in commands {
        let text = run(args).unwrap_or_else(|e| e);
        let text: String = text.lines().take(lines).collect::<Vec<_>>().join("\n");
        dump_lines(out, &format!("{program} {}", args.join(" ")), &text);
    }
}

/// Appends a titled section to a state dump.
pub fn dump_lines(out: &mut String, title: &str, body: &str) {
    let _ = writeln!(out, "== {title}\n{}", body.trim_end());
}
