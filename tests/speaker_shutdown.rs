//! Graceful shutdown (RFC 8326) with a raw BGP peer.
//!
//! Proves: `ferry withdraw --graceful N` (and `--all --graceful N`) re-announces the route with GRACEFUL_SHUTDOWN
//! (65535:0) added at once, withdraws it N seconds later and only then returns; the API keeps
//! answering during the wait; the drain is not persisted (`ferry routes` never shows the
//! community). With `[speaker] shutdown_graceful_secs = N`, SIGTERM re-announces every route
//! with GRACEFUL_SHUTDOWN, waits N seconds, then sends the Cease. SIGHUP with an unchanged
//! config reloads it and changes nothing: no message to the peer, the speaker and its routes
//! stay (reloads that change things: speaker_reload.rs).
//! Failures injected: none (planned operations); SIGTERM and SIGHUP.

mod support;

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use ferry::wire::Community;
use support::*;

#[test]
fn withdraw_graceful_drains_then_withdraws_and_returns_after_the_withdrawal() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 71));
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--community", "65100:7"]);
    let u = peer.next_update();
    assert_eq!(
        u.update().unwrap().communities(),
        [Community::new(65100, 7)]
    );

    let api = speaker.api();
    let t0 = Instant::now();
    let cli = thread::spawn(move || {
        let out = ferry_cli(
            &["withdraw", "--graceful", "2", "198.51.100.0/24"],
            Some(api.to_str().unwrap()),
        );
        (out, Instant::now())
    });
    let drained = peer.next_update();
    let u = drained.update().unwrap();
    assert_eq!(u.nlri.len(), 1, "{u:?}");
    assert_eq!(
        u.communities(),
        [Community::new(65100, 7), Community::GRACEFUL_SHUTDOWN]
    );
    let drain_after = drained.at - t0;

    // The API answers during the wait, and the drain is not in the desired state.
    let routes = speaker.cli_ok(&["routes", "--json"]).stdout;
    let answered = Instant::now();
    assert!(
        routes.contains("65100:7") && !routes.contains("graceful-shutdown"),
        "{routes}"
    );

    let withdrawn = peer.next_update();
    assert_eq!(withdrawn.update().unwrap().withdrawn.len(), 1);
    let wait = withdrawn.at - drained.at;
    assert!(
        answered < withdrawn.at,
        "the API was blocked during the wait"
    );
    let (out, returned) = cli.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    // The answer comes once the withdrawal is persisted and handed to the peers, i.e. after
    // the wait; the UPDATE may still be on its way.
    assert!(
        returned - t0 >= Duration::from_secs(2),
        "CLI returned before the wait"
    );
    eprintln!("drain UPDATE after {drain_after:?}, withdrawal {wait:?} later (asked 2 s)");
    assert!(
        wait >= Duration::from_millis(1900) && wait < Duration::from_millis(3000),
        "{wait:?}"
    );
    let routes = speaker.cli_ok(&["routes", "--json"]).stdout;
    assert_eq!(routes.trim(), "[]");

    // Out of range is bad usage, refused before anything is sent.
    let out = speaker.cli(&["withdraw", "--graceful", "0", "198.51.100.0/24"]);
    assert_eq!(out.code, 2, "{out:?}");
    let sock = speaker.api();
    let (status, body) = http(
        Target::Unix(&sock),
        "POST",
        "/v1/withdraw",
        &[("content-type", "application/json")],
        r#"{"prefixes": ["198.51.100.0/24"], "graceful_secs": 3601}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("graceful_secs"), "{body}");
    // Nothing announced under that prefix: no wait.
    let t = Instant::now();
    speaker.cli_ok(&["withdraw", "--graceful", "60", "198.51.100.0/24"]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let (status, body) = http(
        Target::Unix(&sock),
        "POST",
        "/v1/peers/not-an-ip/reset",
        &[],
        "",
    );
    assert_eq!(status, 400, "{body}");
}

/// `withdraw --all --graceful 1`: every announced route is re-announced with
/// GRACEFUL_SHUTDOWN, then all are withdrawn about a second later; nothing stays announced.
#[test]
fn withdraw_all_graceful_drains_every_route_then_withdraws_them() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 73));
    speaker.cli_ok(&["announce", "198.51.100.0/24", "203.0.113.0/24"]);
    assert_eq!(peer.next_update().update().unwrap().nlri.len(), 2);

    let out = speaker.cli_ok(&["withdraw", "--all", "--yes", "--graceful", "1"]);
    assert!(out.stdout.contains("2 prefix(es) changed"), "{out:?}");
    let drained = peer.next_update();
    let u = drained.update().unwrap();
    assert_eq!(u.nlri.len(), 2, "{u:?}");
    assert_eq!(u.communities(), [Community::GRACEFUL_SHUTDOWN]);
    let withdrawn = peer.next_update();
    let mut gone = withdrawn.update().unwrap().withdrawn.clone();
    gone.sort();
    let mut drained_nlri = u.nlri.clone();
    drained_nlri.sort();
    assert_eq!(gone, drained_nlri);
    let wait = withdrawn.at - drained.at;
    assert!(
        wait >= Duration::from_millis(900) && wait < Duration::from_millis(2000),
        "{wait:?}"
    );
    assert_eq!(speaker.cli_ok(&["routes", "--json"]).stdout.trim(), "[]");
}

#[test]
fn sigterm_with_shutdown_graceful_secs_drains_before_the_cease() {
    let (mut speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 72));
    speaker.cli_ok(&["announce", "198.51.100.0/24", "203.0.113.0/24"]);
    peer.next_update();
    // Restart with the option (the config is read at start).
    speaker.kill9();
    peer.wait_closed();
    let path = speaker.config_path();
    let config = std::fs::read_to_string(&path).unwrap();
    let config = config.replacen("[speaker]\n", "[speaker]\nshutdown_graceful_secs = 1\n", 1);
    std::fs::write(&path, config).unwrap();
    speaker.spawn();
    peer.accept();
    peer.handshake();
    assert_eq!(peer.initial_sync(2).len(), 1);

    speaker.sigterm();
    let drained = peer.next_update();
    let u = drained.update().unwrap();
    assert_eq!(u.nlri.len(), 2, "{u:?}");
    assert_eq!(u.communities(), [Community::GRACEFUL_SHUTDOWN]);
    let (n, _) = peer.expect_notification();
    assert_eq!((n.code, n.subcode), (6, 2));
    let closed = peer.wait_closed();
    let wait = closed - drained.at;
    eprintln!("SIGTERM: drain UPDATE, Cease {wait:?} later (asked 1 s)");
    assert!(wait >= Duration::from_millis(900), "{wait:?}");
    assert!(speaker.wait_exit(WAIT).success());
    // The drain was not persisted.
    let state = std::fs::read_to_string(speaker.state_dir().join("routes.json")).unwrap();
    assert!(!state.contains("graceful"), "{state}");
}

/// SIGHUP (a closed terminal, `systemctl reload`) must not end the speaker: it reloads the
/// config, which here is unchanged, so it changes nothing: no message to the peer, the session
/// and the routes stay.
#[test]
fn sighup_with_an_unchanged_config_changes_nothing() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 47, 4));
    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    let _ = peer.next_update();
    testkit::signal::signal(speaker.pid(), "HUP");
    testkit::poll::wait_for("the reload in the log", WAIT, || {
        speaker
            .log()
            .contains("reload: nothing changed")
            .then_some(())
    });
    peer.expect_quiet(Duration::from_millis(500));
    assert!(testkit::signal::alive(speaker.pid()), "{}", speaker.log());
    assert!(speaker.log().contains("SIGHUP"), "{}", speaker.log());
    speaker.wait_state(Ipv4Addr::new(127, 0, 47, 4).into(), "Established");
    let routes = speaker.cli_ok(&["routes", "--json"]).stdout;
    assert!(routes.contains("198.51.100.0/24"), "{routes}");
}
