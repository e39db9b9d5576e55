//! The desired routes survive a crash of the speaker, and a damaged state file stops it
//! instead of starting it empty.
//!
//! Proves: routes announced through the CLI are on disk before the CLI returns, so after
//! `kill -9` a speaker started again on the same `state_dir` re-announces them on the new
//! session, then sends End-of-RIB, with no operator action; a corrupt `routes.json` makes
//! `ferry speaker` exit 1 with a message naming the file and the line, and it never opens its
//! API (it does not start with an empty table, which would withdraw everything).
//! Failures injected: SIGKILL of the speaker process (no NOTIFICATION, no clean-up, so only
//! what was fsynced survives); a routes.json with a syntax error on line 3.

mod support;

use std::net::Ipv4Addr;
use std::time::Instant;

use ferry::wire::mp::MpNlri;
use ferry::wire::{Community, Family, Message};
use support::*;

const PEER_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

#[test]
fn routes_come_back_after_kill_9_without_operator_action() {
    let (mut speaker, mut peer) = established_pair(PEER_V4);
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--community", "65100:7"]);
    speaker.cli_ok(&["announce", "2001:db8:100::/48", "--next-hop", "2001:db8::1"]);
    peer.next_update();
    peer.next_update();

    speaker.kill9();
    peer.wait_closed();
    assert!(
        !peer
            .received()
            .iter()
            .any(|r| matches!(r.msg, Ok(Message::Notification(_)))),
        "SIGKILL cannot send a NOTIFICATION"
    );

    let t0 = Instant::now();
    speaker.spawn();
    peer.accept();
    peer.handshake();
    // The whole initial sync, in order: each family's routes, then its End-of-RIB.
    let mut v4: Vec<(String, Vec<Community>)> = Vec::new();
    let mut v6: Vec<String> = Vec::new();
    let mut eor = Vec::new();
    while eor.len() < 2 {
        let r = peer.next_update();
        let u = r.update().unwrap().clone();
        match u.end_of_rib_family() {
            Some(f) => {
                let empty = if f == Family::Ipv4Unicast {
                    v4.is_empty()
                } else {
                    v6.is_empty()
                };
                assert!(!empty, "End-of-RIB {f} before its routes");
                eor.push(f);
            }
            None => {
                v4.extend(
                    u.nlri
                        .iter()
                        .map(|p| (p.to_string(), u.communities().to_vec())),
                );
                if let Some(mp) = u.mp_reach() {
                    if let MpNlri::Ipv6(p) = &mp.nlri {
                        v6.extend(p.iter().map(ToString::to_string));
                    }
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    assert_eq!(
        v4,
        [(
            "198.51.100.0/24".to_string(),
            vec![Community::new(65100, 7)]
        )]
    );
    assert_eq!(v6, ["2001:db8:100::/48"]);
    eprintln!("restart (spawn) -> routes and both End-of-RIB at the peer: {elapsed:?}");

    let out = speaker.cli_ok(&["routes", "--json"]);
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(routes.len(), 2, "{routes:?}");
}

#[test]
fn a_corrupt_routes_json_stops_the_speaker_with_file_and_line() {
    let config = "[speaker]\nasn = 65100\nrouter_id = \"192.0.2.1\"\napi = \"@API@\"\nstate_dir = \"@STATE@\"\n";
    // Line 3 is missing the comma after the first route.
    let corrupt = "{\n  \"version\": 1, \"generation\": 4, \"routes\": [\n    {\"prefix\": \"198.51.100.0/24\"} {\"prefix\": \"203.0.113.0/24\"}\n  ]\n}\n";
    let out = speaker_must_fail(config, &[("routes.json", corrupt)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("routes.json is corrupt at line 3 column"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("/state/routes.json"),
        "names the full path: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("API listening"),
        "must not start: {}",
        out.stderr
    );
}

#[test]
fn a_routes_json_with_an_invalid_route_stops_the_speaker_too() {
    let config = "[speaker]\nasn = 65100\nrouter_id = \"192.0.2.1\"\napi = \"@API@\"\nstate_dir = \"@STATE@\"\n";
    let bad =
        "{\"version\": 1, \"generation\": 1, \"routes\": [{\"prefix\": \"198.51.100.1/24\"}]}\n";
    let out = speaker_must_fail(config, &[("routes.json", bad)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("routes.json") && out.stderr.contains("line 1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean 198.51.100.0/24"),
        "{}",
        out.stderr
    );
}
