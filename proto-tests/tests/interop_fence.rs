//! Fencing tokens seen from a real FRR 8.4 peer: Ferry in namespace `a` (192.0.2.1, AS
//! 65100), FRR's bgpd in `b` (192.0.2.2, AS 65002), one veth.
//!
//! * `a_stale_token_leaves_frrs_route_alone_across_a_ferry_restart`: a leader announces with
//!   token 5 (`ferry announce --fence plan-a --fence-token 5`), FRR holds the route. A stale
//!   leader's withdraw with token 4 is refused (exit 1, the message names the held token 5);
//!   FRR holds the route at every sample for 3 s and receives no UPDATE (its `updatesRecv`
//!   does not move). Ferry is restarted (SIGTERM, start on the same state_dir): FRR gets the
//!   route back, the stale withdraw is still refused and FRR still holds the route. The new
//!   leader's withdraw with token 6 takes it away at FRR.
//!
//! Failure injected: a stale leader's call (a lower token), before and after a restart.
//! Needs root and FRR (skips otherwise, fails with FIT_REQUIRE=1).

use std::time::{Duration, Instant};

use proto_tests::ferry::{Ferry, FerryConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Peer};
use testkit::netns::Lab;
use testkit::root::can_run_with;

const FERRY_AS: u32 = 65100;
const PEER_AS: u32 = 65002;
const FERRY_IP: &str = "192.0.2.1";
const PEER_IP: &str = "192.0.2.2";
const OURS: &str = "198.51.100.0/24";
const UP: Duration = Duration::from_secs(20);
const FRR_PROGS: &[&str] = &["/usr/lib/frr/bgpd", "vtysh"];

/// UPDATEs FRR has received from Ferry on this session, and ROUTE-REFRESHes it sent Ferry
/// (each answered, rightly, by the route again: not a change the refused call made).
fn updates_received(frr: &Frr) -> (u64, u64) {
    let stats = frr
        .neighbor_json(FERRY_IP)
        .map(|n| n["messageStats"].clone());
    let get = |k: &str| {
        stats
            .as_ref()
            .and_then(|s| s[k].as_u64())
            .unwrap_or_else(|| frr.fail(&format!("no messageStats.{k} for Ferry's session")))
    };
    (get("updatesRecv"), get("routeRefreshSent"))
}

/// Waits until FRR's count of UPDATEs from Ferry has not moved for a second (a session that
/// just came up still gets its End-of-RIB after the route), and returns it.
fn settled_updates(frr: &Frr) -> (u64, u64) {
    let deadline = Instant::now() + UP;
    let mut last = updates_received(frr);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = updates_received(frr);
        if now == last {
            return now;
        }
        if Instant::now() > deadline {
            frr.fail(&format!(
                "UPDATEs from Ferry still arriving after {UP:?}: {now:?}"
            ));
        }
        last = now;
    }
}

/// FRR holds `OURS` at every sample for `d`, and receives no UPDATE after `before` other than
/// the answers to its own ROUTE-REFRESHes (the route and an End-of-RIB each).
fn frr_keeps_the_route(frr: &Frr, before: (u64, u64), d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if !frr.rib_ipv4().contains_key(OURS) {
            frr.fail(&format!("{OURS} gone after {:?}", t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (updates, refreshes) = updates_received(frr);
    let answers = 2 * (refreshes - before.1);
    assert!(
        updates <= before.0 + answers,
        "FRR received an UPDATE after the refused call: {updates} UPDATEs, {} before, {} ROUTE-REFRESHes sent meanwhile",
        before.0,
        refreshes - before.1
    );
}

fn fenced(action: &str, token: &str) -> Vec<String> {
    [action, OURS, "--fence", "plan-a", "--fence-token", token]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_stale_token_leaves_frrs_route_alone_across_a_ferry_restart() {
    if !can_run_with(
        "a_stale_token_leaves_frrs_route_alone_across_a_ferry_restart",
        FRR_PROGS,
    ) {
        return;
    }
    let lab = Lab::new("fence");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, &["192.0.2.1/24"], &b, &["192.0.2.2/24"])
        .wait_up(Duration::from_secs(5));
    // FRR applies its route-maps (loaded with its config) after its route-map delay timer,
    // 5 s by default, by a ROUTE-REFRESH to the peer: at once instead, before the session.
    let mut frr_config =
        FrrConfig::new(PEER_AS, PEER_IP).peer(Peer::new(FERRY_IP, FERRY_AS).passive());
    frr_config
        .extra_global
        .push("bgp route-map delay-timer 0".into());
    let frr = Frr::start(&lab, &b, &frr_config);
    let config = FerryConfig::new(FERRY_AS, FERRY_IP)
        .neighbor(Peer::new(PEER_IP, PEER_AS).local_address(FERRY_IP));
    let mut ferry = Ferry::start(&lab, &a, &config);
    frr.wait_established(FERRY_IP, UP);

    ferry.cli_ok(&args(&fenced("announce", "5")));
    frr.wait_route(OURS, UP);

    let stale = fenced("withdraw", "4");
    let before = settled_updates(&frr);
    let e = ferry
        .cli(&args(&stale))
        .expect_err("a withdraw with token 4 must be refused");
    assert!(
        e.contains("holds token 5") && e.contains("offered token 4"),
        "{e}"
    );
    frr_keeps_the_route(&frr, before, Duration::from_secs(3));

    ferry.restart();
    frr.wait_established(FERRY_IP, UP);
    frr.wait_route(OURS, UP);
    let before = settled_updates(&frr);
    let e = ferry
        .cli(&args(&stale))
        .expect_err("after a restart, token 4 must still be refused");
    assert!(e.contains("holds token 5"), "{e}");
    frr_keeps_the_route(&frr, before, Duration::from_secs(3));
    let held = ferry
        .cli_json(&["fences"])
        .unwrap_or_else(|e| ferry.fail(&e));
    assert_eq!(held[0]["fence"], "plan-a", "{held}");
    assert_eq!(held[0]["token"], 5, "{held}");
    assert_eq!(held[0]["refused"], 1, "refusals since this start: {held}");

    ferry.cli_ok(&args(&fenced("withdraw", "6")));
    frr.wait_no_route(OURS, UP);
}
