//! Extended messages (RFC 8654) between real Ferry and real FRR 8.4 and BIRD 2, each pair in
//! two fresh network namespaces (Ferry in `a`, 192.0.2.1, AS 65100; the daemon in `b`,
//! 192.0.2.2, AS 65002; one IPv4 session carrying IPv6 unicast).
//!
//! Ferry announces [`N`] IPv6 /64s of 2001:db8::/32 in one `ferry announce --file`: 9 octets
//! of NLRI each, 45,000 in all, which takes at least 11 UPDATEs of 4,096 octets but fits one
//! of 65,535.
//! * `frr_extended_messages`: FRR advertises the capability by default. With Ferry's default
//!   (`extended_messages` on) FRR reports it advertised and received, holds all N, and counted
//!   at most 3 UPDATEs for them; with `extended_messages = false` FRR reports it only
//!   advertised, holds all N, and counted at least 11.
//! * `bird_without_extended_messages`: BIRD advertises nothing (its default), Ferry's default
//!   is on: RFC 8654 §3 says no UPDATE above 4,096 octets, and BIRD would end the session with
//!   a Bad Message Length NOTIFICATION if one came. BIRD holds all N and the session stays
//!   Established.
//!
//! Needs root (skips otherwise, fails with FIT_REQUIRE=1) and the daemons from Debian's
//! packages.

use std::time::{Duration, Instant};

use proto_tests::ferry::{Ferry, FerryConfig};
use serde_json::Value;
use testkit::daemons::bird::{Bird, BirdConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Family, Peer};
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;
use testkit::root::can_run_with;

const WAIT: Duration = Duration::from_secs(20);
const FERRY_AS: u32 = 65100;
const PEER_AS: u32 = 65002;
const FERRY_IP: &str = "192.0.2.1";
const PEER_IP: &str = "192.0.2.2";
/// Prefixes announced at once: 45,000 octets of NLRI.
const N: u64 = 5_000;

fn lab(test: &str) -> (Lab, Netns, Netns) {
    let lab = Lab::new(test);
    let (a, b, _veth) = lab.pair();
    (lab, a, b)
}

/// Ferry with one neighbor (the daemon), IPv6 unicast over IPv4; `extra` lines in its entry.
fn start_ferry<'l>(lab: &'l Lab, ns: &Netns, extra: Option<&str>) -> Ferry<'l> {
    let n = Peer::new(PEER_IP, PEER_AS)
        .local_address(FERRY_IP)
        .families(&[Family::Ipv6]);
    let mut c = FerryConfig::new(FERRY_AS, FERRY_IP).neighbor(n);
    if let Some(line) = extra {
        c = c.neighbor_line(PEER_IP, line);
    }
    Ferry::start(lab, ns, &c)
}

/// `ferry announce --file` of N /64s, 2001:db8:1:0::/64 upwards.
fn announce_many(ferry: &Ferry) {
    let prefixes: Vec<String> = (0..N)
        .map(|i| format!("{{\"prefix\": \"2001:db8:1:{i:x}::/64\"}}"))
        .collect();
    let path = ferry.dir().join("many.json");
    std::fs::write(&path, format!("[{}]", prefixes.join(",")))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ferry.cli_ok(&["announce", "--file", &path.to_string_lossy()]);
}

fn frr_peer_json(frr: &Frr) -> Value {
    frr.neighbor_json(FERRY_IP)
        .unwrap_or_else(|| frr.fail("no `show bgp neighbors` entry for Ferry"))
}

/// (IPv6 prefixes FRR accepted from Ferry, UPDATEs FRR received from Ferry).
fn frr_counts(frr: &Frr) -> (u64, u64) {
    let v = frr_peer_json(frr);
    let accepted = v
        .pointer("/addressFamilyInfo/ipv6Unicast/acceptedPrefixCounter")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let updates = v
        .pointer("/messageStats/updatesRecv")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| frr.fail(&format!("no messageStats.updatesRecv in {v}")));
    (accepted, updates)
}

/// Announce N and return how many UPDATEs FRR counted until it held them all.
fn frr_updates_for_many(frr: &Frr, ferry: &Ferry) -> u64 {
    frr.wait_established(FERRY_IP, WAIT);
    // Ferry's End-of-RIB has arrived once the counter stops moving; count from there.
    std::thread::sleep(Duration::from_secs(1));
    let (held, before) = frr_counts(frr);
    assert_eq!(held, 0, "FRR holds routes before the announce");
    announce_many(ferry);
    let updates = poll(WAIT, || {
        let (held, updates) = frr_counts(frr);
        (held == N).then_some(updates)
    })
    .unwrap_or_else(|| {
        frr.fail(&format!(
            "FRR never held {N} prefixes from Ferry: {:?}",
            frr_counts(frr)
        ))
    });
    updates - before
}

fn frr_capability(frr: &Frr) -> String {
    let v = frr_peer_json(frr);
    v.pointer("/neighborCapabilities/extendedMessage")
        .and_then(Value::as_str)
        .unwrap_or_else(|| {
            frr.fail(&format!(
                "no neighborCapabilities.extendedMessage in {}",
                v.get("neighborCapabilities").unwrap_or(&Value::Null)
            ))
        })
        .to_string()
}

fn frr_config() -> FrrConfig {
    FrrConfig::new(PEER_AS, PEER_IP)
        .peer(
            Peer::new(FERRY_IP, FERRY_AS)
                .families(&[Family::Ipv6])
                .passive(),
        )
        .with_zebra()
}

#[test]
fn frr_extended_messages() {
    if !can_run_with(
        "frr_extended_messages",
        &["/usr/lib/frr/bgpd", "/usr/lib/frr/zebra", "vtysh"],
    ) {
        return;
    }
    let t0 = Instant::now();
    {
        let (lab, a, b) = lab("extfrron");
        let frr = Frr::start(&lab, &b, &frr_config());
        let ferry = start_ferry(&lab, &a, None);
        let updates = frr_updates_for_many(&frr, &ferry);
        let cap = frr_capability(&frr);
        assert_eq!(cap, "advertisedAndReceived", "FRR's view of the capability");
        assert!(
            updates <= 3,
            "{N} prefixes took {updates} UPDATEs with extended messages (one fits them all)"
        );
        eprintln!("extended messages on: {N} prefixes in {updates} UPDATEs");
    }
    {
        let (lab, a, b) = lab("extfrroff");
        let frr = Frr::start(&lab, &b, &frr_config());
        let ferry = start_ferry(&lab, &a, Some("extended_messages = false"));
        let updates = frr_updates_for_many(&frr, &ferry);
        let cap = frr_capability(&frr);
        assert_eq!(cap, "advertised", "FRR's view with Ferry's capability off");
        assert!(
            updates >= 11,
            "{N} prefixes in {updates} UPDATEs of at most 4,096 octets: impossible"
        );
        eprintln!("extended messages off: {N} prefixes in {updates} UPDATEs");
    }
    eprintln!("frr_extended_messages: passed in {:.1?}", t0.elapsed());
}

#[test]
fn bird_without_extended_messages() {
    if !can_run_with("bird_without_extended_messages", &["bird", "birdc"]) {
        return;
    }
    let t0 = Instant::now();
    let (lab, a, b) = lab("extbird");
    let config = BirdConfig::new(PEER_AS, PEER_IP).peer(
        Peer::new(FERRY_IP, FERRY_AS)
            .families(&[Family::Ipv6])
            .passive(),
    );
    let bird = Bird::start(&lab, &b, &config);
    let ferry = start_ferry(&lab, &a, None);
    bird.wait_established(FERRY_IP, WAIT);
    announce_many(&ferry);
    let name = bird.protocol(FERRY_IP).expect("ferry's protocol");
    let held = poll(WAIT, || {
        let out = bird
            .birdc(&["show", "route", "count", "protocol", &name])
            .ok()?;
        out.contains(&format!("{N} of {N} routes")).then_some(out)
    });
    if held.is_none() {
        bird.fail(&format!("BIRD never held {N} routes from Ferry"));
    }
    let out = bird
        .birdc(&["show", "protocols", &name])
        .unwrap_or_default();
    assert!(
        out.contains("Established"),
        "BIRD's session with Ferry after the announce: {out}"
    );
    eprintln!(
        "bird_without_extended_messages: passed in {:.1?}",
        t0.elapsed()
    );
}
