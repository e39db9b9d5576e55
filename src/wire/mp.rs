//! MP_REACH_NLRI and MP_UNREACH_NLRI values (RFC 4760 §3-4), IPv6 next hops with an optional
//! link-local address (RFC 2545 §3), IPv6 next hops for IPv4 NLRI (RFC 8950).
//!
//! ```text
//! MP_REACH_NLRI                                MP_UNREACH_NLRI
//! +---------------------------------------+    +---------------------------------------+
//! | AFI (2) | SAFI (1)                    |    | AFI (2) | SAFI (1)                    |
//! | Length of Next Hop (1)                |    | Withdrawn Routes (variable)         |
//! | Next Hop (variable)                   |    +---------------------------------------+
//! | Reserved (1)                          |
//! | NLRI (variable)                       |
//! +---------------------------------------+
//! ```
//!
//! Errors in these attributes reset the session (RFC 7606 §7.11; Ferry does not implement
//! AFI/SAFI disable). Unicast and multicast NLRI of IPv4 and IPv6 are decoded; other families
//! are kept raw.

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{DecodeError, ErrorKind};
use super::iana::{Afi, Family, Safi};
use super::prefix;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpNextHop {
    Ipv4(Ipv4Addr),
    Ipv6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
    Other(Vec<u8>),
}

impl MpNextHop {
    fn decode(raw: &[u8]) -> Self {
        match raw.len() {
            4 => Self::Ipv4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
            16 => Self::Ipv6 {
                global: v6(raw),
                link_local: None,
            },
            32 => Self::Ipv6 {
                global: v6(raw),
                link_local: Some(v6(&raw[16..])),
            },
            _ => Self::Other(raw.to_vec()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Ipv4(_) => 4,
            Self::Ipv6 {
                link_local: None, ..
            } => 16,
            Self::Ipv6 {
                link_local: Some(_),
                ..
            } => 32,
            Self::Other(raw) => raw.len(),
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Self::Ipv4(a) => buf.put_slice(&a.octets()),
            Self::Ipv6 { global, link_local } => {
                buf.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    buf.put_slice(&ll.octets());
                }
            }
            Self::Other(raw) => buf.put_slice(raw),
        }
    }

    /// The addresses, global first, for display.
    pub fn addresses(&self) -> Vec<String> {
        match self {
            Self::Ipv4(a) => vec![a.to_string()],
            Self::Ipv6 { global, link_local } => std::iter::once(global.to_string())
                .chain(link_local.map(|l| l.to_string()))
                .collect(),
            Self::Other(raw) => vec![hex::encode(raw)],
        }
    }
}

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

/// Prefixes of one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpNlri {
    Ipv4(Vec<Ipv4Net>),
    Ipv6(Vec<Ipv6Net>),
    /// A family Ferry does not decode.
    Raw(Vec<u8>),
}

impl MpNlri {
    fn decode(
        afi: Afi,
        safi: Safi,
        raw: &[u8],
        field: &'static str,
        at: usize,
    ) -> Result<Self, DecodeError> {
        Ok(match (afi, safi) {
            (Afi::Ipv4, Safi::Unicast | Safi::Multicast) => {
                let mut v = Vec::new();
                prefix::decode_ipv4(raw, field, at, &mut v)?;
                Self::Ipv4(v)
            }
            (Afi::Ipv6, Safi::Unicast | Safi::Multicast) => {
                let mut v = Vec::new();
                prefix::decode_ipv6(raw, field, at, &mut v)?;
                Self::Ipv6(v)
            }
            _ => Self::Raw(raw.to_vec()),
        })
    }

    fn len(&self) -> usize {
        match self {
            Self::Ipv4(v) => v.iter().map(prefix::ipv4_len).sum(),
            Self::Ipv6(v) => v.iter().map(prefix::ipv6_len).sum(),
            Self::Raw(r) => r.len(),
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Self::Ipv4(v) => v.iter().for_each(|p| prefix::encode_ipv4(p, buf)),
            Self::Ipv6(v) => v.iter().for_each(|p| prefix::encode_ipv6(p, buf)),
            Self::Raw(r) => buf.put_slice(r),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Prefixes as strings ("2001:db8::/32"); a raw family as one hex string.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Self::Ipv4(v) => v.iter().map(ToString::to_string).collect(),
            Self::Ipv6(v) => v.iter().map(ToString::to_string).collect(),
            Self::Raw(r) if r.is_empty() => Vec::new(),
            Self::Raw(r) => vec![hex::encode(r)],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    pub next_hop: MpNextHop,
    /// RFC 4760 §3: ignored on receipt, kept for exact re-encoding.
    pub reserved: u8,
    pub nlri: MpNlri,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: MpNlri,
}

fn reset(field: &'static str, at: usize, detail: String) -> DecodeError {
    DecodeError::new(ErrorKind::OptionalAttributeError, field, at, detail)
}

impl MpReach {
    pub fn ipv6(next_hop: MpNextHop, nlri: Vec<Ipv6Net>) -> Self {
        Self {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            next_hop,
            reserved: 0,
            nlri: MpNlri::Ipv6(nlri),
        }
    }

    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }

    /// `at` is the offset of the value in the message.
    pub fn decode(value: &[u8], at: usize) -> Result<Self, DecodeError> {
        if value.len() < 5 {
            return Err(reset(
                "mp_reach_nlri",
                at,
                format!("MP_REACH_NLRI length {} is under 5", value.len()),
            ));
        }
        let afi = Afi::from(u16::from_be_bytes([value[0], value[1]]));
        let safi = Safi::from(value[2]);
        let nh_len = usize::from(value[3]);
        let Some(nh) = value.get(4..4 + nh_len) else {
            return Err(reset(
                "mp_reach_next_hop_length",
                at + 3,
                format!("next hop length {nh_len} overruns"),
            ));
        };
        let Some(&reserved) = value.get(4 + nh_len) else {
            return Err(reset(
                "mp_reach_reserved",
                at + 4 + nh_len,
                "no reserved octet after next hop".into(),
            ));
        };
        let valid_len = match afi {
            Afi::Ipv4 => matches!(nh_len, 4 | 16 | 32),
            Afi::Ipv6 => matches!(nh_len, 16 | 32),
            Afi::Unknown(_) => true,
        };
        if !valid_len {
            return Err(reset(
                "mp_reach_next_hop_length",
                at + 3,
                format!("next hop length {nh_len} for AFI {afi}"),
            ));
        }
        let nlri_at = at + 5 + nh_len;
        let nlri = MpNlri::decode(afi, safi, &value[5 + nh_len..], "mp_reach_nlri", nlri_at)?;
        Ok(Self {
            afi,
            safi,
            next_hop: MpNextHop::decode(nh),
            reserved,
            nlri,
        })
    }

    pub fn value_len(&self) -> usize {
        5 + self.next_hop.len() + self.nlri.len()
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.afi.into());
        buf.put_u8(self.safi.into());
        buf.put_u8(self.next_hop.len() as u8);
        self.next_hop.encode(buf);
        buf.put_u8(self.reserved);
        self.nlri.encode(buf);
    }
}

impl MpUnreach {
    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }

    pub fn decode(value: &[u8], at: usize) -> Result<Self, DecodeError> {
        if value.len() < 3 {
            return Err(reset(
                "mp_unreach_nlri",
                at,
                format!("MP_UNREACH_NLRI length {} is under 3", value.len()),
            ));
        }
        let afi = Afi::from(u16::from_be_bytes([value[0], value[1]]));
        let safi = Safi::from(value[2]);
        let withdrawn = MpNlri::decode(afi, safi, &value[3..], "mp_unreach_withdrawn", at + 3)?;
        Ok(Self {
            afi,
            safi,
            withdrawn,
        })
    }

    pub fn value_len(&self) -> usize {
        3 + self.withdrawn.len()
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.afi.into());
        buf.put_u8(self.safi.into());
        self.withdrawn.encode(buf);
    }
}
