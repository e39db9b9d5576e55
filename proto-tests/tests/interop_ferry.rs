//! Real Ferry (`ferry speaker` + its CLI) against real FRR 8.4, BIRD 2, GoBGP 3 and ExaBGP 4.2,
//! each pair in two fresh network namespaces of a [`Lab`]: Ferry in `a` (192.0.2.1,
//! 2001:db8::1, AS 65100), the daemon in `b` (192.0.2.2, 2001:db8::2, AS 65002), one veth
//! between them. Every check reads the daemon's own view (its CLI, JSON or log), except the
//! routes Ferry received, which are read from `ferry routes --received --json`.
//!
//! Per daemon, two tests:
//! * `*_ferry_active`: the daemon is passive and Ferry connects. One IPv4 session carrying IPv4
//!   and IPv6 unicast. Ferry's `announce` with communities, a large community, MED and prepends
//!   shows in the daemon's IPv4 and IPv6 RIBs with exactly those attributes and Ferry's
//!   addresses as next hops; the daemon's own route shows in Ferry's received routes with its
//!   attributes; a route refresh from the daemon makes Ferry send its routes again (where the
//!   daemon can send one); `withdraw` removes the routes; SIGTERM ends the session with
//!   Cease/Administrative Shutdown "ferry speaker shutting down", which the daemon logs.
//! * `*_ferry_passive`: Ferry only listens (`passive = true`, `listen`), the daemon connects;
//!   the session reaches Established and routes flow both ways.
//!
//! Needs root (skips otherwise, fails with FIT_REQUIRE=1) and the daemons from Debian's
//! packages. The `ferry` binary comes from [`proto_tests::ferry::ferry_bin`].

use std::time::{Duration, Instant};

use proto_tests::ferry::{Ferry, FerryConfig};
use testkit::daemons::bird::{Bird, BirdConfig};
use testkit::daemons::exabgp::{ExaBgp, ExaBgpConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::gobgp::{GoBgp, GoBgpConfig};
use testkit::daemons::{BgpDaemon, Family, Peer, RibRoute, Route};
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;
use testkit::root::can_run_with;

const WAIT: Duration = Duration::from_secs(15);
const FERRY_AS: u32 = 65100;
const PEER_AS: u32 = 65002;
const FERRY_IP: &str = "192.0.2.1";
const FERRY_IP6: &str = "2001:db8::1";
const PEER_IP: &str = "192.0.2.2";
const BOTH: &[Family] = &[Family::Ipv4, Family::Ipv6];

/// What Ferry announces (IPv4 and IPv6), with [`ATTRS`].
const OURS_V4: &str = "198.51.100.0/24";
const OURS_V6: &str = "2001:db8:100::/64";
const ATTRS: &[&str] = &[
    "--community",
    "65100:1",
    "--large-community",
    "65100:1:2",
    "--med",
    "10",
    "--prepend",
    "2",
];
/// What the daemon originates, see [`their_route`].
const THEIRS: &str = "203.0.113.0/24";
/// What the daemon logs for Ferry's Cease on SIGTERM (FRR, BIRD, GoBGP).
const SHUTDOWN_TEXT: &str = "ferry speaker shutting down";

const FRR_PROGS: &[&str] = &["/usr/lib/frr/bgpd", "/usr/lib/frr/zebra", "vtysh"];

fn their_route() -> Route {
    Route::new(THEIRS)
        .next_hop(PEER_IP)
        .community("64512:100")
        .community("64512:200")
        .large_community("65002:1:2")
        .med(50)
}

/// The daemon's neighbor entry for Ferry: IPv4 and IPv6 unicast on the IPv4 session.
fn ferry_peer() -> Peer {
    Peer::new(FERRY_IP, FERRY_AS).families(BOTH)
}

/// Ferry's config: one neighbor (the daemon), both families; passive with `listen` when asked.
fn ferry_config(passive: bool) -> FerryConfig {
    let n = Peer::new(PEER_IP, PEER_AS)
        .local_address(FERRY_IP)
        .families(BOTH);
    let c = FerryConfig::new(FERRY_AS, FERRY_IP);
    if passive {
        c.listen(&format!("{FERRY_IP}:179")).neighbor(n.passive())
    } else {
        c.neighbor(n)
    }
}

fn announce_ours(ferry: &Ferry, prefix: &str) {
    let mut args = vec!["announce", prefix];
    args.extend_from_slice(ATTRS);
    ferry.cli_ok(&args);
}

/// Ferry's route as the daemon must hold it: AS path 65100 plus two prepends, MED 10, the
/// community and the large community exactly, next hop = Ferry's address of that family.
fn check_ours(d: &dyn BgpDaemon, r: &RibRoute, next_hop: &str) {
    let ok = r.as_path == [FERRY_AS, FERRY_AS, FERRY_AS]
        && r.med == Some(10)
        && r.communities == ["65100:1"]
        && r.large_communities == ["65100:1:2"]
        && r.next_hop.as_deref() == Some(next_hop);
    if !ok {
        d.fail(&format!(
            "{} received {} with other attributes than Ferry announced (next hop {next_hop}): {r:?}",
            d.kind(),
            r.prefix
        ));
    }
}

/// The daemon's route as Ferry must hold it.
fn check_theirs(ferry: &Ferry, r: &RibRoute) {
    let ok = r.as_path == [PEER_AS]
        && r.med == Some(50)
        && r.communities == ["64512:100", "64512:200"]
        && r.large_communities == ["65002:1:2"]
        && r.next_hop.as_deref() == Some(PEER_IP)
        && r.peer.as_deref() == Some(PEER_IP);
    if !ok {
        ferry.fail(&format!(
            "ferry routes --received shows {THEIRS} with other attributes: {r:?}"
        ));
    }
}

/// Session up in the daemon's view; Ferry's IPv4 and IPv6 routes in the daemon's RIBs with their
/// attributes; the daemon's route in Ferry's received routes.
fn routes_both_ways(ferry: &Ferry, d: &dyn BgpDaemon) {
    d.wait_established(FERRY_IP, WAIT);
    announce_ours(ferry, OURS_V4);
    let r = d.wait_route(OURS_V4, WAIT);
    check_ours(d, &r, FERRY_IP);
    // IPv6 NLRI over the IPv4 session: next hop is the global IPv6 address of Ferry's interface
    announce_ours(ferry, OURS_V6);
    let r = d.wait_route(OURS_V6, WAIT);
    check_ours(d, &r, FERRY_IP6);
    let r = ferry.wait_route(THEIRS, WAIT);
    check_theirs(ferry, &r);
}

/// `ferry withdraw` of both prefixes empties them from the daemon's RIBs.
fn withdraw_ours(ferry: &Ferry, d: &dyn BgpDaemon) {
    ferry.cli_ok(&["withdraw", OURS_V4, OURS_V6]);
    d.wait_no_route(OURS_V4, WAIT);
    d.wait_no_route(OURS_V6, WAIT);
}

/// SIGTERM: Ferry exits 0 after sending Cease; the daemon reports `text`.
fn stop_ferry(ferry: &Ferry, d: &dyn BgpDaemon, text: &str) {
    let status = ferry.terminate();
    if status != "exit status: 0" {
        ferry.fail(&format!("ferry speaker ended with {status} after SIGTERM"));
    }
    d.wait_notification(text, WAIT);
}

/// Ferry passive: the daemon connects, the session comes up in the daemon's view, a route goes
/// each way.
///
/// The wait for Established is longer: GoBGP makes its first connection attempt 5-10 s
/// after the neighbor is enabled (its connect loop waits a random time between the minimum
/// connect-retry of 5 s and twice that, whatever `connect-retry` says).
fn passive_scenario(ferry: &Ferry, d: &dyn BgpDaemon) {
    d.wait_established(FERRY_IP, Duration::from_secs(25));
    ferry.cli_ok(&["announce", OURS_V4]);
    let r = d.wait_route(OURS_V4, WAIT);
    assert_eq!(r.as_path, vec![FERRY_AS], "{r:?}");
    assert_eq!(r.next_hop.as_deref(), Some(FERRY_IP), "{r:?}");
    let r = ferry.wait_route(THEIRS, WAIT);
    check_theirs(ferry, &r);
}

/// Polls `count` until it exceeds `before`; fails with `d`'s state otherwise.
fn wait_more(d: &dyn BgpDaemon, what: &str, before: u64, count: impl Fn() -> u64) -> u64 {
    poll(WAIT, || {
        let n = count();
        (n > before).then_some(n)
    })
    .unwrap_or_else(|| d.fail(&format!("{what}: still {} after {WAIT:?}", count())))
}

/// A lab with Ferry's namespace `a` and the daemon's namespace `b`.
fn lab(test: &str) -> (Lab, Netns, Netns) {
    let lab = Lab::new(test);
    let (a, b, _veth) = lab.pair();
    (lab, a, b)
}

fn done(test: &str, started: Instant) {
    eprintln!("{test}: passed in {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// FRR
// ---------------------------------------------------------------------------------------------

/// FRR in `b`, `debug bgp updates in` so that every prefix received is logged (`rcvd PREFIX`).
///
/// With zebra: Ferry sends IPv6 next hops as global + link-local (RFC 2545, the peer shares the
/// link), and bgpd without zebra has no interface information for the peer, so FRR 8.4 treats
/// such an MP_REACH_NLRI as withdraw ("sent a v6 LL next-hop and there's no peer interface
/// information") and, leaving its parser inside the attribute, reads the rest of the UPDATE as
/// IPv4 NLRI and resets the session with 3/10 (Invalid Network Field). That is FRR's bug.
fn frr_config(passive: bool) -> FrrConfig {
    let p = if passive {
        ferry_peer().passive()
    } else {
        ferry_peer()
    };
    FrrConfig::new(PEER_AS, PEER_IP)
        .peer(p)
        .route(their_route())
        .extra_global("debug bgp updates in")
        .with_zebra()
}

/// How often FRR's log says it received `prefix` from Ferry.
fn frr_rcvd(frr: &Frr, prefix: &str) -> u64 {
    let needle = format!("rcvd {prefix} ");
    std::fs::read_to_string(frr.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(FERRY_IP) && l.contains(&needle))
        .count() as u64
}

#[test]
fn frr_ferry_active() {
    if !can_run_with("frr_ferry_active", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("frrferrya");
    let frr = Frr::start(&lab, &b, &frr_config(true));
    let ferry = Ferry::start(&lab, &a, &ferry_config(false));
    routes_both_ways(&ferry, &frr);

    // Route refresh: `clear bgp ... soft in` sends ROUTE-REFRESH (no soft-reconfiguration
    // inbound configured); Ferry must answer by sending its Adj-RIB-Out again, which FRR's
    // `debug bgp updates in` logs as one more "rcvd PREFIX" line per family (FRR 8.4 adds
    // "...duplicate ignored": the route came again with identical attributes).
    for (fam, prefix) in [(Family::Ipv4, OURS_V4), (Family::Ipv6, OURS_V6)] {
        let before = frr_rcvd(&frr, prefix);
        assert!(before >= 1, "FRR never logged {prefix}");
        frr.route_refresh(FERRY_IP, fam).expect("frr soft in");
        wait_more(
            &frr,
            &format!("FRR's 'rcvd {prefix}' lines"),
            before,
            || frr_rcvd(&frr, prefix),
        );
    }
    assert!(
        frr.log_contains("sending REFRESH_REQ"),
        "FRR sent no ROUTE-REFRESH"
    );

    withdraw_ours(&ferry, &frr);
    // Each withdrawal was the only prefix of its UPDATE; announced again, the route is back.
    announce_ours(&ferry, OURS_V4);
    let r = frr.wait_route(OURS_V4, WAIT);
    check_ours(&frr, &r, FERRY_IP);
    stop_ferry(&ferry, &frr, SHUTDOWN_TEXT);
    done("frr_ferry_active", t0);
}

#[test]
fn frr_ferry_passive() {
    if !can_run_with("frr_ferry_passive", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("frrferryp");
    let ferry = Ferry::start(&lab, &a, &ferry_config(true));
    let frr = Frr::start(&lab, &b, &frr_config(false));
    passive_scenario(&ferry, &frr);
    done("frr_ferry_passive", t0);
}

// ---------------------------------------------------------------------------------------------
// BIRD 2
// ---------------------------------------------------------------------------------------------

fn bird_config(passive: bool) -> BirdConfig {
    let p = if passive {
        ferry_peer().passive()
    } else {
        ferry_peer()
    };
    BirdConfig::new(PEER_AS, PEER_IP)
        .peer(p)
        .route(their_route())
}

/// (received, ignored) of "Import updates" of the ipv4 and ipv6 channels of Ferry's protocol in
/// `birdc show protocols all`.
fn bird_import_updates(bird: &Bird) -> [(u64, u64); 2] {
    let name = bird.protocol(FERRY_IP).expect("ferry's protocol");
    let out = bird
        .birdc(&["show", "protocols", "all", &name])
        .unwrap_or_default();
    let mut res = [(0, 0); 2];
    let mut ch = None;
    for l in out.lines() {
        let t = l.trim();
        if let Some(c) = t.strip_prefix("Channel ") {
            ch = match c.trim() {
                "ipv4" => Some(0),
                "ipv6" => Some(1),
                _ => None,
            };
        } else if let (Some(i), Some(rest)) = (ch, t.strip_prefix("Import updates:")) {
            // received rejected filtered ignored accepted
            let n: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if n.len() == 5 {
                res[i] = (n[0], n[3]);
            }
        }
    }
    res
}

#[test]
fn bird_ferry_active() {
    if !can_run_with("bird_ferry_active", &["bird", "birdc"]) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("birdferrya");
    let bird = Bird::start(&lab, &b, &bird_config(true));
    let ferry = Ferry::start(&lab, &a, &ferry_config(false));
    routes_both_ways(&ferry, &bird);

    // Route refresh: `birdc reload in` sends ROUTE-REFRESH for every channel (both sides
    // negotiated enhanced route refresh, so Ferry wraps its answer in BoRR/EoRR). BIRD does not
    // log received UPDATEs, but counts them: each channel's "Import updates: received" goes up
    // by the re-sent route, and "ignored" with it (identical to the route BIRD already has).
    let before = bird_import_updates(&bird);
    bird.route_refresh(FERRY_IP, Family::Ipv4)
        .expect("bird reload in");
    for (i, ch) in ["ipv4", "ipv6"].into_iter().enumerate() {
        wait_more(
            &bird,
            &format!("BIRD's {ch} 'Import updates: received'"),
            before[i].0,
            || bird_import_updates(&bird)[i].0,
        );
        wait_more(
            &bird,
            &format!("BIRD's {ch} 'Import updates: ignored'"),
            before[i].1,
            || bird_import_updates(&bird)[i].1,
        );
    }

    withdraw_ours(&ferry, &bird);
    stop_ferry(&ferry, &bird, SHUTDOWN_TEXT);
    done("bird_ferry_active", t0);
}

#[test]
fn bird_ferry_passive() {
    if !can_run_with("bird_ferry_passive", &["bird", "birdc"]) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("birdferryp");
    let ferry = Ferry::start(&lab, &a, &ferry_config(true));
    let bird = Bird::start(&lab, &b, &bird_config(false));
    passive_scenario(&ferry, &bird);
    done("bird_ferry_passive", t0);
}

// ---------------------------------------------------------------------------------------------
// GoBGP
// ---------------------------------------------------------------------------------------------

fn gobgp_config(passive: bool) -> GoBgpConfig {
    let p = ferry_peer().local_address(PEER_IP);
    let p = if passive { p.passive() } else { p };
    GoBgpConfig::new(PEER_AS, PEER_IP)
        .peer(p)
        .route(their_route())
}

#[test]
fn gobgp_ferry_active() {
    if !can_run_with("gobgp_ferry_active", &["gobgpd", "gobgp"]) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("gobgpferrya");
    let gobgp = GoBgp::start(&lab, &b, &gobgp_config(true));
    let ferry = Ferry::start(&lab, &a, &ferry_config(false));
    routes_both_ways(&ferry, &gobgp);
    // No route refresh: GoBGP 3.10's CLI cannot send a ROUTE-REFRESH (`gobgp neighbor X
    // softresetin` only re-runs the import policy over GoBGP's own Adj-RIB-In), so there is
    // nothing from GoBGP that would make Ferry re-send.
    withdraw_ours(&ferry, &gobgp);
    stop_ferry(&ferry, &gobgp, SHUTDOWN_TEXT);
    done("gobgp_ferry_active", t0);
}

#[test]
fn gobgp_ferry_passive() {
    if !can_run_with("gobgp_ferry_passive", &["gobgpd", "gobgp"]) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("gobgpferryp");
    let ferry = Ferry::start(&lab, &a, &ferry_config(true));
    let gobgp = GoBgp::start(&lab, &b, &gobgp_config(false));
    passive_scenario(&ferry, &gobgp);
    done("gobgp_ferry_passive", t0);
}

// ---------------------------------------------------------------------------------------------
// ExaBGP
// ---------------------------------------------------------------------------------------------

fn exabgp_config(passive: bool) -> ExaBgpConfig {
    let p = ferry_peer().local_address(PEER_IP);
    let p = if passive { p.passive() } else { p };
    ExaBgpConfig::new(PEER_AS, PEER_IP)
        .peer(p)
        .route(their_route())
        .route_refresh(true)
}

/// How many UPDATEs ExaBGP received that announce `prefix`.
fn exabgp_announcements(x: &ExaBgp, prefix: &str) -> u64 {
    x.messages()
        .iter()
        .filter(|m| m.get("type").and_then(|t| t.as_str()) == Some("update"))
        .filter(|m| {
            m.pointer("/neighbor/message/update/announce")
                .is_some_and(|a| a.to_string().contains(&format!("\"{prefix}\"")))
        })
        .count() as u64
}

#[test]
fn exabgp_ferry_active() {
    if !can_run_with("exabgp_ferry_active", &["exabgp"]) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("exabgpferrya");
    let exabgp = ExaBgp::start(&lab, &b, &exabgp_config(true));
    let ferry = Ferry::start(&lab, &a, &ferry_config(false));
    routes_both_ways(&ferry, &exabgp);

    // Route refresh: ExaBGP has no CLI here, but its API (the `tail -F` control process) sends
    // one: `neighbor 192.0.2.1 announce route-refresh ipv4 unicast` (the route-refresh
    // capability is on for this; Ferry never sends ROUTE-REFRESH, which ExaBGP 4.2 could not
    // take with enhanced refresh). ExaBGP's receive process logs every UPDATE: one more that
    // announces 198.51.100.0/24 is Ferry's answer.
    let before = exabgp_announcements(&exabgp, OURS_V4);
    exabgp
        .route_refresh(FERRY_IP, Family::Ipv4)
        .expect("exabgp route-refresh");
    wait_more(
        &exabgp,
        "ExaBGP's UPDATEs announcing 198.51.100.0/24",
        before,
        || exabgp_announcements(&exabgp, OURS_V4),
    );

    withdraw_ours(&ferry, &exabgp);
    // ExaBGP 4.2.21 cannot decode a Cease/2 that carries a shutdown message (a `bytes % str`
    // TypeError in its Notification class, see testkit::daemons::exabgp): it answers
    // NOTIFICATION 1/0 and reports the session down with reason "peer reset, message
    // (notification sent (1,0)) error(Message header error / Unspecific / can not decode update
    // message of type "3")" — type 3 being the NOTIFICATION it received. The message text
    // never reaches ExaBGP's output; that reason is what there is to assert.
    stop_ferry(
        &ferry,
        &exabgp,
        "can not decode update message of type \"3\"",
    );
    done("exabgp_ferry_active", t0);
}

#[test]
fn exabgp_ferry_passive() {
    if !can_run_with("exabgp_ferry_passive", &["exabgp"]) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("exabgpferryp");
    let ferry = Ferry::start(&lab, &a, &ferry_config(true));
    let exabgp = ExaBgp::start(&lab, &b, &exabgp_config(false));
    passive_scenario(&ferry, &exabgp);
    done("exabgp_ferry_passive", t0);
}
