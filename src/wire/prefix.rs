//! NLRI prefixes: length in bits, then the fewest octets that hold it (RFC 4271 §4.3, RFC 4760 §5).
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet, bits)  |
//! +---------------------------+
//! |   Prefix (variable)       |
//! +---------------------------+
//! ```
//!
//! Bits past the prefix length are kept as sent, so a message re-encodes byte for byte.
//! A length over the family's width or a prefix that runs past its field is an Invalid Network
//! Field (RFC 4271 §6.3; RFC 7606 §5.3: session reset). Never does: allocate per prefix.

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{DecodeError, ErrorKind};

fn overrun(field: &'static str, at: usize, len: u8, left: usize) -> DecodeError {
    DecodeError::new(
        ErrorKind::InvalidNetworkField,
        field,
        at,
        format!(
            "prefix of /{len} needs {} octets, {left} left",
            usize::from(len).div_ceil(8)
        ),
    )
}

fn too_long(field: &'static str, at: usize, len: u8, max: u8) -> DecodeError {
    DecodeError::new(
        ErrorKind::InvalidNetworkField,
        field,
        at,
        format!("prefix length {len} exceeds {max}"),
    )
}

/// Decode a run of IPv4 prefixes filling `buf`; `base` is the offset of `buf` in the message.
pub fn decode_ipv4(
    buf: &[u8],
    field: &'static str,
    base: usize,
    out: &mut Vec<Ipv4Net>,
) -> Result<(), DecodeError> {
    // A prefix takes at least one octet: reserving for the worst case stays within the message.
    // Filled as a local (its length in a register, not reloaded from `out` after each write),
    // then appended: this runs for every UPDATE.
    let mut local = Vec::with_capacity(buf.len() / 2);
    let mut i = 0;
    while i < buf.len() {
        let len = buf[i];
        if len > 32 {
            return Err(too_long(field, base + i, len, 32));
        }
        let n = usize::from(len).div_ceil(8);
        let Some(bytes) = buf.get(i + 1..i + 1 + n) else {
            return Err(overrun(field, base + i, len, buf.len() - i - 1));
        };
        let mut octets = [0u8; 4];
        octets[..n].copy_from_slice(bytes);
        // Cannot fail: len <= 32 was checked above.
        if let Ok(p) = Ipv4Net::new(Ipv4Addr::from(octets), len) {
            local.push(p);
        }
        i += 1 + n;
    }
    if out.is_empty() {
        *out = local;
    } else {
        out.append(&mut local);
    }
    Ok(())
}

/// Decode a run of IPv6 prefixes filling `buf`; `base` is the offset of `buf` in the message.
pub fn decode_ipv6(
    buf: &[u8],
    field: &'static str,
    base: usize,
    out: &mut Vec<Ipv6Net>,
) -> Result<(), DecodeError> {
    let mut i = 0;
    while i < buf.len() {
        let len = buf[i];
        if len > 128 {
            return Err(too_long(field, base + i, len, 128));
        }
        let n = usize::from(len).div_ceil(8);
        let Some(bytes) = buf.get(i + 1..i + 1 + n) else {
            return Err(overrun(field, base + i, len, buf.len() - i - 1));
        };
        let mut octets = [0u8; 16];
        octets[..n].copy_from_slice(bytes);
        if let Ok(p) = Ipv6Net::new(Ipv6Addr::from(octets), len) {
            out.push(p);
        }
        i += 1 + n;
    }
    Ok(())
}

pub fn ipv4_len(p: &Ipv4Net) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

pub fn ipv6_len(p: &Ipv6Net) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

pub fn encode_ipv4(p: &Ipv4Net, buf: &mut BytesMut) {
    let n = usize::from(p.prefix_len()).div_ceil(8);
    buf.put_u8(p.prefix_len());
    buf.put_slice(&p.addr().octets()[..n]);
}

pub fn encode_ipv6(p: &Ipv6Net, buf: &mut BytesMut) {
    let n = usize::from(p.prefix_len()).div_ceil(8);
    buf.put_u8(p.prefix_len());
    buf.put_slice(&p.addr().octets()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::notification::update_message_error;

    #[test]
    fn ipv4_prefixes_round_trip_with_host_bits_kept() {
        let wire = [24, 198, 51, 100, 32, 192, 0, 2, 1, 17, 203, 0, 128];
        let mut v = Vec::new();
        decode_ipv4(&wire, "nlri", 23, &mut v).unwrap();
        assert_eq!(v[0].to_string(), "198.51.100.0/24");
        assert_eq!(v[1].to_string(), "192.0.2.1/32");
        assert_eq!(v[2].to_string(), "203.0.128.0/17");
        let mut out = BytesMut::new();
        v.iter().for_each(|p| encode_ipv4(p, &mut out));
        assert_eq!(&out[..], &wire);
    }

    #[test]
    fn ipv4_length_over_32_is_invalid_network_field() {
        let e = decode_ipv4(&[33, 1, 2, 3, 4, 5], "nlri", 30, &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.kind.code_subcode(),
            (
                update_message_error::CODE,
                update_message_error::INVALID_NETWORK_FIELD
            )
        );
        assert_eq!(e.offset, 30);
    }

    #[test]
    fn prefix_overrunning_its_field_is_rejected() {
        let e = decode_ipv4(&[24, 198, 51], "withdrawn", 21, &mut Vec::new()).unwrap_err();
        assert_eq!(e.field, "withdrawn");
        assert!(e.detail.contains("needs 3 octets, 2 left"), "{}", e.detail);
    }

    #[test]
    fn ipv6_prefixes_round_trip() {
        let wire = [64, 0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0, 0, 0];
        let mut v = Vec::new();
        decode_ipv6(&wire, "nlri", 0, &mut v).unwrap();
        assert_eq!(v[0].to_string(), "2001:db8:1::/64");
        assert_eq!(v[1].to_string(), "::/0");
        let mut out = BytesMut::new();
        v.iter().for_each(|p| encode_ipv6(p, &mut out));
        assert_eq!(&out[..], &wire);
    }
}
