//! The speaker against malformed input from an Established peer, over a real session.
//!
//! Proves: for each row of the table (RFC 4271 §6.1-6.3, RFC 6608, RFC 7606 §3-5, RFC 7313 §5)
//! the speaker answers with exactly the NOTIFICATION the RFC asks for (code, subcode and data,
//! compared byte for byte) and takes the session down (closes the TCP connection, status leaves
//! Established and records the NOTIFICATION); an RFC 7606 treat-as-withdraw case (COMMUNITIES of
//! length 5) sends nothing and keeps the session, only withdrawing the route; malformed input
//! on one of two sessions leaves the other Established and still receiving announcements (the
//! speaker process stays up, and the broken peer comes back on its own); max-prefix sends
//! Cease/1 with AFI, SAFI and the limit as data (RFC 4486 §4); a peer that stops sending
//! KEEPALIVEs gets Hold Timer Expired; an UPDATE above 4,096 octets is refused only by a
//! speaker that did not advertise extended messages (RFC 8654 §4); the NOTIFICATION for a
//! 65,535-octet ROUTE-REFRESH is cut to the size the peer takes and its Length field is true;
//! AS 0 in an OPEN is Bad Peer AS and in an AS_PATH treat-as-withdraw (RFC 7607 §2); a peer
//! over its attribute budget gets Cease/Out of Resources and the speaker's RSS stays bounded.
//! Failures injected: the raw peer (tests/support) sends hand-built bytes after Established —
//! corrupt headers, UPDATEs with broken lengths or attributes, an OPEN out of state, a bad
//! ROUTE-REFRESH — or stops its KEEPALIVEs.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::{Duration, Instant};

use ferry::wire::{Message, Open};
use support::*;

const UPDATE: u8 = 2;
const KEEPALIVE: u8 = 4;
const ROUTE_REFRESH: u8 = 5;
const O: u8 = 0x80;
const T: u8 = 0x40;

/// Marker, length (of header + body unless `len` says otherwise), type, body.
fn msg_with_len(kind: u8, body: &[u8], len: usize) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    msg_with_len(kind, body, 19 + body.len())
}

fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code, value.len() as u8];
    a.extend_from_slice(value);
    a
}

/// ORIGIN igp, AS_PATH [65001], NEXT_HOP = `nh`.
fn base_attrs(nh: Ipv4Addr) -> Vec<u8> {
    [
        attr(T, 1, &[0]),
        attr(T, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
        attr(T, 3, &nh.octets()),
    ]
    .concat()
}

/// An UPDATE with lengths computed.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(UPDATE, &b)
}

/// 198.51.100.0/24
const NLRI: [u8; 4] = [24, 198, 51, 100];

/// MP_REACH_NLRI value: IPv6 unicast, next hop 2001:db8::1, 2001:db8:100::/64.
fn mp_reach_v6() -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v.extend_from_slice(&[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 1, 0]);
    v
}

/// The NOTIFICATION the speaker must send, as bytes.
fn notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    msg(3, &[&[code, subcode][..], data].concat())
}

/// An UPDATE of 5000 octets announcing [`NLRI`] from `peer`: the base UPDATE padded with an
/// unknown optional transitive attribute.
fn big_update(peer: Ipv4Addr) -> Vec<u8> {
    let base = base_attrs(peer);
    let pad_len = 5000 - update(&[], &[&base[..], &[0xd0, 99, 0, 0]].concat(), &NLRI).len();
    let mut pad = vec![O | T | 0x10, 99];
    pad.extend_from_slice(&(pad_len as u16).to_be_bytes());
    pad.extend(std::iter::repeat_n(0xab, pad_len));
    let big = update(&[], &[base, pad].concat(), &NLRI);
    assert_eq!(big.len(), 5000);
    big
}

struct Row {
    name: &'static str,
    send: Vec<u8>,
    want: Vec<u8>,
}

fn rows(peer: Ipv4Addr, open: &Open) -> Vec<Row> {
    let base = base_attrs(peer);
    let mut bad_marker = msg(KEEPALIVE, &[]);
    bad_marker[5] = 0xfe;
    let mut withdrawn_overrun = update(&[], &base, &NLRI);
    withdrawn_overrun[19 + 1] = 0x40;
    let mut attrs_overrun = update(&[], &base, &NLRI);
    attrs_overrun[19 + 3] = (base.len() + NLRI.len() + 1) as u8;
    let unknown_well_known = attr(T, 99, &[1, 2]);
    let mp_reach_transitive = attr(O | T, 14, &mp_reach_v6());
    let big_update = big_update(peer);
    let borr5 = msg(ROUTE_REFRESH, &[0, 1, 1, 1, 0]);
    let open_again = Message::Open(open.clone())
        .to_bytes(&Default::default())
        .to_vec();
    vec![
        Row {
            name: "RFC 4271 §6.1: marker not all ones: Connection Not Synchronized",
            send: bad_marker,
            want: notification(1, 1, &[]),
        },
        Row {
            name: "RFC 4271 §6.1: length 18 (< 19): Bad Message Length, data the length",
            send: msg_with_len(KEEPALIVE, &[], 18),
            want: notification(1, 2, &[0, 18]),
        },
        Row {
            name: "RFC 4271 §6.1: KEEPALIVE with a body: Bad Message Length",
            send: msg(KEEPALIVE, &[0]),
            want: notification(1, 2, &[0, 20]),
        },
        Row {
            name: "RFC 4271 §6.1, RFC 8654 §4: UPDATE of 5000 octets, we did not advertise extended messages",
            send: big_update,
            want: notification(1, 2, &[0x13, 0x88]),
        },
        Row {
            name: "RFC 4271 §6.1: message type 6: Bad Message Type, data the type",
            send: msg(6, &[]),
            want: notification(1, 3, &[6]),
        },
        Row {
            name: "RFC 7606 §5.1: UPDATE withdrawn routes length overrun: Malformed Attribute List",
            send: withdrawn_overrun,
            want: notification(3, 1, &[]),
        },
        Row {
            name: "RFC 7606 §5.1: UPDATE total path attribute length overrun",
            send: attrs_overrun,
            want: notification(3, 1, &[]),
        },
        Row {
            name: "RFC 4271 §6.3: unknown well-known attribute: 3/2, data the attribute",
            send: update(
                &[],
                &[base.clone(), unknown_well_known.clone()].concat(),
                &NLRI,
            ),
            want: notification(3, 2, &unknown_well_known),
        },
        Row {
            name: "RFC 7606 §3 g: MP_REACH_NLRI twice: Malformed Attribute List",
            send: update(
                &[],
                &[
                    attr(T, 1, &[0]),
                    attr(T, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
                    attr(O, 14, &mp_reach_v6()),
                    attr(O, 14, &mp_reach_v6()),
                ]
                .concat(),
                &[],
            ),
            want: notification(3, 1, &[]),
        },
        Row {
            name: "RFC 7606 §3 c: MP_REACH_NLRI flagged transitive: 3/4, data the attribute",
            send: update(
                &[],
                &[
                    attr(T, 1, &[0]),
                    attr(T, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
                    mp_reach_transitive.clone(),
                ]
                .concat(),
                &[],
            ),
            want: notification(3, 4, &mp_reach_transitive),
        },
        Row {
            name: "RFC 7606 §5.3: NLRI prefix length 33: Invalid Network Field",
            send: update(&[], &base, &[33, 198, 51, 100, 0, 0]),
            want: notification(3, 10, &[]),
        },
        Row {
            name: "RFC 6608 §3: OPEN in Established: FSM Error, subcode 3",
            send: open_again,
            want: notification(5, 3, &[]),
        },
        Row {
            name: "RFC 7313 §5: BoRR with a 5-octet body: 7/1, data the message",
            send: borr5.clone(),
            want: notification(7, 1, &borr5),
        },
        Row {
            name: "RFC 4271 §6.1: ROUTE-REFRESH of 22 octets: Bad Message Length",
            send: msg(ROUTE_REFRESH, &[0, 1, 0]),
            want: notification(1, 2, &[0, 22]),
        },
    ]
}

/// Wait until the speaker reports the peer as not Established; returns its status entry.
fn wait_down(speaker: &Speaker, peer: Ipv4Addr) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = speaker.status();
        let p = all
            .into_iter()
            .find(|p| p["address"] == peer.to_string())
            .expect("peer in status");
        if p["state"] != "Established" && !p["last_error"].is_null() {
            return p;
        }
        assert!(Instant::now() < deadline, "session still up: {p}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn malformed_messages_get_the_exact_notification_and_the_session_goes_down() {
    let ip = Ipv4Addr::new(127, 0, 0, 7);
    let n = rows(ip, &RawPeer::at(ip).open()).len();
    assert!(n >= 8);
    for i in 0..n {
        // Without extended messages 4,096 octets is the limit (RFC 8654 §4), for the
        // table's length row.
        let (speaker, mut peer) = established_pair_with(ip, "extended_messages = false\n");
        let row = rows(ip, &peer.open()).swap_remove(i);
        peer.send_raw(&row.send);
        let (_, bytes) = peer.expect_notification();
        assert_eq!(
            hex::encode(&bytes),
            hex::encode(&row.want),
            "{}: NOTIFICATION",
            row.name
        );
        peer.wait_closed();
        let status = wait_down(&speaker, ip);
        let (code, subcode) = (row.want[19], row.want[20]);
        let err = status["last_error"].as_str().unwrap();
        assert!(
            err.contains(&format!("sent NOTIFICATION {code}/{subcode}")),
            "{}: last_error {err:?}",
            row.name
        );
        assert_eq!(status["prefixes_received"], 0, "{}", row.name);
    }
}

#[test]
fn rfc7606_communities_of_length_5_withdraws_the_route_and_keeps_the_session() {
    let ip = Ipv4Addr::new(127, 0, 0, 8);
    let (speaker, mut peer) = established_pair(ip);
    let base = base_attrs(ip);
    peer.send_raw(&update(&[], &base, &NLRI));
    let deadline = Instant::now() + WAIT;
    while speaker.status()[0]["prefixes_received"] != 1 {
        assert!(Instant::now() < deadline, "route not received");
        thread::sleep(Duration::from_millis(20));
    }

    let bad = attr(O | T, 8, &[0, 1, 0, 2, 9]);
    peer.send_raw(&update(&[], &[base.clone(), bad].concat(), &NLRI));
    peer.expect_quiet(Duration::from_millis(500));
    let status = speaker.status();
    assert_eq!(status[0]["state"], "Established", "{status:?}");
    // Treat-as-withdraw: the route is gone, the session is not.
    assert_eq!(status[0]["prefixes_received"], 0, "{status:?}");
    assert!(status[0]["last_error"].is_null(), "{status:?}");

    // And the session still works both ways.
    peer.send_raw(&update(&[], &base, &NLRI));
    speaker.cli_ok(&["announce", "203.0.113.0/24"]);
    assert_eq!(peer.next_update().update().unwrap().nlri.len(), 1);
    assert_eq!(speaker.status()[0]["prefixes_received"], 1);
}

#[test]
fn malformed_input_on_one_session_leaves_the_other_established() {
    let a_ip = Ipv4Addr::new(127, 0, 0, 9);
    let b_ip = Ipv4Addr::new(127, 0, 0, 10);
    let mut a = RawPeer::listen(a_ip);
    let mut b = RawPeer::listen(b_ip);
    let speaker = Speaker::start(SpeakerSpec::with(vec![
        NeighborSpec::active(a.addr()),
        NeighborSpec::active(b.addr()),
    ]));
    for p in [&mut a, &mut b] {
        p.accept();
        p.handshake();
        assert!(p.initial_sync(2).is_empty());
    }

    let mut garbage = msg(KEEPALIVE, &[]);
    garbage[0] = 0;
    a.send_raw(&garbage);
    let (n, _) = a.expect_notification();
    assert_eq!((n.code, n.subcode), (1, 1));
    a.wait_closed();

    // B is untouched and still gets announcements.
    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    let u = b.next_update();
    assert_eq!(u.update().unwrap().nlri.len(), 1);
    let status = speaker.status();
    let b_status = status
        .iter()
        .find(|p| p["address"] == b_ip.to_string())
        .unwrap();
    assert_eq!(b_status["state"], "Established", "{status:?}");
    assert!(b_status["last_error"].is_null(), "{status:?}");

    // A comes back by itself (connect_retry 1 s) and gets the route in its initial sync.
    a.accept();
    a.handshake();
    let routes = a.initial_sync(2);
    assert_eq!(routes.len(), 1, "{routes:?}");
    speaker.wait_state(IpAddr::V4(a_ip), "Established");
}

#[test]
fn max_prefixes_exceeded_is_cease_1_with_afi_safi_and_limit() {
    let ip = Ipv4Addr::new(127, 0, 0, 11);
    let mut peer = RawPeer::listen(ip);
    let mut n = NeighborSpec::active(peer.addr());
    n.max_prefixes = Some(2);
    let speaker = Speaker::start(SpeakerSpec::with(vec![n]));
    peer.accept();
    peer.handshake();
    peer.initial_sync(2);

    let base = base_attrs(ip);
    peer.send_raw(&update(&[], &base, &[24, 198, 51, 100, 24, 203, 0, 113]));
    peer.expect_quiet(Duration::from_millis(200));
    peer.send_raw(&update(&[], &base, &[25, 192, 0, 2, 0]));
    expect_closed_with(
        &speaker,
        &mut peer,
        &notification(6, 1, &[0, 1, 1, 0, 0, 0, 2]),
    );
}

/// The speaker sends exactly `want`, closes the connection and records the NOTIFICATION in
/// the peer's status.
fn expect_closed_with(speaker: &Speaker, peer: &mut RawPeer, want: &[u8]) {
    let (_, bytes) = peer.expect_notification();
    assert_eq!(hex::encode(bytes), hex::encode(want));
    peer.wait_closed();
    let status = wait_down(speaker, peer.ip);
    let sent = format!("sent NOTIFICATION {}/{}", want[19], want[20]);
    assert!(
        status["last_error"].as_str().unwrap().contains(&sent),
        "{status}"
    );
}

#[test]
fn a_peer_that_stops_sending_keepalives_gets_hold_timer_expired() {
    let ip = Ipv4Addr::new(127, 0, 0, 12);
    let mut peer = RawPeer::listen(ip);
    peer.hold_time = 3; // the smaller hold time wins (RFC 4271 §4.2)
    let speaker = Speaker::start(SpeakerSpec::with(vec![NeighborSpec::active(peer.addr())]));
    peer.accept();
    peer.handshake();
    peer.initial_sync(2);
    peer.stop_keepalives();
    let t0 = Instant::now();
    let (_, bytes) = peer.expect_notification();
    let after = t0.elapsed();
    assert_eq!(hex::encode(bytes), hex::encode(notification(4, 0, &[])));
    assert!(
        after > Duration::from_secs(2) && after < Duration::from_secs(5),
        "hold timer fired after {after:?}"
    );
    wait_down(&speaker, ip);
}

/// RFC 8654 §4: a speaker that advertised extended messages (Ferry's default) accepts an
/// UPDATE above 4,096 octets even from a peer that did not advertise them: the route is
/// received and the session stays up.
#[test]
fn an_update_above_4096_octets_is_accepted_when_we_advertised_extended_messages() {
    let ip = Ipv4Addr::new(127, 0, 0, 16);
    let (speaker, peer) = established_pair(ip);
    peer.send_raw(&big_update(ip));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = speaker
            .status()
            .into_iter()
            .find(|p| p["address"] == ip.to_string())
            .expect("the peer's status");
        assert_eq!(status["state"], "Established", "{status}");
        if status["prefixes_received"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "route never received: {status}");
        thread::sleep(Duration::from_millis(20));
    }
    let received = speaker.cli_ok(&["routes", "--received", "--json"]).stdout;
    assert!(received.contains("198.51.100.0/24"), "{received}");
}

/// A ROUTE-REFRESH of 65,535 octets (legal length once we advertised extended messages, but a
/// BoRR must be 4 octets: RFC 7313 §5) gets 7/1 with the message as data, cut so the
/// NOTIFICATION fits the size the peer can receive: 4,096 octets from a peer that did not
/// advertise extended messages, 65,535 from one that did (RFC 8654 §4). The Length field says
/// exactly the octets that arrived, and nothing follows the NOTIFICATION on the wire.
#[test]
fn notification_for_a_maximal_route_refresh_fits_the_message_size_and_its_length_is_true() {
    for (ip, peer_extended, want_len) in [
        (Ipv4Addr::new(127, 0, 0, 17), false, 4096),
        (Ipv4Addr::new(127, 0, 0, 18), true, 65535),
    ] {
        let mut peer = RawPeer::listen(ip);
        let _speaker = Speaker::start(SpeakerSpec::with(vec![NeighborSpec::active(peer.addr())]));
        peer.accept();
        let mut open = peer.open();
        if peer_extended {
            open.params[0].push(ferry::wire::Capability::ExtendedMessage);
        }
        peer.send(&Message::Open(open));
        assert!(matches!(peer.next().msg, Ok(Message::Open(_))));
        peer.send(&Message::Keepalive);
        assert!(peer.next().is_keepalive());
        peer.initial_sync(2);

        let mut body = vec![0, 1, 1, 1]; // IPv4 unicast BoRR ...
        body.resize(65535 - 19, 0xab); // ... with 65,512 octets too many
        let rr = msg(ROUTE_REFRESH, &body);
        assert_eq!(rr.len(), 65535);
        peer.send_raw(&rr);
        let r = peer.wait_for("NOTIFICATION", WAIT, |r| {
            !r.is_keepalive() && r.update().is_none()
        });
        peer.wait_closed();
        let b = &r.bytes;
        assert_eq!(
            b.len(),
            want_len,
            "extended {peer_extended}: octets received"
        );
        let length = usize::from(u16::from_be_bytes([b[16], b[17]]));
        assert_eq!(length, b.len(), "extended {peer_extended}: Length field");
        assert_eq!(&b[18..21], &[3, 7, 1], "NOTIFICATION 7/1");
        // The data is the head of the offending message.
        assert_eq!(&b[21..], &rr[..want_len - 21]);
        let all = peer.received();
        let i = all.iter().position(|x| x.at == r.at && x.bytes == r.bytes);
        assert_eq!(i, Some(all.len() - 1), "messages after the NOTIFICATION");
    }
}

/// RFC 7607 §2: an UPDATE whose AS_PATH holds AS 0 is malformed, handled as RFC 7606 §7.2 says
/// (treat-as-withdraw): the route the peer announced before is withdrawn, nothing is sent back
/// and the session stays up. An AGGREGATOR with AS 0 is only discarded (RFC 7606 §7.7).
#[test]
fn as_zero_in_as_path_withdraws_the_route_and_keeps_the_session() {
    let ip = Ipv4Addr::new(127, 0, 0, 19);
    let (speaker, mut peer) = established_pair(ip);
    let received = |s: &Speaker| s.status()[0]["prefixes_received"].clone();
    let wait_received = |s: &Speaker, n: u64| {
        let deadline = Instant::now() + WAIT;
        while received(s) != n {
            assert!(Instant::now() < deadline, "prefixes_received never {n}");
            thread::sleep(Duration::from_millis(20));
        }
    };
    peer.send_raw(&update(&[], &base_attrs(ip), &NLRI));
    wait_received(&speaker, 1);

    let with_zero = [
        attr(T, 1, &[0]),
        attr(T, 2, &[2, 2, 0, 0, 0xfd, 0xe9, 0, 0, 0, 0]),
        attr(T, 3, &ip.octets()),
    ]
    .concat();
    peer.send_raw(&update(&[], &with_zero, &NLRI));
    peer.expect_quiet(Duration::from_millis(500));
    let status = speaker.status();
    assert_eq!(status[0]["state"], "Established", "{status:?}");
    assert_eq!(status[0]["prefixes_received"], 0, "{status:?}");
    assert!(status[0]["last_error"].is_null(), "{status:?}");

    // AGGREGATOR 0 192.0.2.1: the attribute goes, the route stays.
    let aggregator = attr(O | T, 7, &[0, 0, 0, 0, 192, 0, 2, 1]);
    peer.send_raw(&update(&[], &[base_attrs(ip), aggregator].concat(), &NLRI));
    wait_received(&speaker, 1);
    assert_eq!(speaker.status()[0]["state"], "Established");
}

/// A field of /proc/PID/status in kB (VmRSS: now, VmHWM: peak).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// An UPDATE announcing host route 2001:db8::`i`/128 (MP_REACH_NLRI, next hop 2001:db8::1)
/// with a COMMUNITIES attribute of 15,000 communities (60,000 octets) unique to it.
fn hostile_update(i: u32) -> Vec<u8> {
    let mut communities = Vec::with_capacity(60_000);
    for c in 0..15_000u32 {
        communities.extend_from_slice(&(i << 16 | c).to_be_bytes());
    }
    let mut comm = vec![O | T | 0x10, 8];
    comm.extend_from_slice(&(communities.len() as u16).to_be_bytes());
    comm.extend_from_slice(&communities);
    let nh: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let host = std::net::Ipv6Addr::from(u128::from(nh) - 1 + u128::from(i));
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&nh.octets());
    mp.push(0);
    mp.push(128);
    mp.extend_from_slice(&host.octets());
    let attrs = [
        attr(T, 1, &[0]),
        attr(T, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
        attr(O, 14, &mp),
        comm,
    ]
    .concat();
    update(&[], &attrs, &[])
}

/// Send up to `count` hostile UPDATEs; returns how many were written before the speaker
/// closed the connection. The UPDATEs keep the speaker's hold timer running; the KEEPALIVE
/// thread is stopped as its writes would land inside a partly written UPDATE.
fn flood(peer: &RawPeer, count: u32) -> u32 {
    peer.stop_keepalives();
    thread::sleep(Duration::from_millis(100));
    for i in 0..count {
        if peer.is_closed() || peer.try_send_raw(&hostile_update(i)).is_err() {
            return i;
        }
    }
    count
}

/// Issue 15 item 7: max_prefixes bounds how many routes a peer holds, not their memory. A peer
/// sending host routes each with its own 60 KB COMMUNITIES is stopped by max_attribute_bytes:
/// Cease / Out of Resources (6/8, RFC 4486 §4, no data), a log line naming the peer, the
/// budget and the usage, and the speaker's peak RSS stays near the budget.
#[test]
fn a_peer_over_its_attribute_budget_gets_cease_out_of_resources_and_memory_stays_bounded() {
    let ip = Ipv4Addr::new(127, 0, 0, 20);
    let budget = 16 << 20;
    let (speaker, mut peer) =
        established_pair_with(ip, &format!("max_attribute_bytes = {budget}\n"));
    let before = proc_kb(speaker.pid(), "VmRSS");
    let sent = flood(&peer, 2_000);
    expect_closed_with(&speaker, &mut peer, &notification(6, 8, &[]));
    let peak = proc_kb(speaker.pid(), "VmHWM");
    eprintln!(
        "attribute budget {budget}: {sent} hostile UPDATEs written, RSS before {before} kB, peak {peak} kB"
    );
    // 16 MiB of attributes plus decode buffers: ~20-24 MB measured. Without the budget the
    // 2,000 UPDATEs take ~129 MB more (the ignored test below).
    assert!(
        peak < before + 64 * 1024,
        "peak RSS {peak} kB, {} kB above the {before} kB before the flood",
        peak - before
    );
    let log = speaker.log();
    let line = log
        .lines()
        .find(|l| l.contains("attribute budget exceeded"))
        .unwrap_or_else(|| panic!("no log line:\n{log}"));
    for want in [ip.to_string(), budget.to_string(), "usage".to_string()] {
        assert!(line.contains(&want), "{want} not in {line}");
    }
}

/// The figure without the budget (set far above what the flood needs): run with
/// `cargo nextest run --test speaker_malformed --run-ignored only` to see the peak RSS.
#[test]
#[ignore = "measurement: 2,000 x 60 KB held, ~130 MB RSS"]
fn measure_rss_of_the_hostile_flood_without_a_budget() {
    let ip = Ipv4Addr::new(127, 0, 0, 21);
    let (speaker, mut peer) = established_pair_with(ip, "max_attribute_bytes = 8589934592\n");
    let before = proc_kb(speaker.pid(), "VmRSS");
    assert_eq!(flood(&peer, 2_000), 2_000);
    let deadline = Instant::now() + Duration::from_secs(120);
    while speaker.status()[0]["prefixes_received"] != 2_000 {
        assert!(Instant::now() < deadline, "routes not all received");
        thread::sleep(Duration::from_millis(100));
    }
    peer.expect_quiet(Duration::from_millis(100));
    let (rss, peak) = (
        proc_kb(speaker.pid(), "VmRSS"),
        proc_kb(speaker.pid(), "VmHWM"),
    );
    eprintln!("no budget: RSS before {before} kB, after {rss} kB, peak {peak} kB");
}

/// RFC 7607 §2: a peer whose OPEN claims AS 0 gets OPEN Message Error / Bad Peer AS (2/2) with
/// the My AS field as data, and no session.
#[test]
fn an_open_from_as_0_gets_bad_peer_as() {
    let ip = Ipv4Addr::new(127, 0, 0, 22);
    let mut peer = RawPeer::listen(ip);
    let speaker = Speaker::start(SpeakerSpec::with(vec![NeighborSpec::active(peer.addr())]));
    peer.accept();
    peer.asn = 0;
    peer.send(&Message::Open(peer.open()));
    assert!(
        matches!(peer.next().msg, Ok(Message::Open(_))),
        "the speaker's OPEN"
    );
    let (_, bytes) = peer.expect_notification();
    assert_eq!(hex::encode(bytes), hex::encode(notification(2, 2, &[0, 0])));
    peer.wait_closed();
    let status = wait_down(&speaker, ip);
    assert!(
        status["last_error"].as_str().unwrap().contains("RFC 7607"),
        "{status}"
    );
}
