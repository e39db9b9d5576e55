//! NOTIFICATION message (RFC 4271 §4.5) with the shutdown communication of RFC 8203 / RFC 9003
//! and the Hard Reset wrapper of RFC 8538 §3.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Never does: decide when to send one (that is the session's job).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, ErrorKind};

/// Cease (6) subcodes used by Ferry (RFC 4486, RFC 8538).
pub mod cease {
    pub const CODE: u8 = 6;
    pub const MAX_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// Longest shutdown communication (RFC 9003 §2).
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Bytes,
}

impl Notification {
    /// Cease with a shutdown communication (RFC 9003 §2); the text is cut at a character
    /// boundary to fit 255 octets.
    pub fn cease_with_message(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = &message.as_bytes()[..end];
        let mut data = BytesMut::with_capacity(1 + text.len());
        data.put_u8(text.len() as u8);
        data.put_slice(text);
        Self {
            code: cease::CODE,
            subcode,
            data: data.freeze(),
        }
    }

    /// The shutdown communication of an Administrative Shutdown or Reset, if the data holds a
    /// well-formed one (RFC 9003 §2: length octet, then UTF-8 of that length).
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != cease::CODE
            || !matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..len as usize)?;
        std::str::from_utf8(text).ok().map(str::to_owned)
    }

    /// The NOTIFICATION wrapped in a Hard Reset (RFC 8538 §3): its data is code, subcode, data.
    pub fn hard_reset_inner(&self) -> Option<Notification> {
        if self.code != cease::CODE || self.subcode != cease::HARD_RESET || self.data.len() < 2 {
            return None;
        }
        Some(Notification {
            code: self.data[0],
            subcode: self.data[1],
            data: self.data.slice(2..),
        })
    }

    /// Decode the body (after the 19-octet header); `body` is at least 2 octets by framing.
    pub(crate) fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Self {
                code: *code,
                subcode: *subcode,
                data: Bytes::copy_from_slice(data),
            }),
            _ => Err(DecodeError::new(
                ErrorKind::BadMessageLength,
                "length",
                16,
                format!(
                    "NOTIFICATION body of {} octets is shorter than 2",
                    body.len()
                ),
            )),
        }
    }

    /// Octets of data sent when the body may take at most `max_body` octets. The data often
    /// echoes the peer's own message (RFC 4271 §6.1, RFC 7313 §5), which may be as long as the
    /// largest message: sent whole, the NOTIFICATION would exceed the message size limit
    /// (RFC 4271 §4.1, RFC 8654 §4), so the tail that does not fit is dropped.
    fn data_len_within(&self, max_body: usize) -> usize {
        self.data.len().min(max_body.saturating_sub(2))
    }

    /// Body length once the data is cut to fit `max_body` octets.
    pub(crate) fn body_len(&self, max_body: usize) -> usize {
        2 + self.data_len_within(max_body)
    }

    /// Write code, subcode and as much data as fits in `max_body` octets of body.
    pub(crate) fn encode_body(&self, max_body: usize, buf: &mut BytesMut) {
        buf.put_u8(self.code);
        buf.put_u8(self.subcode);
        buf.put_slice(&self.data[..self.data_len_within(max_body)]);
    }
}

/// Name of an error code (IANA "BGP Error (Notification) Codes").
pub fn code_name(code: u8) -> &'static str {
    match code {
        1 => "Message Header Error",
        2 => "OPEN Message Error",
        3 => "UPDATE Message Error",
        4 => "Hold Timer Expired",
        5 => "Finite State Machine Error",
        6 => "Cease",
        7 => "ROUTE-REFRESH Message Error",
        8 => "Send Hold Timer Expired",
        _ => "Unknown",
    }
}

/// Name of an error subcode within its code.
pub fn subcode_name(code: u8, subcode: u8) -> &'static str {
    match (code, subcode) {
        (1, 1) => "Connection Not Synchronized",
        (1, 2) => "Bad Message Length",
        (1, 3) => "Bad Message Type",
        (2, 0) | (3, 0) | (5, 0) | (6, 0) => "Unspecific",
        (2, 1) => "Unsupported Version Number",
        (2, 2) => "Bad Peer AS",
        (2, 3) => "Bad BGP Identifier",
        (2, 4) => "Unsupported Optional Parameter",
        (2, 6) => "Unacceptable Hold Time",
        (2, 7) => "Unsupported Capability",
        (2, 11) => "Role Mismatch",
        (3, 1) => "Malformed Attribute List",
        (3, 2) => "Unrecognized Well-known Attribute",
        (3, 3) => "Missing Well-known Attribute",
        (3, 4) => "Attribute Flags Error",
        (3, 5) => "Attribute Length Error",
        (3, 6) => "Invalid ORIGIN Attribute",
        (3, 8) => "Invalid NEXT_HOP Attribute",
        (3, 9) => "Optional Attribute Error",
        (3, 10) => "Invalid Network Field",
        (3, 11) => "Malformed AS_PATH",
        (5, 1) => "Unexpected Message in OpenSent State",
        (5, 2) => "Unexpected Message in OpenConfirm State",
        (5, 3) => "Unexpected Message in Established State",
        (6, 1) => "Maximum Number of Prefixes Reached",
        (6, 2) => "Administrative Shutdown",
        (6, 3) => "Peer De-configured",
        (6, 4) => "Administrative Reset",
        (6, 5) => "Connection Rejected",
        (6, 6) => "Other Configuration Change",
        (6, 7) => "Connection Collision Resolution",
        (6, 8) => "Out of Resources",
        (6, 9) => "Hard Reset",
        (6, 10) => "BFD Down",
        (7, 1) => "Invalid Message Length",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_message_round_trips_and_is_cut_at_a_char_boundary() {
        let n = Notification::cease_with_message(cease::ADMINISTRATIVE_SHUTDOWN, "maintenance");
        assert_eq!(n.shutdown_message().as_deref(), Some("maintenance"));
        let long = "ü".repeat(200); // 400 octets
        let n = Notification::cease_with_message(cease::ADMINISTRATIVE_SHUTDOWN, &long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_message().unwrap().chars().count(), 127);
    }

    #[test]
    fn shutdown_message_absent_when_length_overruns() {
        let n = Notification {
            code: 6,
            subcode: 2,
            data: Bytes::from_static(&[10, b'a']),
        };
        assert_eq!(n.shutdown_message(), None);
    }

    #[test]
    fn hard_reset_unwraps_inner_notification() {
        let n = Notification {
            code: 6,
            subcode: 9,
            data: Bytes::from_static(&[6, 2, 1, b'x']),
        };
        let inner = n.hard_reset_inner().unwrap();
        assert_eq!((inner.code, inner.subcode), (6, 2));
        assert_eq!(inner.shutdown_message().as_deref(), Some("x"));
    }
}
