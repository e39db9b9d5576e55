//! Connection collision (RFC 4271 §6.8) between `ferry speaker` and a raw peer that both
//! connect at once: the speaker's outbound connection waits in OpenSent while the peer's
//! inbound connection arrives and sends its OPEN.
//!
//! Proves: the connection opened by the side with the higher BGP Identifier is kept and the
//! other is closed with Cease / Connection Collision Resolution (6/7) — both ways round — and
//! the kept connection reaches Established. Failure injected: the collision itself (the raw
//! peer holds back its OPEN on the speaker's connection and connects in from the same address).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ferry::wire::Message;
use support::*;

const SPEAKER_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The speaker connects to `outbound` (a listening raw peer) and listens itself; returns the
/// speaker, the raw peer's end of the speaker's connection (OPEN received, not answered) and the
/// raw peer's own connection into the speaker (OPEN sent).
fn collide(peer_ip: Ipv4Addr, speaker_id: Ipv4Addr) -> (Speaker, RawPeer, RawPeer) {
    let listen = SocketAddr::new(IpAddr::V4(SPEAKER_V4), free_port(SPEAKER_V4));
    let mut outbound = RawPeer::listen(peer_ip);
    let speaker = Speaker::start(SpeakerSpec {
        listen: Some(listen),
        router_id: Some(speaker_id),
        ..SpeakerSpec::with(vec![NeighborSpec::active(outbound.addr())])
    });
    outbound.accept();
    match outbound.next().msg {
        Ok(Message::Open(_)) => {}
        other => panic!("expected the speaker's OPEN on its own connection, got {other:?}"),
    }
    speaker.wait_state(IpAddr::V4(peer_ip), "OpenSent");
    let mut inbound = RawPeer::at(peer_ip);
    inbound.connect(listen);
    inbound.send(&Message::Open(inbound.open()));
    (speaker, outbound, inbound)
}

#[test]
fn higher_peer_identifier_keeps_the_peers_connection() {
    let peer_ip = Ipv4Addr::new(127, 0, 0, 41);
    // The raw peer's identifier is 192.0.2.141, above the speaker's 192.0.2.1.
    let (speaker, mut outbound, mut inbound) = collide(peer_ip, Ipv4Addr::new(192, 0, 2, 1));
    let (n, _) = outbound.expect_notification();
    assert_eq!(
        (n.code, n.subcode),
        (6, 7),
        "speaker's own connection closed by collision"
    );
    outbound.wait_closed();
    match inbound.next().msg {
        Ok(Message::Open(o)) => assert_eq!(o.router_id, Ipv4Addr::new(192, 0, 2, 1)),
        other => panic!("expected OPEN on the peer's connection, got {other:?}"),
    }
    assert!(inbound.next().is_keepalive());
    inbound.send(&Message::Keepalive);
    speaker.wait_state(IpAddr::V4(peer_ip), "Established");
    inbound.initial_sync(2);
}

#[test]
fn higher_local_identifier_keeps_the_speakers_connection() {
    let peer_ip = Ipv4Addr::new(127, 0, 0, 42);
    // The speaker's identifier 203.0.113.254 is above the raw peer's 192.0.2.142.
    let (speaker, mut outbound, mut inbound) = collide(peer_ip, Ipv4Addr::new(203, 0, 113, 254));
    match inbound.next().msg {
        Ok(Message::Open(_)) => {}
        other => panic!("expected the speaker's OPEN on the peer's connection, got {other:?}"),
    }
    let (n, _) = inbound.expect_notification();
    assert_eq!(
        (n.code, n.subcode),
        (6, 7),
        "peer's connection closed by collision"
    );
    inbound.wait_closed();
    outbound.send(&Message::Open(outbound.open()));
    outbound.send(&Message::Keepalive);
    assert!(
        outbound.next().is_keepalive(),
        "speaker confirms on its own connection"
    );
    speaker.wait_state(IpAddr::V4(peer_ip), "Established");
}
