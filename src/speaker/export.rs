//! Per-peer export policy: the attributes a [`Route`] is sent with to one peer.
//!
//! Contract:
//! - [`PeerExport::export`] is a pure function of the route and the peer; the result is an
//!   [`AttrSet`] (attributes without NLRI) that is `Hash + Ord`, so identical sets compare
//!   equal and the Adj-RIB-Out groups the prefixes that share one into a single UPDATE.
//! - ORIGIN as configured (RFC 4271 §5.1.1).
//! - AS_PATH (RFC 4271 §5.1.2, §9.1.2.2): to an eBGP peer our ASN `1 + prepend` times as one
//!   AS_SEQUENCE; to an iBGP peer an empty path, or `prepend` copies when asked.
//! - Next hop: the route's explicit next hop (third-party, RFC 4271 §5.1.3), else next hop self:
//!   `local_v4` for IPv4 (NEXT_HOP), `local_v6` for IPv6 (MP_REACH_NLRI, RFC 4760 §3), plus
//!   `local_v6_link_local` to an eBGP peer (RFC 2545 §3). The driver sets
//!   `local_v6_link_local` only when the session runs over a link both ends share.
//! - MULTI_EXIT_DISC when configured; LOCAL_PREF to iBGP peers only, 100 unless configured
//!   (RFC 4271 §5.1.5); COMMUNITIES (RFC 1997) and LARGE_COMMUNITIES (RFC 8092) when non-empty.
//! - A route of a family the session did not negotiate is not exported (`Ok(None)`); next hop
//!   self without a local address of the family is an [`ExportError`].
//! - Attributes go on the wire in ascending type code order (RFC 4271 §5 recommends it).
//! - The route's [`Attributes`] pass through as they are but for LOCAL_PREF; a new one needs
//!   nothing here.
//!
//! Never does: decide which routes exist, or send anything.

use ipnet::{IpNet, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::attrs::Attributes;
use super::route::Route;
use crate::wire::mp::MpNextHop;
use crate::wire::{AsPath, AttributeValue, Family, MpReach, PathAttribute};

/// LOCAL_PREF sent to iBGP peers when the route does not set one.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What export needs to know about one session. [`PeerExport::export`] uses `peer_asn` only
/// to tell iBGP from eBGP ([`PeerExport::group_key`] relies on that).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerExport {
    pub local_asn: u32,
    pub peer_asn: u32,
    /// Our address on the session (or configured next-hop-self address) for IPv4 routes.
    pub local_v4: Option<Ipv4Addr>,
    /// Our global IPv6 address for IPv6 routes.
    pub local_v6: Option<Ipv6Addr>,
    /// Our link-local address on the link shared with the peer, when there is one.
    pub local_v6_link_local: Option<Ipv6Addr>,
    /// Families negotiated on the session (RFC 4760 §8).
    pub families: Vec<Family>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("{prefix} has next hop self but the session has no local {family} address; set next_hop on the route or give the neighbor a local address of that family")]
    NoLocalAddress { prefix: IpNet, family: Family },
}

/// The next hop of an exported route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    V4(Ipv4Addr),
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    fn mp(self) -> MpNextHop {
        match self {
            Self::V4(a) => MpNextHop::Ipv4(a),
            Self::V6 { global, link_local } => MpNextHop::Ipv6 { global, link_local },
        }
    }
}

/// The attributes of one or more outgoing routes, without their NLRI. Field order is the sort
/// order: family first, so IPv4 groups are sent before IPv6 ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrSet {
    pub family: Family,
    /// The route's own, LOCAL_PREF as this peer gets it.
    pub attrs: Attributes,
    pub as_path: AsPath,
    pub next_hop: NextHop,
}

impl AttrSet {
    /// The path attributes of an UPDATE carrying this set, in type code order. For IPv6 the
    /// MP_REACH_NLRI carries `ipv6_nlri`; for IPv4 the NLRI goes in the UPDATE's NLRI field and
    /// `ipv6_nlri` is unused.
    pub fn path_attributes(&self, ipv6_nlri: Vec<Ipv6Net>) -> Vec<PathAttribute> {
        let mut attrs = Vec::with_capacity(8);
        self.attrs.push_path_attributes(&mut attrs);
        attrs.push(PathAttribute::new(AttributeValue::AsPath(
            self.as_path.clone(),
        )));
        match (self.family, self.next_hop) {
            (Family::Ipv4Unicast, NextHop::V4(a)) => {
                attrs.push(PathAttribute::new(AttributeValue::NextHop(a)));
            }
            (Family::Ipv6Unicast, nh) => attrs.push(PathAttribute::new(AttributeValue::MpReach(
                MpReach::ipv6(nh.mp(), ipv6_nlri),
            ))),
            (Family::Ipv4Unicast, NextHop::V6 { .. }) => {}
        }
        attrs.sort_by_key(|a| a.value.type_code());
        attrs
    }
}

impl PeerExport {
    /// The export settings with the peer's ASN reduced to what [`PeerExport::export`] uses of
    /// it: whether the session is iBGP. Two sessions with equal keys export every route with
    /// equal attributes (so an update group may encode once for both).
    pub fn group_key(&self) -> PeerExport {
        PeerExport {
            peer_asn: if self.is_ibgp() { self.local_asn } else { 0 },
            ..self.clone()
        }
    }

    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    pub fn has_family(&self, family: Family) -> bool {
        self.families.contains(&family)
    }

    /// The attributes `route` is sent with to this peer; `Ok(None)` when the session does not
    /// carry the route's family.
    /// Reads nothing of the route but its prefix's family and the fields
    /// [`Route::same_attributes`] compares: the Adj-RIB-Out reuses the set of the last route
    /// for the next one that compares equal, so a new input here must be compared there too.
    pub fn export(&self, route: &Route) -> Result<Option<AttrSet>, ExportError> {
        let family = family_of(&route.prefix);
        if !self.has_family(family) {
            return Ok(None);
        }
        let ibgp = self.is_ibgp();
        let copies = usize::from(route.prepend) + usize::from(!ibgp);
        let as_path = AsPath::sequence(&vec![self.local_asn; copies]);
        let no_local = || ExportError::NoLocalAddress {
            prefix: route.prefix,
            family,
        };
        let next_hop = match (route.next_hop, family) {
            (Some(IpAddr::V4(a)), _) => NextHop::V4(a),
            (Some(IpAddr::V6(global)), _) => NextHop::V6 {
                global,
                link_local: None,
            },
            (None, Family::Ipv4Unicast) => NextHop::V4(self.local_v4.ok_or_else(no_local)?),
            (None, Family::Ipv6Unicast) => NextHop::V6 {
                global: self.local_v6.ok_or_else(no_local)?,
                link_local: if ibgp { None } else { self.local_v6_link_local },
            },
        };
        Ok(Some(AttrSet {
            family,
            attrs: Attributes {
                local_pref: ibgp.then(|| route.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
                ..route.attrs.clone()
            },
            as_path,
            next_hop,
        }))
    }
}

pub fn family_of(prefix: &IpNet) -> Family {
    match prefix {
        IpNet::V4(_) => Family::Ipv4Unicast,
        IpNet::V6(_) => Family::Ipv6Unicast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ebgp() -> PeerExport {
        PeerExport {
            local_asn: 65100,
            peer_asn: 65001,
            local_v4: Some("192.0.2.1".parse().unwrap()),
            local_v6: Some("2001:db8::1".parse().unwrap()),
            local_v6_link_local: Some("fe80::1".parse().unwrap()),
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        }
    }

    fn ibgp() -> PeerExport {
        PeerExport {
            peer_asn: 65100,
            ..ebgp()
        }
    }

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    #[test]
    fn ebgp_prepends_and_sends_no_local_pref() {
        let mut r = route("198.51.100.0/24");
        r.prepend = 2;
        r.attrs.local_pref = Some(300);
        r.attrs.med = Some(7);
        let s = ebgp().export(&r).unwrap().unwrap();
        assert_eq!(s.as_path, AsPath::sequence(&[65100, 65100, 65100]));
        assert_eq!(s.attrs.local_pref, None);
        assert_eq!(s.attrs.med, Some(7));
        assert_eq!(s.next_hop, NextHop::V4("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn ibgp_has_empty_path_and_default_local_pref() {
        let r = route("198.51.100.0/24");
        let s = ibgp().export(&r).unwrap().unwrap();
        assert_eq!(s.as_path, AsPath::default());
        assert_eq!(s.attrs.local_pref, Some(DEFAULT_LOCAL_PREF));
        let mut r2 = r.clone();
        r2.prepend = 1;
        r2.attrs.local_pref = Some(50);
        let s2 = ibgp().export(&r2).unwrap().unwrap();
        assert_eq!(
            s2.as_path.segments().collect::<Vec<_>>(),
            [crate::wire::SegmentRef {
                kind: crate::wire::SegmentType::Sequence,
                asns: &[65100]
            }]
        );
        assert_eq!(s2.attrs.local_pref, Some(50));
    }

    #[test]
    fn ipv6_next_hop_self_has_link_local_on_ebgp_only() {
        let r = route("2001:db8:1::/48");
        let s = ebgp().export(&r).unwrap().unwrap();
        assert_eq!(
            s.next_hop,
            NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap())
            }
        );
        let s = ibgp().export(&r).unwrap().unwrap();
        assert_eq!(
            s.next_hop,
            NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: None
            }
        );
        let explicit = r.with_next_hop("2001:db8::99".parse().unwrap()).unwrap();
        let s = ebgp().export(&explicit).unwrap().unwrap();
        assert_eq!(
            s.next_hop,
            NextHop::V6 {
                global: "2001:db8::99".parse().unwrap(),
                link_local: None
            }
        );
    }

    #[test]
    fn unnegotiated_family_is_skipped_and_missing_address_is_an_error() {
        let mut p = ebgp();
        p.families = vec![Family::Ipv4Unicast];
        assert_eq!(p.export(&route("2001:db8:1::/48")).unwrap(), None);
        p.local_v4 = None;
        let e = p.export(&route("198.51.100.0/24")).unwrap_err();
        assert!(e.to_string().starts_with(
            "198.51.100.0/24 has next hop self but the session has no local ipv4-unicast address"
        ));
        // An explicit next hop needs no local address.
        let r = route("198.51.100.0/24")
            .with_next_hop("192.0.2.9".parse().unwrap())
            .unwrap();
        assert!(p.export(&r).unwrap().is_some());
    }

    #[test]
    fn group_key_keeps_only_ibgp_or_ebgp_of_the_peer_asn() {
        let mut other = ebgp();
        other.peer_asn = 65002;
        assert_eq!(other.group_key(), ebgp().group_key());
        assert_ne!(ibgp().group_key(), ebgp().group_key());
        // The key exports like the session it came from.
        let mut r = route("2001:db8:1::/48");
        r.prepend = 1;
        for p in [ebgp(), ibgp()] {
            assert_eq!(p.group_key().export(&r), p.export(&r));
        }
        let mut moved = ebgp();
        moved.local_v4 = Some("192.0.2.9".parse().unwrap());
        assert_ne!(moved.group_key(), ebgp().group_key());
    }

    #[test]
    fn identical_routes_give_equal_sets() {
        let a = ebgp().export(&route("198.51.100.0/24")).unwrap();
        let b = ebgp().export(&route("203.0.113.0/24")).unwrap();
        assert_eq!(a, b);
        let mut r = route("203.0.113.0/24");
        r.attrs
            .communities
            .push(crate::wire::Community::new(65001, 1));
        assert_ne!(a, ebgp().export(&r).unwrap());
    }
}
