//! Fan-out to many peers through update groups, against the real speaker binary.
//!
//! Proves: with eight raw eBGP peers (two of them in another AS, which exports the same
//! attributes and so shares the group), a bulk `ferry announce --file` of 3,000 routes reaches
//! every peer with every prefix exactly once; a peer whose session comes up after the
//! announcement gets the whole table, each prefix once, then End-of-RIB for both families;
//! `ferry withdraw --file` with the same file withdraws every prefix at every peer exactly once;
//! and one more single-prefix change afterwards is one UPDATE at each peer.
//! Failures injected: none beyond timing (the late peer answers its connection only after the
//! bulk change was applied); the unit tests of `speaker::update_group` cover slow members.

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use ferry::wire::{Family, MpNlri, Update};
use ipnet::IpNet;
use support::*;

/// 3,000 prefixes: 500 IPv4 /32s (250 each of 198.51.100.0/24 and 203.0.113.0/24) and 2,500
/// IPv6 /64s of 2001:db8::/32.
fn prefixes() -> Vec<IpNet> {
    let mut v: Vec<IpNet> = (0..250u32)
        .flat_map(|i| {
            [
                format!("198.51.100.{i}/32").parse().unwrap(),
                format!("203.0.113.{i}/32").parse().unwrap(),
            ]
        })
        .collect();
    v.extend((0..2_500u32).map(|i| {
        format!("2001:db8:{:x}:{:x}::/64", i >> 8, i & 0xff)
            .parse::<IpNet>()
            .unwrap()
    }));
    v
}

#[derive(Default)]
struct Tally {
    announced: BTreeMap<IpNet, usize>,
    withdrawn: BTreeMap<IpNet, usize>,
    eor: Vec<Family>,
    updates: usize,
}

fn metric(speaker: &Speaker, name: &str) -> u64 {
    let client = ferry::api::Client::new(ferry::api::Endpoint::Unix(speaker.api()), None);
    let text = runtime().block_on(client.get_text("/metrics")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

fn tally(t: &mut Tally, u: &Update) {
    t.updates += 1;
    if let Some(f) = u.end_of_rib_family() {
        t.eor.push(f);
        return;
    }
    for p in &u.nlri {
        *t.announced.entry(IpNet::V4(*p)).or_default() += 1;
    }
    for p in &u.withdrawn {
        *t.withdrawn.entry(IpNet::V4(*p)).or_default() += 1;
    }
    if let Some(MpNlri::Ipv6(v)) = u.mp_reach().map(|r| &r.nlri) {
        for p in v {
            *t.announced.entry(IpNet::V6(*p)).or_default() += 1;
        }
    }
    if let Some(MpNlri::Ipv6(v)) = u.mp_unreach().map(|r| &r.withdrawn) {
        for p in v {
            *t.withdrawn.entry(IpNet::V6(*p)).or_default() += 1;
        }
    }
}

/// UPDATEs until `done` says the tally is complete (each wait bounded by WAIT).
fn collect(peer: &mut RawPeer, t: &mut Tally, done: impl Fn(&Tally) -> bool) {
    while !done(t) {
        let r = peer.next_update();
        tally(t, r.update().unwrap());
    }
}

fn once_each(counts: &BTreeMap<IpNet, usize>, want: &[IpNet], what: &str, who: Ipv4Addr) {
    assert_eq!(counts.len(), want.len(), "peer {who}: {what} prefixes");
    for p in want {
        assert_eq!(
            counts.get(p),
            Some(&1),
            "peer {who}: {p} {what} not exactly once"
        );
    }
}

#[test]
fn every_peer_gets_every_route_exactly_once_and_end_of_rib() {
    let ips: Vec<Ipv4Addr> = (0..8).map(|i| Ipv4Addr::new(127, 0, 0, 71 + i)).collect();
    let mut peers: Vec<RawPeer> = ips.iter().map(|ip| RawPeer::listen(*ip)).collect();
    let mut late = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 79));
    for p in &mut peers[6..] {
        p.asn = 65002;
    }
    let spec = SpeakerSpec::with(
        peers
            .iter()
            .chain(std::iter::once(&late))
            .map(|p| {
                let mut n = NeighborSpec::active(p.addr());
                n.remote_as = p.asn;
                n
            })
            .collect(),
    );
    let speaker = Speaker::start(spec);
    for p in &mut peers {
        p.accept();
        p.handshake();
        assert!(p.initial_sync(2).is_empty());
    }

    let all = prefixes();
    let routes: Vec<serde_json::Value> = all
        .iter()
        .map(|p| match p {
            IpNet::V4(_) => serde_json::json!({"prefix": p.to_string()}),
            // The sessions run over IPv4: IPv6 routes need an explicit next hop.
            IpNet::V6(_) => serde_json::json!({"prefix": p.to_string(), "next_hop": "2001:db8::1"}),
        })
        .collect();
    let file = speaker.dir.path().join("bulk.json");
    std::fs::write(&file, serde_json::to_string(&routes).unwrap()).unwrap();
    // The eight established sessions export alike (the AS differs only between eBGP peers).
    assert_eq!(metric(&speaker, "ferry_update_groups"), 1);
    let encoded = metric(&speaker, "ferry_update_messages_encoded_total");
    let out = speaker.cli_ok(&["announce", "--json", "--file", file.to_str().unwrap()]);
    assert!(out.stdout.contains("\"changed\":3000"), "{out:?}");

    let mut per_peer = Vec::new();
    for p in &mut peers {
        let mut t = Tally::default();
        collect(p, &mut t, |t| {
            t.announced.values().sum::<usize>() >= all.len()
        });
        once_each(&t.announced, &all, "announced", p.ip);
        assert!(t.withdrawn.is_empty());
        per_peer.push(t.updates);
    }
    // Encoded once for all eight, not once per peer.
    assert!(per_peer.iter().all(|n| *n == per_peer[0]), "{per_peer:?}");
    assert_eq!(
        metric(&speaker, "ferry_update_messages_encoded_total") - encoded,
        per_peer[0] as u64
    );

    // The late peer: full table, each once, then End-of-RIB for both families.
    late.accept();
    late.handshake();
    let mut t = Tally::default();
    let updates = late.initial_sync(2);
    for u in &updates {
        tally(&mut t, u);
    }
    once_each(&t.announced, &all, "announced", late.ip);
    peers.push(late);

    // Bulk withdraw by the same file.
    speaker.cli_ok(&["withdraw", "--file", file.to_str().unwrap()]);
    for p in &mut peers {
        let mut t = Tally::default();
        collect(p, &mut t, |t| {
            t.withdrawn.values().sum::<usize>() >= all.len()
        });
        once_each(&t.withdrawn, &all, "withdrawn", p.ip);
        assert!(
            t.announced.is_empty(),
            "peer {}: announced during withdraw",
            p.ip
        );
    }

    // A single change afterwards is one UPDATE per peer, and nothing else follows.
    speaker.cli_ok(&["announce", "192.0.2.0/24"]);
    for p in &mut peers {
        let r = p.next_update();
        assert_eq!(
            r.update().unwrap().nlri,
            vec!["192.0.2.0/24".parse().unwrap()]
        );
        p.expect_quiet(Duration::from_millis(200));
    }
    for p in &speaker.status() {
        assert_eq!(p["prefixes_sent"], 1, "{p}");
    }
}
