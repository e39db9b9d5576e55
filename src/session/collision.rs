//! Connection collision detection (RFC 4271 §6.8, RFC 6286 §2.3).
//!
//! When both speakers connect at once there are two connections for one peering, each with
//! its own [`super::Session`]. Once the peer's BGP Identifier is known (its OPEN arrived on
//! one connection while the other is in OpenConfirm), the driver asks [`connection_to_close`]
//! which one loses and feeds that session [`super::Event::CollisionDump`], which sends
//! Cease / Connection Collision Resolution (6/7) and closes it.
//!
//! The rule: keep the connection opened by the speaker with the higher BGP Identifier,
//! compared as 4-octet unsigned integers in host order (§6.8 steps 1-3). RFC 6286 §2.3: if
//! the identifiers are equal (possible between ASes), keep the connection opened by the
//! speaker with the larger AS number.
//!
//! Never does: hold connections or look at states; that is the driver's job.

use std::net::Ipv4Addr;

use crate::wire::notification::cease;
use crate::wire::Notification;

/// Who opened a TCP connection, seen from the local speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer connected to us (TcpConnectionConfirmed).
    Inbound,
    /// We connected to the peer (TcpConnectionAcknowledged).
    Outbound,
}

impl Direction {
    pub fn other(self) -> Self {
        match self {
            Self::Inbound => Self::Outbound,
            Self::Outbound => Self::Inbound,
        }
    }
}

/// One side's identity for collision resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaker {
    pub router_id: Ipv4Addr,
    pub asn: u32,
}

/// The connection to close with Cease 6/7, or `None` when both sides have the same
/// identifier and AS (OPEN checks reject that as Bad BGP Identifier before it gets here;
/// the driver then closes both).
pub fn connection_to_close(local: Speaker, remote: Speaker) -> Option<Direction> {
    let local_key = (u32::from(local.router_id), local.asn);
    let remote_key = (u32::from(remote.router_id), remote.asn);
    match local_key.cmp(&remote_key) {
        // §6.8 step 2: the remote side wins, its connection (inbound to us) stays.
        std::cmp::Ordering::Less => Some(Direction::Outbound),
        // §6.8 step 3: we win, the connection we opened stays.
        std::cmp::Ordering::Greater => Some(Direction::Inbound),
        std::cmp::Ordering::Equal => None,
    }
}

/// Cease / Connection Collision Resolution (RFC 4486 §4, subcode 7).
pub fn collision_notification() -> Notification {
    Notification {
        code: cease::CODE,
        subcode: cease::CONNECTION_COLLISION_RESOLUTION,
        data: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(id: [u8; 4], asn: u32) -> Speaker {
        Speaker {
            router_id: Ipv4Addr::from(id),
            asn,
        }
    }

    #[test]
    fn lower_local_id_closes_own_outbound_connection() {
        let local = sp([192, 0, 2, 1], 65100);
        let remote = sp([192, 0, 2, 2], 65001);
        assert_eq!(
            connection_to_close(local, remote),
            Some(Direction::Outbound)
        );
    }

    #[test]
    fn higher_local_id_closes_the_inbound_connection() {
        let local = sp([192, 0, 2, 2], 65100);
        let remote = sp([192, 0, 2, 1], 65001);
        assert_eq!(connection_to_close(local, remote), Some(Direction::Inbound));
    }

    #[test]
    fn ids_compare_as_unsigned_integers_not_per_octet_strings() {
        // 10.0.0.1 < 192.0.2.1 although "10" > "1" as text; 128.x beats 127.x (no sign).
        assert_eq!(
            connection_to_close(sp([10, 0, 0, 1], 1), sp([192, 0, 2, 1], 1)),
            Some(Direction::Outbound)
        );
        assert_eq!(
            connection_to_close(sp([128, 0, 0, 0], 1), sp([127, 255, 255, 255], 1)),
            Some(Direction::Inbound)
        );
    }

    #[test]
    fn equal_ids_fall_back_to_larger_asn_rfc6286() {
        let id = [192, 0, 2, 9];
        assert_eq!(
            connection_to_close(sp(id, 65200), sp(id, 65100)),
            Some(Direction::Inbound)
        );
        assert_eq!(
            connection_to_close(sp(id, 65100), sp(id, 65200)),
            Some(Direction::Outbound)
        );
        assert_eq!(connection_to_close(sp(id, 65100), sp(id, 65100)), None);
    }

    #[test]
    fn both_views_agree_on_the_surviving_connection() {
        // What is outbound for one speaker is inbound for the other: both must keep the same
        // TCP connection, so their answers are opposite directions.
        let a = sp([192, 0, 2, 1], 65100);
        let b = sp([198, 51, 100, 1], 65001);
        let a_closes = connection_to_close(a, b).unwrap();
        let b_closes = connection_to_close(b, a).unwrap();
        assert_eq!(a_closes, b_closes.other());
    }

    #[test]
    fn notification_is_cease_collision_without_data() {
        let n = collision_notification();
        assert_eq!(
            (n.code, n.subcode, n.data.len()),
            (cease::CODE, cease::CONNECTION_COLLISION_RESOLUTION, 0)
        );
    }
}
