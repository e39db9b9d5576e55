//! The typed API client (`ferry::api::Speaker` and its blocking facade) against a real
//! `ferry speaker` on a real socket.
//!
//! Proves: every operation round-trips through the server's own types (announce, the routes
//! announced, peers with their typed session state, received routes, leases, renew, reset,
//! metrics, the event stream); each failure comes back as the right kind: nothing listening is
//! `Unreachable`, a socket that takes the request and never answers is `NoAnswer` (within the
//! client's timeout), a bad request is
//! `Rejected` naming the field the speaker blamed, an unknown peer is `Rejected` 404, a wrong
//! bearer token on the TCP API is `Rejected` 401, and event streams past the listener's share
//! are `Busy` (503).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferry::api::blocking::Speaker as Client;
use ferry::api::{Endpoint, Event, SessionState, SpeakerError, WithdrawRequest};
use ferry::speaker::Route;
use support::*;

fn route(prefix: &str) -> Route {
    Route::new(prefix.parse().unwrap()).unwrap()
}

#[test]
fn operations_round_trip_with_typed_answers() {
    let ip = Ipv4Addr::new(127, 0, 47, 1);
    let (speaker, mut peer) = established_pair(ip);
    let c = Client::unix(speaker.api()).unwrap();

    let peers = c.peers().unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].address, IpAddr::V4(ip));
    assert_eq!(peers[0].state, SessionState::Established);

    let mut events = c.events().unwrap();
    let r = route("198.51.100.0/24");
    let changed = c.announce(vec![r.clone()]).unwrap();
    assert_eq!(changed.changed, 1);
    assert_eq!(c.announced().unwrap(), vec![r.clone()]);
    let update = peer.next_update();
    assert_eq!(update.update().unwrap().nlri.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match events.next_within(Duration::from_millis(200)).unwrap() {
            Some(e @ Event::DesiredChanged { .. }) => {
                seen.push(e);
                break;
            }
            Some(e) => seen.push(e),
            None => {}
        }
    }
    assert!(
        seen.iter().any(|e| matches!(
            e,
            Event::DesiredChanged { changed: 1, generation } if *generation == changed.generation
        )),
        "{seen:?}"
    );

    // The raw peer announces nothing: no received routes, typed or not.
    assert!(c.received(None).unwrap().is_empty());
    assert!(c.received(Some(IpAddr::V4(ip))).unwrap().is_empty());

    let mut leased = route("203.0.113.0/24");
    leased.lease_secs = Some(60);
    c.announce(vec![leased]).unwrap();
    let leases = c.leases().unwrap();
    assert_eq!(leases.leases.len(), 1, "{leases:?}");
    let renewed = c.renew(vec!["203.0.113.0/24".parse().unwrap()]).unwrap();
    assert_eq!(renewed.leases[0].lease_secs, 60);

    let withdrawn = c.withdraw(vec![r.prefix]).unwrap();
    assert_eq!(withdrawn.changed, 1);
    assert_eq!(c.withdraw_all().unwrap().changed, 1);
    assert!(c.announced().unwrap().is_empty());

    let text = c.metrics().unwrap();
    assert!(text.contains("ferry_peer_established"), "{text}");

    let reset = c.reset(IpAddr::V4(ip), false).unwrap();
    assert_eq!(reset.state, SessionState::Established);
    assert!(!reset.hard);
}

#[test]
fn a_speaker_that_is_not_there_is_unreachable_and_one_that_never_answers_is_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Client::unix(dir.path().join("none.sock")).unwrap();
    let e = missing.peers().unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    assert!(e.to_string().contains("cannot reach the speaker"), "{e}");

    // A socket that accepts (the kernel's backlog) and never answers: the request went out,
    // so it may have been taken: no answer, not unreachable.
    let path = dir.path().join("mute.sock");
    let _mute = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let c = Client::unix(&path)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let t0 = Instant::now();
    let e = c.announce(vec![route("198.51.100.0/24")]).unwrap_err();
    assert!(
        matches!(&e, SpeakerError::NoAnswer { detail, .. } if detail == "within 300 ms"),
        "{e:?}"
    );
    assert!(!e.is_unreachable() && e.is_no_answer());
    assert!(
        e.to_string().ends_with("did not answer within 300 ms"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn refusals_name_the_field_and_status() {
    let speaker = Speaker::start(SpeakerSpec::default());
    let c = Client::unix(speaker.api()).unwrap();

    let e = c.withdraw(Vec::new()).unwrap_err();
    assert!(
        matches!(&e, SpeakerError::Rejected { status: 400, field: Some(f), .. } if f == "prefixes"),
        "{e:?}"
    );
    let e = c
        .change(WithdrawRequest {
            prefixes: vec!["198.51.100.0/24".parse().unwrap()],
            all: false,
            graceful_secs: Some(0),
            dry_run: false,
        })
        .unwrap_err();
    assert!(
        matches!(&e, SpeakerError::Rejected { status: 400, field: Some(f), message }
            if f == "graceful_secs" && message.contains("outside 1-3600")),
        "{e:?}"
    );
    let e = c
        .reset(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)), true)
        .unwrap_err();
    assert!(
        matches!(&e, SpeakerError::Rejected { status: 404, field: None, message }
            if message.contains("not a configured neighbor")),
        "{e:?}"
    );
    assert!(!e.is_unreachable());
}

#[test]
fn a_wrong_token_is_rejected_401_over_tcp() {
    let ip = Ipv4Addr::new(127, 0, 47, 2);
    let addr = SocketAddr::new(IpAddr::V4(ip), free_port(ip));
    let speaker = Speaker::start(SpeakerSpec {
        api_tcp: Some((addr, "right-token-0123456789".into())),
        ..SpeakerSpec::default()
    });
    let endpoint = Endpoint::parse(&format!("http://{addr}")).unwrap();
    let wrong = Client::new(ferry::api::Speaker::new(
        endpoint.clone(),
        Some("wrong-token".into()),
    ))
    .unwrap();
    let e = wrong.peers().unwrap_err();
    assert!(
        matches!(&e, SpeakerError::Rejected { status: 401, .. }),
        "{e:?}"
    );
    let right = Client::new(ferry::api::Speaker::new(
        endpoint,
        Some("right-token-0123456789".into()),
    ))
    .unwrap();
    assert!(right.peers().unwrap().is_empty());
    drop(speaker);
}

#[test]
fn event_streams_past_the_listeners_share_are_busy() {
    let speaker = Speaker::start(SpeakerSpec::default());
    let c = Client::unix(speaker.api()).unwrap();
    let mut open = Vec::new();
    let busy = loop {
        match c.events() {
            Ok(s) => open.push(s),
            Err(e) => break e,
        }
        assert!(open.len() <= 64, "more streams than the Unix budget");
    };
    assert!(matches!(&busy, SpeakerError::Busy { .. }), "{busy:?}");
    assert!(!open.is_empty());
    // The speaker still answers ordinary calls.
    assert!(c.peers().unwrap().is_empty());
}

/// `ferry monitor` over the same client: a change shows as it happens, in JSON or in words,
/// and a speaker that goes away ends the command with exit 1 naming it.
#[test]
fn ferry_monitor_follows_events_and_ends_when_the_speaker_goes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let ip = Ipv4Addr::new(127, 0, 47, 3);
    let (mut speaker, mut peer) = established_pair(ip);
    let monitor = |json: bool| {
        let mut cmd = Command::new(FERRY);
        cmd.arg("monitor")
            .env("FERRY_API", speaker.api())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (child, rx)
    };
    let until = |rx: &std::sync::mpsc::Receiver<String>, want: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                if want(&l) {
                    return l;
                }
                seen.push(l);
            }
        }
        panic!("no such line within 10 s; saw {seen:?}");
    };

    let (mut json, json_rx) = monitor(true);
    let (mut words, words_rx) = monitor(false);
    // Both are subscribed once a change made now reaches them; retry until it does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0u8;
    let line = loop {
        n += 1;
        speaker.cli_ok(&["announce", &format!("198.51.100.{n}/32")]);
        let _ = peer.next_update();
        if let Ok(l) = json_rx.recv_timeout(Duration::from_millis(500)) {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "ferry monitor --json printed nothing"
        );
    };
    let first: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(first["event"].is_string(), "{line}");
    speaker.cli_ok(&["announce", "203.0.113.0/24"]);
    let sent = until(&json_rx, &|l| {
        l.contains("\"routes_sent\"") && l.contains("203.0.113.0/24")
    });
    let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(v["peer"], ip.to_string());
    let said = until(&words_rx, &|l| l.contains("announced 203.0.113.0/24"));
    assert!(
        said.contains(&format!("peer {ip}: sent 1 announced")),
        "{said}"
    );

    speaker.kill9();
    for (child, what) in [(&mut json, "--json"), (&mut words, "words")] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "monitor ({what}) still running");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(1), "{what}");
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.contains("did not answer"), "{what}: {err}");
    }
}
