//! NOTIFICATION message (RFC 4271 §4.5) with the shutdown communication of RFC 8203 / RFC 9003
//! and the Hard Reset wrapper of RFC 8538 §3, and the names of its error codes and subcodes:
//! a module per code ([`cease`] etc.) holds the numbers, and [`code_name`] / [`subcode_name`]
//! are the one table of their names (what `ferry decode` shows).
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

/// The subcode sent when no subcode of the error code fits (RFC 4271 §4.5: "Unspecific"), and
/// the only one of Hold Timer Expired and Send Hold Timer Expired.
pub const UNSPECIFIC: u8 = 0;

// Error codes and their subcodes, one module per code (RFC 4271 §4.5, IANA "BGP Error
// (Notification) Codes" and "BGP Error Subcodes"). Numbers stay `u8` on [`Notification`]: a
// peer may send codes and subcodes this table does not know.

/// Message Header Error (1), RFC 4271 §6.1.
pub mod message_header_error {
    pub const CODE: u8 = 1;
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error (2), RFC 4271 §6.2.
pub mod open_message_error {
    pub const CODE: u8 = 2;
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// RFC 5492 §5.
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// RFC 9234 §4.2.
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error (3), RFC 4271 §6.3.
pub mod update_message_error {
    pub const CODE: u8 = 3;
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Hold Timer Expired (4), RFC 4271 §6.5; subcode [`UNSPECIFIC`](super::UNSPECIFIC).
pub mod hold_timer_expired {
    pub const CODE: u8 = 4;
}

/// Finite State Machine Error (5), RFC 4271 §6.6, with the subcodes of RFC 6608 §3.
pub mod fsm_error {
    pub const CODE: u8 = 5;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_MESSAGE_IN_ESTABLISHED: u8 = 3;
}

/// Cease (6), RFC 4271 §6.7, with the subcodes of RFC 4486 §3 (1-8), RFC 8538 §3 (Hard
/// Reset) and RFC 9384 (BFD Down).
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

/// ROUTE-REFRESH Message Error (7), RFC 7313 §5.
pub mod route_refresh_message_error {
    pub const CODE: u8 = 7;
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// Send Hold Timer Expired (8), RFC 9687 §4; subcode [`UNSPECIFIC`](super::UNSPECIFIC).
pub mod send_hold_timer_expired {
    pub const CODE: u8 = 8;
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
        message_header_error::CODE => "Message Header Error",
        open_message_error::CODE => "OPEN Message Error",
        update_message_error::CODE => "UPDATE Message Error",
        hold_timer_expired::CODE => "Hold Timer Expired",
        fsm_error::CODE => "Finite State Machine Error",
        cease::CODE => "Cease",
        route_refresh_message_error::CODE => "ROUTE-REFRESH Message Error",
        send_hold_timer_expired::CODE => "Send Hold Timer Expired",
        _ => "Unknown",
    }
}

/// Name of an error subcode within its code.
pub fn subcode_name(code: u8, subcode: u8) -> &'static str {
    use cease as c;
    use fsm_error as f;
    use message_header_error as h;
    use open_message_error as o;
    use route_refresh_message_error as r;
    use update_message_error as u;
    match (code, subcode) {
        (h::CODE, h::CONNECTION_NOT_SYNCHRONIZED) => "Connection Not Synchronized",
        (h::CODE, h::BAD_MESSAGE_LENGTH) => "Bad Message Length",
        (h::CODE, h::BAD_MESSAGE_TYPE) => "Bad Message Type",
        (o::CODE | u::CODE | f::CODE | c::CODE, UNSPECIFIC) => "Unspecific",
        (o::CODE, o::UNSUPPORTED_VERSION_NUMBER) => "Unsupported Version Number",
        (o::CODE, o::BAD_PEER_AS) => "Bad Peer AS",
        (o::CODE, o::BAD_BGP_IDENTIFIER) => "Bad BGP Identifier",
        (o::CODE, o::UNSUPPORTED_OPTIONAL_PARAMETER) => "Unsupported Optional Parameter",
        (o::CODE, o::UNACCEPTABLE_HOLD_TIME) => "Unacceptable Hold Time",
        (o::CODE, o::UNSUPPORTED_CAPABILITY) => "Unsupported Capability",
        (o::CODE, o::ROLE_MISMATCH) => "Role Mismatch",
        (u::CODE, u::MALFORMED_ATTRIBUTE_LIST) => "Malformed Attribute List",
        (u::CODE, u::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => "Unrecognized Well-known Attribute",
        (u::CODE, u::MISSING_WELL_KNOWN_ATTRIBUTE) => "Missing Well-known Attribute",
        (u::CODE, u::ATTRIBUTE_FLAGS_ERROR) => "Attribute Flags Error",
        (u::CODE, u::ATTRIBUTE_LENGTH_ERROR) => "Attribute Length Error",
        (u::CODE, u::INVALID_ORIGIN_ATTRIBUTE) => "Invalid ORIGIN Attribute",
        (u::CODE, u::INVALID_NEXT_HOP_ATTRIBUTE) => "Invalid NEXT_HOP Attribute",
        (u::CODE, u::OPTIONAL_ATTRIBUTE_ERROR) => "Optional Attribute Error",
        (u::CODE, u::INVALID_NETWORK_FIELD) => "Invalid Network Field",
        (u::CODE, u::MALFORMED_AS_PATH) => "Malformed AS_PATH",
        (f::CODE, f::UNEXPECTED_MESSAGE_IN_OPEN_SENT) => "Unexpected Message in OpenSent State",
        (f::CODE, f::UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM) => {
            "Unexpected Message in OpenConfirm State"
        }
        (f::CODE, f::UNEXPECTED_MESSAGE_IN_ESTABLISHED) => {
            "Unexpected Message in Established State"
        }
        (c::CODE, c::MAX_PREFIXES_REACHED) => "Maximum Number of Prefixes Reached",
        (c::CODE, c::ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
        (c::CODE, c::PEER_DECONFIGURED) => "Peer De-configured",
        (c::CODE, c::ADMINISTRATIVE_RESET) => "Administrative Reset",
        (c::CODE, c::CONNECTION_REJECTED) => "Connection Rejected",
        (c::CODE, c::OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
        (c::CODE, c::CONNECTION_COLLISION_RESOLUTION) => "Connection Collision Resolution",
        (c::CODE, c::OUT_OF_RESOURCES) => "Out of Resources",
        (c::CODE, c::HARD_RESET) => "Hard Reset",
        (c::CODE, c::BFD_DOWN) => "BFD Down",
        (r::CODE, r::INVALID_MESSAGE_LENGTH) => "Invalid Message Length",
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
            code: cease::CODE,
            subcode: cease::ADMINISTRATIVE_SHUTDOWN,
            data: Bytes::from_static(&[10, b'a']),
        };
        assert_eq!(n.shutdown_message(), None);
    }

    #[test]
    fn hard_reset_unwraps_inner_notification() {
        let n = Notification {
            code: cease::CODE,
            subcode: cease::HARD_RESET,
            data: Bytes::from_static(&[6, 2, 1, b'x']),
        };
        let inner = n.hard_reset_inner().unwrap();
        assert_eq!(
            (inner.code, inner.subcode),
            (cease::CODE, cease::ADMINISTRATIVE_SHUTDOWN)
        );
        assert_eq!(inner.shutdown_message().as_deref(), Some("x"));
    }
}
