//! The BGP-4 message codec: pure functions from bytes to messages and back.
//!
//! Contract:
//! - Decoding takes `&[u8]`, never panics, never allocates on the strength of a length it has
//!   not checked against the bytes actually present, and never does I/O.
//! - A decode error that resets the session is a [`DecodeError`] naming the field, the offset
//!   and the bad value; [`DecodeError::notification`] is the NOTIFICATION to send
//!   (RFC 4271 §6). UPDATE errors that RFC 7606 handles without a reset are
//!   [`Update::issues`].
//! - Encoding is infallible: `encoded_len()` tells the size, `encode()` writes exactly that.
//!   Messages decoded from the wire re-encode byte for byte.
//!
//! Layout: [`header`] (framing), [`open`] + [`capability`], [`update`] + [`attribute`],
//! [`as_path`], [`community`], [`mp`], [`prefix`], [`notification`], [`route_refresh`],
//! [`iana`] (code points), [`error`].

pub mod as_path;
pub mod attribute;
pub mod capability;
pub mod community;
pub mod error;
pub mod header;
pub mod iana;
pub mod mp;
pub mod notification;
pub mod open;
pub mod prefix;
pub mod route_refresh;
pub mod update;

use bytes::BytesMut;

pub use as_path::{AsPath, Segment, SegmentRef, SegmentType};
pub use attribute::{Aggregator, AttributeValue, Origin, PathAttribute};
pub use capability::Capability;
pub use community::{Community, ExtendedCommunity, LargeCommunity};
pub use error::{AttributeIssue, DecodeError, ErrorKind, Rfc7606Action};
pub use header::{split_frame, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
pub use iana::{Afi, Family, MessageType, Safi};
pub use mp::{MpNextHop, MpNlri, MpReach, MpUnreach};
pub use notification::Notification;
pub use open::Open;
pub use route_refresh::{RefreshSubtype, RouteRefresh};
pub use update::Update;

/// What the two speakers negotiated that changes the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// RFC 6793: AS_PATH and AGGREGATOR carry 4-octet ASNs.
    pub four_octet_as: bool,
    /// RFC 8654: UPDATE, NOTIFICATION and ROUTE-REFRESH may be up to 65535 octets.
    pub extended_message: bool,
}

impl Default for Context {
    /// What every modern speaker negotiates: 4-octet ASNs, 4096-octet messages.
    fn default() -> Self {
        Self {
            four_octet_as: true,
            extended_message: false,
        }
    }
}

impl Context {
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn kind(&self) -> MessageType {
        match self {
            Self::Open(_) => MessageType::Open,
            Self::Update(_) => MessageType::Update,
            Self::Notification(_) => MessageType::Notification,
            Self::Keepalive => MessageType::Keepalive,
            Self::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decode one whole message, header included; `msg` must be exactly one message.
    pub fn decode(msg: &[u8], ctx: &Context) -> Result<Self, DecodeError> {
        let header = header::decode_header(msg, ctx.max_message_len())?.ok_or_else(|| {
            DecodeError::new(
                ErrorKind::BadMessageLength,
                "length",
                0,
                format!("{} octets are fewer than a 19-octet header", msg.len()),
            )
        })?;
        let length = usize::from(header.length);
        if msg.len() != length {
            return Err(DecodeError::new(
                ErrorKind::BadMessageLength,
                "length",
                16,
                format!(
                    "length field {length} but the message has {} octets",
                    msg.len()
                ),
            )
            .with_data(header.length.to_be_bytes().to_vec()));
        }
        let body = &msg[HEADER_LEN..];
        Ok(match header.kind {
            MessageType::Open => Self::Open(Open::decode_body(body)?),
            MessageType::Update => Self::Update(Update::decode(msg, ctx.four_octet_as)?),
            MessageType::Notification => Self::Notification(Notification::decode_body(body)?),
            MessageType::Keepalive => Self::Keepalive,
            MessageType::RouteRefresh => Self::RouteRefresh(RouteRefresh::decode(msg)?),
        })
    }

    /// The largest this message may be when sent in `ctx`: OPEN and KEEPALIVE never exceed
    /// 4096 octets, the others may reach 65535 once extended messages are negotiated
    /// (RFC 8654 §4).
    pub fn max_len(&self, ctx: &Context) -> usize {
        match self {
            Self::Open(_) | Self::Keepalive => MAX_MESSAGE_LEN,
            _ => ctx.max_message_len(),
        }
    }

    pub fn encoded_len(&self, ctx: &Context) -> usize {
        HEADER_LEN
            + match self {
                Self::Open(o) => o.body_len(),
                Self::Update(u) => u.body_len(ctx.four_octet_as),
                Self::Notification(n) => n.body_len(self.max_len(ctx) - HEADER_LEN),
                Self::Keepalive => 0,
                Self::RouteRefresh(r) => r.body_len(),
            }
    }

    /// Append the message to `buf`. A NOTIFICATION's data is cut so the message fits the
    /// negotiated size; the caller keeps the other messages within it (the UPDATE packer does;
    /// see [`Update`]).
    ///
    /// This is the one place a message's Length field is written, and it never disagrees with
    /// the octets written: a Length that wrapped (`65556 as u16` is 20) would make the peer
    /// read the rest of the message as further messages of our sending. A message longer than
    /// a Length field can say is a bug of ours: debug builds panic, release builds write
    /// nothing rather than a lying header.
    pub fn encode(&self, ctx: &Context, buf: &mut BytesMut) {
        let start = buf.len();
        // The length is patched in afterwards: computing it first would walk every attribute twice.
        header::encode_header(self.kind(), 0, buf);
        match self {
            Self::Open(o) => o.encode_body(buf),
            Self::Update(u) => u.encode_body(ctx.four_octet_as, buf),
            Self::Notification(n) => n.encode_body(self.max_len(ctx) - HEADER_LEN, buf),
            Self::Keepalive => {}
            Self::RouteRefresh(r) => r.encode_body(buf),
        }
        let len = buf.len() - start;
        debug_assert!(
            len <= MAX_EXTENDED_MESSAGE_LEN,
            "{:?} of {len} octets does not fit a Length field",
            self.kind()
        );
        let Ok(length) = u16::try_from(len) else {
            buf.truncate(start);
            return;
        };
        buf[start + 16..start + 18].copy_from_slice(&length.to_be_bytes());
        debug_assert_eq!(
            len,
            self.encoded_len(ctx),
            "encoded_len disagrees with encode for {:?}",
            self.kind()
        );
    }

    /// Encode into a fresh buffer.
    pub fn to_bytes(&self, ctx: &Context) -> BytesMut {
        let mut buf = BytesMut::with_capacity(self.encoded_len(ctx));
        self.encode(ctx, &mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::notification::route_refresh_message_error as rr_error;
    use bytes::Bytes;

    fn big_notification(data_len: usize) -> Message {
        Message::Notification(Notification {
            code: rr_error::CODE,
            subcode: rr_error::INVALID_MESSAGE_LENGTH,
            data: Bytes::from(vec![0xab; data_len]),
        })
    }

    /// The length written in the header, and the octets written.
    fn framed(msg: &Message, ctx: &Context) -> (usize, usize) {
        let bytes = msg.to_bytes(ctx);
        (
            usize::from(u16::from_be_bytes([bytes[16], bytes[17]])),
            bytes.len(),
        )
    }

    #[test]
    fn notification_data_is_cut_to_the_negotiated_message_size() {
        // The data of a ROUTE-REFRESH error is the whole 65535-octet message (RFC 7313 §5).
        let msg = big_notification(MAX_EXTENDED_MESSAGE_LEN);
        let plain = Context::default();
        assert_eq!(framed(&msg, &plain), (4096, 4096));
        assert_eq!(msg.encoded_len(&plain), 4096);
        let extended = Context {
            extended_message: true,
            ..Context::default()
        };
        assert_eq!(framed(&msg, &extended), (65535, 65535));
        assert_eq!(msg.encoded_len(&extended), 65535);
        // What is kept is the head of the data, and the message still decodes.
        let bytes = msg.to_bytes(&plain);
        let Message::Notification(n) = Message::decode(&bytes, &plain).unwrap() else {
            panic!("not a NOTIFICATION");
        };
        assert_eq!(
            (n.code, n.subcode, n.data.len()),
            (rr_error::CODE, rr_error::INVALID_MESSAGE_LENGTH, 4096 - 21)
        );
    }

    #[test]
    fn notification_that_fits_is_sent_whole() {
        let msg = big_notification(4096 - 21);
        assert_eq!(framed(&msg, &Context::default()), (4096, 4096));
        let msg = big_notification(3);
        assert_eq!(framed(&msg, &Context::default()), (24, 24));
    }

    #[test]
    fn route_refresh_error_for_a_maximal_message_encodes_within_the_limit() {
        let mut m = header::MARKER.to_vec();
        m.extend_from_slice(&65535u16.to_be_bytes());
        m.push(MessageType::RouteRefresh.code());
        m.extend_from_slice(&[0, 1, 1, 1]); // IPv4 unicast BoRR, then too much
        m.resize(65535, 0);
        let extended = Context {
            extended_message: true,
            ..Context::default()
        };
        let err = Message::decode(&m, &extended).unwrap_err();
        assert_eq!(err.data.len(), 65535);
        for ctx in [Context::default(), extended] {
            let n = Message::Notification(err.notification());
            let (length, written) = framed(&n, &ctx);
            assert_eq!(length, written);
            assert_eq!(written, ctx.max_message_len());
        }
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "does not fit a Length field")]
    fn a_message_too_long_for_its_length_field_is_caught() {
        let mut u = Update::default();
        for type_code in [98, 99] {
            u.attributes.push(PathAttribute {
                flags: 0xc0,
                value: AttributeValue::Unknown {
                    type_code,
                    data: vec![0; 40_000],
                },
            });
        }
        Message::Update(u).to_bytes(&Context::default());
    }
}
