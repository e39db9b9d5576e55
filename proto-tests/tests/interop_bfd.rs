//! BFD (RFC 5880 asynchronous mode, RFC 5881 single hop) between Ferry and FRR 8.4's bfdd,
//! with BGP sessions that depend on it: Ferry in namespace `a` (192.0.2.1, 2001:db8::1,
//! AS 65100), FRR (zebra, bfdd, bgpd with `neighbor X bfd`) in `b` (192.0.2.2, 2001:db8::2,
//! AS 65002), one veth between them. Both sides run 100 ms x 3 (FRR's `peer X` block:
//! `receive-interval 100`, `transmit-interval 100`, `detect-multiplier 3`).
//!
//! What each test proves, and how the failure is injected:
//! * `bfd_up_with_frr_ipv4_and_ipv6`: the sessions come Up over IPv4 and IPv6; FRR's `show
//!   bfd peers json` says up with our discriminator and 100 ms remote intervals, Ferry's status
//!   says Up with FRR's discriminator, 100 ms and a 300 ms detection time; `/metrics` has
//!   `ferry_peer_bfd_up 1`. FRR's `shutdown` of its BFD peer (AdminDown) takes Ferry's BFD
//!   Down but BGP stays Established on both sides for 3 s (RFC 5882 §3.2), and `no shutdown`
//!   brings BFD back Up. On SIGTERM FRR sees our AdminDown (remote diagnostic
//!   "administratively down").
//! * `speaker_link_dropped_frr_detects_within_three_intervals`: the speaker's address is
//!   removed inside its namespace (the link stays up, no carrier change, nothing is sent to
//!   FRR: its packets are silently dropped, as when a host's link dies beyond the switch).
//!   FRR's BFD session and then its BGP session go down, with bgpd sending Cease/BFD Down.
//!   Five repetitions: FRR's state polled at ~10 ms, and bgpd's log time of the Cease; the
//!   median of the latter must be under 350 ms (3 x 100 ms plus margin), the polled one
//!   (which adds vtysh's latency) under 700 ms. The same drop without BFD is measured once:
//!   FRR notices only at its hold time (9 s).
//! * `frr_silenced_ferry_detects_and_drops_bgp`: FRR's address is removed in its namespace;
//!   Ferry's BFD goes Down (control detection time expired) and Ferry's BGP session leaves
//!   Established: median on Ferry's log clock under 350 ms, polled status under 700 ms. Then
//!   once over IPv6 (FRR's IPv6 address removed): down within 2 s.
//! * `peer_without_bfd_keeps_bgp_up`: FRR runs no bfdd; Ferry's BFD session never comes Up,
//!   and the BGP session stays Established for 6 s (many of Ferry's detection times and
//!   more than the slow 1 s rate x 3): a BFD session that never came Up never drops BGP.
//!
//! Timings are printed (`--nocapture`) and reported in docs/resilience.md. Needs root and FRR
//! (skips otherwise, fails with FIT_REQUIRE=1).

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto_tests::ferry::{Ferry, FerryConfig};
use serde_json::Value;
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Peer};
use testkit::netns::{Lab, Netns, Veth};
use testkit::poll::poll;
use testkit::root::can_run_with;

const FERRY_AS: u32 = 65100;
const PEER_AS: u32 = 65002;
const FERRY_IP: &str = "192.0.2.1";
const FERRY_IP6: &str = "2001:db8::1";
const PEER_IP: &str = "192.0.2.2";
const PEER_IP6: &str = "2001:db8::2";
const BFD_LINE: &str = "bfd = { min_tx_ms = 100, min_rx_ms = 100, multiplier = 3 }";
/// The target: FRR down within 3 x 100 ms plus margin.
const TARGET: Duration = Duration::from_millis(350);
/// How long sessions may take to come up (BFD starts at the 1 s slow rate).
const UP: Duration = Duration::from_secs(30);
/// Repetitions of each drop measurement.
const REPS: usize = 5;

const FRR_PROGS: &[&str] = &[
    "/usr/lib/frr/bgpd",
    "/usr/lib/frr/zebra",
    "/usr/lib/frr/bfdd",
    "vtysh",
];

/// bfdd's `peer` block for `peer` seen from `local`, 100 ms x 3.
fn bfdd_peer(peer: &str, local: &str) -> Vec<String> {
    vec![
        format!(" peer {peer} local-address {local}"),
        "  receive-interval 100".into(),
        "  transmit-interval 100".into(),
        "  detect-multiplier 3".into(),
        " exit".into(),
    ]
}

struct Setup<'l> {
    veth: Veth,
    ferry: Ferry<'l>,
    frr: Frr<'l>,
}

/// Ferry and FRR with BGP over IPv4 (and IPv6 when `v6`), BFD on each session when `bfd`
/// (Ferry's `bfd` key, FRR's bfdd peers and `neighbor X bfd`); FRR without bfdd when
/// `frr_bfd` is false.
fn setup(lab: &Lab, v6: bool, bfd: bool, frr_bfd: bool) -> Setup<'_> {
    let (a, b, veth) = lab.pair();
    let mut fc = FerryConfig::new(FERRY_AS, FERRY_IP).neighbor(
        Peer::new(PEER_IP, PEER_AS)
            .local_address(FERRY_IP)
            .hold_time(9),
    );
    let mut rc = FrrConfig::new(PEER_AS, PEER_IP)
        .with_zebra()
        .peer(Peer::new(FERRY_IP, FERRY_AS).hold_time(9));
    let mut bfdd = vec!["bfd".to_string()];
    bfdd.extend(bfdd_peer(FERRY_IP, PEER_IP));
    if v6 {
        fc = fc.neighbor(
            Peer::new(PEER_IP6, PEER_AS)
                .local_address(FERRY_IP6)
                .hold_time(9),
        );
        rc = rc.peer(Peer::new(FERRY_IP6, FERRY_AS).hold_time(9));
        bfdd.extend(bfdd_peer(FERRY_IP6, PEER_IP6));
    }
    bfdd.push("exit".into());
    if bfd {
        fc = fc.neighbor_line(PEER_IP, BFD_LINE);
        if v6 {
            fc = fc.neighbor_line(PEER_IP6, BFD_LINE);
        }
    }
    if frr_bfd {
        rc = rc.extra_router(&format!("neighbor {FERRY_IP} bfd"));
        if v6 {
            rc = rc.extra_router(&format!("neighbor {FERRY_IP6} bfd"));
        }
        let lines: Vec<&str> = bfdd.iter().map(String::as_str).collect();
        rc = rc.with_bfdd(&lines);
    }
    let frr = Frr::start(lab, &b, &rc);
    let ferry = Ferry::start(lab, &a, &fc);
    Setup { veth, ferry, frr }
}

/// FRR's `show bfd peers json` entry for `peer`.
fn frr_bfd_peer(frr: &Frr, peer: &str) -> Option<Value> {
    let v = frr.vtysh_json("show bfd peers json").ok()?;
    v.as_array()?
        .iter()
        .find(|p| p.get("peer").and_then(Value::as_str) == Some(peer))
        .cloned()
}

fn frr_bfd_up(frr: &Frr, peer: &str) -> bool {
    frr_bfd_peer(frr, peer).is_some_and(|p| p.get("status").and_then(Value::as_str) == Some("up"))
}

fn ferry_bfd(ferry: &Ferry, peer: &str) -> Option<Value> {
    ferry.peer_status(peer).and_then(|p| p.get("bfd").cloned())
}

fn ferry_bfd_up(ferry: &Ferry, peer: &str) -> bool {
    ferry_bfd(ferry, peer).is_some_and(|b| b["state"] == "Up")
}

/// Both BGP sessions Established and both BFD sessions Up (when `bfd`), or fail with both
/// sides' state.
fn wait_all_up(s: &Setup, peers: &[(&str, &str)], bfd: bool) {
    let ok = poll(UP, || {
        peers
            .iter()
            .all(|(ferry_peer, frr_peer)| {
                s.frr.is_established(frr_peer)
                    && s.ferry.is_established(ferry_peer)
                    && (!bfd
                        || (frr_bfd_up(&s.frr, frr_peer) && ferry_bfd_up(&s.ferry, ferry_peer)))
            })
            .then_some(())
    });
    if ok.is_none() {
        let bfd_peers = s.frr.vtysh("show bfd peers").unwrap_or_else(|e| e);
        s.frr.fail(&format!(
            "sessions not up within {UP:?}\nFRR bfd peers:\n{bfd_peers}\nFerry:\n{}",
            s.ferry.state_dump()
        ));
    }
}

/// `GET /metrics` over Ferry's API socket.
fn metrics(ferry: &Ferry) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(ferry.api()).expect("API socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .expect("metrics request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Milliseconds since the Unix epoch of a log line's leading UTC timestamp, as FRR writes it
/// with `log timestamp precision 3` (`2026/11/28 02:12:20.275`) or Ferry's tracing does
/// (`2026-11-28T02:12:14.058561Z`).
fn log_ms(line: &str) -> Option<u64> {
    let head = line.get(..23)?;
    let n: Vec<u64> = head
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [y, mo, d, h, mi, s, ms] = n[..] else {
        return None;
    };
    // Days from the civil date (proleptic Gregorian), 1970-01-01 = 0.
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// For each drop (wall-clock ms), how long until the first line of `log` containing every
/// one of `needles` with a timestamp at or after it (within 10 s): the daemon's own clock,
/// free of the polling's delay. Empty when the log's clock is not UTC.
fn log_delays(log: &std::path::Path, needles: &[&str], drops: &[u64]) -> Vec<Duration> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let times: Vec<u64> = text
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(log_ms)
        .collect();
    drops
        .iter()
        .filter_map(|&d| {
            let t = times.iter().find(|&&t| t >= d && t - d < 10_000)?;
            Some(Duration::from_millis(t - d))
        })
        .collect()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn bfd_up_with_frr_ipv4_and_ipv6() {
    if !can_run_with("bfd_up_with_frr_ipv4_and_ipv6", FRR_PROGS) {
        return;
    }
    let lab = Lab::new("bfdup");
    let s = setup(&lab, true, true, true);
    wait_all_up(&s, &[(PEER_IP, FERRY_IP), (PEER_IP6, FERRY_IP6)], true);
    for (ferry_peer, frr_peer) in [(PEER_IP, FERRY_IP), (PEER_IP6, FERRY_IP6)] {
        let theirs = frr_bfd_peer(&s.frr, frr_peer).expect("FRR has the BFD peer");
        let ours = ferry_bfd(&s.ferry, ferry_peer).expect("Ferry status has bfd");
        let check = |ok: bool, what: &str| {
            assert!(ok, "{what}\nFRR: {theirs:#}\nFerry: {ours:#}");
        };
        check(theirs["status"] == "up", "FRR up");
        check(
            theirs["remote-id"] == ours["local_discriminator"],
            "FRR knows our discriminator",
        );
        check(
            theirs["id"] == ours["remote_discriminator"],
            "we know FRR's discriminator",
        );
        check(
            theirs["remote-receive-interval"] == 100 && theirs["remote-transmit-interval"] == 100,
            "FRR sees our 100 ms intervals",
        );
        check(
            theirs["remote-detect-multiplier"] == 3,
            "FRR sees our multiplier",
        );
        check(ours["state"] == "Up", "Ferry Up");
        check(ours["remote_state"] == "Up", "Ferry sees FRR Up");
        check(ours["tx_interval_ms"] == 100, "Ferry sends every 100 ms");
        check(
            ours["detection_time_ms"] == 300,
            "Ferry's detection time is 3 x 100 ms",
        );
        check(ours["transitions"].as_u64() >= Some(2), "Down -> Init/Up");
    }
    let m = metrics(&s.ferry);
    for peer in [PEER_IP, PEER_IP6] {
        let line = format!("ferry_peer_bfd_up{{peer=\"{peer}\"}} 1");
        assert!(m.contains(&line), "{line} missing from /metrics:\n{m}");
    }
    assert!(
        m.contains("ferry_peer_bfd_transitions_total{peer=\"192.0.2.1\"}")
            || m.contains("ferry_peer_bfd_transitions_total{peer=\"192.0.2.2\"}"),
        "{m}"
    );
    // FRR takes its BFD peer AdminDown: Ferry's session goes Down, but BGP stays up on both
    // sides (RFC 5882 §3.2: not a path failure); undone, BFD comes Up again.
    let admin = |shut: &str| {
        s.frr
            .configure(&[
                "bfd",
                &format!("peer {FERRY_IP} local-address {PEER_IP}"),
                shut,
                "exit",
                "exit",
            ])
            .expect("bfdd peer shutdown");
    };
    admin("shutdown");
    let seen = poll(Duration::from_secs(5), || {
        let b = ferry_bfd(&s.ferry, PEER_IP)?;
        (b["state"] == "Down" && b["remote_state"] == "AdminDown").then_some(())
    });
    assert!(
        seen.is_some(),
        "Ferry did not see FRR's AdminDown: {:#}",
        ferry_bfd(&s.ferry, PEER_IP).unwrap_or_default()
    );
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(
            s.ferry.is_established(PEER_IP) && s.frr.is_established(FERRY_IP),
            "BGP went down with the peer's BFD AdminDown:\n{}",
            s.ferry.state_dump()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    admin("no shutdown");
    wait_all_up(&s, &[(PEER_IP, FERRY_IP)], true);

    // SIGTERM: Ferry takes its BFD sessions AdminDown before the Cease (RFC 5882 §3.2);
    // FRR records the peer's diagnostic.
    let text = s.ferry.cli_ok(&["status"]);
    assert!(
        text.contains("BFD") && text.contains("Up 100ms/300ms"),
        "{text}"
    );
    s.ferry.terminate();
    let seen = poll(Duration::from_secs(5), || {
        let p = frr_bfd_peer(&s.frr, FERRY_IP)?;
        (p["remote-diagnostic"] == "administratively down").then_some(p)
    });
    assert!(
        seen.is_some(),
        "FRR did not see Ferry's AdminDown: {:#}",
        frr_bfd_peer(&s.frr, FERRY_IP).unwrap_or_default()
    );
}

/// Removes `addr` (with prefix length) in `ns` and polls `down` every ~10 ms until true;
/// returns the time from just before the removal to the first poll that saw it, then puts
/// the address back.
fn drop_and_measure(
    ns: &Netns,
    ifname: &str,
    addr: &str,
    limit: Duration,
    drops: &mut Vec<u64>,
    mut down: impl FnMut() -> bool,
) -> Option<Duration> {
    drops.push(now_ms());
    let t0 = Instant::now();
    ns.ip(&["addr", "del", addr, "dev", ifname]);
    let mut seen = None;
    while t0.elapsed() < limit {
        if down() {
            seen = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ns.ip(&["addr", "add", addr, "dev", ifname]);
    seen
}

/// FRR's BFD state and BGP state of `peer` in one vtysh call.
fn frr_states(frr: &Frr, peer: &str) -> (Option<String>, Option<String>) {
    let show_bgp = format!("show bgp neighbors {peer} json");
    let out = frr
        .vtysh_cmds(&["show bfd peers json", &show_bgp])
        .unwrap_or_default();
    let mut bfd = None;
    let mut bgp = None;
    for v in serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .flatten()
    {
        if let Some(a) = v.as_array() {
            bfd = a
                .iter()
                .find(|p| p["peer"] == peer)
                .and_then(|p| p["status"].as_str().map(str::to_string));
        } else if let Some(n) = v.get(peer) {
            bgp = n["bgpState"].as_str().map(str::to_string);
        }
    }
    (bfd, bgp)
}

#[test]
fn speaker_link_dropped_frr_detects_within_three_intervals() {
    if !can_run_with("speaker_link_dropped_frr_detects", FRR_PROGS) {
        return;
    }
    let lab = Lab::new("bfddrop");
    let s = setup(&lab, false, true, true);
    let a = s.veth.a.clone();
    let mut drops = Vec::new();
    let mut bfd_times = Vec::new();
    let mut bgp_times = Vec::new();
    for rep in 0..REPS {
        wait_all_up(&s, &[(PEER_IP, FERRY_IP)], true);
        // A keepalive-free moment is not needed: BFD does not wait for BGP.
        let mut bfd_down = None;
        let t = drop_and_measure(
            &a.netns,
            &a.ifname,
            "192.0.2.1/24",
            Duration::from_secs(5),
            &mut drops,
            || {
                let (bfd, bgp) = frr_states(&s.frr, FERRY_IP);
                if bfd.as_deref() == Some("down") && bfd_down.is_none() {
                    bfd_down = Some(Instant::now());
                }
                bfd.as_deref() == Some("down") && bgp.as_deref().is_some_and(|b| b != "Established")
            },
        );
        let Some(bgp_t) = t else {
            s.frr.fail(&format!(
                "repetition {rep}: FRR did not take BFD and BGP down within 5 s of the link drop"
            ));
        };
        // The BFD time is bounded by the BGP time (same or an earlier poll).
        let bfd_t = bfd_down.map_or(bgp_t, |d| bgp_t.saturating_sub(d.elapsed()));
        eprintln!(
            "repetition {rep}: FRR BFD down after {}, BGP down after {}",
            ms(bfd_t),
            ms(bgp_t)
        );
        assert!(
            bgp_t < Duration::from_secs(2),
            "repetition {rep}: FRR took {} to drop BGP with BFD (100 ms x 3)",
            ms(bgp_t)
        );
        bfd_times.push(bfd_t);
        bgp_times.push(bgp_t);
    }
    let bfd_med = median(&mut bfd_times);
    let bgp_med = median(&mut bgp_times);
    // FRR's own record: bgpd logs the Cease/BFD Down (RFC 9384) it sends when bfdd reports
    // the session down, with millisecond timestamps.
    let mut logged = log_delays(
        s.frr.log_path(),
        &["Cease/BFD Down", &format!("sent to neighbor {FERRY_IP}")],
        &drops,
    );
    assert_eq!(
        logged.len(),
        REPS,
        "bgpd logged a Cease/BFD Down for every drop (so BFD, not the hold timer, took BGP down)"
    );
    let log_med = median(&mut logged);
    eprintln!(
        "FRR with BFD 100 ms x 3, {REPS} link drops: polled (~10 ms) BFD down median {}, BGP \
         down median {} (all BGP: {:?}); bgpd's log: Cease/BFD Down sent after a median {} \
         (all: {:?})",
        ms(bfd_med),
        ms(bgp_med),
        bgp_times.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        ms(log_med),
        logged.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
    // The target on FRR's own clock (the polling adds vtysh's latency, large on a loaded
    // machine); the polled median gets a looser bound.
    assert!(
        log_med < TARGET,
        "target missed: FRR took BGP down (Cease/BFD Down) a median {} after the link drop \
         (target < {} = 3 x 100 ms + margin)",
        ms(log_med),
        ms(TARGET)
    );
    assert!(
        bgp_med < 2 * TARGET,
        "FRR's BGP state polled Established for a median {} after the link drop",
        ms(bgp_med)
    );

    // The same without BFD: FRR notices at its hold time only.
    s.frr
        .configure(&[
            &format!("router bgp {PEER_AS}"),
            &format!("no neighbor {FERRY_IP} bfd"),
            "exit",
        ])
        .expect("remove neighbor bfd");
    wait_all_up(&s, &[(PEER_IP, FERRY_IP)], false);
    let t = drop_and_measure(
        &a.netns,
        &a.ifname,
        "192.0.2.1/24",
        Duration::from_secs(15),
        &mut drops,
        || {
            frr_states(&s.frr, FERRY_IP)
                .1
                .is_some_and(|b| b != "Established")
        },
    );
    let Some(hold_t) = t else {
        s.frr
            .fail("without BFD FRR did not drop BGP within 15 s (hold time 9 s)");
    };
    eprintln!(
        "FRR without BFD (hold time 9 s): BGP down after {} ({:.0}x the BFD median)",
        ms(hold_t),
        hold_t.as_secs_f64() / bgp_med.as_secs_f64()
    );
    assert!(
        hold_t > Duration::from_secs(5),
        "without BFD FRR dropped BGP after {} already: the drop was not silent",
        ms(hold_t)
    );
}

#[test]
fn frr_silenced_ferry_detects_and_drops_bgp() {
    if !can_run_with("frr_silenced_ferry_detects", FRR_PROGS) {
        return;
    }
    let lab = Lab::new("bfdsil");
    let s = setup(&lab, true, true, true);
    let both = [(PEER_IP, FERRY_IP), (PEER_IP6, FERRY_IP6)];
    let b = s.veth.b.clone();
    let mut drops = Vec::new();
    let mut times = Vec::new();
    for rep in 0..REPS {
        wait_all_up(&s, &both, true);
        let t = drop_and_measure(
            &b.netns,
            &b.ifname,
            "192.0.2.2/24",
            Duration::from_secs(5),
            &mut drops,
            || {
                s.ferry
                    .peer_status(PEER_IP)
                    .is_some_and(|p| p["bfd"]["state"] == "Down" && p["state"] != "Established")
            },
        );
        let Some(t) = t else {
            s.frr.fail(&format!(
                "repetition {rep}: Ferry did not take BFD and BGP down within 5 s\n{}",
                s.ferry.state_dump()
            ));
        };
        eprintln!("repetition {rep}: Ferry BFD and BGP down after {}", ms(t));
        assert!(
            t < Duration::from_secs(2),
            "repetition {rep}: Ferry took {}",
            ms(t)
        );
        times.push(t);
    }
    let st = s.ferry.peer_status(PEER_IP).unwrap();
    let err = st["last_error"].as_str().unwrap_or("");
    assert!(
        err.contains("BFD") || st["state"] == "Established",
        "last_error names BFD: {st:#}"
    );
    let log = std::fs::read_to_string(s.ferry.log_path()).unwrap_or_default();
    assert!(
        log.contains("BFD session down: dropping the BGP session")
            && log.contains("control detection time expired"),
        "Ferry's log says why"
    );
    let med = median(&mut times);
    // Ferry's own record of dropping BGP, on its log's clock.
    let mut logged = log_delays(
        s.ferry.log_path(),
        &[
            "BFD session down: dropping the BGP session",
            &format!("peer={PEER_IP} "),
        ],
        &drops,
    );
    assert_eq!(logged.len(), REPS, "Ferry logged every BFD drop");
    let log_med = median(&mut logged);
    eprintln!(
        "Ferry with BFD 100 ms x 3, {REPS} silenced peers: polled BFD and BGP down median {} \
         (all: {:?}); Ferry's log: BGP dropped after a median {} (all: {:?})",
        ms(med),
        times.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        ms(log_med),
        logged.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
    assert!(
        log_med < TARGET,
        "Ferry dropped BGP a median {} after FRR fell silent (target < {})",
        ms(log_med),
        ms(TARGET)
    );
    assert!(
        med < 2 * TARGET,
        "Ferry's status polled Up for a median {}",
        ms(med)
    );

    // The same over IPv6, once (the hop-limit check and the IPv6 sockets on the path).
    wait_all_up(&s, &both, true);
    let mut drops6 = Vec::new();
    let t = drop_and_measure(
        &b.netns,
        &b.ifname,
        "2001:db8::2/64",
        Duration::from_secs(5),
        &mut drops6,
        || {
            s.ferry
                .peer_status(PEER_IP6)
                .is_some_and(|p| p["bfd"]["state"] == "Down" && p["state"] != "Established")
        },
    );
    let Some(t) = t else {
        s.frr.fail(&format!(
            "IPv6: Ferry did not take BFD and BGP down within 5 s\n{}",
            s.ferry.state_dump()
        ));
    };
    let logged6 = log_delays(
        s.ferry.log_path(),
        &[
            "BFD session down: dropping the BGP session",
            &format!("peer={PEER_IP6} "),
        ],
        &drops6,
    );
    eprintln!(
        "IPv6: Ferry BFD and BGP down after {} (log: {logged6:?})",
        ms(t)
    );
    assert!(t < Duration::from_secs(2), "IPv6: Ferry took {}", ms(t));
    assert_eq!(logged6.len(), 1, "Ferry logged the IPv6 BFD drop");
}

#[test]
fn peer_without_bfd_keeps_bgp_up() {
    if !can_run_with("peer_without_bfd_keeps_bgp_up", FRR_PROGS) {
        return;
    }
    let lab = Lab::new("bfdnone");
    let s = setup(&lab, false, true, false);
    wait_all_up(&s, &[(PEER_IP, FERRY_IP)], false);
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let st = s.ferry.peer_status(PEER_IP).expect("status");
        assert_eq!(st["state"], "Established", "{st:#}");
        assert_eq!(st["bfd"]["state"], "Down", "{st:#}");
        assert_eq!(st["bfd"]["transitions"], 0, "{st:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s.frr.is_established(FERRY_IP));
    let m = metrics(&s.ferry);
    assert!(
        m.contains(&format!("ferry_peer_bfd_up{{peer=\"{PEER_IP}\"}} 0")),
        "{m}"
    );
}
