//! Reload and neighbor admin state against real FRR 8.4: Ferry in namespace `a` (192.0.2.1
//! and 203.0.113.1, AS 65100), FRR's bgpd in `b` (192.0.2.2 and 203.0.113.2, AS 65002), one
//! veth with both subnets, so FRR can hold two sessions with Ferry.
//!
//! What each test proves, and how the change is made:
//! * `reload_adds_and_removes_a_neighbor_without_touching_frrs_other_session`: FRR holds
//!   Ferry's route over the 192.0.2.x session. The config gains the 203.0.113.x neighbor and
//!   Ferry gets SIGHUP: FRR's second session comes up and holds the route too, while the first
//!   one keeps its connection (FRR's `connectionsEstablished` and `connectionsDropped` do not
//!   move, `bgpTimerUpMsec` only grows). A config with a bad value is refused on SIGHUP (logged), one
//!   that changes router_id is refused by `ferry reload` (exit 2): FRR's sessions unchanged.
//!   `ferry reload` with the second neighbor removed closes it (FRR logs the Cease with the
//!   message) and leaves the first one alone.
//! * `neighbor_disable_sends_cease_with_the_message_to_frr`: `ferry neighbor disable
//!   --message` ends FRR's session with Cease/Administrative Shutdown carrying the message
//!   (FRR logs the shutdown communication and shows it in `show bgp neighbors json`); FRR
//!   keeps connecting (active, `timers connect 1`) and is refused for 5 s; the state survives
//!   a Ferry restart (still refused for 5 s); `enable` brings the session back and FRR holds
//!   the route again.
//! * `reload_installs_and_replaces_md5_keys_on_the_listener`: a passive neighbor with
//!   `md5_password` added by SIGHUP comes up as FRR connects (only if its key is on the
//!   listener); a changed key resets that session and FRR with the old key stays out until it
//!   has the new one.
//!
//! Needs root and FRR (skips otherwise, fails with FIT_REQUIRE=1).

use std::time::{Duration, Instant};

use proto_tests::ferry::{Ferry, FerryConfig};
use serde_json::Value;
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Peer};
use testkit::netns::{Lab, Netns};
use testkit::root::can_run_with;

const FERRY_AS: u32 = 65100;
const PEER_AS: u32 = 65002;
const FERRY_IP: &str = "192.0.2.1";
const PEER_IP: &str = "192.0.2.2";
const FERRY_IP2: &str = "203.0.113.1";
const PEER_IP2: &str = "203.0.113.2";
const OURS: &str = "198.51.100.0/24";
const UP: Duration = Duration::from_secs(20);
const FRR_PROGS: &[&str] = &["/usr/lib/frr/bgpd", "vtysh"];

fn lab(test: &str) -> (Lab, Netns, Netns) {
    let lab = Lab::new(test);
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(
        &a,
        &["192.0.2.1/24", "203.0.113.1/24"],
        &b,
        &["192.0.2.2/24", "203.0.113.2/24"],
    )
    .wait_up(Duration::from_secs(5));
    (lab, a, b)
}

fn ferry_neighbor(peer: &str, local: &str) -> Peer {
    Peer::new(peer, PEER_AS).local_address(local)
}

/// FRR's counts of the session's connections established and dropped (a reset changes both).
fn session_facts(frr: &Frr, peer: &str) -> (Value, Value) {
    let n = frr
        .neighbor_json(peer)
        .unwrap_or_else(|| frr.fail(&format!("no neighbor {peer} in FRR")));
    (
        n["connectionsEstablished"].clone(),
        n["connectionsDropped"].clone(),
    )
}

/// How long FRR's session with `peer` has been Established (ms).
fn uptime_ms(frr: &Frr, peer: &str) -> u64 {
    frr.neighbor_json(peer)
        .and_then(|n| n["bgpTimerUpMsec"].as_u64())
        .unwrap_or_else(|| frr.fail(&format!("no bgpTimerUpMsec for {peer}")))
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{what}: not within {timeout:?}");
    false
}

/// FRR's session with `frr_peer` is not Established at any sample during `d`, nor, with
/// `ferry_peer`, Ferry's.
fn stays_down(frr: &Frr, frr_peer: &str, ferry: Option<(&Ferry, &str)>, d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if frr.is_established(frr_peer) {
            frr.fail(&format!("{frr_peer} Established after {:?}", t0.elapsed()));
        }
        if let Some((ferry, peer)) = ferry {
            let st = ferry.peer_status(peer).unwrap_or_default();
            if st["state"] == "Established" {
                ferry.fail(&format!("Established after {:?}: {st}", t0.elapsed()));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn reload_adds_and_removes_a_neighbor_without_touching_frrs_other_session() {
    if !can_run_with(
        "reload_adds_and_removes_a_neighbor_without_touching_frrs_other_session",
        FRR_PROGS,
    ) {
        return;
    }
    let (lab, a, b) = lab("reloadadd");
    let frr = Frr::start(
        &lab,
        &b,
        &FrrConfig::new(PEER_AS, PEER_IP)
            .peer(Peer::new(FERRY_IP, FERRY_AS).passive())
            .peer(Peer::new(FERRY_IP2, FERRY_AS).passive()),
    );
    let one = FerryConfig::new(FERRY_AS, FERRY_IP).neighbor(ferry_neighbor(PEER_IP, FERRY_IP));
    let ferry = Ferry::start(&lab, &a, &one);
    frr.wait_established(FERRY_IP, UP);
    ferry.cli_ok(&["announce", OURS]);
    frr.wait_route(OURS, UP);
    let before = session_facts(&frr, FERRY_IP);
    let mut up = uptime_ms(&frr, FERRY_IP);
    // The session's uptime only grows: checked at every step below.
    let mut still_up = |frr: &Frr| {
        let now = uptime_ms(frr, FERRY_IP);
        assert!(
            now >= up,
            "FRR's session with {FERRY_IP} restarted: up {now} ms, was {up} ms"
        );
        up = now;
    };

    // SIGHUP with a second neighbor.
    let two = one.clone().neighbor(ferry_neighbor(PEER_IP2, FERRY_IP2));
    ferry.write_config(&two);
    ferry.sighup();
    frr.wait_established(FERRY_IP2, UP);
    let ok = wait_until("FRR holds the route from the new session", UP, || {
        frr.vtysh_json(&format!("show bgp ipv4 unicast {OURS} json"))
            .ok()
            .and_then(|v| v["paths"].as_array().map(Vec::len))
            == Some(2)
    });
    if !ok {
        frr.fail("the route did not arrive over the added session");
    }
    assert_eq!(
        session_facts(&frr, FERRY_IP),
        before,
        "first session touched"
    );
    still_up(&frr);

    // A bad value on SIGHUP: refused, logged, nothing changes.
    ferry.write_config(&two);
    let path = ferry.dir().join("ferry.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| ferry.fail(&e.to_string()));
    assert!(text.contains("connect_retry = 1"), "{text}");
    testkit::speaker::write_private(
        &path,
        &text.replace("connect_retry = 1", "connect_retry = 0"),
    )
    .unwrap_or_else(|e| ferry.fail(&e));
    ferry.sighup();
    if !wait_until("reload refused in Ferry's log", UP, || {
        ferry.log_contains("reload refused") && ferry.log_contains("0 seconds is outside 1-3600")
    }) {
        ferry.fail("no refusal logged");
    }
    // A key that needs a restart, through the API: exit 2 naming it.
    let mut moved = two.clone();
    moved.router_id = "192.0.2.99".into();
    ferry.write_config(&moved);
    let e = ferry.cli(&["reload"]).unwrap_err();
    assert!(
        e.contains("exit status: 2") && e.contains("speaker.router_id changed"),
        "{e}"
    );
    assert!(frr.is_established(FERRY_IP) && frr.is_established(FERRY_IP2));
    assert_eq!(
        session_facts(&frr, FERRY_IP),
        before,
        "first session touched"
    );
    still_up(&frr);

    // `ferry reload` without the second neighbor: FRR gets the Cease, the first stays.
    ferry.write_config(&one);
    let out = ferry.cli_ok(&["reload"]);
    assert!(out.contains(&format!("removed: {PEER_IP2}")), "{out}");
    if !wait_until("FRR logs the Cease", UP, || {
        frr.notification_received("removed from the configuration")
    }) {
        frr.fail("FRR did not log the Cease of the removed neighbor");
    }
    assert!(!frr.is_established(FERRY_IP2));
    assert_eq!(
        session_facts(&frr, FERRY_IP),
        before,
        "first session touched"
    );
    still_up(&frr);
    frr.wait_route(OURS, UP);
}

#[test]
fn neighbor_disable_sends_cease_with_the_message_to_frr() {
    if !can_run_with(
        "neighbor_disable_sends_cease_with_the_message_to_frr",
        FRR_PROGS,
    ) {
        return;
    }
    let (lab, a, b) = lab("disable");
    // FRR active (timers connect 1) and Ferry listening: while disabled, Ferry must refuse.
    let frr = Frr::start(
        &lab,
        &b,
        &FrrConfig::new(PEER_AS, PEER_IP)
            .peer(Peer::new(FERRY_IP, FERRY_AS))
            .extra_router(&format!("neighbor {FERRY_IP} timers connect 1")),
    );
    let config = FerryConfig::new(FERRY_AS, FERRY_IP)
        .listen(&format!("{FERRY_IP}:179"))
        .neighbor(ferry_neighbor(PEER_IP, FERRY_IP));
    let mut ferry = Ferry::start(&lab, &a, &config);
    frr.wait_established(FERRY_IP, UP);
    ferry.cli_ok(&["announce", OURS]);
    frr.wait_route(OURS, UP);

    let message = "planned maintenance, ticket 4711";
    let out = ferry.cli_ok(&["neighbor", "disable", PEER_IP, "--message", message]);
    assert!(out.contains("disabled"), "{out}");
    if !wait_until("FRR logs the shutdown communication", UP, || {
        frr.notification_received(message)
    }) {
        frr.fail("FRR did not log the shutdown communication");
    }
    let n = frr.neighbor_json(FERRY_IP).unwrap_or_default();
    eprintln!(
        "FRR after the Cease: state {} lastNotificationReason {} lastShutdownDescription {}",
        n["bgpState"], n["lastNotificationReason"], n["lastShutdownDescription"]
    );
    assert_eq!(
        n["lastShutdownDescription"], message,
        "FRR's neighbor JSON: {n}"
    );
    assert_eq!(
        n["lastNotificationReason"], "Cease/Administrative Shutdown",
        "FRR's neighbor JSON: {n}"
    );
    stays_down(
        &frr,
        FERRY_IP,
        Some((&ferry, PEER_IP)),
        Duration::from_secs(5),
    );
    let st = ferry.peer_status(PEER_IP).unwrap_or_default();
    assert_eq!(st["admin_down"]["message"], message, "{st}");

    ferry.restart();
    stays_down(
        &frr,
        FERRY_IP,
        Some((&ferry, PEER_IP)),
        Duration::from_secs(5),
    );

    ferry.cli_ok(&["neighbor", "enable", PEER_IP]);
    frr.wait_established(FERRY_IP, UP);
    frr.wait_route(OURS, UP);
    let st = ferry.peer_status(PEER_IP).unwrap_or_default();
    assert!(st.get("admin_down").is_none(), "{st}");
}

/// A neighbor with `md5_password` added by a reload, passive (FRR connects to Ferry's
/// listener): the session comes up only if the reload installed its key on the listening
/// socket (Linux drops a signed SYN the listener has no key for). A reload that changes the key
/// resets that session and replaces the listener's key: FRR with the old key stays out for
/// 5 s, and comes up once it has the new one. The first session is untouched throughout.
#[test]
fn reload_installs_and_replaces_md5_keys_on_the_listener() {
    if !can_run_with(
        "reload_installs_and_replaces_md5_keys_on_the_listener",
        FRR_PROGS,
    ) {
        return;
    }
    let (lab, a, b) = lab("reloadmd5");
    let frr = Frr::start(
        &lab,
        &b,
        &FrrConfig::new(PEER_AS, PEER_IP)
            .peer(Peer::new(FERRY_IP, FERRY_AS).passive())
            .peer(Peer::new(FERRY_IP2, FERRY_AS))
            .extra_router(&format!("neighbor {FERRY_IP2} timers connect 1"))
            .extra_router(&format!("neighbor {FERRY_IP2} password first-key-1")),
    );
    let one = FerryConfig::new(FERRY_AS, FERRY_IP)
        .listen("0.0.0.0:179")
        .neighbor(ferry_neighbor(PEER_IP, FERRY_IP));
    let ferry = Ferry::start(&lab, &a, &one);
    frr.wait_established(FERRY_IP, UP);
    let before = session_facts(&frr, FERRY_IP);

    let with_key = |key: &str| {
        one.clone()
            .neighbor(ferry_neighbor(PEER_IP2, FERRY_IP2).passive())
            .neighbor_line(PEER_IP2, &format!("md5_password = \"{key}\""))
    };
    ferry.write_config(&with_key("first-key-1"));
    ferry.sighup();
    frr.wait_established(FERRY_IP2, UP);

    ferry.write_config(&with_key("second-key-2"));
    let out = ferry.cli_ok(&["reload"]);
    assert!(
        out.contains(&format!("reset: {PEER_IP2} (md5_password changed)")),
        "{out}"
    );
    assert!(
        !out.contains("second-key-2"),
        "the key in the output: {out}"
    );
    // With the old key.
    stays_down(&frr, FERRY_IP2, None, Duration::from_secs(5));
    frr.configure(&[
        &format!("router bgp {PEER_AS}"),
        &format!("neighbor {FERRY_IP2} password second-key-2"),
        "exit",
    ])
    .unwrap_or_else(|e| frr.fail(&e));
    frr.wait_established(FERRY_IP2, UP);
    assert_eq!(
        session_facts(&frr, FERRY_IP),
        before,
        "first session touched"
    );
}
