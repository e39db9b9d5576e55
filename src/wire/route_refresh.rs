//! ROUTE-REFRESH message (RFC 2918 §3) with the BoRR/EoRR subtypes of RFC 7313 §3.2.
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subtype | SAFI|
//! +-------+-------+-------+-------+
//! ```
//!
//! RFC 7313 §5: a BoRR or EoRR whose body is not 4 octets is a ROUTE-REFRESH Message Error,
//! Invalid Message Length, with the whole message as data. A normal request may carry ORF
//! entries (RFC 5291); Ferry keeps them as raw octets and does not act on them.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, ErrorKind};
use super::iana::{Afi, Safi};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSubtype {
    Normal,
    /// Beginning of route refresh.
    Borr,
    /// End of route refresh.
    Eorr,
    Unknown(u8),
}

impl RefreshSubtype {
    pub fn from_code(v: u8) -> Self {
        match v {
            0 => Self::Normal,
            1 => Self::Borr,
            2 => Self::Eorr,
            o => Self::Unknown(o),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::Borr => 1,
            Self::Eorr => 2,
            Self::Unknown(v) => v,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: Afi,
    pub subtype: RefreshSubtype,
    pub safi: Safi,
    /// ORF entries of a normal request, unparsed.
    pub orf: Bytes,
}

impl RouteRefresh {
    pub fn new(afi: Afi, safi: Safi, subtype: RefreshSubtype) -> Self {
        Self {
            afi,
            subtype,
            safi,
            orf: Bytes::new(),
        }
    }

    /// `message` is the whole message; framing guarantees a body of at least 4 octets.
    pub(crate) fn decode(message: &[u8]) -> Result<Self, DecodeError> {
        let body = &message[super::header::HEADER_LEN..];
        let subtype = RefreshSubtype::from_code(body.get(2).copied().unwrap_or(0));
        // RFC 7313 §5: only a BoRR or EoRR must be exactly 4 octets. A normal request may carry
        // ORF entries (RFC 5291) and an unknown subtype is ignored by the session (RFC 7313 §5),
        // so neither is a length error.
        let demarcation = matches!(subtype, RefreshSubtype::Borr | RefreshSubtype::Eorr);
        if demarcation && body.len() != 4 || body.len() < 4 {
            return Err(DecodeError::new(
                ErrorKind::RouteRefreshInvalidLength,
                "length",
                16,
                format!("ROUTE-REFRESH body of {} octets, expected 4", body.len()),
            )
            .with_data(Bytes::copy_from_slice(message)));
        }
        Ok(Self {
            afi: u16::from_be_bytes([body[0], body[1]]).into(),
            subtype,
            safi: body[3].into(),
            orf: Bytes::copy_from_slice(&body[4..]),
        })
    }

    pub(crate) fn body_len(&self) -> usize {
        4 + self.orf.len()
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        buf.put_u16(self.afi.into());
        buf.put_u8(self.subtype.code());
        buf.put_u8(self.safi.into());
        buf.put_slice(&self.orf);
    }
}
