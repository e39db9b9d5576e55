//! Leased announcements (fencing) with a raw BGP peer.
//!
//! Proves: a route announced with `--lease N` and never renewed is withdrawn by the speaker
//! itself within N + 1 s, while the BGP session stays up; the expiry shows in `ferry lease
//! status`, `ferry status`, `/metrics` (`ferry_lease_expiries_total`) and the events stream;
//! renewals (`ferry lease renew`) keep it announced for as long as they come; a lease keeps
//! running across `kill -9` (a restart within the lease re-announces the route for the rest of
//! the lease only; a restart after it withdraws the route at start); renewing an expired route
//! fails and says to announce it again.
//! Failures injected: the controller going silent (no renewals); SIGKILL of the speaker.

mod support;

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

fn metrics(speaker: &Speaker) -> String {
    http(Target::Unix(&speaker.api()), "GET", "/metrics", &[], "").1
}

#[test]
fn an_unrenewed_lease_withdraws_the_route_within_lease_plus_one_second() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 81));
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--lease", "2"]);
    let announced = peer.next_update();
    assert_eq!(announced.update().unwrap().nlri.len(), 1);
    let routes = speaker.cli_ok(&["routes"]).stdout;
    assert!(routes.contains("2s ("), "{routes}");

    let withdrawn = peer.next_update();
    assert_eq!(withdrawn.update().unwrap().withdrawn.len(), 1);
    let after = withdrawn.at - announced.at;
    eprintln!("lease 2 s: withdrawn {after:?} after the announcement");
    assert!(
        after >= Duration::from_millis(1900) && after <= Duration::from_secs(3),
        "{after:?}"
    );
    // The session stayed up: only the route went.
    assert_eq!(speaker.status()[0]["state"], "Established");
    let st = speaker.cli_ok(&["lease", "status", "--json"]).stdout;
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(st["expiries_total"], 1, "{st}");
    assert_eq!(st["last_expired"], serde_json::json!(["198.51.100.0/24"]));
    let text = speaker.cli_ok(&["status"]).stdout;
    assert!(text.contains("1 expired since start"), "{text}");
    assert!(
        metrics(&speaker).contains("ferry_lease_expiries_total 1"),
        "{}",
        metrics(&speaker)
    );
    assert!(speaker.log().contains("lease not renewed in time"));
    assert_eq!(speaker.cli_ok(&["routes", "--json"]).stdout.trim(), "[]");

    // Too late to renew: the controller must announce again, knowingly.
    let out = speaker.cli(&["lease", "renew", "198.51.100.0/24"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("announce it again"), "{out:?}");
}

#[test]
fn renewals_keep_the_route_and_stopping_them_withdraws_it() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 82));
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--lease", "2"]);
    peer.next_update();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        speaker.cli_ok(&["lease", "renew"]);
        thread::sleep(Duration::from_millis(500));
    }
    let last_renewal = Instant::now();
    peer.expect_quiet(Duration::ZERO);
    let withdrawn = peer.next_update();
    assert_eq!(withdrawn.update().unwrap().withdrawn.len(), 1);
    let after = withdrawn.at - last_renewal;
    eprintln!("renewed for 5 s, then silent: withdrawn {after:?} after the last renewal");
    assert!(after <= Duration::from_secs(3), "{after:?}");
}

#[test]
fn a_lease_keeps_running_across_a_restart() {
    let (mut speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 83));
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--lease", "3"]);
    speaker.cli_ok(&["announce", "203.0.113.0/24"]);
    let announced = peer.next_update();
    peer.next_update();

    // Back within the lease: announced again, withdrawn at the original deadline.
    speaker.kill9();
    peer.wait_closed();
    speaker.spawn();
    peer.accept();
    peer.handshake();
    assert_eq!(peer.initial_sync(2).len(), 1);
    let withdrawn = peer.next_update();
    assert_eq!(withdrawn.update().unwrap().withdrawn.len(), 1);
    let after = withdrawn.at - announced.at;
    eprintln!("lease 3 s, restart within it: withdrawn {after:?} after the first announcement");
    assert!(after <= Duration::from_secs(4), "{after:?}");

    // Back after the lease: the leased route is not announced at all.
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--lease", "1"]);
    peer.next_update();
    speaker.kill9();
    peer.wait_closed();
    thread::sleep(Duration::from_millis(1500));
    speaker.spawn();
    peer.accept();
    peer.handshake();
    let routes = peer.initial_sync(2);
    let prefixes: Vec<String> = routes
        .iter()
        .flat_map(|u| u.nlri.iter().map(ToString::to_string))
        .collect();
    assert_eq!(prefixes, ["203.0.113.0/24"], "only the unleased route");
    assert!(speaker
        .log()
        .contains("lease ran out while the speaker was down"));
    assert!(metrics(&speaker).contains("ferry_lease_expiries_total 1"));
}
