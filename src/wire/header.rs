//! Message header and framing (RFC 4271 §4.1, §6.1; RFC 8654 §4 for extended messages).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                           Marker (16 x 0xff)                  +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`split_frame`] is the only place that sees partial input: it waits for a whole message and
//! rejects a bad marker, length or type with the NOTIFICATION of RFC 4271 §6.1 before any body
//! octet is read. Never does: I/O; parse bodies.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, ErrorKind};
use super::iana::MessageType;

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message once extended messages are negotiated (RFC 8654 §4).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u16,
    pub kind: MessageType,
}

/// Smallest legal length of each message type (RFC 4271 §4.2-4.4, RFC 2918 §3).
fn min_len(kind: MessageType) -> usize {
    match kind {
        MessageType::Open => 29,
        MessageType::Update => 23,
        MessageType::Notification => 21,
        MessageType::Keepalive => 19,
        MessageType::RouteRefresh => 23,
    }
}

/// Largest legal length of each type; OPEN and KEEPALIVE never exceed 4096 (RFC 8654 §4).
fn max_len(kind: MessageType, session_max: usize) -> usize {
    match kind {
        MessageType::Keepalive => HEADER_LEN,
        MessageType::Open => MAX_MESSAGE_LEN,
        _ => session_max,
    }
}

/// Decode and check the header at the start of `buf`; `Ok(None)` while fewer than 19 octets
/// have arrived. `session_max` is 4096, or 65535 with extended messages.
pub fn decode_header(buf: &[u8], session_max: usize) -> Result<Option<Header>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16] != MARKER {
        let bad = buf[..16].iter().position(|&b| b != 0xff).unwrap_or(0);
        return Err(DecodeError::new(
            ErrorKind::ConnectionNotSynchronized,
            "marker",
            bad,
            format!("marker octet {bad} is {:#04x}, not 0xff", buf[bad]),
        ));
    }
    let length = u16::from_be_bytes([buf[16], buf[17]]);
    let type_code = buf[18];
    let Some(kind) = MessageType::from_code(type_code) else {
        return Err(DecodeError::new(
            ErrorKind::BadMessageType,
            "type",
            18,
            format!("message type {type_code} is not one of 1-5"),
        )
        .with_data(vec![type_code]));
    };
    // RFC 4271 §6.1: the data of Bad Message Length is the erroneous Length field.
    let len = usize::from(length);
    if len < min_len(kind) || len > max_len(kind, session_max) {
        return Err(DecodeError::new(
            ErrorKind::BadMessageLength,
            "length",
            16,
            format!(
                "{} length {len} is outside {}..={}",
                kind.name(),
                min_len(kind),
                max_len(kind, session_max)
            ),
        )
        .with_data(length.to_be_bytes().to_vec()));
    }
    Ok(Some(Header { length, kind }))
}

/// Write a header for a message of `length` octets in total.
pub fn encode_header(kind: MessageType, length: usize, buf: &mut BytesMut) {
    debug_assert!(
        length <= MAX_EXTENDED_MESSAGE_LEN,
        "message of {length} octets"
    );
    buf.put_slice(&MARKER);
    buf.put_u16(length as u16);
    buf.put_u8(kind.code());
}

/// Take one whole message off the front of `buf`, or `Ok(None)` if it has not all arrived yet.
pub fn split_frame(
    buf: &mut BytesMut,
    session_max: usize,
) -> Result<Option<BytesMut>, DecodeError> {
    match decode_header(buf, session_max)? {
        Some(h) if buf.len() >= usize::from(h.length) => {
            Ok(Some(buf.split_to(usize::from(h.length))))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::notification::message_header_error as h;

    fn keepalive() -> Vec<u8> {
        let mut v = MARKER.to_vec();
        v.extend_from_slice(&[0, 19, 4]);
        v
    }

    #[test]
    fn splitter_waits_for_whole_message_fed_one_octet_at_a_time() {
        let msg = [keepalive(), keepalive()].concat();
        let mut buf = BytesMut::new();
        let mut frames = 0;
        for b in msg {
            buf.put_u8(b);
            while let Some(f) = split_frame(&mut buf, MAX_MESSAGE_LEN).unwrap() {
                assert_eq!(&f[..], &keepalive()[..]);
                frames += 1;
            }
        }
        assert_eq!(frames, 2);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_marker_is_connection_not_synchronized() {
        let mut m = keepalive();
        m[3] = 0;
        let e = decode_header(&m, MAX_MESSAGE_LEN).unwrap_err();
        assert_eq!(
            e.kind.code_subcode(),
            (h::CODE, h::CONNECTION_NOT_SYNCHRONIZED)
        );
        assert_eq!(e.offset, 3);
    }

    #[test]
    fn bad_length_carries_the_length_field() {
        let mut m = keepalive();
        m[17] = 20;
        let e = decode_header(&m, MAX_MESSAGE_LEN).unwrap_err();
        assert_eq!(e.kind.code_subcode(), (h::CODE, h::BAD_MESSAGE_LENGTH));
        assert_eq!(&e.data[..], &[0, 20]);
    }

    #[test]
    fn extended_length_only_with_extended_messages_and_never_for_open() {
        let mut m = MARKER.to_vec();
        m.extend_from_slice(&5000u16.to_be_bytes());
        m.push(2);
        assert!(decode_header(&m, MAX_MESSAGE_LEN).is_err());
        assert!(decode_header(&m, MAX_EXTENDED_MESSAGE_LEN)
            .unwrap()
            .is_some());
        m[18] = 1;
        assert!(decode_header(&m, MAX_EXTENDED_MESSAGE_LEN).is_err());
    }

    #[test]
    fn unknown_type_is_bad_message_type() {
        let mut m = keepalive();
        m[18] = 9;
        let e = decode_header(&m, MAX_MESSAGE_LEN).unwrap_err();
        assert_eq!(e.kind.code_subcode(), (h::CODE, h::BAD_MESSAGE_TYPE));
        assert_eq!(&e.data[..], &[9]);
    }
}
