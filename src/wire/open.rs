//! OPEN message (RFC 4271 §4.2) with capability parameters (RFC 5492) and the extended optional
//! parameters length of RFC 9072.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The codec checks what the message alone can show (RFC 4271 §6.2): version 4, a peer AS other
//! than 0 in My AS and in the 4-octet AS capability (RFC 7607 §2: Bad Peer AS), hold time not 1
//! or 2, a non-zero BGP identifier (RFC 6286 §2.2), only capability parameters. Checks against
//! configuration (peer AS, role mismatch, required capabilities) belong to the session.
//! Capabilities keep their grouping into optional parameters so a message re-encodes exactly.

use bytes::{BufMut, BytesMut};
use std::net::Ipv4Addr;

use super::capability::Capability;
use super::error::{DecodeError, ErrorKind};
use super::iana::AS_TRANS;

pub const BGP_VERSION: u8 = 4;
/// Optional parameter type carrying capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 §2: Non-Ext OP Type that announces the extended encoding.
const PARAM_EXTENDED_LENGTH: u8 = 255;
/// Offset of the Opt Parm Len octet from the start of the message.
const OPT_LEN_AT: usize = 28;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// The 2-octet field; AS_TRANS when the speaker's AS does not fit.
    pub my_as: u16,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    /// One entry per optional parameter of type 2, each with its capabilities in wire order.
    pub params: Vec<Vec<Capability>>,
    /// Parameters were encoded with RFC 9072's 2-octet lengths.
    pub extended_params: bool,
}

impl Open {
    /// An OPEN for `asn` with all capabilities in one optional parameter (as BIRD sends them).
    pub fn new(
        asn: u32,
        hold_time: u16,
        router_id: Ipv4Addr,
        capabilities: Vec<Capability>,
    ) -> Self {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
        let params = if capabilities.is_empty() {
            Vec::new()
        } else {
            vec![capabilities]
        };
        Self {
            version: BGP_VERSION,
            my_as,
            hold_time,
            router_id,
            params,
            extended_params: false,
        }
    }

    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.params.iter().flatten()
    }

    /// The speaker's AS: the 4-octet AS capability when present (RFC 6793 §4.1), else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Decode the body (after the 19-octet header).
    pub(crate) fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        // Framing guarantees at least 10 octets (OPEN minimum length 29).
        if body.len() < 10 {
            return Err(DecodeError::new(
                ErrorKind::BadMessageLength,
                "length",
                16,
                "OPEN shorter than 29",
            ));
        }
        let version = body[0];
        if version != BGP_VERSION {
            return Err(DecodeError::new(
                ErrorKind::UnsupportedVersionNumber,
                "version",
                19,
                format!("version {version} is not 4"),
            )
            // RFC 4271 §6.2: data is the largest locally supported version.
            .with_data(u16::from(BGP_VERSION).to_be_bytes().to_vec()));
        }
        let my_as = u16::from_be_bytes([body[1], body[2]]);
        // RFC 7607 §2: AS 0 as the peer AS MUST get Bad Peer AS, whatever is configured. The
        // data is the field as received, as the session sends for any other Bad Peer AS.
        if my_as == 0 {
            return Err(DecodeError::new(
                ErrorKind::BadPeerAs,
                "my_as",
                20,
                "My AS 0 is reserved (RFC 7607 §2)",
            )
            .with_data(body[1..3].to_vec()));
        }
        let hold_time = u16::from_be_bytes([body[3], body[4]]);
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::new(
                ErrorKind::UnacceptableHoldTime,
                "hold_time",
                22,
                format!("hold time {hold_time} is neither 0 nor at least 3"),
            ));
        }
        let router_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
        if router_id.is_unspecified() {
            return Err(DecodeError::new(
                ErrorKind::BadBgpIdentifier,
                "router_id",
                24,
                "BGP identifier 0.0.0.0",
            ));
        }
        let (params, extended_params) = decode_params(&body[9..])?;
        Ok(Self {
            version,
            my_as,
            hold_time,
            router_id,
            params,
            extended_params,
        })
    }

    fn params_len(&self) -> usize {
        let per_param = if self.extended_params { 3 } else { 2 };
        self.params
            .iter()
            .map(|caps| per_param + caps.iter().map(|c| 2 + c.value_len()).sum::<usize>())
            .sum()
    }

    pub(crate) fn body_len(&self) -> usize {
        let ext = if self.extended_params { 3 } else { 0 };
        10 + ext + self.params_len()
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        buf.put_u8(self.version);
        buf.put_u16(self.my_as);
        buf.put_u16(self.hold_time);
        buf.put_slice(&self.router_id.octets());
        if self.extended_params {
            buf.put_u8(255);
            buf.put_u8(PARAM_EXTENDED_LENGTH);
            buf.put_u16(self.params_len() as u16);
        } else {
            buf.put_u8(self.params_len() as u8);
        }
        for caps in &self.params {
            buf.put_u8(PARAM_CAPABILITIES);
            let len = caps.iter().map(|c| 2 + c.value_len()).sum::<usize>();
            if self.extended_params {
                buf.put_u16(len as u16);
            } else {
                buf.put_u8(len as u8);
            }
            caps.iter().for_each(|c| c.encode(buf));
        }
    }
}

fn unspecific(field: &'static str, at: usize, detail: String) -> DecodeError {
    DecodeError::new(ErrorKind::OpenUnspecific, field, at, detail)
}

/// `rest` starts at the Opt Parm Len octet.
fn decode_params(rest: &[u8]) -> Result<(Vec<Vec<Capability>>, bool), DecodeError> {
    let short_len = usize::from(rest[0]);
    // RFC 9072 §2: Opt Parm Len 255 followed by type 255 announces 2-octet lengths.
    let extended = short_len == 255 && rest.get(1) == Some(&PARAM_EXTENDED_LENGTH);
    let (len, mut at, len_width) = if extended {
        let Some(b) = rest.get(2..4) else {
            return Err(unspecific(
                "opt_param_len",
                OPT_LEN_AT,
                "extended parameters length missing".into(),
            ));
        };
        (usize::from(u16::from_be_bytes([b[0], b[1]])), 4, 2)
    } else {
        (short_len, 1, 1)
    };
    if rest.len() - at != len {
        return Err(unspecific(
            "opt_param_len",
            OPT_LEN_AT,
            format!(
                "optional parameters length {len} but {} octets follow",
                rest.len() - at
            ),
        ));
    }
    let mut params = Vec::new();
    while at < rest.len() {
        let param_at = OPT_LEN_AT + at;
        let Some(head) = rest.get(at..at + 1 + len_width) else {
            return Err(unspecific(
                "opt_param",
                param_at,
                "truncated optional parameter header".into(),
            ));
        };
        let kind = head[0];
        let plen = if extended {
            usize::from(u16::from_be_bytes([head[1], head[2]]))
        } else {
            usize::from(head[1])
        };
        at += 1 + len_width;
        let Some(value) = rest.get(at..at + plen) else {
            return Err(unspecific(
                "opt_param_len",
                param_at + 1,
                format!(
                    "optional parameter length {plen} overruns the {} octets left",
                    rest.len() - at
                ),
            ));
        };
        if kind != PARAM_CAPABILITIES {
            return Err(DecodeError::new(
                ErrorKind::UnsupportedOptionalParameter,
                "opt_param_type",
                param_at,
                format!("optional parameter type {kind} is not 2 (capabilities)"),
            ));
        }
        params.push(decode_capabilities(value, OPT_LEN_AT + at)?);
        at += plen;
    }
    Ok((params, extended))
}

fn decode_capabilities(mut value: &[u8], mut at: usize) -> Result<Vec<Capability>, DecodeError> {
    let mut caps = Vec::new();
    while let [code, len, rest @ ..] = value {
        let len = usize::from(*len);
        let Some(cap_value) = rest.get(..len) else {
            return Err(unspecific(
                "capability_length",
                at + 1,
                format!(
                    "capability {code} length {len} overruns the {} octets left",
                    rest.len()
                ),
            ));
        };
        caps.push(Capability::decode_value(*code, cap_value, at)?);
        value = &rest[len..];
        at += 2 + len;
    }
    if !value.is_empty() {
        return Err(unspecific(
            "capability",
            at,
            "one stray octet after the last capability".into(),
        ));
    }
    Ok(caps)
}
