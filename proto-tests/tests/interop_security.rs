//! Session security against real FRR 8.4: TCP MD5 signatures (RFC 2385, FRR's `neighbor X
//! password`) and GTSM (RFC 5082, FRR's `neighbor X ttl-security hops N`), Ferry in namespace
//! `a` (192.0.2.1, AS 65100), FRR's bgpd in `b` (AS 65002), joined by a veth, or through a
//! router namespace `r` with IPv4 forwarding for the two-hop cases (routes only inside the
//! namespaces).
//!
//! What each test proves, and how the failure is injected:
//! * `md5_same_password_ferry_active` / `_ferry_passive`: with the same key on both sides the
//!   session comes up with Ferry connecting, and with FRR connecting to Ferry's listener (the
//!   key must be on the listening socket, since Linux checks the SYN); FRR holds the route
//!   Ferry announces. `ferry status`, its JSON and `/metrics` show md5 on, and none of them nor
//!   Ferry's log contains the key.
//! * `md5_wrong_password_never_established`: different keys; both sides connect and listen.
//!   Neither side reaches Established within [`NEVER`], and the kernel of a namespace counts
//!   MD5 failures (TcpExt TCPMD5Failure), so segments were signed and checked, not lost; Ferry's
//!   `/metrics` shows its namespace's count (`ferry_tcp_md5_drops_total{reason="failure"}`).
//!   Then FRR gets the right key and the session comes up: only the key kept it down.
//! * `md5_only_ferry_has_a_password_never_established`: FRR has no key. Never Established
//!   within [`NEVER`]; FRR's kernel counts signed segments it did not expect
//!   (TCPMD5Unexpected: Ferry's SYNs were signed) and Ferry's kernel counts unsigned ones it
//!   refused (TCPMD5NotFound: the listener has FRR's key). Then FRR gets the key: it comes up.
//! * `gtsm_one_hop_direct_ferry_active` / `_ferry_passive`: FRR `ttl-security hops 1`
//!   accepts only TTL 255, so the session coming up proves Ferry sends with TTL 255 (outbound
//!   socket and accepted connection); Ferry's `ttl_security = 1` accepts FRR's 255.
//! * `gtsm_peer_without_ttl_security_is_refused_on_outbound_connections`: FRR passive without
//!   ttl-security sends with TTL 1 (its eBGP default); Ferry (`ttl_security = 1`, connecting)
//!   never reaches Established within [`NEVER`], since its socket drops FRR's OPEN; once FRR
//!   has `ttl-security hops 1` (sends 255) a restarted Ferry comes up.
//! * `gtsm_two_hops_refused_with_one_allowed_with_two`: FRR two hops away (its packets arrive
//!   with TTL 254) with `ttl-security hops 2`. Ferry with `ttl_security = 1` never reaches
//!   Established in either direction within [`NEVER`] and logs the refused inbound connection
//!   (a second neighbor without GTSM keeps the listener itself free of a minimum TTL, so the
//!   per-connection SYN check is what refuses; the log names TTL 254, which also shows that
//!   FRR's packets did cross the router); restarted with `ttl_security = 2` it comes up and
//!   FRR holds Ferry's route, so the path works and only the hop limit kept it down.
//!
//! Negative waits: [`NEVER`] = 8 s = 8 connect retries of Ferry (`connect_retry = 1`) and of
//! FRR (`timers connect 1`); both sides connect, so both directions are tried many times.
//! Needs root and FRR (skips otherwise, fails with FIT_REQUIRE=1).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use proto_tests::ferry::{Ferry, FerryConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Peer};
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;
use testkit::root::can_run_with;

const FERRY_AS: u32 = 65100;
const PEER_AS: u32 = 65002;
const FERRY_IP: &str = "192.0.2.1";
/// FRR's address on the direct link.
const PEER_IP: &str = "192.0.2.2";
/// FRR's address behind the router (two hops).
const FAR_PEER_IP: &str = "203.0.113.2";
/// What Ferry announces.
const OURS: &str = "198.51.100.0/24";
const PASSWORD: &str = "ferry-md5-s3cret";
const WRONG_PASSWORD: &str = "some-other-key";
/// How long a session that should come up may take.
const UP: Duration = Duration::from_secs(20);
/// How long a session that must not come up is watched (see the module docs).
const NEVER: Duration = Duration::from_secs(8);

const FRR_PROGS: &[&str] = &["/usr/lib/frr/bgpd", "vtysh"];

/// Ferry's neighbor entry for FRR at `peer`, with extra config lines.
fn ferry_config(peer: &str, passive: bool, lines: &[String]) -> FerryConfig {
    let mut n = Peer::new(peer, PEER_AS).local_address(FERRY_IP);
    if passive {
        n = n.passive();
    }
    let mut c = FerryConfig::new(FERRY_AS, FERRY_IP)
        .listen(&format!("{FERRY_IP}:179"))
        .neighbor(n);
    for l in lines {
        c = c.neighbor_line(peer, l);
    }
    c
}

/// FRR's config with Ferry as its neighbor, plus `neighbor 192.0.2.1 ...` lines.
fn frr_config(router_id: &str, passive: bool, neighbor_lines: &[&str]) -> FrrConfig {
    let mut p = Peer::new(FERRY_IP, FERRY_AS);
    if passive {
        p = p.passive();
    }
    let mut c = FrrConfig::new(PEER_AS, router_id).peer(p);
    for l in neighbor_lines {
        c = c.extra_router(&format!("neighbor {FERRY_IP} {l}"));
    }
    c
}

fn md5_line(pw: &str) -> String {
    format!("md5_password = \"{pw}\"")
}

/// Ferry and FRR on one link (`a` and `b`).
fn direct(test: &str) -> (Lab, Netns, Netns) {
    let lab = Lab::new(test);
    let (a, b, _) = lab.pair();
    (lab, a, b)
}

/// Ferry in `a`, FRR in `b`, router `r` between them forwarding IPv4: FRR's packets reach
/// Ferry with TTL 254 and the other way round.
fn two_hops(test: &str) -> (Lab, Netns, Netns) {
    let lab = Lab::new(test);
    let a = lab.netns("a");
    let r = lab.netns("r");
    let b = lab.netns("b");
    lab.veth(&a, &["192.0.2.1/24"], &r, &["192.0.2.254/24"])
        .wait_up(Duration::from_secs(5));
    lab.veth(&r, &["203.0.113.254/24"], &b, &["203.0.113.2/24"])
        .wait_up(Duration::from_secs(5));
    r.exec_ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    a.ip(&["route", "add", "203.0.113.0/24", "via", "192.0.2.254"]);
    b.ip(&["route", "add", "192.0.2.0/24", "via", "203.0.113.254"]);
    (lab, a, b)
}

/// Established in both views, then FRR holds Ferry's route with Ferry's AS.
fn comes_up_with_route(ferry: &Ferry, frr: &Frr, peer: &str) {
    frr.wait_established(FERRY_IP, UP);
    ferry.wait_established(peer, UP);
    ferry.cli_ok(&["announce", OURS]);
    let r = frr.wait_route(OURS, UP);
    assert_eq!(r.as_path, vec![FERRY_AS], "{r:?}");
}

/// Neither side may report Established at any time during [`NEVER`].
fn never_established(ferry: &Ferry, frr: &Frr, peer: &str) {
    let t0 = Instant::now();
    let mut checks = 0;
    while t0.elapsed() < NEVER {
        if frr.is_established(FERRY_IP) {
            frr.fail(&format!(
                "FRR reached Established with Ferry after {:?}",
                t0.elapsed()
            ));
        }
        if ferry.is_established(peer) {
            ferry.fail(&format!(
                "Ferry reached Established with {peer} after {:?}",
                t0.elapsed()
            ));
        }
        checks += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("not Established during {NEVER:?} ({checks} checks of both sides)");
}

/// The TcpExt MD5 counters of a namespace's kernel: (TCPMD5NotFound, TCPMD5Unexpected,
/// TCPMD5Failure).
fn md5_counters(ns: &Netns) -> (u64, u64, u64) {
    let text = ns.exec_ok("cat", &["/proc/net/netstat"]);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    assert_eq!(lines.len(), 2, "TcpExt header and values:\n{text}");
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let get = |name: &str| -> u64 {
        names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in TcpExt:\n{text}"))
    };
    (
        get("TCPMD5NotFound"),
        get("TCPMD5Unexpected"),
        get("TCPMD5Failure"),
    )
}

/// `GET /metrics` over Ferry's API socket.
fn metrics(ferry: &Ferry) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(ferry.api()).expect("API socket");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("metrics response");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// Status (JSON and text), metrics and log show MD5 on and never the key.
fn md5_is_visible_but_not_the_key(ferry: &Ferry, peer: &str) {
    let st = ferry.peer_status(peer).expect("peer in status");
    assert_eq!(st["md5"], true, "{st}");
    assert!(st.get("ttl_security").is_none(), "{st}");
    assert_eq!(st["send_hold_time_secs"], 480, "{st}");
    let text = ferry.cli_ok(&["status", "--exit-zero"]);
    assert!(text.contains("MD5"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(peer))
        .expect("peer row");
    assert!(row.split_whitespace().any(|c| c == "on"), "{text}");
    let m = metrics(ferry);
    assert!(
        m.contains(&format!("ferry_peer_md5{{peer=\"{peer}\"}} 1")),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "ferry_peer_ttl_security_hops{{peer=\"{peer}\"}} 0"
        )),
        "{m}"
    );
    let json = ferry.cli_ok(&["status", "--json", "--exit-zero"]);
    let log = std::fs::read_to_string(ferry.log_path()).unwrap_or_default();
    for (what, s) in [
        ("status --json", &json),
        ("status", &text),
        ("/metrics", &m),
        ("log", &log),
    ] {
        assert!(!s.contains(PASSWORD), "the MD5 key shows in {what}");
    }
}

fn frr_set_password(frr: &Frr, pw: &str) {
    let router = format!("router bgp {PEER_AS}");
    let cmd = format!("neighbor {FERRY_IP} password {pw}");
    frr.configure(&[&router, &cmd, "exit"])
        .unwrap_or_else(|e| frr.fail(&e));
}

fn done(test: &str, t0: Instant) {
    eprintln!("{test}: passed in {:.1?}", t0.elapsed());
}

// ---------------------------------------------------------------------------------------------
// TCP MD5 (RFC 2385)
// ---------------------------------------------------------------------------------------------

#[test]
fn md5_same_password_ferry_active() {
    if !can_run_with("md5_same_password_ferry_active", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = direct("md5active");
    let pw = format!("password {PASSWORD}");
    let frr = Frr::start(&lab, &b, &frr_config(PEER_IP, true, &[&pw]));
    let ferry = Ferry::start(
        &lab,
        &a,
        &ferry_config(PEER_IP, false, &[md5_line(PASSWORD)]),
    );
    comes_up_with_route(&ferry, &frr, PEER_IP);
    md5_is_visible_but_not_the_key(&ferry, PEER_IP);
    done("md5_same_password_ferry_active", t0);
}

#[test]
fn md5_same_password_ferry_passive() {
    if !can_run_with("md5_same_password_ferry_passive", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = direct("md5passive");
    let ferry = Ferry::start(
        &lab,
        &a,
        &ferry_config(PEER_IP, true, &[md5_line(PASSWORD)]),
    );
    let pw = format!("password {PASSWORD}");
    let frr = Frr::start(&lab, &b, &frr_config(PEER_IP, false, &[&pw]));
    comes_up_with_route(&ferry, &frr, PEER_IP);
    done("md5_same_password_ferry_passive", t0);
}

#[test]
fn md5_wrong_password_never_established() {
    if !can_run_with("md5_wrong_password_never_established", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = direct("md5wrong");
    let pw = format!("password {WRONG_PASSWORD}");
    let frr = Frr::start(&lab, &b, &frr_config(PEER_IP, false, &[&pw]));
    let ferry = Ferry::start(
        &lab,
        &a,
        &ferry_config(PEER_IP, false, &[md5_line(PASSWORD)]),
    );
    never_established(&ferry, &frr, PEER_IP);
    let (fa, fb) = (md5_counters(&a), md5_counters(&b));
    assert!(
        fa.2 + fb.2 > 0,
        "no TCPMD5Failure counted (Ferry's namespace {fa:?}, FRR's {fb:?}): were segments signed?"
    );
    // FRR connects too: its SYNs, signed with the other key, fail at Ferry's listener, and
    // /metrics shows it (the only trace a mismatch leaves).
    let m = metrics(&ferry);
    let failures: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("ferry_tcp_md5_drops_total{reason=\"failure\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no MD5 failure counter in /metrics:\n{m}"));
    assert!(failures > 0, "{m}");
    frr_set_password(&frr, PASSWORD);
    comes_up_with_route(&ferry, &frr, PEER_IP);
    done("md5_wrong_password_never_established", t0);
}

#[test]
fn md5_only_ferry_has_a_password_never_established() {
    if !can_run_with("md5_only_ferry_has_a_password", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = direct("md5ferry");
    let frr = Frr::start(&lab, &b, &frr_config(PEER_IP, false, &[]));
    let ferry = Ferry::start(
        &lab,
        &a,
        &ferry_config(PEER_IP, false, &[md5_line(PASSWORD)]),
    );
    never_established(&ferry, &frr, PEER_IP);
    let (fa, fb) = (md5_counters(&a), md5_counters(&b));
    assert!(
        fb.1 > 0,
        "FRR's kernel saw no unexpected MD5 option ({fb:?}): Ferry's SYNs were not signed"
    );
    assert!(
        fa.0 > 0,
        "Ferry's kernel refused no unsigned segment ({fa:?}): no key on Ferry's listener?"
    );
    frr_set_password(&frr, PASSWORD);
    comes_up_with_route(&ferry, &frr, PEER_IP);
    done("md5_only_ferry_has_a_password_never_established", t0);
}

// ---------------------------------------------------------------------------------------------
// GTSM (RFC 5082)
// ---------------------------------------------------------------------------------------------

fn gtsm_status(ferry: &Ferry, peer: &str, hops: u8) {
    let st = ferry.peer_status(peer).expect("peer in status");
    assert_eq!(st["ttl_security"], hops, "{st}");
    assert_eq!(st["md5"], false, "{st}");
    let m = metrics(ferry);
    assert!(
        m.contains(&format!(
            "ferry_peer_ttl_security_hops{{peer=\"{peer}\"}} {hops}"
        )),
        "{m}"
    );
}

#[test]
fn gtsm_one_hop_direct_ferry_active() {
    if !can_run_with("gtsm_one_hop_direct_ferry_active", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = direct("gtsm1a");
    let frr = Frr::start(
        &lab,
        &b,
        &frr_config(PEER_IP, true, &["ttl-security hops 1"]),
    );
    let ferry = Ferry::start(
        &lab,
        &a,
        &ferry_config(PEER_IP, false, &["ttl_security = 1".into()]),
    );
    comes_up_with_route(&ferry, &frr, PEER_IP);
    gtsm_status(&ferry, PEER_IP, 1);
    done("gtsm_one_hop_direct_ferry_active", t0);
}

#[test]
fn gtsm_one_hop_direct_ferry_passive() {
    if !can_run_with("gtsm_one_hop_direct_ferry_passive", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = direct("gtsm1p");
    let ferry = Ferry::start(
        &lab,
        &a,
        &ferry_config(PEER_IP, true, &["ttl_security = 1".into()]),
    );
    let frr = Frr::start(
        &lab,
        &b,
        &frr_config(PEER_IP, false, &["ttl-security hops 1"]),
    );
    comes_up_with_route(&ferry, &frr, PEER_IP);
    done("gtsm_one_hop_direct_ferry_passive", t0);
}

#[test]
fn gtsm_peer_without_ttl_security_is_refused_on_outbound_connections() {
    if !can_run_with("gtsm_peer_without_ttl_security", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = direct("gtsm64");
    // FRR passive without ttl-security: it accepts anything, and sends on the session with
    // TTL 1 (its eBGP default), so only the minimum TTL on Ferry's own connecting socket can
    // keep the session down. (FRR's listener answers the SYN with TTL 255, so the TCP
    // connection itself comes up; FRR's OPEN is what gets dropped.)
    let frr = Frr::start(&lab, &b, &frr_config(PEER_IP, true, &[]));
    let config = ferry_config(PEER_IP, false, &["ttl_security = 1".into()]);
    let ferry = Ferry::start(&lab, &a, &config);
    never_established(&ferry, &frr, PEER_IP);
    // FRR sending with 255 (ttl-security) is all it takes. Ferry is restarted: its connection
    // sits in OpenSent, and FRR's FIN or RST for it (TTL 1) is dropped like everything else,
    // so only the OpenSent hold timer (240 s) would end it.
    let router = format!("router bgp {PEER_AS}");
    let cmd = format!("neighbor {FERRY_IP} ttl-security hops 1");
    frr.configure(&[&router, &cmd, "exit"])
        .unwrap_or_else(|e| frr.fail(&e));
    assert_eq!(ferry.terminate(), "exit status: 0");
    let ferry = Ferry::start(&lab, &a, &config);
    comes_up_with_route(&ferry, &frr, PEER_IP);
    done(
        "gtsm_peer_without_ttl_security_is_refused_on_outbound_connections",
        t0,
    );
}

#[test]
fn gtsm_two_hops_refused_with_one_allowed_with_two() {
    if !can_run_with("gtsm_two_hops", FRR_PROGS) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = two_hops("gtsm2");
    let frr = Frr::start(
        &lab,
        &b,
        &frr_config(FAR_PEER_IP, false, &["ttl-security hops 2"]),
    );
    // A second neighbor without GTSM: the listener then carries no minimum TTL, so FRR's
    // connections are accepted by the kernel and refused by Ferry's own SYN check.
    let config = |hops: u8| {
        ferry_config(FAR_PEER_IP, false, &[format!("ttl_security = {hops}")])
            .neighbor(Peer::new("192.0.2.99", 65003).passive())
    };
    let ferry = Ferry::start(&lab, &a, &config(1));
    never_established(&ferry, &frr, FAR_PEER_IP);
    let refused = poll(Duration::from_secs(5), || {
        ferry
            .log_contains("GTSM: inbound connection refused")
            .then_some(())
    });
    if refused.is_none() {
        ferry.fail("no refused inbound connection logged: did FRR's SYN reach Ferry?");
    }
    assert!(
        ferry.log_contains("SYN arrived with TTL 254, below the minimum 255"),
        "the refusal names the TTL"
    );
    let status = ferry.terminate();
    assert_eq!(status, "exit status: 0");

    let ferry = Ferry::start(&lab, &a, &config(2));
    comes_up_with_route(&ferry, &frr, FAR_PEER_IP);
    gtsm_status(&ferry, FAR_PEER_IP, 2);
    done("gtsm_two_hops_refused_with_one_allowed_with_two", t0);
}
