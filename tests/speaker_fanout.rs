//! Fan-out to many peers through update groups, against the real speaker binary.
//!
//! Proves: with eight raw eBGP peers (two of them in another AS, which exports the same
//! attributes and so shares the group), a bulk `ferry announce --file` of 3,000 routes reaches
//! every peer with every prefix exactly once; a peer whose session comes up after the
//! announcement gets the whole table, each prefix once, then End-of-RIB for both families;
//! `ferry withdraw --file` with the same file withdraws every prefix at every peer exactly once;
//! and one more single-prefix change afterwards is one UPDATE at each peer.
//! A peer that stops reading (4 KiB receive buffer) while 100,000 routes go out does not delay
//! the others: they get every route while it has read nothing; the speaker holds a bounded
//! backlog for it (`ferry_update_group_log_bytes`), and once it reads again it gets every route
//! exactly once and rejoins the others' group.
//! Failures injected: timing (the late peer answers its connection only after the bulk change
//! was applied) and a peer that does not read.

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
    let client = ferry::api::blocking::Speaker::unix(speaker.api()).unwrap();
    let text = client.metrics().unwrap();
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

/// A peer that completes the handshake and the initial sync, then reads only when told to.
struct SlowPeer {
    sock: std::net::TcpStream,
    buf: bytes::BytesMut,
}

impl SlowPeer {
    /// Listen on `ip` with a 4 KiB receive buffer (inherited by the accepted socket).
    fn listen(ip: Ipv4Addr) -> std::net::TcpListener {
        let l = std::net::TcpListener::bind((ip, 0)).unwrap();
        nix::sys::socket::setsockopt(&l, nix::sys::socket::sockopt::RcvBuf, &4096).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    }

    fn accept(l: &std::net::TcpListener) -> Self {
        let deadline = std::time::Instant::now() + WAIT;
        let sock = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(_) => {
                    assert!(std::time::Instant::now() < deadline, "no connection");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let mut p = Self {
            sock,
            buf: bytes::BytesMut::new(),
        };
        let caps = vec![
            ferry::wire::Capability::Multiprotocol {
                afi: ferry::wire::Afi::Ipv4,
                safi: ferry::wire::Safi::Unicast,
            },
            ferry::wire::Capability::Multiprotocol {
                afi: ferry::wire::Afi::Ipv6,
                safi: ferry::wire::Safi::Unicast,
            },
            ferry::wire::Capability::FourOctetAs(PEER_ASN),
        ];
        let open = ferry::wire::Open::new(PEER_ASN, 9, "192.0.2.199".parse().unwrap(), caps);
        p.write(&ferry::wire::Message::Open(open));
        p.write(&ferry::wire::Message::Keepalive);
        // KEEPALIVEs every 3 s from another handle: the session stays up while we do not read.
        let mut w = p.sock.try_clone().unwrap();
        let ka = ferry::wire::Message::Keepalive.to_bytes(&ferry::wire::Context::default());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(3));
            if std::io::Write::write_all(&mut w, &ka).is_err() {
                return;
            }
        });
        let mut t = Tally::default();
        p.read_until(&mut t, |t| t.eor.len() == 2);
        p
    }

    fn write(&self, m: &ferry::wire::Message) {
        let bytes = m.to_bytes(&ferry::wire::Context::default());
        std::io::Write::write_all(&mut &self.sock, &bytes).unwrap();
    }

    fn read_until(&mut self, t: &mut Tally, done: impl Fn(&Tally) -> bool) {
        let ctx = ferry::wire::Context {
            four_octet_as: true,
            extended_message: false,
        };
        let mut chunk = vec![0u8; 65536];
        while !done(t) {
            while let Ok(Some(frame)) =
                ferry::wire::split_frame(&mut self.buf, ferry::wire::MAX_MESSAGE_LEN)
            {
                if let Ok(ferry::wire::Message::Update(u)) =
                    ferry::wire::Message::decode(&frame, &ctx)
                {
                    tally(t, &u);
                }
            }
            if done(t) {
                return;
            }
            let n = std::io::Read::read(&mut self.sock, &mut chunk).expect("read within WAIT");
            assert!(n > 0, "speaker closed the slow peer's connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[test]
fn a_peer_that_does_not_read_does_not_delay_the_others_and_catches_up_later() {
    let slow_listener = SlowPeer::listen(Ipv4Addr::new(127, 0, 0, 89));
    let mut fast: Vec<RawPeer> = (0..3)
        .map(|i| RawPeer::listen(Ipv4Addr::new(127, 0, 0, 86 + i)))
        .collect();
    let mut neighbors: Vec<NeighborSpec> = fast
        .iter()
        .map(|p| NeighborSpec::active(p.addr()))
        .collect();
    neighbors.push(NeighborSpec::active(slow_listener.local_addr().unwrap()));
    let speaker = Speaker::start(SpeakerSpec::with(neighbors));
    for p in &mut fast {
        p.accept();
        p.handshake();
        assert!(p.initial_sync(2).is_empty());
    }
    let mut slow = SlowPeer::accept(&slow_listener);
    assert_eq!(metric(&speaker, "ferry_update_groups"), 1);

    // 100,000 IPv6 /64s: about 0.9 MB of UPDATEs. (On loopback the kernel's send buffer
    // for the slow peer's socket grows to take most of it, so the group's split is not
    // reliably reached here; the unit tests of `speaker::update_group` cover it.)
    let n = 100_000u32;
    let routes: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "prefix": format!("2001:db8:{:x}:{:x}::/64", 0x100 + (i >> 16), i & 0xffff),
                "next_hop": "2001:db8::1"
            })
        })
        .collect();
    let file = speaker.dir.path().join("big.json");
    std::fs::write(&file, serde_json::to_string(&routes).unwrap()).unwrap();
    speaker.cli_ok(&["announce", "--file", file.to_str().unwrap()]);
    for p in &mut fast {
        let mut t = Tally::default();
        collect(p, &mut t, |t| {
            t.announced.values().sum::<usize>() >= n as usize
        });
        assert_eq!(t.announced.len(), n as usize, "peer {}", p.ip);
        assert!(t.announced.values().all(|c| *c == 1));
    }
    // The fast peers are done while the slow one has read nothing since End-of-RIB. Whether
    // its group split it off depends on how much the kernel's socket buffers took (the unit
    // tests of `speaker::update_group` check the split itself); the speaker's own backlog for
    // it is bounded either way.
    eprintln!(
        "slow peer: splits {}, log {} octets",
        metric(&speaker, "ferry_update_group_splits_total"),
        metric(&speaker, "ferry_update_group_log_bytes")
    );
    let held = metric(&speaker, "ferry_update_group_log_bytes");
    assert!(
        held <= 2 * 1024 * 1024,
        "{held} octets held for the slow peer"
    );

    let mut t = Tally::default();
    slow.read_until(&mut t, |t| {
        t.announced.values().sum::<usize>() >= n as usize
    });
    assert_eq!(t.announced.len(), n as usize);
    assert!(t.announced.values().all(|c| *c == 1));
    assert!(t.eor.is_empty(), "End-of-RIB only once, before the routes");
    // Caught up: back in one group with the others.
    let deadline = std::time::Instant::now() + WAIT;
    while metric(&speaker, "ferry_update_groups") != 1 {
        assert!(std::time::Instant::now() < deadline, "not merged back");
        std::thread::sleep(Duration::from_millis(20));
    }
}
