//! Graceful restart (RFC 4724, RFC 8538) with a raw BGP peer.
//!
//! Proves:
//! - the speaker advertises the capability as configured (N bit, restart time, F bit per
//!   family); after `kill -9` and a start on the same `state_dir` the OPEN carries the R bit,
//!   every desired route comes before any End-of-RIB, and the next session (same process)
//!   no longer sets R;
//! - helper mode: a peer that advertised graceful restart and loses its TCP connection keeps
//!   its routes at the speaker, marked stale (status "helping", `routes --received` stale),
//!   until its End-of-RIB on the new session, or until its restart time when it does not come
//!   back; a Cease/Hard Reset from the peer drops them at once;
//! - `ferry reset --hard` sends Cease/Hard Reset wrapping Cease/Administrative Reset.
//!
//! Failures injected: SIGKILL of the speaker (no NOTIFICATION); the raw peer closing its
//! socket (TCP loss, no NOTIFICATION); a Hard Reset NOTIFICATION.

mod support;

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use ferry::wire::attribute::{AttributeValue, PathAttribute};
use ferry::wire::capability::{GracefulRestart, GracefulRestartFamily};
use ferry::wire::{
    Afi, AsPath, Capability, Family, Message, Notification, Open, Origin, Safi, Update,
};
use support::*;

const GR: &str = "graceful_restart = true\nrestart_time = 3\n";

fn speaker_gr(peer: &RawPeer) -> Speaker {
    let mut n = NeighborSpec::active(peer.addr());
    n.extra = GR.into();
    Speaker::start(SpeakerSpec::with(vec![n]))
}

fn gr_of(open: &Open) -> GracefulRestart {
    open.capabilities()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no graceful restart capability in {open:?}"))
}

/// Handshake with our own OPEN: the raw peer's capabilities plus graceful restart for IPv4
/// (N bit, F bit), hold time 0 so no keepalive thread is needed.
fn gr_handshake(peer: &mut RawPeer, restart_time: u16) -> Open {
    let mut caps: Vec<Capability> = peer.open().capabilities().cloned().collect();
    caps.push(Capability::GracefulRestart(GracefulRestart {
        flags: GracefulRestart::NOTIFICATION,
        restart_time,
        families: vec![GracefulRestartFamily {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
            flags: 0x80,
        }],
    }));
    peer.send(&Message::Open(Open::new(peer.asn, 0, peer.router_id, caps)));
    let open = match peer.next().msg {
        Ok(Message::Open(o)) => o,
        other => panic!("expected the speaker's OPEN, got {other:?}"),
    };
    peer.send(&Message::Keepalive);
    let r = peer.next();
    assert!(r.is_keepalive(), "expected KEEPALIVE, got {:?}", r.msg);
    open
}

fn send_route(peer: &RawPeer, prefix: &str) {
    peer.send(&Message::Update(Update {
        attributes: vec![
            PathAttribute::new(AttributeValue::Origin(Origin::Igp)),
            PathAttribute::new(AttributeValue::AsPath(AsPath::sequence(&[PEER_ASN]))),
            PathAttribute::new(AttributeValue::NextHop(peer.ip)),
        ],
        nlri: vec![prefix.parse().unwrap()],
        ..Update::default()
    }));
}

fn received(speaker: &Speaker) -> Vec<serde_json::Value> {
    let out = speaker.cli_ok(&["routes", "--received", "--json"]);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Poll until `want` holds for the received routes; returns how long it took.
fn wait_received(
    speaker: &Speaker,
    what: &str,
    want: impl Fn(&[serde_json::Value]) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let r = received(speaker);
        if want(&r) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < WAIT, "{what}: received routes {r:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn restarted_speaker_sets_r_and_sends_every_route_before_end_of_rib() {
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 61));
    let mut speaker = speaker_gr(&peer);
    peer.accept();
    let gr = gr_of(&peer.handshake());
    assert!(gr.notification(), "N bit: {gr:?}");
    assert!(
        !gr.restart_state(),
        "a first start is not a restart: {gr:?}"
    );
    assert_eq!(gr.restart_time, 3);
    assert_eq!(gr.families.len(), 2);
    assert!(gr.families.iter().all(|f| f.forwarding_state()), "{gr:?}");
    peer.initial_sync(2);
    let prefixes: Vec<String> = (0..50).map(|i| format!("198.51.{i}.0/24")).collect();
    let mut args = vec!["announce"];
    args.extend(prefixes.iter().map(String::as_str));
    speaker.cli_ok(&args);
    speaker.cli_ok(&["announce", "2001:db8:100::/48", "--next-hop", "2001:db8::1"]);
    peer.next_update();
    peer.next_update();

    speaker.kill9();
    peer.wait_closed();
    speaker.spawn();
    peer.accept();
    let gr = gr_of(&peer.handshake());
    assert!(gr.restart_state(), "R bit after a restart: {gr:?}");
    let mut v4 = 0;
    let mut v6 = 0;
    let mut eors: Vec<Family> = Vec::new();
    while eors.len() < 2 {
        let r = peer.next_update();
        let u = r.update().unwrap().clone();
        match u.end_of_rib_family() {
            Some(f) => eors.push(f),
            None => {
                assert!(eors.is_empty(), "a route after End-of-RIB {eors:?}: {u:?}");
                v4 += u.nlri.len();
                v6 += usize::from(u.mp_reach().is_some());
            }
        }
    }
    assert_eq!((v4, v6), (50, 1), "every desired route before End-of-RIB");

    // Same process, new session: no longer a restart.
    peer.disconnect();
    peer.accept();
    let gr = gr_of(&peer.handshake());
    assert!(
        !gr.restart_state(),
        "R only right after the restart: {gr:?}"
    );
}

#[test]
fn helper_keeps_stale_routes_until_end_of_rib_of_the_new_session() {
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 62));
    let speaker = speaker_gr(&peer);
    peer.accept();
    gr_handshake(&mut peer, 30);
    send_route(&peer, "203.0.113.0/24");
    send_route(&peer, "192.0.2.0/25");
    wait_received(&speaker, "two routes", |r| r.len() == 2);
    let st = &speaker.status()[0];
    assert_eq!(st["graceful_restart"]["state"], "ready", "{st}");

    peer.disconnect(); // TCP loss, no NOTIFICATION
    let t0 = Instant::now();
    wait_received(&speaker, "kept as stale", |r| {
        r.len() == 2 && r.iter().all(|x| x["stale"] == true)
    });
    let st = &speaker.status()[0];
    assert_eq!(st["graceful_restart"]["state"], "helping", "{st}");
    assert_eq!(st["graceful_restart"]["stale_routes"], 2, "{st}");
    // The session is down while helping: the listing, and exit 3.
    let out = speaker.cli(&["status"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("helping (2 stale, "), "{out:?}");
    let (_, metrics) = http(Target::Unix(&speaker.api()), "GET", "/metrics", &[], "");
    assert!(
        metrics.contains("ferry_peer_stale_routes{peer=\"127.0.0.62\"} 2"),
        "{metrics}"
    );

    // Back (the speaker reconnects): one route re-announced, then End-of-RIB sweeps the other.
    peer.accept();
    gr_handshake(&mut peer, 30);
    send_route(&peer, "203.0.113.0/24");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        received(&speaker).len(),
        2,
        "stale route kept until End-of-RIB"
    );
    peer.send(&Message::Update(Update::end_of_rib(Family::Ipv4Unicast)));
    wait_received(&speaker, "stale swept at End-of-RIB", |r| {
        r.len() == 1 && r[0]["prefix"] == "203.0.113.0/24" && r[0]["stale"] == false
    });
    eprintln!(
        "stale routes kept across the peer's restart: {:?}",
        t0.elapsed()
    );
    let st = &speaker.status()[0];
    assert_eq!(st["graceful_restart"]["state"], "ready", "{st}");
}

#[test]
fn helper_sweeps_stale_routes_at_the_restart_time() {
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 63));
    let speaker = speaker_gr(&peer);
    peer.accept();
    gr_handshake(&mut peer, 2);
    send_route(&peer, "203.0.113.0/24");
    wait_received(&speaker, "one route", |r| r.len() == 1);
    peer.disconnect();
    let t0 = Instant::now();
    wait_received(&speaker, "stale", |r| r.len() == 1 && r[0]["stale"] == true);
    // The peer never comes back (the speaker's reconnects are not answered).
    wait_received(&speaker, "swept at restart time", <[_]>::is_empty);
    let kept = t0.elapsed();
    eprintln!("stale routes swept after {kept:?} (restart time 2 s)");
    assert!(
        kept >= Duration::from_millis(1800) && kept < Duration::from_millis(3500),
        "{kept:?}"
    );
}

#[test]
fn hard_reset_from_the_peer_drops_its_routes_at_once() {
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 64));
    let speaker = speaker_gr(&peer);
    peer.accept();
    gr_handshake(&mut peer, 30);
    send_route(&peer, "203.0.113.0/24");
    wait_received(&speaker, "one route", |r| r.len() == 1);
    peer.send(&Message::Notification(Notification {
        code: 6,
        subcode: 9,
        data: vec![6, 4, 0].into(),
    }));
    let took = wait_received(&speaker, "dropped", <[_]>::is_empty);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn administrative_notification_under_the_n_bit_keeps_routes() {
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 65));
    let speaker = speaker_gr(&peer);
    peer.accept();
    gr_handshake(&mut peer, 30);
    send_route(&peer, "203.0.113.0/24");
    wait_received(&speaker, "one route", |r| r.len() == 1);
    peer.send(&Message::Notification(Notification::cease_with_message(
        4,
        "restarting",
    )));
    wait_received(&speaker, "kept as stale", |r| {
        r.len() == 1 && r[0]["stale"] == true
    });
}

#[test]
fn reset_hard_sends_cease_hard_reset() {
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 66));
    let speaker = speaker_gr(&peer);
    peer.accept();
    peer.handshake();
    peer.initial_sync(2);
    let out = speaker.cli_ok(&["reset", "--hard", &peer.ip.to_string()]);
    assert!(out.stdout.contains("hard reset sent"), "{out:?}");
    let (n, _) = peer.expect_notification();
    assert_eq!((n.code, n.subcode), (6, 9), "{n:?}");
    let inner = n.hard_reset_inner().unwrap();
    assert_eq!((inner.code, inner.subcode), (6, 4), "{inner:?}");
    // The session comes back after connect-retry.
    peer.wait_closed();
    peer.accept();
    peer.handshake();
    let out = speaker.cli(&["reset", "192.0.2.77"]);
    assert_eq!(out.code, 1, "{out:?}");
}

#[test]
fn hold_timer_expiry_of_a_gr_peer_keeps_its_routes() {
    let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 67));
    let speaker = speaker_gr(&peer);
    peer.accept();
    // Hold time 3 s offered, and never a KEEPALIVE: the speaker's hold timer expires.
    let mut caps: Vec<Capability> = peer.open().capabilities().cloned().collect();
    caps.push(Capability::GracefulRestart(GracefulRestart {
        flags: 0,
        restart_time: 30,
        families: vec![GracefulRestartFamily {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
            flags: 0x80,
        }],
    }));
    peer.send(&Message::Open(Open::new(peer.asn, 3, peer.router_id, caps)));
    assert!(matches!(peer.next().msg, Ok(Message::Open(_))));
    peer.send(&Message::Keepalive);
    send_route(&peer, "203.0.113.0/24");
    wait_received(&speaker, "one route", |r| r.len() == 1);
    let (n, _) = peer.expect_notification();
    assert_eq!(n.code, 4, "Hold Timer Expired: {n:?}");
    wait_received(&speaker, "kept as stale", |r| {
        r.len() == 1 && r[0]["stale"] == true
    });
}
