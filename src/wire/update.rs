//! UPDATE message (RFC 4271 §4.3) with the error handling of RFC 7606, End-of-RIB (RFC 4724 §2).
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! Decoding returns `Err` only for errors that reset the session (RFC 7606 §3-5: lengths of the
//! withdrawn or attribute fields, malformed NLRI, MP_REACH/MP_UNREACH errors, an unrecognized
//! well-known attribute). Everything else is recorded in [`Update::issues`]:
//! - an attribute length that overruns the attribute field: treat-as-withdraw (RFC 7606 §4);
//! - wrong Optional/Transitive flags: the attribute's malformed action (RFC 7606 §3 c);
//! - a repeated attribute: all but the first discarded (RFC 7606 §3 g);
//! - a missing well-known mandatory attribute: treat-as-withdraw (RFC 7606 §3 d);
//! - a malformed value: the attribute's action of RFC 7606 §7.
//!
//! A malformed attribute is left out of [`Update::attributes`].

use bytes::{BufMut, BytesMut};
use ipnet::Ipv4Net;

use super::as_path::AsPath;
use super::attribute::{self, flags, AttrFault, AttributeValue, PathAttribute};
use super::community::{Community, LargeCommunity};
use super::error::{AttributeIssue, DecodeError, ErrorKind, Rfc7606Action};
use super::header::HEADER_LEN;
use super::iana::{attr, Family, AS_TRANS};
use super::mp::{MpNlri, MpReach, MpUnreach};
use super::prefix;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: Vec<PathAttribute>,
    pub nlri: Vec<Ipv4Net>,
    /// Attributes RFC 7606 handled without a reset. Not encoded.
    pub issues: Vec<AttributeIssue>,
}

/// The attribute type codes met so far in an UPDATE: 32 octets, not a 256-entry array, as
/// this is set up for every UPDATE decoded.
#[derive(Debug, Default)]
struct Seen([u64; 4]);

impl Seen {
    /// Add `code`; whether it was there already.
    fn insert(&mut self, code: u8) -> bool {
        let (word, bit) = (usize::from(code >> 6), 1u64 << (code & 63));
        let had = self.0[word] & bit != 0;
        self.0[word] |= bit;
        had
    }

    fn contains(&self, code: u8) -> bool {
        self.0[usize::from(code >> 6)] & (1u64 << (code & 63)) != 0
    }
}

fn malformed_list(field: &'static str, at: usize, detail: String) -> DecodeError {
    DecodeError::new(ErrorKind::MalformedAttributeList, field, at, detail)
}

/// Offsets of the fields inside the body, plus 19 for the header.
const WITHDRAWN_LEN_AT: usize = HEADER_LEN;

impl Update {
    /// The End-of-RIB marker of `family` (RFC 4724 §2).
    pub fn end_of_rib(family: Family) -> Self {
        match family {
            Family::Ipv4Unicast => Self::default(),
            Family::Ipv6Unicast => Self {
                attributes: vec![PathAttribute::new(AttributeValue::MpUnreach(MpUnreach {
                    afi: family.afi(),
                    safi: family.safi(),
                    withdrawn: MpNlri::Ipv6(Vec::new()),
                }))],
                ..Self::default()
            },
        }
    }

    /// Which family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || !self.issues.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::Ipv4Unicast),
            [PathAttribute {
                value: AttributeValue::MpUnreach(m),
                ..
            }] if m.withdrawn.is_empty() => m.family(),
            _ => None,
        }
    }

    /// RFC 7606: the NLRI of this UPDATE must be handled as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.action == Rfc7606Action::TreatAsWithdraw)
    }

    pub fn attribute(&self, type_code: u8) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .map(|a| &a.value)
            .find(|v| v.type_code() == type_code)
    }

    pub fn as_path(&self) -> Option<&AsPath> {
        match self.attribute(attr::AS_PATH)? {
            AttributeValue::AsPath(p) => Some(p),
            _ => None,
        }
    }

    /// The AS path to use: on a 2-octet session, AS_PATH merged with AS4_PATH (RFC 6793 §4.2.3),
    /// unless an AGGREGATOR with a 2-octet AS other than AS_TRANS says AS4_PATH is stale.
    pub fn effective_as_path(&self, four_octet_as: bool) -> Option<AsPath> {
        let path = self.as_path()?;
        if four_octet_as {
            return Some(path.clone());
        }
        if let Some(AttributeValue::Aggregator(a)) = self.attribute(attr::AGGREGATOR) {
            if a.asn != u32::from(AS_TRANS) {
                return Some(path.clone());
            }
        }
        match self.attribute(attr::AS4_PATH) {
            Some(AttributeValue::As4Path(as4)) => Some(path.merge_as4(as4)),
            _ => Some(path.clone()),
        }
    }

    pub fn communities(&self) -> &[Community] {
        match self.attribute(attr::COMMUNITIES) {
            Some(AttributeValue::Communities(c)) => c,
            _ => &[],
        }
    }

    pub fn large_communities(&self) -> &[LargeCommunity] {
        match self.attribute(attr::LARGE_COMMUNITIES) {
            Some(AttributeValue::LargeCommunities(c)) => c,
            _ => &[],
        }
    }

    pub fn mp_reach(&self) -> Option<&MpReach> {
        match self.attribute(attr::MP_REACH_NLRI)? {
            AttributeValue::MpReach(m) => Some(m),
            _ => None,
        }
    }

    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        match self.attribute(attr::MP_UNREACH_NLRI)? {
            AttributeValue::MpUnreach(m) => Some(m),
            _ => None,
        }
    }

    /// Decode the whole message `msg` (header included; framing already checked it).
    // Inlined into `Message::decode`, so the UPDATE is built where it ends up rather than
    // returned and moved (a stalled copy per message).
    #[inline]
    pub(crate) fn decode(msg: &[u8], four_octet_as: bool) -> Result<Self, DecodeError> {
        let body = &msg[HEADER_LEN..];
        let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let Some(withdrawn_raw) = body.get(2..2 + wlen) else {
            return Err(malformed_list(
                "withdrawn_routes_length",
                WITHDRAWN_LEN_AT,
                format!(
                    "withdrawn routes length {wlen} exceeds the {} octets left",
                    body.len() - 2
                ),
            ));
        };
        let alen_at = 2 + wlen;
        let Some(alen_raw) = body.get(alen_at..alen_at + 2) else {
            return Err(malformed_list(
                "total_path_attribute_length",
                HEADER_LEN + alen_at,
                format!(
                    "{} octets left for the 2-octet total path attribute length",
                    body.len() - alen_at
                ),
            ));
        };
        let alen = usize::from(u16::from_be_bytes([alen_raw[0], alen_raw[1]]));
        let attrs_at = alen_at + 2;
        let Some(attrs_raw) = body.get(attrs_at..attrs_at + alen) else {
            return Err(malformed_list(
                "total_path_attribute_length",
                HEADER_LEN + alen_at,
                format!(
                    "total path attribute length {alen} exceeds the {} octets left",
                    body.len() - attrs_at
                ),
            ));
        };
        // Most UPDATEs carry 3-8 attributes: one allocation instead of growing.
        let mut update = Update {
            attributes: Vec::with_capacity(8),
            ..Update::default()
        };
        prefix::decode_ipv4(
            withdrawn_raw,
            "withdrawn_routes",
            HEADER_LEN + 2,
            &mut update.withdrawn,
        )?;
        let nlri_at = attrs_at + alen;
        prefix::decode_ipv4(
            &body[nlri_at..],
            "nlri",
            HEADER_LEN + nlri_at,
            &mut update.nlri,
        )?;
        let seen = update.decode_attributes(attrs_raw, HEADER_LEN + attrs_at, four_octet_as)?;
        update.check_mandatory(&seen, HEADER_LEN + alen_at);
        Ok(update)
    }

    /// Decode the attribute field; returns the set of type codes present (well-formed or not).
    fn decode_attributes(
        &mut self,
        raw: &[u8],
        base: usize,
        four_octet_as: bool,
    ) -> Result<Seen, DecodeError> {
        let mut seen = Seen::default();
        let mut i = 0;
        while i < raw.len() {
            let at = base + i;
            let flags_octet = raw[i];
            let header_len = if flags_octet & flags::EXTENDED_LENGTH != 0 {
                4
            } else {
                3
            };
            let Some(head) = raw.get(i..i + header_len) else {
                // RFC 7606 §4: too few octets for an attribute header.
                self.issue(
                    Rfc7606Action::TreatAsWithdraw,
                    raw.get(i + 1).copied().unwrap_or(0),
                    at,
                    format!(
                        "{} octets left in the attribute field, too few for an attribute header",
                        raw.len() - i
                    ),
                );
                break;
            };
            let type_code = head[1];
            let len = if header_len == 4 {
                usize::from(u16::from_be_bytes([head[2], head[3]]))
            } else {
                usize::from(head[2])
            };
            let value_at = i + header_len;
            let Some(value) = raw.get(value_at..value_at + len) else {
                let detail = format!(
                    "{} length {len} overruns the {} octets left",
                    attr::name(type_code),
                    raw.len() - value_at
                );
                if matches!(type_code, attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI) {
                    return Err(DecodeError::new(
                        ErrorKind::AttributeLengthError,
                        "attribute_length",
                        at + 2,
                        detail,
                    )
                    // RFC 4271 §6.3: the data is the erroneous attribute, as far as it goes.
                    .with_data(raw[i..].to_vec()));
                }
                // RFC 7606 §4: treat-as-withdraw; the total length still locates the NLRI.
                self.issue(Rfc7606Action::TreatAsWithdraw, type_code, at, detail);
                break;
            };
            i = value_at + len;
            let whole = &raw[at - base..i];
            if seen.insert(type_code) {
                // RFC 7606 §3 g: MP_REACH/MP_UNREACH twice resets; other repeats are discarded.
                if matches!(type_code, attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI) {
                    return Err(malformed_list(
                        "attribute_type",
                        at + 1,
                        format!("{} appears twice", attr::name(type_code)),
                    ));
                }
                self.issue(
                    Rfc7606Action::AttributeDiscard,
                    type_code,
                    at,
                    format!("{} repeated", attr::name(type_code)),
                );
                continue;
            }
            let Some(expected) = attribute::expected_flags(type_code) else {
                if flags_octet & flags::OPTIONAL == 0 {
                    // RFC 4271 §6.3: data is the unrecognized attribute (type, length, value).
                    return Err(DecodeError::new(
                        ErrorKind::UnrecognizedWellKnownAttribute,
                        "attribute_type",
                        at + 1,
                        format!("attribute type {type_code} is unknown but flagged well-known ({flags_octet:#04x})"),
                    )
                    .with_data(whole.to_vec()));
                }
                self.attributes.push(PathAttribute {
                    flags: flags_octet,
                    value: AttributeValue::Unknown {
                        type_code,
                        data: value.to_vec(),
                    },
                });
                continue;
            };
            if flags_octet & (flags::OPTIONAL | flags::TRANSITIVE) != expected {
                let detail = format!(
                    "{} flags {flags_octet:#04x} conflict with optional/transitive {expected:#04x}",
                    attr::name(type_code)
                );
                if matches!(type_code, attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI) {
                    return Err(DecodeError::new(
                        ErrorKind::AttributeFlagsError,
                        "attribute_flags",
                        at,
                        detail,
                    )
                    .with_data(whole.to_vec()));
                }
                self.issue(
                    attribute::malformed_action(type_code),
                    type_code,
                    at,
                    detail,
                );
                continue;
            }
            match attribute::decode_into(
                type_code,
                flags_octet,
                value,
                base + value_at,
                four_octet_as,
                &mut self.attributes,
            ) {
                Ok(()) => {}
                Err(AttrFault::Rfc7606(action, detail)) => {
                    self.issue(action, type_code, at, detail)
                }
                // RFC 4271 §6.3: an Optional Attribute Error carries the attribute as data.
                Err(AttrFault::Reset(e)) if e.kind == ErrorKind::OptionalAttributeError => {
                    return Err(e.with_data(whole.to_vec()))
                }
                Err(AttrFault::Reset(e)) => return Err(e),
            }
        }
        Ok(seen)
    }

    /// RFC 4271 §5 and RFC 7606 §3 d: ORIGIN and AS_PATH with any NLRI, NEXT_HOP with classic NLRI.
    fn check_mandatory(&mut self, seen: &Seen, at: usize) {
        let reach = self.mp_reach().is_some_and(|m| !m.nlri.is_empty());
        if self.nlri.is_empty() && !reach {
            return;
        }
        // No list to allocate: this runs for every UPDATE.
        let next_hop = (!self.nlri.is_empty()).then_some(attr::NEXT_HOP);
        for code in [Some(attr::ORIGIN), Some(attr::AS_PATH), next_hop]
            .into_iter()
            .flatten()
        {
            if !seen.contains(code) {
                self.issue(
                    Rfc7606Action::TreatAsWithdraw,
                    code,
                    at,
                    format!("{} missing", attr::name(code)),
                );
            }
        }
    }

    fn issue(&mut self, action: Rfc7606Action, type_code: u8, offset: usize, detail: String) {
        self.issues.push(AttributeIssue {
            action,
            type_code,
            offset,
            detail,
        });
    }

    pub fn attributes_len(&self, four_octet_as: bool) -> usize {
        self.attributes
            .iter()
            .map(|a| a.encoded_len(four_octet_as))
            .sum()
    }

    pub(crate) fn body_len(&self, four_octet_as: bool) -> usize {
        4 + self.withdrawn.iter().map(prefix::ipv4_len).sum::<usize>()
            + self.attributes_len(four_octet_as)
            + self.nlri.iter().map(prefix::ipv4_len).sum::<usize>()
    }

    pub(crate) fn encode_body(&self, four_octet_as: bool, buf: &mut BytesMut) {
        // Both length fields are patched once their contents are written.
        let wlen_at = buf.len();
        buf.put_u16(0);
        self.withdrawn
            .iter()
            .for_each(|p| prefix::encode_ipv4(p, buf));
        let alen_at = buf.len();
        buf.put_u16(0);
        self.attributes
            .iter()
            .for_each(|a| a.encode(four_octet_as, buf));
        let attrs_end = buf.len();
        self.nlri.iter().for_each(|p| prefix::encode_ipv4(p, buf));
        let wlen = (alen_at - wlen_at - 2) as u16;
        let alen = (attrs_end - alen_at - 2) as u16;
        buf[wlen_at..wlen_at + 2].copy_from_slice(&wlen.to_be_bytes());
        buf[alen_at..alen_at + 2].copy_from_slice(&alen.to_be_bytes());
    }
}
