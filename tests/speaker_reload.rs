//! Reload (SIGHUP, `ferry reload`), `ferry speaker --check`, and `ferry neighbor
//! disable|enable`, against the real binary with raw BGP peers on loopback.
//!
//! Proves:
//! * SIGHUP with a config that adds a neighbor starts that session (it gets the announced
//!   route) while the running session sees nothing but KEEPALIVEs: same connection, no
//!   NOTIFICATION, no new OPEN, its uptime goes on.
//! * A config that cannot be applied (a bad value; a key that needs a restart) is refused,
//!   by SIGHUP (logged) and by `ferry reload` (exit 2, the reason on stderr), and nothing
//!   changes: the session stays, a neighbor added in the same file is not started.
//! * `ferry reload` with one neighbor's hold_time changed resets that session alone: its peer
//!   gets Cease/Administrative Shutdown naming `hold_time` (RFC 9003) and a new OPEN with the
//!   new hold time; the other peer sees nothing. A removed neighbor's peer gets a Cease.
//! * `ferry speaker --check`: 0 and a summary for a good config, 2 and the error for a bad
//!   one, and nothing started.
//! * `ferry neighbor disable --message` sends Cease/Administrative Shutdown with the message
//!   and the session stays Idle (with connect_retry = 1 it would retry every second); `status`
//!   and `/metrics` (`ferry_peer_admin_down`) show it disabled with the message; a restarted
//!   speaker keeps it down; `enable` brings it back.
//!
//! Failures injected: config files rewritten under the running speaker; SIGTERM and restart.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferry::wire::notification::cease;
use support::*;

fn rewrite_config(speaker: &Speaker) {
    testkit::speaker::write_config(
        &speaker.config_path(),
        &speaker.spec.config(speaker.dir.path()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

fn peer_status(speaker: &Speaker, peer: Ipv4Addr) -> serde_json::Value {
    speaker
        .status()
        .into_iter()
        .find(|p| p["address"] == peer.to_string())
        .unwrap_or_else(|| panic!("{peer} not in status"))
}

/// The typed client for the speaker's API socket.
fn client(speaker: &Speaker) -> ferry::api::blocking::Speaker {
    ferry::api::blocking::Speaker::new(
        ferry::api::Speaker::from_settings(&speaker.api().to_string_lossy(), None)
            .expect("API settings"),
    )
    .expect("client")
}

/// Wait until the speaker's log contains `text`.
fn wait_log(speaker: &Speaker, text: &str) -> String {
    testkit::poll::wait_for(&format!("{text:?} in the log"), WAIT, || {
        let log = speaker.log();
        log.contains(text).then_some(log)
    })
}

/// The peer's state stays `state` for `d` (sampled every 100 ms).
fn stays(speaker: &Speaker, peer: Ipv4Addr, state: &str, d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        let p = peer_status(speaker, peer);
        assert_eq!(p["state"], state, "after {:?}: {p}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_with_a_good_config_adds_a_neighbor_and_leaves_the_others_alone() {
    let a = Ipv4Addr::new(127, 0, 48, 1);
    let (mut speaker, mut peer_a) = established_pair(a);
    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    let _ = peer_a.next_update();
    std::thread::sleep(Duration::from_millis(1100));
    let uptime = peer_status(&speaker, a)["uptime_secs"].as_u64().unwrap();
    assert!(uptime >= 1);

    let mut peer_b = RawPeer::listen(Ipv4Addr::new(127, 0, 48, 2));
    speaker
        .spec
        .neighbors
        .push(NeighborSpec::active(peer_b.addr()));
    rewrite_config(&speaker);
    testkit::signal::signal(speaker.pid(), "HUP");

    peer_b.accept();
    peer_b.handshake();
    let routes = peer_b.initial_sync(2);
    assert!(
        routes
            .iter()
            .any(|u| u.nlri.iter().any(|p| p.to_string() == "198.51.100.0/24")),
        "the added neighbor gets the announced route: {routes:?}"
    );
    peer_a.expect_quiet(Duration::from_millis(500));
    let st = peer_status(&speaker, a);
    assert_eq!(st["state"], "Established", "{st}");
    assert!(st["uptime_secs"].as_u64().unwrap() >= uptime, "{st}");
    assert_eq!(st["prefixes_sent"], 1, "{st}");
    let log = wait_log(&speaker, "reload: applied");
    assert!(log.contains("reload: neighbor added"), "{log}");
    // The audit trail names who asked: the signal.
    wait_log(&speaker, "audit: reload by speaker: SIGHUP");
}

#[test]
fn a_config_that_cannot_be_applied_is_refused_and_changes_nothing() {
    let a = Ipv4Addr::new(127, 0, 48, 3);
    let (mut speaker, mut peer_a) = established_pair(a);
    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    let _ = peer_a.next_update();
    let good = std::fs::read_to_string(speaker.config_path()).unwrap();

    // A bad value (SIGHUP): logged with the reason.
    write_private(
        &speaker.config_path(),
        &good.replace("hold_time = 9", "hold_time = 2"),
    );
    testkit::signal::signal(speaker.pid(), "HUP");
    let log = wait_log(&speaker, "reload refused");
    assert!(log.contains("hold_time 2"), "{log}");

    // A key that needs a restart, with a neighbor added (ferry reload): exit 2, the reason,
    // and the neighbor is not started.
    let b = Ipv4Addr::new(127, 0, 48, 4);
    speaker.spec.router_id = Some(Ipv4Addr::new(192, 0, 2, 77));
    speaker
        .spec
        .neighbors
        .push(NeighborSpec::active((b, 1179).into()));
    rewrite_config(&speaker);
    let out = speaker.cli(&["reload"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("speaker.router_id changed") && out.stderr.contains("restart"),
        "{out:?}"
    );

    peer_a.expect_quiet(Duration::from_millis(300));
    let status = speaker.status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0]["state"], "Established");
    let routes = speaker.cli_ok(&["routes", "--json"]).stdout;
    assert!(routes.contains("198.51.100.0/24"), "{routes}");
    assert!(testkit::signal::alive(speaker.pid()));
}

#[test]
fn ferry_reload_resets_only_the_changed_neighbor_and_closes_a_removed_one() {
    let (a, b, c) = (
        Ipv4Addr::new(127, 0, 48, 5),
        Ipv4Addr::new(127, 0, 48, 6),
        Ipv4Addr::new(127, 0, 48, 7),
    );
    let mut peers: Vec<RawPeer> = [a, b, c].into_iter().map(RawPeer::listen).collect();
    let mut speaker = Speaker::start(SpeakerSpec::with(
        peers
            .iter()
            .map(|p| NeighborSpec::active(p.addr()))
            .collect(),
    ));
    for p in &mut peers {
        p.accept();
        p.handshake();
        p.initial_sync(2);
    }
    let [peer_a, peer_b, peer_c] = &mut peers[..] else {
        unreachable!()
    };

    // b's hold time changes, c is removed, a stays.
    speaker.spec.neighbors[1].hold_time = 30;
    speaker.spec.neighbors.remove(2);
    rewrite_config(&speaker);
    let out = speaker.cli_ok(&["reload", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r["reset"][0]["peer"], b.to_string(), "{r}");
    assert_eq!(
        r["reset"][0]["keys"],
        serde_json::json!(["hold_time"]),
        "{r}"
    );
    assert_eq!(r["removed"], serde_json::json!([c.to_string()]), "{r}");
    assert_eq!(r["unchanged"], 1, "{r}");

    let (n, _) = peer_b.expect_notification();
    assert_eq!(
        (n.code, n.subcode),
        (cease::CODE, cease::ADMINISTRATIVE_SHUTDOWN)
    );
    let m = n.shutdown_message().unwrap_or_default();
    assert!(m.contains("configuration changed (hold_time)"), "{m}");
    let (n, _) = peer_c.expect_notification();
    assert_eq!(n.subcode, cease::ADMINISTRATIVE_SHUTDOWN);
    assert!(
        n.shutdown_message()
            .unwrap_or_default()
            .contains("removed from the configuration"),
        "{n:?}"
    );
    // b comes back with the new hold time.
    peer_b.accept();
    let open = peer_b.handshake();
    assert_eq!(open.hold_time, 30);
    peer_b.initial_sync(2);
    peer_a.expect_quiet(Duration::from_millis(300));
    let status = speaker.status();
    assert_eq!(status.len(), 2, "{status:?}");
    speaker.wait_state(IpAddr::V4(b), "Established");

    // A description changes in place: no message to the peer.
    speaker.spec.neighbors[0].extra = "description = \"site a, rack 7\"".into();
    rewrite_config(&speaker);
    let out = speaker.cli_ok(&["reload"]);
    assert!(
        out.stdout
            .contains(&format!("updated: {a} (description changed)")),
        "{out:?}"
    );
    peer_a.expect_quiet(Duration::from_millis(300));
    assert_eq!(peer_status(&speaker, a)["description"], "site a, rack 7");

    // Nothing changed: nothing happens.
    let out = speaker.cli_ok(&["reload"]);
    assert!(out.stdout.contains("unchanged: 2"), "{out:?}");
    peer_a.expect_quiet(Duration::from_millis(200));
    peer_b.expect_quiet(Duration::from_millis(200));
}

#[test]
fn speaker_check_validates_without_starting_anything() {
    let speaker = Speaker::prepare(SpeakerSpec::with(vec![NeighborSpec::active(
        "127.0.48.8:1179".parse().unwrap(),
    )]));
    let path = speaker.config_path();
    let check = |path: &std::path::Path| {
        ferry_cli(
            &["speaker", "--config", path.to_str().unwrap(), "--check"],
            None,
        )
    };
    let out = check(&path);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ok"), "{out:?}");
    assert!(out.stdout.contains("127.0.48.8 AS 65001"), "{out:?}");
    assert!(out.stdout.contains("active, hold 9s"), "{out:?}");
    assert!(!speaker.api().exists(), "--check started the API");
    assert!(!speaker.state_dir().exists(), "--check created state_dir");

    let text = std::fs::read_to_string(&path).unwrap();
    write_private(&path, &text.replace("hold_time = 9", "hold_time = 2"));
    let out = check(&path);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("hold_time 2"), "{out:?}");
    // --json: one object, the same verdict and exit code.
    let json = |path: &std::path::Path| {
        let out = ferry_cli(
            &[
                "speaker",
                "--config",
                path.to_str().unwrap(),
                "--check",
                "--json",
            ],
            None,
        );
        let v: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
        (out.code, v)
    };
    let (code, v) = json(&path);
    assert_eq!((code, &v["ok"]), (2, &serde_json::json!(false)), "{v}");
    assert!(v["error"].as_str().unwrap().contains("hold_time 2"), "{v}");
    write_private(&path, &text);
    let (code, v) = json(&path);
    assert_eq!((code, &v["ok"]), (0, &serde_json::json!(true)), "{v}");
    assert!(
        v["summary"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("127.0.48.8 AS 65001")),
        "{v}"
    );
}

#[test]
fn neighbor_disable_sends_cease_with_the_message_and_survives_a_restart() {
    let a = Ipv4Addr::new(127, 0, 48, 9);
    let (mut speaker, mut peer) = established_pair(a);
    let addr = a.to_string();
    let out = speaker.cli_ok(&[
        "neighbor",
        "disable",
        &addr,
        "--message",
        "maintenance ticket 42",
    ]);
    assert!(out.stdout.contains("disabled"), "{out:?}");
    // The audit line names the calling user (SO_PEERCRED) and the message.
    let line = wait_log(
        &speaker,
        &format!("audit: disable by uid {}", nix::unistd::getuid()),
    );
    assert!(line.contains("maintenance ticket 42"), "{line}");
    let (n, _) = peer.expect_notification();
    assert_eq!(
        (n.code, n.subcode),
        (cease::CODE, cease::ADMINISTRATIVE_SHUTDOWN)
    );
    assert_eq!(
        n.shutdown_message().as_deref(),
        Some("maintenance ticket 42")
    );
    peer.wait_closed();
    // connect_retry = 1: a neighbor that were only reset would be connecting again by now.
    stays(&speaker, a, "Idle", Duration::from_secs(3));
    let st = peer_status(&speaker, a);
    assert_eq!(st["admin_down"]["message"], "maintenance ticket 42", "{st}");
    let metrics = client(&speaker).metrics().unwrap();
    assert!(
        metrics.contains(&format!("ferry_peer_admin_down{{peer=\"{a}\"}} 1")),
        "{metrics}"
    );
    // Disabled on purpose: `status` does not count it as down (exit 0, not 3).
    let text = speaker.cli_ok(&["status"]).stdout;
    assert!(
        text.contains("Idle (disabled)") && text.contains("maintenance ticket 42"),
        "{text}"
    );

    // A message longer than RFC 9003 allows is refused before anything is sent.
    let long = "x".repeat(256);
    let out = speaker.cli(&["neighbor", "disable", &addr, "--message", &long]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("255"), "{out:?}");

    // Persisted: a restarted speaker keeps it down.
    speaker.sigterm();
    speaker.wait_exit(WAIT);
    speaker.spawn();
    stays(&speaker, a, "Idle", Duration::from_secs(2));
    let st = peer_status(&speaker, a);
    assert_eq!(st["admin_down"]["message"], "maintenance ticket 42", "{st}");

    let out = speaker.cli_ok(&["neighbor", "enable", &addr]);
    assert!(out.stdout.contains("enabled"), "{out:?}");
    wait_log(
        &speaker,
        &format!("audit: enable by uid {}", nix::unistd::getuid()),
    );
    peer.accept();
    peer.handshake();
    speaker.wait_state(IpAddr::V4(a), "Established");
    assert!(peer_status(&speaker, a).get("admin_down").is_none());
    let metrics = client(&speaker).metrics().unwrap();
    assert!(
        metrics.contains(&format!("ferry_peer_admin_down{{peer=\"{a}\"}} 0")),
        "{metrics}"
    );

    // Unknown neighbor: not found, exit 1.
    let out = speaker.cli(&["neighbor", "disable", "192.0.2.200"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not a configured neighbor"), "{out:?}");
}

/// `log_level` in the config applies on a reload: at "warn" an info line of the speaker is no
/// longer written while a warning still is; back at "info" it is again.
#[test]
fn a_reload_changes_the_log_level() {
    let a = Ipv4Addr::new(127, 0, 48, 10);
    let (speaker, mut peer) = established_pair(a);
    let addr = a.to_string();
    let base = speaker.spec.config(speaker.dir.path());
    let with_level = |level: &str| {
        let mut c = base.clone();
        c.speaker.log_level = Some(ferry::config::LogLevel(level.into()));
        testkit::speaker::write_config(&speaker.config_path(), &c)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    with_level("warn");
    speaker.cli_ok(&["reload"]);
    let mark = speaker.log().len();
    speaker.cli_ok(&["neighbor", "disable", &addr]);
    peer.expect_notification();
    let log = wait_log(&speaker, "neighbor disabled by the operator");
    let after = &log[mark..];
    assert!(after.contains("WARN"), "{after}");
    assert!(
        !after.contains("neighbor admin state set by the operator"),
        "an info line at log level warn:\n{after}"
    );

    with_level("info");
    speaker.cli_ok(&["reload"]);
    speaker.cli_ok(&["neighbor", "enable", &addr]);
    wait_log(&speaker, "neighbor admin state set by the operator");
    peer.accept();
    peer.handshake();
}

/// The API refuses a shutdown communication longer than RFC 9003 allows, naming the field.
#[test]
fn the_api_refuses_a_shutdown_message_over_255_octets() {
    let a = Ipv4Addr::new(127, 0, 48, 11);
    let (speaker, mut peer) = established_pair(a);
    let e = client(&speaker)
        .disable(IpAddr::V4(a), Some("ü".repeat(128)))
        .unwrap_err();
    match &e {
        ferry::api::SpeakerError::Rejected { status, field, .. } => {
            assert_eq!((*status, field.as_deref()), (400, Some("message")), "{e}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(e.to_string().contains("256 octets"), "{e}");
    peer.expect_quiet(Duration::from_millis(300));
    assert_eq!(peer_status(&speaker, a)["state"], "Established");
}

/// `allowed_prefixes` is one of the keys a reload applies at once: after `ferry reload` with a
/// list, an announcement outside it is refused naming the prefix, one inside goes out; the
/// reload is in the audit trail with its caller.
#[test]
fn a_reload_sets_allowed_prefixes() {
    let a = Ipv4Addr::new(127, 0, 48, 12);
    let (speaker, mut peer) = established_pair(a);
    speaker.cli_ok(&["announce", "203.0.113.0/24"]);
    let _ = peer.next_update();

    let mut c = speaker.spec.config(speaker.dir.path());
    c.speaker.allowed_prefixes = Some(vec!["198.51.100.0/24".parse().unwrap()]);
    testkit::speaker::write_config(&speaker.config_path(), &c).unwrap_or_else(|e| panic!("{e}"));
    speaker.cli_ok(&["reload"]);
    wait_log(&speaker, "audit: reload by uid");

    let out = speaker.cli(&["announce", "203.0.113.128/25"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("203.0.113.128/25") && out.stderr.contains("198.51.100.0/24"),
        "the error names the prefix and the list: {out:?}"
    );
    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    let r = peer.next_update();
    let u = r.update().unwrap();
    assert!(
        u.nlri.iter().any(|p| p.to_string() == "198.51.100.0/24"),
        "{:?}",
        u.nlri
    );
}
