//! The systemd notification protocol, against a datagram socket the test binds and reads.
//!
//! Proves: with `NOTIFY_SOCKET` set, the real speaker sends `READY=1` (with `STATUS=0/1`) only
//! once its API answers, `STATUS=1/1` when its one session comes up, `WATCHDOG=1` about every
//! half of `WATCHDOG_USEC`, and on SIGTERM `STOPPING=1` before the Cease: in that order. With
//! `WATCHDOG_PID` naming another process there are no watchdog pings, and an abstract
//! (`@name`) socket works the same. Failures injected: none (SIGTERM is the planned stop).

mod support;

use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use support::*;

/// The speaker, run under `env` with these variables (env execs it: the pid stays the
/// speaker's).
fn speaker_with_env(peer: &RawPeer, vars: &[String]) -> Speaker {
    let mut spec = SpeakerSpec::with(vec![NeighborSpec::active(peer.addr())]);
    spec.wrapper = std::iter::once("env".to_string())
        .chain(vars.iter().cloned())
        .collect();
    Speaker::start(spec)
}

/// The next datagram within `within`, as text.
fn next(rx: &UnixDatagram, within: Duration) -> Option<String> {
    rx.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    match rx.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// Datagrams until one satisfies `want` (returned with those before it), within [`WAIT`].
fn until(rx: &UnixDatagram, want: impl Fn(&str) -> bool) -> (Vec<String>, String) {
    let deadline = Instant::now() + WAIT;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = next(rx, left.max(Duration::from_millis(1))) else {
            panic!("no matching notification within {WAIT:?}; got {before:?}");
        };
        if want(&m) {
            return (before, m);
        }
        before.push(m);
    }
}

#[test]
fn ready_status_watchdog_and_stopping_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let rx = UnixDatagram::bind(&path).unwrap();
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 111));
    let mut speaker = speaker_with_env(
        &peer,
        &[
            format!("NOTIFY_SOCKET={}", path.display()),
            // 400 ms: a ping every 200 ms.
            "WATCHDOG_USEC=400000".into(),
        ],
    );
    // The API answered before the test got here; READY must be the first message.
    let first = next(&rx, WAIT).expect("READY=1");
    assert_eq!(first, "READY=1\nSTATUS=0/1 sessions established");

    peer.accept();
    peer.handshake();
    let (before, _) = until(&rx, |m| m == "STATUS=1/1 sessions established");
    assert!(
        before.iter().all(|m| m == "WATCHDOG=1"),
        "only pings before the status: {before:?}"
    );

    // Pings keep coming at about half the timeout.
    let t0 = Instant::now();
    let mut pings = 0;
    while t0.elapsed() < Duration::from_millis(1000) {
        if next(&rx, Duration::from_millis(500)).as_deref() == Some("WATCHDOG=1") {
            pings += 1;
        }
    }
    eprintln!("{pings} watchdog pings in 1 s (every 200 ms asked)");
    assert!((3..=7).contains(&pings), "{pings} pings in 1 s");

    speaker.sigterm();
    let (before, stopping) = until(&rx, |m| m.starts_with("STOPPING=1"));
    assert!(before.iter().all(|m| m == "WATCHDOG=1"), "{before:?}");
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    // STOPPING went out before the session was closed with its Cease.
    let (n, _) = peer.expect_notification();
    use ferry::wire::notification::cease;
    assert_eq!(
        (n.code, n.subcode),
        (cease::CODE, cease::ADMINISTRATIVE_SHUTDOWN),
        "{n:?}"
    );
    assert!(speaker.wait_exit(WAIT).success());
}

#[test]
fn an_abstract_socket_works_and_a_watchdog_for_another_pid_is_not_pinged() {
    let name = format!("ferry-it-notify-{}", std::process::id());
    let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    let peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 112));
    let speaker = speaker_with_env(
        &peer,
        &[
            format!("NOTIFY_SOCKET=@{name}"),
            "WATCHDOG_USEC=200000".into(),
            // pid 1 is never the speaker.
            "WATCHDOG_PID=1".into(),
        ],
    );
    let first = next(&rx, WAIT).expect("READY=1");
    assert!(first.starts_with("READY=1\n"), "{first}");
    assert_eq!(
        next(&rx, Duration::from_millis(600)),
        None,
        "no pings for another pid's watchdog"
    );
    assert!(!speaker.log().contains("systemd watchdog on"));
}
