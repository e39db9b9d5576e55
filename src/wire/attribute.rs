//! Path attributes (RFC 4271 §4.3, §5) and the RFC 7606 §7 verdict for each malformed one.
//!
//! ```text
//! +---------------------------+-------------------------+
//! | Attr. Flags | Attr. Type  | Length (1, or 2 if E)   | Value ...
//! +---------------------------+-------------------------+
//!   O T P E 0 0 0 0
//! ```
//!
//! Flags are kept as received (including Extended Length on short values), so an UPDATE
//! re-encodes byte for byte. [`decode_into`] turns one attribute's value into an
//! [`AttributeValue`] or an [`AttrFault`]: the RFC 7606 action (treat-as-withdraw, attribute
//! discard) or a session reset. Unknown optional attributes are kept raw; when passed on, an
//! optional transitive one gets the Partial bit ([`PathAttribute::for_propagation`], RFC 4271 §5).

use bytes::{BufMut, BytesMut};
use std::net::Ipv4Addr;

use super::as_path::AsPath;
use super::community::{Community, ExtendedCommunity, LargeCommunity};
use super::error::{DecodeError, Rfc7606Action};
use super::iana::attr;
use super::mp::{MpReach, MpUnreach};

pub mod flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Self::Igp => "igp",
            Self::Egp => "egp",
            Self::Incomplete => "incomplete",
        }
    }
}

/// AGGREGATOR or AS4_AGGREGATOR (RFC 4271 §5.1.7, RFC 6793 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Origin(Origin),
    AsPath(AsPath),
    NextHop(Ipv4Addr),
    Med(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator(Aggregator),
    Communities(Vec<Community>),
    OriginatorId(Ipv4Addr),
    ClusterList(Vec<Ipv4Addr>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    ExtendedCommunities(Vec<ExtendedCommunity>),
    As4Path(AsPath),
    As4Aggregator(Aggregator),
    LargeCommunities(Vec<LargeCommunity>),
    Unknown { type_code: u8, data: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAttribute {
    /// Flags as received or as Ferry sends them; the Extended Length bit is added when needed.
    pub flags: u8,
    pub value: AttributeValue,
}

/// Why one attribute could not be used.
#[derive(Debug)]
pub(crate) enum AttrFault {
    Rfc7606(Rfc7606Action, String),
    Reset(DecodeError),
}

/// Optional and Transitive bits each known attribute must carry (RFC 4271 §5, its RFCs).
pub(crate) fn expected_flags(type_code: u8) -> Option<u8> {
    use flags::*;
    Some(match type_code {
        attr::ORIGIN
        | attr::AS_PATH
        | attr::NEXT_HOP
        | attr::LOCAL_PREF
        | attr::ATOMIC_AGGREGATE => TRANSITIVE,
        attr::MULTI_EXIT_DISC | attr::ORIGINATOR_ID | attr::CLUSTER_LIST => OPTIONAL,
        attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => OPTIONAL,
        attr::AGGREGATOR
        | attr::COMMUNITIES
        | attr::EXTENDED_COMMUNITIES
        | attr::AS4_PATH
        | attr::AS4_AGGREGATOR
        | attr::LARGE_COMMUNITIES => OPTIONAL | TRANSITIVE,
        _ => return None,
    })
}

/// The RFC 7606 §7 action for a malformed value of a known attribute.
pub(crate) fn malformed_action(type_code: u8) -> Rfc7606Action {
    match type_code {
        // RFC 7606 §7.6, §7.7; RFC 6793 §6.
        attr::ATOMIC_AGGREGATE | attr::AGGREGATOR | attr::AS4_PATH | attr::AS4_AGGREGATOR => {
            Rfc7606Action::AttributeDiscard
        }
        _ => Rfc7606Action::TreatAsWithdraw,
    }
}

fn u32_of(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

fn ipv4_of(v: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(v[0], v[1], v[2], v[3])
}

fn fault(type_code: u8, detail: String) -> AttrFault {
    AttrFault::Rfc7606(
        malformed_action(type_code),
        format!("{} {detail}", attr::name(type_code)),
    )
}

fn want_len(type_code: u8, value: &[u8], want: usize) -> Result<(), AttrFault> {
    if value.len() == want {
        Ok(())
    } else {
        Err(fault(
            type_code,
            format!("length {} is not {want}", value.len()),
        ))
    }
}

fn want_multiple(type_code: u8, value: &[u8], unit: usize) -> Result<(), AttrFault> {
    if !value.is_empty() && value.len().is_multiple_of(unit) {
        Ok(())
    } else {
        Err(fault(
            type_code,
            format!(
                "length {} is not a non-zero multiple of {unit}",
                value.len()
            ),
        ))
    }
}

/// Decode the value of a known attribute. `at` is the value's offset in the message;
/// `four_octet_as` selects the width of AS_PATH and AGGREGATOR (RFC 6793 §4).
#[cfg(test)]
pub(crate) fn decode_value(
    type_code: u8,
    value: &[u8],
    at: usize,
    four_octet_as: bool,
) -> Result<AttributeValue, AttrFault> {
    let mut out = Vec::with_capacity(1);
    decode_into(type_code, 0, value, at, four_octet_as, &mut out)?;
    Ok(out.remove(0).value)
}

/// Decode the value of a known attribute and append it, with `flags`, to `out` (nothing on an
/// error). Each kind is written into `out` where it is decoded: built apart and then moved,
/// the attribute (88 octets, written field by field, read back in 16-octet pieces) cost a
/// stalled store-to-load forward per attribute, the largest single cost of decoding a table
/// of small UPDATEs.
pub(crate) fn decode_into(
    type_code: u8,
    flags: u8,
    value: &[u8],
    at: usize,
    four_octet_as: bool,
    out: &mut Vec<PathAttribute>,
) -> Result<(), AttrFault> {
    let as_width = if four_octet_as { 4 } else { 2 };
    let mut put = |value: AttributeValue| out.push(PathAttribute { flags, value });
    match type_code {
        attr::ORIGIN => {
            want_len(type_code, value, 1)?;
            put(AttributeValue::Origin(match value[0] {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                v => return Err(fault(type_code, format!("value {v} is not 0-2"))),
            }))
        }
        attr::AS_PATH => put(AttributeValue::AsPath(
            AsPath::decode(value, as_width).map_err(|e| fault(type_code, e))?,
        )),
        attr::NEXT_HOP => {
            want_len(type_code, value, 4)?;
            put(AttributeValue::NextHop(ipv4_of(value)))
        }
        attr::MULTI_EXIT_DISC => {
            want_len(type_code, value, 4)?;
            put(AttributeValue::Med(u32_of(value)))
        }
        attr::LOCAL_PREF => {
            want_len(type_code, value, 4)?;
            put(AttributeValue::LocalPref(u32_of(value)))
        }
        attr::ATOMIC_AGGREGATE => {
            want_len(type_code, value, 0)?;
            put(AttributeValue::AtomicAggregate)
        }
        attr::AGGREGATOR => {
            want_len(type_code, value, as_width + 4)?;
            put(AttributeValue::Aggregator(decode_aggregator(
                type_code, value, as_width,
            )?))
        }
        attr::COMMUNITIES => {
            want_multiple(type_code, value, 4)?;
            put(AttributeValue::Communities(
                value
                    .chunks_exact(4)
                    .map(|c| Community(u32_of(c)))
                    .collect(),
            ))
        }
        attr::ORIGINATOR_ID => {
            want_len(type_code, value, 4)?;
            put(AttributeValue::OriginatorId(ipv4_of(value)))
        }
        attr::CLUSTER_LIST => {
            want_multiple(type_code, value, 4)?;
            put(AttributeValue::ClusterList(
                value.chunks_exact(4).map(ipv4_of).collect(),
            ))
        }
        attr::MP_REACH_NLRI => put(AttributeValue::MpReach(
            MpReach::decode(value, at).map_err(AttrFault::Reset)?,
        )),
        attr::MP_UNREACH_NLRI => put(AttributeValue::MpUnreach(
            MpUnreach::decode(value, at).map_err(AttrFault::Reset)?,
        )),
        attr::EXTENDED_COMMUNITIES => {
            want_multiple(type_code, value, 8)?;
            put(AttributeValue::ExtendedCommunities(
                value
                    .chunks_exact(8)
                    .map(|c| {
                        let mut o = [0u8; 8];
                        o.copy_from_slice(c);
                        ExtendedCommunity(o)
                    })
                    .collect(),
            ))
        }
        attr::AS4_PATH => put(AttributeValue::As4Path(
            AsPath::decode(value, 4).map_err(|e| fault(type_code, e))?,
        )),
        attr::AS4_AGGREGATOR => {
            want_len(type_code, value, 8)?;
            put(AttributeValue::As4Aggregator(decode_aggregator(
                type_code, value, 4,
            )?))
        }
        attr::LARGE_COMMUNITIES => {
            want_multiple(type_code, value, 12)?;
            put(AttributeValue::LargeCommunities(
                value
                    .chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global: u32_of(c),
                        local1: u32_of(&c[4..]),
                        local2: u32_of(&c[8..]),
                    })
                    .collect(),
            ))
        }
        other => put(AttributeValue::Unknown {
            type_code: other,
            data: value.to_vec(),
        }),
    }
    Ok(())
}

/// AGGREGATOR or AS4_AGGREGATOR; AS 0 makes it malformed (RFC 7607 §2), which RFC 7606 §7.7
/// and RFC 6793 §6 handle by discarding the attribute.
fn decode_aggregator(type_code: u8, value: &[u8], width: usize) -> Result<Aggregator, AttrFault> {
    let asn = if width == 4 {
        u32_of(value)
    } else {
        u32::from(u16::from_be_bytes([value[0], value[1]]))
    };
    if asn == 0 {
        return Err(fault(type_code, "AS 0 is reserved (RFC 7607 §2)".into()));
    }
    Ok(Aggregator {
        asn,
        address: ipv4_of(&value[width..]),
    })
}

impl AttributeValue {
    pub fn type_code(&self) -> u8 {
        match self {
            Self::Origin(_) => attr::ORIGIN,
            Self::AsPath(_) => attr::AS_PATH,
            Self::NextHop(_) => attr::NEXT_HOP,
            Self::Med(_) => attr::MULTI_EXIT_DISC,
            Self::LocalPref(_) => attr::LOCAL_PREF,
            Self::AtomicAggregate => attr::ATOMIC_AGGREGATE,
            Self::Aggregator(_) => attr::AGGREGATOR,
            Self::Communities(_) => attr::COMMUNITIES,
            Self::OriginatorId(_) => attr::ORIGINATOR_ID,
            Self::ClusterList(_) => attr::CLUSTER_LIST,
            Self::MpReach(_) => attr::MP_REACH_NLRI,
            Self::MpUnreach(_) => attr::MP_UNREACH_NLRI,
            Self::ExtendedCommunities(_) => attr::EXTENDED_COMMUNITIES,
            Self::As4Path(_) => attr::AS4_PATH,
            Self::As4Aggregator(_) => attr::AS4_AGGREGATOR,
            Self::LargeCommunities(_) => attr::LARGE_COMMUNITIES,
            Self::Unknown { type_code, .. } => *type_code,
        }
    }

    fn value_len(&self, four_octet_as: bool) -> usize {
        let as_width = if four_octet_as { 4 } else { 2 };
        match self {
            Self::Origin(_) => 1,
            Self::AsPath(p) => p.encoded_len(as_width),
            Self::NextHop(_) | Self::Med(_) | Self::LocalPref(_) | Self::OriginatorId(_) => 4,
            Self::AtomicAggregate => 0,
            Self::Aggregator(_) => as_width + 4,
            Self::Communities(c) => 4 * c.len(),
            Self::ClusterList(c) => 4 * c.len(),
            Self::MpReach(m) => m.value_len(),
            Self::MpUnreach(m) => m.value_len(),
            Self::ExtendedCommunities(c) => 8 * c.len(),
            Self::As4Path(p) => p.encoded_len(4),
            Self::As4Aggregator(_) => 8,
            Self::LargeCommunities(c) => 12 * c.len(),
            Self::Unknown { data, .. } => data.len(),
        }
    }

    fn encode_value(&self, four_octet_as: bool, buf: &mut BytesMut) {
        let as_width = if four_octet_as { 4 } else { 2 };
        match self {
            Self::Origin(o) => buf.put_u8(*o as u8),
            Self::AsPath(p) => p.encode(as_width, buf),
            Self::NextHop(a) | Self::OriginatorId(a) => buf.put_slice(&a.octets()),
            Self::Med(v) | Self::LocalPref(v) => buf.put_u32(*v),
            Self::AtomicAggregate => {}
            Self::Aggregator(a) => {
                if four_octet_as {
                    buf.put_u32(a.asn);
                } else {
                    buf.put_u16(u16::try_from(a.asn).unwrap_or(super::iana::AS_TRANS));
                }
                buf.put_slice(&a.address.octets());
            }
            Self::Communities(c) => c.iter().for_each(|c| buf.put_u32(c.0)),
            Self::ClusterList(c) => c.iter().for_each(|a| buf.put_slice(&a.octets())),
            Self::MpReach(m) => m.encode(buf),
            Self::MpUnreach(m) => m.encode(buf),
            Self::ExtendedCommunities(c) => c.iter().for_each(|c| buf.put_slice(&c.0)),
            Self::As4Path(p) => p.encode(4, buf),
            Self::As4Aggregator(a) => {
                buf.put_u32(a.asn);
                buf.put_slice(&a.address.octets());
            }
            Self::LargeCommunities(c) => c.iter().for_each(|c| {
                buf.put_u32(c.global);
                buf.put_u32(c.local1);
                buf.put_u32(c.local2);
            }),
            Self::Unknown { data, .. } => buf.put_slice(data),
        }
    }
}

impl PathAttribute {
    /// An attribute with the flags its type requires (RFC 4271 §5).
    pub fn new(value: AttributeValue) -> Self {
        let flags =
            expected_flags(value.type_code()).unwrap_or(flags::OPTIONAL | flags::TRANSITIVE);
        Self { flags, value }
    }

    fn uses_extended_length(&self, value_len: usize) -> bool {
        self.flags & flags::EXTENDED_LENGTH != 0 || value_len > 255
    }

    pub fn encoded_len(&self, four_octet_as: bool) -> usize {
        let len = self.value.value_len(four_octet_as);
        len + if self.uses_extended_length(len) { 4 } else { 3 }
    }

    pub fn encode(&self, four_octet_as: bool, buf: &mut BytesMut) {
        let len = self.value.value_len(four_octet_as);
        let ext = self.uses_extended_length(len);
        let start = buf.len();
        buf.put_u8(if ext {
            self.flags | flags::EXTENDED_LENGTH
        } else {
            self.flags
        });
        buf.put_u8(self.value.type_code());
        if ext {
            buf.put_u16(len as u16);
        } else {
            buf.put_u8(len as u8);
        }
        self.value.encode_value(four_octet_as, buf);
        debug_assert_eq!(buf.len() - start, self.encoded_len(four_octet_as));
    }

    /// The attribute as it may be passed to another peer: an unknown optional transitive
    /// attribute gets the Partial bit, an unknown optional non-transitive one is dropped
    /// (RFC 4271 §5, §9.1.3). Known attributes are returned unchanged.
    pub fn for_propagation(&self) -> Option<PathAttribute> {
        match &self.value {
            AttributeValue::Unknown { .. } if self.flags & flags::TRANSITIVE == 0 => None,
            AttributeValue::Unknown { .. } => Some(Self {
                flags: self.flags | flags::PARTIAL,
                ..self.clone()
            }),
            _ => Some(self.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(type_code: u8, value: &[u8]) -> Result<AttributeValue, AttrFault> {
        decode_value(type_code, value, 0, true)
    }

    #[test]
    fn length_errors_get_their_rfc7606_action() {
        let cases: &[(u8, &[u8], Rfc7606Action)] = &[
            (attr::ORIGIN, &[0, 0], Rfc7606Action::TreatAsWithdraw),
            (attr::ORIGIN, &[3], Rfc7606Action::TreatAsWithdraw),
            (attr::NEXT_HOP, &[1, 2, 3], Rfc7606Action::TreatAsWithdraw),
            (attr::MULTI_EXIT_DISC, &[], Rfc7606Action::TreatAsWithdraw),
            (attr::LOCAL_PREF, &[0; 5], Rfc7606Action::TreatAsWithdraw),
            (
                attr::ATOMIC_AGGREGATE,
                &[1],
                Rfc7606Action::AttributeDiscard,
            ),
            (attr::AGGREGATOR, &[0; 6], Rfc7606Action::AttributeDiscard),
            (attr::COMMUNITIES, &[], Rfc7606Action::TreatAsWithdraw),
            (attr::COMMUNITIES, &[0; 5], Rfc7606Action::TreatAsWithdraw),
            (attr::ORIGINATOR_ID, &[0; 8], Rfc7606Action::TreatAsWithdraw),
            (attr::CLUSTER_LIST, &[0; 3], Rfc7606Action::TreatAsWithdraw),
            (
                attr::EXTENDED_COMMUNITIES,
                &[0; 4],
                Rfc7606Action::TreatAsWithdraw,
            ),
            (
                attr::AS4_PATH,
                &[2, 1, 0, 0],
                Rfc7606Action::AttributeDiscard,
            ),
            (
                attr::AS4_AGGREGATOR,
                &[0; 6],
                Rfc7606Action::AttributeDiscard,
            ),
            (
                attr::LARGE_COMMUNITIES,
                &[0; 8],
                Rfc7606Action::TreatAsWithdraw,
            ),
            (attr::AS_PATH, &[2, 0], Rfc7606Action::TreatAsWithdraw),
        ];
        for (code, value, want) in cases {
            match decode(*code, value) {
                Err(AttrFault::Rfc7606(action, detail)) => {
                    assert_eq!(action, *want, "{}: {detail}", attr::name(*code));
                    assert!(detail.starts_with(attr::name(*code)), "{detail}");
                }
                other => panic!("{}: {other:?}", attr::name(*code)),
            }
        }
    }

    #[test]
    fn unknown_transitive_gets_partial_when_propagated() {
        let a = PathAttribute {
            flags: flags::OPTIONAL | flags::TRANSITIVE,
            value: AttributeValue::Unknown {
                type_code: 99,
                data: vec![1],
            },
        };
        assert_eq!(
            a.for_propagation().unwrap().flags & flags::PARTIAL,
            flags::PARTIAL
        );
        let nt = PathAttribute {
            flags: flags::OPTIONAL,
            ..a
        };
        assert_eq!(nt.for_propagation(), None);
    }

    #[test]
    fn extended_length_kept_on_short_value_and_forced_on_long() {
        let a = PathAttribute {
            flags: flags::TRANSITIVE | flags::EXTENDED_LENGTH,
            value: AttributeValue::Origin(Origin::Igp),
        };
        let mut b = BytesMut::new();
        a.encode(true, &mut b);
        assert_eq!(&b[..], &[0x50, 1, 0, 1, 0]);
        let long = PathAttribute::new(AttributeValue::Communities(vec![Community(1); 100]));
        assert_eq!(long.encoded_len(true), 404);
    }
}
