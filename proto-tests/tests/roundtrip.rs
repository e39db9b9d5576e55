//! Every message type survives encode then decode unchanged, and `encoded_len` is the size
//! `encode` writes, on 4-octet and on 2-octet AS sessions (RFC 6793).
//!
//! Generated messages are the ones the codec can represent faithfully: enum fallbacks such as
//! `Afi::Unknown(v)` never hold a value that has a named variant, ASNs fit 2 octets on a 2-octet
//! session, length-prefixed lists are non-empty where RFC 7606 calls an empty one malformed,
//! UPDATEs carry the mandatory attributes their NLRI need (RFC 4271 §5, RFC 7606 §3 d) and stay
//! within 4096 octets. Decoded UPDATEs must have no RFC 7606 issue.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

use ferry::wire::attribute::flags;
use ferry::wire::capability::{
    AddPathFamily, ExtendedNextHopFamily, GracefulRestart, GracefulRestartFamily, Role,
};
use ferry::wire::{
    Afi, Aggregator, AsPath, AttributeValue, Capability, Community, Context, ExtendedCommunity,
    LargeCommunity, Message, MpNextHop, MpNlri, MpReach, MpUnreach, Notification, Open, Origin,
    PathAttribute, RefreshSubtype, RouteRefresh, Safi, Segment, SegmentType, Update,
};

const MAX_MESSAGE: usize = 4096;

fn ctx(four_octet_as: bool) -> Context {
    Context {
        four_octet_as,
        extended_message: false,
    }
}

/// Encode, check the size, decode, compare.
fn round_trip(m: &Message, ctx: &Context) -> Result<(), TestCaseError> {
    let bytes = m.to_bytes(ctx);
    prop_assert_eq!(bytes.len(), m.encoded_len(ctx), "encoded_len");
    let back = Message::decode(&bytes, ctx)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{}", hex::encode(&bytes))))?;
    if let Message::Update(u) = &back {
        prop_assert!(u.issues.is_empty(), "issues {:?}", u.issues);
    }
    prop_assert_eq!(&back, m, "wire {}", hex::encode(&bytes));
    // Decoding is the inverse on the wire side too.
    prop_assert_eq!(&back.to_bytes(ctx)[..], &bytes[..]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Code points
// ---------------------------------------------------------------------------------------------

fn afi() -> impl Strategy<Value = Afi> {
    prop_oneof![
        Just(Afi::Ipv4),
        Just(Afi::Ipv6),
        (3u16..=u16::MAX).prop_map(Afi::Unknown),
        Just(Afi::Unknown(0)),
    ]
}

fn safi() -> impl Strategy<Value = Safi> {
    prop_oneof![
        Just(Safi::Unicast),
        Just(Safi::Multicast),
        (3u8..=u8::MAX).prop_map(Safi::Unknown),
        Just(Safi::Unknown(0)),
    ]
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

/// A prefix as the wire carries it: octets past the length are zero, bits inside the last
/// octet past the length are kept (RFC 4271 §4.3).
fn ipv4_prefix() -> impl Strategy<Value = Ipv4Net> {
    (any::<[u8; 4]>(), 0u8..=32).prop_map(|(mut o, len)| {
        o[usize::from(len).div_ceil(8)..].fill(0);
        Ipv4Net::new(Ipv4Addr::from(o), len).expect("length <= 32")
    })
}

fn ipv6_prefix() -> impl Strategy<Value = Ipv6Net> {
    (any::<[u8; 16]>(), 0u8..=128).prop_map(|(mut o, len)| {
        o[usize::from(len).div_ceil(8)..].fill(0);
        Ipv6Net::new(Ipv6Addr::from(o), len).expect("length <= 128")
    })
}

// ---------------------------------------------------------------------------------------------
// OPEN
// ---------------------------------------------------------------------------------------------

const KNOWN_CAPABILITIES: [u8; 10] = [1, 2, 5, 6, 9, 64, 65, 69, 70, 73];

fn capability() -> impl Strategy<Value = Capability> {
    let role = prop_oneof![
        (0u8..=4).prop_map(Role::from_code),
        (5u8..=u8::MAX).prop_map(Role::Unknown),
    ];
    let graceful_restart = (0u8..16, 0u16..4096, vec((afi(), safi(), any::<u8>()), 0..5)).prop_map(
        |(flags, restart_time, fams)| {
            Capability::GracefulRestart(GracefulRestart {
                flags,
                restart_time,
                families: fams
                    .into_iter()
                    .map(|(afi, safi, flags)| GracefulRestartFamily { afi, safi, flags })
                    .collect(),
            })
        },
    );
    prop_oneof![
        (afi(), safi()).prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        vec((afi(), any::<u16>(), afi()), 0..5).prop_map(|v| {
            Capability::ExtendedNextHop(
                v.into_iter()
                    .map(|(afi, safi, next_hop_afi)| ExtendedNextHopFamily {
                        afi,
                        safi,
                        next_hop_afi,
                    })
                    .collect(),
            )
        }),
        Just(Capability::ExtendedMessage),
        role.prop_map(Capability::Role),
        graceful_restart,
        // AS 0 is Bad Peer AS (RFC 7607 §2), not a round trip.
        (1u32..=u32::MAX).prop_map(Capability::FourOctetAs),
        vec((afi(), safi(), any::<u8>()), 0..5).prop_map(|v| {
            Capability::AddPath(
                v.into_iter()
                    .map(|(afi, safi, send_receive)| AddPathFamily {
                        afi,
                        safi,
                        send_receive,
                    })
                    .collect(),
            )
        }),
        Just(Capability::EnhancedRouteRefresh),
        (vec(any::<u8>(), 0..30), vec(any::<u8>(), 0..30))
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (
            any::<u8>().prop_filter("unknown code", |c| !KNOWN_CAPABILITIES.contains(c)),
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(code, data)| Capability::Unknown { code, data }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        1u16..=u16::MAX, // My AS 0 is Bad Peer AS (RFC 7607 §2)
        any::<u16>().prop_filter("hold time 1 or 2", |h| *h != 1 && *h != 2),
        (1u32..=u32::MAX).prop_map(Ipv4Addr::from),
        vec(vec(capability(), 0..6), 0..=3),
        any::<bool>(),
    )
        .prop_map(
            |(my_as, hold_time, router_id, params, extended_params)| Open {
                version: 4,
                my_as,
                hold_time,
                router_id,
                params,
                extended_params,
            },
        )
        .prop_filter("fits its length fields", |o| {
            let len = Message::Open(o.clone()).encoded_len(&ctx(true));
            // Without RFC 9072 the optional parameters have a 1-octet length.
            len <= MAX_MESSAGE && (o.extended_params || len - 29 <= 255)
        })
}

// ---------------------------------------------------------------------------------------------
// UPDATE
// ---------------------------------------------------------------------------------------------

/// Any ASN but 0, which makes a path or aggregator malformed (RFC 7607 §2).
fn asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        (1u32..=u32::MAX).boxed()
    } else {
        (1u32..=0xffff).boxed()
    }
}

fn as_path(asn: BoxedStrategy<u32>) -> impl Strategy<Value = AsPath> {
    let kind = prop_oneof![
        Just(SegmentType::Set),
        Just(SegmentType::Sequence),
        Just(SegmentType::ConfedSequence),
        Just(SegmentType::ConfedSet),
    ];
    vec(
        (kind, vec(asn, 1..12)).prop_map(|(kind, asns)| Segment { kind, asns }),
        0..4,
    )
    .prop_map(AsPath::from_segments)
}

fn aggregator(asn: BoxedStrategy<u32>) -> impl Strategy<Value = Aggregator> {
    (asn, ipv4()).prop_map(|(asn, address)| Aggregator { asn, address })
}

fn mp_next_hop(afi: Afi) -> BoxedStrategy<MpNextHop> {
    let v4 = ipv4().prop_map(MpNextHop::Ipv4);
    let v6 = (ipv6(), option::of(ipv6()))
        .prop_map(|(global, link_local)| MpNextHop::Ipv6 { global, link_local });
    match afi {
        Afi::Ipv4 => prop_oneof![v4, v6].boxed(),
        Afi::Ipv6 => v6.boxed(),
        Afi::Unknown(_) => prop_oneof![
            v4,
            v6,
            vec(any::<u8>(), 0..40)
                .prop_filter("not an address length", |r| ![4, 16, 32].contains(&r.len()))
                .prop_map(MpNextHop::Other),
        ]
        .boxed(),
    }
}

fn mp_nlri(afi: Afi, safi: Safi) -> BoxedStrategy<MpNlri> {
    match (afi, safi) {
        (Afi::Ipv4, Safi::Unicast | Safi::Multicast) => {
            vec(ipv4_prefix(), 0..8).prop_map(MpNlri::Ipv4).boxed()
        }
        (Afi::Ipv6, Safi::Unicast | Safi::Multicast) => {
            vec(ipv6_prefix(), 0..8).prop_map(MpNlri::Ipv6).boxed()
        }
        _ => vec(any::<u8>(), 0..30).prop_map(MpNlri::Raw).boxed(),
    }
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    // IPv6 unicast with and without a link-local next hop comes up often; other families too.
    let family = prop_oneof![
        3 => Just((Afi::Ipv6, Safi::Unicast)),
        1 => (afi(), safi()),
    ];
    family.prop_flat_map(|(afi, safi)| {
        (mp_next_hop(afi), any::<u8>(), mp_nlri(afi, safi)).prop_map(
            move |(next_hop, reserved, nlri)| MpReach {
                afi,
                safi,
                next_hop,
                reserved,
                nlri,
            },
        )
    })
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        3 => Just((Afi::Ipv6, Safi::Unicast)),
        1 => (afi(), safi()),
    ]
    .prop_flat_map(|(afi, safi)| {
        mp_nlri(afi, safi).prop_map(move |withdrawn| MpUnreach {
            afi,
            safi,
            withdrawn,
        })
    })
}

/// Type codes the codec decodes itself; an `Unknown` attribute never uses one.
const KNOWN_ATTRIBUTES: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32];

/// Every known attribute kind, each present or not.
fn known_attributes(four: bool) -> impl Strategy<Value = Vec<AttributeValue>> {
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let first = (
        option::of(origin.prop_map(AttributeValue::Origin)),
        option::of(as_path(asn(four)).prop_map(AttributeValue::AsPath)),
        option::of(ipv4().prop_map(AttributeValue::NextHop)),
        option::of(any::<u32>().prop_map(AttributeValue::Med)),
        option::of(any::<u32>().prop_map(AttributeValue::LocalPref)),
        option::of(Just(AttributeValue::AtomicAggregate)),
        option::of(aggregator(asn(four)).prop_map(AttributeValue::Aggregator)),
        option::of(
            vec(any::<u32>().prop_map(Community), 1..20).prop_map(AttributeValue::Communities),
        ),
    );
    let second = (
        option::of(ipv4().prop_map(AttributeValue::OriginatorId)),
        option::of(vec(ipv4(), 1..6).prop_map(AttributeValue::ClusterList)),
        option::of(mp_reach().prop_map(AttributeValue::MpReach)),
        option::of(mp_unreach().prop_map(AttributeValue::MpUnreach)),
        option::of(
            vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 1..6)
                .prop_map(AttributeValue::ExtendedCommunities),
        ),
        option::of(as_path(asn(true)).prop_map(AttributeValue::As4Path)),
        option::of(aggregator(asn(true)).prop_map(AttributeValue::As4Aggregator)),
        option::of(
            vec(
                any::<[u32; 3]>().prop_map(|[global, local1, local2]| LargeCommunity {
                    global,
                    local1,
                    local2,
                }),
                1..6,
            )
            .prop_map(AttributeValue::LargeCommunities),
        ),
    );
    (first, second).prop_map(|((a, b, c, d, e, f, g, h), (i, j, k, l, m, n, o, p))| {
        [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]
            .into_iter()
            .flatten()
            .collect()
    })
}

/// Unknown optional attributes, distinct type codes, any of Transitive/Partial/Extended Length.
fn unknown_attributes() -> impl Strategy<Value = Vec<PathAttribute>> {
    btree_map(
        any::<u8>().prop_filter("unknown code", |c| !KNOWN_ATTRIBUTES.contains(c)),
        (0u8..8, vec(any::<u8>(), 0..40)),
        0..3,
    )
    .prop_map(|m: BTreeMap<u8, (u8, Vec<u8>)>| {
        m.into_iter()
            .map(|(type_code, (bits, data))| {
                let mut f = flags::OPTIONAL;
                if bits & 1 != 0 {
                    f |= flags::TRANSITIVE;
                }
                if bits & 2 != 0 {
                    f |= flags::PARTIAL;
                }
                if bits & 4 != 0 {
                    f |= flags::EXTENDED_LENGTH;
                }
                PathAttribute {
                    flags: f,
                    value: AttributeValue::Unknown { type_code, data },
                }
            })
            .collect()
    })
}

fn has(attrs: &[PathAttribute], code: u8) -> bool {
    attrs.iter().any(|a| a.value.type_code() == code)
}

/// Give the UPDATE the mandatory attributes its NLRI need and the Extended Length bit wherever a
/// value is over 255 octets (the encoder sets the bit then, and decoding keeps flags as sent).
fn complete(mut u: Update, four: bool) -> Update {
    let reach = u
        .attributes
        .iter()
        .any(|a| matches!(&a.value, AttributeValue::MpReach(m) if !m.nlri.is_empty()));
    let mut required = Vec::new();
    if !u.nlri.is_empty() || reach {
        required.push(AttributeValue::Origin(Origin::Igp));
        required.push(AttributeValue::AsPath(AsPath::sequence(&[65001])));
    }
    if !u.nlri.is_empty() {
        required.push(AttributeValue::NextHop(Ipv4Addr::new(192, 0, 2, 1)));
    }
    for value in required {
        if !has(&u.attributes, value.type_code()) {
            u.attributes.push(PathAttribute::new(value));
        }
    }
    for a in &mut u.attributes {
        let mut probe = a.clone();
        probe.flags |= flags::EXTENDED_LENGTH;
        if probe.encoded_len(four) - 4 > 255 {
            a.flags |= flags::EXTENDED_LENGTH;
        }
    }
    u
}

fn update(four: bool) -> impl Strategy<Value = Update> {
    let known =
        (known_attributes(four), vec(any::<(bool, bool)>(), 16)).prop_map(|(values, bits)| {
            values
                .into_iter()
                .zip(bits)
                .map(|(value, (extended, partial))| {
                    let mut a = PathAttribute::new(value);
                    // Extended Length on short values is legal and kept (RFC 4271 §4.3).
                    if extended {
                        a.flags |= flags::EXTENDED_LENGTH;
                    }
                    // Partial only where it may be set: optional transitive (RFC 4271 §5).
                    let ot = flags::OPTIONAL | flags::TRANSITIVE;
                    if partial && a.flags & ot == ot {
                        a.flags |= flags::PARTIAL;
                    }
                    a
                })
                .collect::<Vec<_>>()
        });
    (
        vec(ipv4_prefix(), 0..20),
        known,
        unknown_attributes(),
        vec(ipv4_prefix(), 0..20),
    )
        .prop_flat_map(|(withdrawn, known, unknown, nlri)| {
            let attributes: Vec<PathAttribute> = known.into_iter().chain(unknown).collect();
            (Just(withdrawn), Just(attributes).prop_shuffle(), Just(nlri))
        })
        .prop_map(move |(withdrawn, attributes, nlri)| {
            complete(
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                    issues: Vec::new(),
                },
                four,
            )
        })
        .prop_filter("within 4096 octets", move |u| {
            Message::Update(u.clone()).encoded_len(&ctx(four)) <= MAX_MESSAGE
        })
}

// ---------------------------------------------------------------------------------------------
// NOTIFICATION, ROUTE-REFRESH
// ---------------------------------------------------------------------------------------------

fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..300)).prop_map(|(code, subcode, data)| {
        Notification {
            code,
            subcode,
            data: Bytes::from(data),
        }
    })
}

fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    let subtype_and_orf = prop_oneof![
        vec(any::<u8>(), 0..40).prop_map(|orf| (RefreshSubtype::Normal, orf)),
        Just((RefreshSubtype::Borr, Vec::new())),
        Just((RefreshSubtype::Eorr, Vec::new())),
        // RFC 7313 §5: an unknown subtype is ignored, whatever its length.
        (3u8..=u8::MAX, vec(any::<u8>(), 0..10))
            .prop_map(|(s, orf)| (RefreshSubtype::Unknown(s), orf)),
    ];
    (afi(), safi(), subtype_and_orf).prop_map(|(afi, safi, (subtype, orf))| RouteRefresh {
        afi,
        subtype,
        safi,
        orf: Bytes::from(orf),
    })
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn open_round_trips(o in open(), four in any::<bool>()) {
        round_trip(&Message::Open(o), &ctx(four))?;
    }

    #[test]
    fn update_round_trips_on_a_4_octet_session(u in update(true)) {
        round_trip(&Message::Update(u), &ctx(true))?;
    }

    #[test]
    fn update_round_trips_on_a_2_octet_session(u in update(false)) {
        round_trip(&Message::Update(u), &ctx(false))?;
    }

    #[test]
    fn notification_round_trips(n in notification(), four in any::<bool>()) {
        round_trip(&Message::Notification(n), &ctx(four))?;
    }

    #[test]
    fn route_refresh_round_trips(r in route_refresh(), four in any::<bool>()) {
        round_trip(&Message::RouteRefresh(r), &ctx(four))?;
    }
}

#[test]
fn keepalive_round_trips() {
    for four in [true, false] {
        let c = ctx(four);
        let bytes = Message::Keepalive.to_bytes(&c);
        assert_eq!(bytes.len(), 19);
        assert_eq!(Message::Keepalive.encoded_len(&c), 19);
        assert_eq!(Message::decode(&bytes, &c), Ok(Message::Keepalive));
    }
}

#[test]
fn the_generators_cover_what_they_claim() {
    // A cheap guard against a generator that quietly stops producing a kind: sample UPDATEs and
    // OPENs and count what appears.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut codes = [0usize; 256];
    let (mut link_local, mut no_link_local, mut extended_short) = (0, 0, 0);
    let strategy = update(true);
    for _ in 0..400 {
        let u = strategy.new_tree(&mut runner).unwrap().current();
        for a in &u.attributes {
            codes[usize::from(a.value.type_code())] += 1;
            if a.flags & flags::EXTENDED_LENGTH != 0 && a.encoded_len(true) - 4 <= 255 {
                extended_short += 1;
            }
            if let AttributeValue::MpReach(m) = &a.value {
                match m.next_hop {
                    MpNextHop::Ipv6 {
                        link_local: Some(_),
                        ..
                    } => link_local += 1,
                    MpNextHop::Ipv6 {
                        link_local: None, ..
                    } => no_link_local += 1,
                    _ => {}
                }
            }
        }
    }
    for code in KNOWN_ATTRIBUTES {
        assert!(
            codes[usize::from(code)] > 0,
            "attribute {code} never generated"
        );
    }
    let unknown: usize = (0..256)
        .filter(|c| !KNOWN_ATTRIBUTES.contains(&(*c as u8)))
        .map(|c| codes[c])
        .sum();
    assert!(unknown > 0 && link_local > 0 && no_link_local > 0 && extended_short > 0);

    let mut caps = std::collections::BTreeSet::new();
    let (mut extended, mut multi) = (0, 0);
    let strategy = open();
    for _ in 0..400 {
        let o = strategy.new_tree(&mut runner).unwrap().current();
        caps.extend(o.capabilities().map(Capability::name));
        extended += usize::from(o.extended_params);
        multi += usize::from(o.params.len() > 1);
    }
    assert_eq!(caps.len(), 11, "{caps:?}");
    assert!(extended > 0 && multi > 0);
}
