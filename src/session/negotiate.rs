//! The peer's OPEN checked against configuration, and what the two OPENs agree on.
//!
//! [`check_open`] implements the checks the codec cannot do alone, each answered with the
//! NOTIFICATION of RFC 4271 §6.2 and a sentence for the log:
//! - AS 0 (RFC 7607 §2) and a My AS field inconsistent with the 4-octet AS capability
//!   (RFC 6793 §4.1: AS_TRANS when the AS does not fit 2 octets, else the AS itself): 2/2.
//! - Peer AS other than configured: 2/2, data = the AS as the peer sent it (the 2-octet My AS
//!   field, or the 4-octet capability value when that carried it), as FRR does.
//! - BGP Identifier equal to ours on an iBGP session (RFC 6286 §2.2): 2/3, data = the id.
//! - Hold time 1 or 2 (RFC 4271 §4.2) or below the configured minimum: 2/6.
//! - Role (RFC 9234 §4.2): a role that does not pair with ours, several different roles, or
//!   none in strict mode: Role Mismatch 2/11.
//! - Required capabilities missing (RFC 5492 §5), or no address family in common: 2/7, data =
//!   the missing capabilities as code, length, value.
//!
//! [`negotiate`] derives [`Negotiated`]: hold time = the smaller of the two (§4.2), keepalive
//! = hold / 3 (none when the hold time is 0, §4.4), 4-octet AS and extended message when both
//! advertise them (RFC 6793, RFC 8654), families in common (RFC 4760 §8; no multiprotocol
//! capability means IPv4 unicast), route refresh (RFC 2918) and enhanced route refresh
//! (RFC 7313) when both advertise, and the peer's graceful restart capability (RFC 4724).
//!
//! Never does: change state or send anything.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::config::SessionConfig;
use crate::wire::capability::{GracefulRestart, Role};
use crate::wire::iana::AS_TRANS;
use crate::wire::{Capability, Context, ErrorKind, Family, Notification, Open};

/// What the session runs with once both OPENs are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_asn: u32,
    pub peer_router_id: Ipv4Addr,
    /// Seconds; 0 means neither side runs a hold or keepalive timer.
    pub hold_time: u16,
    /// Seconds between our KEEPALIVEs; 0 when `hold_time` is 0.
    pub keepalive_time: u16,
    pub four_octet_as: bool,
    /// Both advertised extended messages: we send UPDATEs of up to 65,535 octets. Sending
    /// needs only the peer's capability (RFC 8654 §3), but FRR and BIRD, too, wait for both.
    pub extended_message: bool,
    /// We advertised extended messages: we must accept messages of up to 65,535 octets,
    /// whatever the peer advertised (RFC 8654 §4).
    pub receive_extended_message: bool,
    /// Families both sides advertised, sorted.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability as it sent it.
    pub peer_graceful_restart: Option<GracefulRestart>,
    pub peer_role: Option<Role>,
}

impl Negotiated {
    /// The codec context for the messages we send on this session.
    pub fn context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            extended_message: self.extended_message,
        }
    }

    /// The codec context for the messages we receive: the length limit follows what we
    /// advertised (RFC 8654 §4).
    pub fn receive_context(&self) -> Context {
        Context {
            extended_message: self.receive_extended_message,
            ..self.context()
        }
    }

    pub fn hold(&self) -> Option<Duration> {
        (self.hold_time != 0).then(|| Duration::from_secs(self.hold_time.into()))
    }

    pub fn keepalive(&self) -> Option<Duration> {
        (self.hold_time != 0).then(|| Duration::from_secs(self.keepalive_time.into()))
    }

    pub fn has_family(&self, family: Family) -> bool {
        self.families.contains(&family)
    }
}

/// A peer OPEN we refuse: the NOTIFICATION to send and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRejection {
    pub notification: Notification,
    pub detail: String,
}

fn reject(kind: ErrorKind, data: impl Into<Bytes>, detail: String) -> OpenRejection {
    let (code, subcode) = kind.code_subcode();
    OpenRejection {
        notification: Notification {
            code,
            subcode,
            data: data.into(),
        },
        detail,
    }
}

fn encode_caps<'a>(caps: impl IntoIterator<Item = &'a Capability>) -> Bytes {
    let mut buf = BytesMut::new();
    caps.into_iter().for_each(|c| c.encode(&mut buf));
    buf.freeze()
}

fn families_of(open: &Open) -> BTreeSet<Family> {
    let mut mp = open
        .capabilities()
        .filter_map(|c| match c {
            Capability::Multiprotocol { afi, safi } => Some(Family::from_afi_safi(*afi, *safi)),
            _ => None,
        })
        .peekable();
    if mp.peek().is_none() {
        // No multiprotocol capability: plain BGP-4, IPv4 unicast only.
        return BTreeSet::from([Family::Ipv4Unicast]);
    }
    mp.flatten().collect()
}

fn has(open: &Open, code: u8) -> bool {
    open.capabilities().any(|c| c.code() == code)
}

/// RFC 9234 §4.2 table of allowed (local, remote) role pairs.
pub fn roles_pair(local: Role, remote: Role) -> bool {
    use Role::*;
    matches!(
        (local, remote),
        (Provider, Customer)
            | (Customer, Provider)
            | (RouteServer, RouteServerClient)
            | (RouteServerClient, RouteServer)
            | (Peer, Peer)
    )
}

/// Check the peer's OPEN against our configuration and negotiate (RFC 4271 §6.2).
pub fn check_open(
    config: &SessionConfig,
    local: &Open,
    peer: &Open,
) -> Result<Negotiated, OpenRejection> {
    let as4 = peer.capabilities().find_map(|c| match c {
        Capability::FourOctetAs(a) => Some(*a),
        _ => None,
    });
    let my_as_field = Bytes::copy_from_slice(&peer.my_as.to_be_bytes());
    if peer.my_as == 0 {
        return Err(reject(
            ErrorKind::BadPeerAs,
            my_as_field,
            "peer sent My AS 0 (RFC 7607)".into(),
        ));
    }
    if let Some(a) = as4 {
        let as4_field = Bytes::copy_from_slice(&a.to_be_bytes());
        if a == 0 {
            return Err(reject(
                ErrorKind::BadPeerAs,
                as4_field,
                "peer sent 4-octet AS 0 (RFC 7607)".into(),
            ));
        }
        let expected_field = u16::try_from(a).unwrap_or(AS_TRANS);
        if peer.my_as != expected_field {
            return Err(reject(
                ErrorKind::BadPeerAs,
                my_as_field,
                format!(
                    "peer's 4-octet AS {a} needs My AS {expected_field}, got {} (RFC 6793 §4.1)",
                    peer.my_as
                ),
            ));
        }
        if a != config.peer_asn {
            return Err(reject(
                ErrorKind::BadPeerAs,
                as4_field,
                format!(
                    "peer is AS {a}, configured remote AS is {}",
                    config.peer_asn
                ),
            ));
        }
    } else if u32::from(peer.my_as) != config.peer_asn {
        return Err(reject(
            ErrorKind::BadPeerAs,
            my_as_field,
            format!(
                "peer is AS {} (no 4-octet AS capability), configured remote AS is {}",
                peer.my_as, config.peer_asn
            ),
        ));
    }

    let id_field = Bytes::copy_from_slice(&peer.router_id.octets());
    if peer.router_id.is_unspecified() || (config.is_ibgp() && peer.router_id == config.router_id) {
        return Err(reject(
            ErrorKind::BadBgpIdentifier,
            id_field,
            format!(
                "peer BGP identifier {} is zero or equals ours on an iBGP session (RFC 6286 §2.2)",
                peer.router_id
            ),
        ));
    }

    if matches!(peer.hold_time, 1 | 2)
        || (config.min_hold_time > 0 && peer.hold_time < config.min_hold_time)
    {
        return Err(reject(
            ErrorKind::UnacceptableHoldTime,
            Bytes::new(),
            format!(
                "peer hold time {} s is unacceptable (minimum {} s, never 1 or 2)",
                peer.hold_time, config.min_hold_time
            ),
        ));
    }

    let peer_roles: BTreeSet<u8> = peer
        .capabilities()
        .filter_map(|c| match c {
            Capability::Role(r) => Some(r.code()),
            _ => None,
        })
        .collect();
    let peer_role = match peer_roles.len() {
        0 => None,
        1 => peer_roles.first().map(|c| Role::from_code(*c)),
        _ => {
            return Err(reject(
                ErrorKind::RoleMismatch,
                Bytes::new(),
                format!("peer sent {} different BGP roles", peer_roles.len()),
            ))
        }
    };
    if let Some(local_role) = config.role {
        match peer_role {
            Some(r) if !roles_pair(local_role, r) => {
                return Err(reject(
                    ErrorKind::RoleMismatch,
                    Bytes::new(),
                    format!(
                        "peer role {} does not pair with our role {}",
                        r.name().unwrap_or("unknown"),
                        local_role.name().unwrap_or("unknown")
                    ),
                ))
            }
            None if config.strict_role => {
                return Err(reject(
                    ErrorKind::RoleMismatch,
                    Bytes::new(),
                    "peer sent no BGP role and strict mode is on (RFC 9234 §4.2)".into(),
                ))
            }
            _ => {}
        }
    }

    let missing: Vec<&Capability> = config
        .required_capabilities
        .iter()
        .filter(|req| {
            !peer.capabilities().any(|c| match req {
                Capability::Multiprotocol { .. } => c == *req,
                _ => c.code() == req.code(),
            })
        })
        .collect();
    if !missing.is_empty() {
        let names: Vec<_> = missing.iter().map(|c| c.name()).collect();
        return Err(reject(
            ErrorKind::UnsupportedCapability,
            encode_caps(missing.iter().copied()),
            format!("peer lacks required capabilities: {}", names.join(", ")),
        ));
    }

    let negotiated = negotiate(local, peer);
    if negotiated.families.is_empty() {
        let ours = config.multiprotocol_capabilities();
        return Err(reject(
            ErrorKind::UnsupportedCapability,
            encode_caps(&ours),
            "no address family in common with the peer".into(),
        ));
    }
    Ok(negotiated)
}

/// What two OPENs agree on; assumes [`check_open`]'s checks passed or do not matter.
pub fn negotiate(local: &Open, peer: &Open) -> Negotiated {
    use crate::wire::iana::capability as code;
    let hold_time = local.hold_time.min(peer.hold_time);
    let both = |c| has(local, c) && has(peer, c);
    Negotiated {
        peer_asn: peer.asn(),
        peer_router_id: peer.router_id,
        hold_time,
        keepalive_time: hold_time / 3,
        four_octet_as: both(code::FOUR_OCTET_AS),
        extended_message: both(code::EXTENDED_MESSAGE),
        receive_extended_message: has(local, code::EXTENDED_MESSAGE),
        families: families_of(local)
            .intersection(&families_of(peer))
            .copied()
            .collect(),
        route_refresh: both(code::ROUTE_REFRESH),
        enhanced_route_refresh: both(code::ENHANCED_ROUTE_REFRESH),
        peer_graceful_restart: peer.capabilities().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        }),
        peer_role: peer.capabilities().find_map(|c| match c {
            Capability::Role(r) => Some(*r),
            _ => None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::capability::GracefulRestartFamily;
    use crate::wire::{Afi, Safi};

    const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn cfg() -> SessionConfig {
        SessionConfig::new(65100, LOCAL_ID, 65001)
    }

    fn mp(f: Family) -> Capability {
        Capability::Multiprotocol {
            afi: f.afi(),
            safi: f.safi(),
        }
    }

    fn peer_open(asn: u32, hold: u16, mut caps: Vec<Capability>) -> Open {
        caps.push(Capability::FourOctetAs(asn));
        Open::new(asn, hold, PEER_ID, caps)
    }

    fn check(config: &SessionConfig, peer: &Open) -> Result<Negotiated, OpenRejection> {
        check_open(config, &config.local_open(), peer)
    }

    fn rejected(config: &SessionConfig, peer: &Open) -> (u8, u8, Vec<u8>) {
        let r = check(config, peer).unwrap_err();
        (
            r.notification.code,
            r.notification.subcode,
            r.notification.data.to_vec(),
        )
    }

    #[test]
    fn hold_time_is_the_minimum_and_keepalive_a_third() {
        let c = SessionConfig {
            hold_time: 9,
            ..cfg()
        };
        let n = check(&c, &peer_open(65001, 90, vec![])).unwrap();
        assert_eq!((n.hold_time, n.keepalive_time), (9, 3));
        assert_eq!(n.hold(), Some(Duration::from_secs(9)));
        assert_eq!(n.keepalive(), Some(Duration::from_secs(3)));
        let n = check(&cfg(), &peer_open(65001, 10, vec![])).unwrap();
        assert_eq!((n.hold_time, n.keepalive_time), (10, 3));
        let n = check(&cfg(), &peer_open(65001, 3, vec![])).unwrap();
        assert_eq!((n.hold_time, n.keepalive_time), (3, 1));
    }

    #[test]
    fn hold_time_zero_on_either_side_means_no_timers() {
        let n = check(&cfg(), &peer_open(65001, 0, vec![])).unwrap();
        assert_eq!((n.hold_time, n.keepalive_time), (0, 0));
        assert_eq!((n.hold(), n.keepalive()), (None, None));
        let c = SessionConfig {
            hold_time: 0,
            ..cfg()
        };
        let n = check(&c, &peer_open(65001, 90, vec![])).unwrap();
        assert_eq!((n.hold(), n.keepalive()), (None, None));
    }

    #[test]
    fn minimum_hold_time_rejects_lower_and_zero_with_2_6() {
        let c = SessionConfig {
            min_hold_time: 9,
            ..cfg()
        };
        assert_eq!(rejected(&c, &peer_open(65001, 5, vec![])), (2, 6, vec![]));
        assert_eq!(rejected(&c, &peer_open(65001, 0, vec![])), (2, 6, vec![]));
        assert!(check(&c, &peer_open(65001, 9, vec![])).is_ok());
        // A hand-built OPEN with hold 2 (the codec rejects it on the wire) is refused too.
        assert_eq!(
            rejected(&cfg(), &peer_open(65001, 2, vec![])),
            (2, 6, vec![])
        );
    }

    #[test]
    fn wrong_peer_as_is_2_2_with_the_as_as_sent() {
        // 2-octet speaker: data is the My AS field.
        let two_octet = Open::new(65002, 90, PEER_ID, vec![]);
        assert_eq!(rejected(&cfg(), &two_octet), (2, 2, vec![0xfd, 0xea]));
        // 4-octet capability: data is its value.
        assert_eq!(
            rejected(&cfg(), &peer_open(65002, 90, vec![])),
            (2, 2, vec![0, 0, 0xfd, 0xea])
        );
        let c = SessionConfig {
            peer_asn: 4_200_000_001,
            ..cfg()
        };
        assert_eq!(
            rejected(&c, &peer_open(4_200_000_002, 90, vec![])),
            (2, 2, 4_200_000_002u32.to_be_bytes().to_vec())
        );
        assert!(check(&c, &peer_open(4_200_000_001, 90, vec![])).is_ok());
    }

    #[test]
    fn two_octet_peer_without_capability_is_accepted_and_not_four_octet() {
        let n = check(&cfg(), &Open::new(65001, 90, PEER_ID, vec![])).unwrap();
        assert!(!n.four_octet_as);
        assert_eq!(n.families, [Family::Ipv4Unicast]);
        assert!(!n.route_refresh);
        assert_eq!(
            n.context(),
            Context {
                four_octet_as: false,
                extended_message: false
            }
        );
    }

    #[test]
    fn my_as_must_be_as_trans_for_large_asn_and_equal_otherwise() {
        let c = SessionConfig {
            peer_asn: 4_200_000_001,
            ..cfg()
        };
        let mut o = peer_open(4_200_000_001, 90, vec![]);
        o.my_as = 65001;
        assert_eq!(rejected(&c, &o), (2, 2, vec![0xfd, 0xe9]));
        let mut o = peer_open(65001, 90, vec![]);
        o.my_as = AS_TRANS;
        assert_eq!(
            rejected(&cfg(), &o),
            (2, 2, AS_TRANS.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn as_zero_is_bad_peer_as_rfc7607() {
        let mut o = Open::new(65001, 90, PEER_ID, vec![Capability::FourOctetAs(0)]);
        assert_eq!(rejected(&cfg(), &o), (2, 2, vec![0, 0, 0, 0]));
        o.params.clear();
        o.my_as = 0;
        assert_eq!(rejected(&cfg(), &o), (2, 2, vec![0, 0]));
    }

    #[test]
    fn same_router_id_is_2_3_on_ibgp_only() {
        let ibgp = SessionConfig {
            peer_asn: 65100,
            ..cfg()
        };
        let mut o = peer_open(65100, 90, vec![]);
        o.router_id = LOCAL_ID;
        assert_eq!(rejected(&ibgp, &o), (2, 3, vec![192, 0, 2, 1]));
        let mut o = peer_open(65001, 90, vec![]);
        o.router_id = LOCAL_ID;
        assert!(check(&cfg(), &o).is_ok(), "eBGP may share a router id");
        o.router_id = Ipv4Addr::UNSPECIFIED;
        assert_eq!(rejected(&cfg(), &o), (2, 3, vec![0, 0, 0, 0]));
    }

    #[test]
    fn families_in_common_and_no_mp_means_ipv4() {
        let c = SessionConfig {
            families: vec![Family::Ipv6Unicast, Family::Ipv4Unicast],
            ..cfg()
        };
        let n = check(&c, &peer_open(65001, 90, vec![mp(Family::Ipv6Unicast)])).unwrap();
        assert_eq!(n.families, [Family::Ipv6Unicast]);
        let n = check(&c, &peer_open(65001, 90, vec![])).unwrap();
        assert_eq!(n.families, [Family::Ipv4Unicast]);
        let n = check(
            &c,
            &peer_open(
                65001,
                90,
                vec![
                    mp(Family::Ipv6Unicast),
                    Capability::Multiprotocol {
                        afi: Afi::Ipv4,
                        safi: Safi::Unknown(128),
                    },
                    mp(Family::Ipv4Unicast),
                ],
            ),
        )
        .unwrap();
        assert_eq!(n.families, [Family::Ipv4Unicast, Family::Ipv6Unicast]);
        assert!(n.has_family(Family::Ipv6Unicast));
    }

    #[test]
    fn no_family_in_common_is_2_7_listing_ours() {
        let c = SessionConfig {
            families: vec![Family::Ipv6Unicast],
            ..cfg()
        };
        // Peer only speaks IPv4 (implicitly).
        assert_eq!(
            rejected(&c, &peer_open(65001, 90, vec![])),
            (2, 7, vec![1, 4, 0, 2, 0, 1])
        );
    }

    #[test]
    fn missing_required_capabilities_are_2_7_with_each_capability() {
        let c = SessionConfig {
            required_capabilities: vec![
                Capability::RouteRefresh,
                mp(Family::Ipv6Unicast),
                Capability::FourOctetAs(65100),
            ],
            ..cfg()
        };
        // Has the 4-octet AS (any value matches by code), lacks the other two.
        assert_eq!(
            rejected(&c, &peer_open(65001, 90, vec![mp(Family::Ipv4Unicast)])),
            (2, 7, vec![2, 0, 1, 4, 0, 2, 0, 1])
        );
        let ok = peer_open(
            65001,
            90,
            vec![
                mp(Family::Ipv4Unicast),
                mp(Family::Ipv6Unicast),
                Capability::RouteRefresh,
            ],
        );
        assert!(check(&c, &ok).is_ok());
    }

    #[test]
    fn role_pairs_follow_rfc9234_table() {
        use Role::*;
        let all = [Provider, RouteServer, RouteServerClient, Customer, Peer];
        let allowed: Vec<_> = all
            .iter()
            .flat_map(|l| all.iter().map(move |r| (*l, *r)))
            .filter(|(l, r)| roles_pair(*l, *r))
            .collect();
        assert_eq!(
            allowed,
            [
                (Provider, Customer),
                (RouteServer, RouteServerClient),
                (RouteServerClient, RouteServer),
                (Customer, Provider),
                (Peer, Peer)
            ]
        );
        assert!(!roles_pair(Peer, Unknown(9)));
    }

    #[test]
    fn role_mismatch_missing_in_strict_and_conflicting_roles_are_2_11() {
        let c = SessionConfig {
            role: Some(Role::Customer),
            ..cfg()
        };
        assert_eq!(
            rejected(
                &c,
                &peer_open(65001, 90, vec![Capability::Role(Role::Customer)])
            ),
            (2, 11, vec![])
        );
        let n = check(
            &c,
            &peer_open(65001, 90, vec![Capability::Role(Role::Provider)]),
        )
        .unwrap();
        assert_eq!(n.peer_role, Some(Role::Provider));
        // Missing role: fine unless strict.
        assert!(check(&c, &peer_open(65001, 90, vec![])).is_ok());
        let strict = SessionConfig {
            strict_role: true,
            ..c.clone()
        };
        assert_eq!(
            rejected(&strict, &peer_open(65001, 90, vec![])),
            (2, 11, vec![])
        );
        let two = peer_open(
            65001,
            90,
            vec![
                Capability::Role(Role::Provider),
                Capability::Role(Role::Peer),
            ],
        );
        assert_eq!(rejected(&c, &two), (2, 11, vec![]));
        // The same role twice is not a conflict.
        let twice = peer_open(
            65001,
            90,
            vec![
                Capability::Role(Role::Provider),
                Capability::Role(Role::Provider),
            ],
        );
        assert!(check(&c, &twice).is_ok());
    }

    #[test]
    fn optional_capabilities_need_both_sides() {
        let c = SessionConfig {
            extended_message: true,
            ..cfg()
        };
        let gr = GracefulRestart {
            flags: GracefulRestart::NOTIFICATION,
            restart_time: 120,
            families: vec![GracefulRestartFamily {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
                flags: 0x80,
            }],
        };
        let peer = peer_open(
            65001,
            90,
            vec![
                Capability::RouteRefresh,
                Capability::ExtendedMessage,
                Capability::GracefulRestart(gr.clone()),
            ],
        );
        let n = check(&c, &peer).unwrap();
        assert!(n.four_octet_as && n.extended_message && n.route_refresh);
        assert!(!n.enhanced_route_refresh, "peer did not advertise it");
        assert_eq!(n.peer_graceful_restart, Some(gr));
        assert_eq!(n.context().max_message_len(), 65535);
        // We did not advertise extended message: not negotiated even if the peer did, and
        // we accept only 4,096 octets.
        let n = check(&cfg(), &peer).unwrap();
        assert!(!n.extended_message);
        assert_eq!(n.receive_context().max_message_len(), 4096);
        assert_eq!((n.peer_asn, n.peer_router_id), (65001, PEER_ID));
    }

    /// RFC 8654 §4: having advertised extended messages we accept 65,535 octets even from a
    /// peer that did not advertise them; §3: we send them only to a peer that did (and, as
    /// FRR and BIRD do, only when both did).
    #[test]
    fn extended_messages_received_by_what_we_advertised_sent_when_both_did() {
        let c = SessionConfig {
            extended_message: true,
            ..cfg()
        };
        let n = check(&c, &peer_open(65001, 90, vec![])).unwrap();
        assert!(!n.extended_message);
        assert_eq!(n.context().max_message_len(), 4096);
        assert_eq!(n.receive_context().max_message_len(), 65535);
    }
}
