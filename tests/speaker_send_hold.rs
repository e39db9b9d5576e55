//! RFC 9687 SendHoldTimer against a peer that stops reading.
//!
//! Proves: a peer that keeps its session alive (it sends KEEPALIVEs) but reads nothing, with
//! megabytes of UPDATEs waiting for it, is dropped by the speaker with NOTIFICATION 8 (Send
//! Hold Timer Expired) within the send hold time, and the speaker keeps serving its API
//! meanwhile; with `send_hold_time = 0` the same peer stays Established (so the test can fail).
//! Failures injected: a receiver whose TCP window stays closed (tiny receive buffer, no reads).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ferry::wire::{Afi, Capability, Context, Message, Open, Safi};
use support::*;

/// Hold time of the session: the send hold time is at least twice it (RFC 9687 §3).
const HOLD: u16 = 3;

/// Read one whole BGP message.
fn read_message(s: &mut TcpStream) -> Message {
    let mut header = [0u8; 19];
    s.read_exact(&mut header).expect("read header");
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let mut msg = header.to_vec();
    msg.resize(len, 0);
    s.read_exact(&mut msg[19..]).expect("read body");
    Message::decode(&msg, &Context::default()).expect("decode")
}

/// A peer on `ip` that completes the handshake, then never reads again but sends a KEEPALIVE
/// every second. Its receive buffer is as small as Linux allows, so the window closes early.
fn stalled_peer(ip: Ipv4Addr, speaker_extra: &str) -> (Speaker, TcpStream) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::RcvBuf, &1024).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let speaker = Speaker::start(SpeakerSpec::with(vec![NeighborSpec {
        hold_time: HOLD,
        extra: speaker_extra.to_owned(),
        ..NeighborSpec::active(addr)
    }]));
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let open = Open::new(
        PEER_ASN,
        HOLD,
        Ipv4Addr::new(192, 0, 2, 77),
        vec![
            Capability::Multiprotocol {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
            },
            Capability::FourOctetAs(PEER_ASN),
        ],
    );
    s.write_all(&Message::Open(open).to_bytes(&Context::default()))
        .unwrap();
    assert!(matches!(read_message(&mut s), Message::Open(_)));
    s.write_all(&Message::Keepalive.to_bytes(&Context::default()))
        .unwrap();
    assert!(matches!(read_message(&mut s), Message::Keepalive));
    speaker.wait_state(ip.into(), "Established");
    let mut ka = s.try_clone().unwrap();
    thread::spawn(move || {
        let bytes = Message::Keepalive.to_bytes(&Context::default());
        while ka.write_all(&bytes).is_ok() {
            thread::sleep(Duration::from_secs(1));
        }
    });
    (speaker, s)
}

/// 20,000 routes, each with its own 30 large communities so that each needs its own UPDATE of
/// about 420 octets: 8 MB on the wire, more than the kernel buffers and the speaker's queue
/// together hold, with few routes to sync.
fn announce_many(speaker: &Speaker) {
    let routes: Vec<serde_json::Value> = (0..20_000u32)
        .map(|i| {
            let [_, b, c, d] = i.to_be_bytes();
            let lcs: Vec<String> = (0..30).map(|k| format!("65100:{i}:{k}")).collect();
            serde_json::json!({
                "prefix": format!("10.{b}.{c}.{d}/32"),
                "next_hop": "192.0.2.1",
                "large_communities": lcs,
            })
        })
        .collect();
    let file = speaker.state_dir().with_file_name("many.json");
    std::fs::write(&file, serde_json::to_vec(&routes).unwrap()).unwrap();
    speaker.cli_ok(&["announce", "--file", file.to_str().unwrap()]);
}

fn peer_state(speaker: &Speaker) -> (String, String) {
    let p = &speaker.status()[0];
    (
        p["state"].as_str().unwrap_or_default().to_owned(),
        p["last_error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn a_peer_that_stops_reading_is_dropped_at_the_send_hold_time() {
    // 1 s asked; RFC 9687 §3 makes it at least 2 x hold = 6 s.
    let (speaker, _stalled) = stalled_peer(Ipv4Addr::new(127, 0, 41, 1), "send_hold_time = 1");
    let started = Instant::now();
    announce_many(&speaker);
    let deadline = started + Duration::from_secs(30);
    let (state, error) = loop {
        let (state, error) = peer_state(&speaker);
        if state != "Established" || Instant::now() > deadline {
            break (state, error);
        }
        thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    assert_ne!(state, "Established", "still up after {took:?}");
    assert!(
        error.contains("Send Hold") || error.contains("SendHold") || error.contains("8/"),
        "last_error: {error:?}\n{}",
        speaker.log()
    );
    // 6 s after the last progress; filling the buffers takes a few seconds more in a debug
    // build on a loaded machine (9.9 s measured in all).
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(25),
        "dropped after {took:?}, send hold 6 s"
    );
    eprintln!("stalled peer dropped {took:?} after the announce (send hold 6 s): {error}");
}

#[test]
fn without_the_send_hold_timer_the_stalled_peer_stays() {
    let (speaker, _stalled) = stalled_peer(Ipv4Addr::new(127, 0, 41, 2), "send_hold_time = 0");
    announce_many(&speaker);
    thread::sleep(Duration::from_secs(9));
    assert_eq!(peer_state(&speaker).0, "Established");
    // The speaker still answers while one peer is stalled.
    let t = Instant::now();
    speaker.cli_ok(&["status"]);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
