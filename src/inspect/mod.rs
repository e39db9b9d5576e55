//! `ferry decode`: turns captured bytes (hex text, a raw file, a pcap) into one JSON object per
//! message, in the format of `docs/decode-json.md`.
//!
//! The AS_PATH width follows the OPENs seen: 4-octet unless an OPEN lacks the 4-octet AS
//! capability (RFC 6793 §4); messages up to 65535 octets once every OPEN seen offered extended
//! messages (RFC 8654). Decoding stops at the first error that would reset the session.
//! Never does: network I/O.

pub mod pcap;
pub mod render;

use serde_json::Value;

use crate::wire::header::{decode_header, MAX_EXTENDED_MESSAGE_LEN};
use crate::wire::{Capability, Context, Message};

/// Input that is not BGP at all (as opposed to a malformed BGP message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("hex input: {0:?} at character {1} is not a hex digit")]
    NotHex(char, usize),
    #[error("hex input has an odd number of digits ({0})")]
    OddHex(usize),
    #[error("input ends inside a message at offset {offset}: its header says {length} octets, {present} present")]
    Truncated {
        offset: usize,
        length: usize,
        present: usize,
    },
    #[error("input has {0} octets after the last message, fewer than a 19-octet header")]
    Trailing(usize),
    #[error(transparent)]
    Pcap(#[from] pcap::PcapError),
}

/// Parse hex text; whitespace, `0x` prefixes and `:` or `,` separators are ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, InputError> {
    let mut digits = Vec::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '0' && matches!(chars.get(i + 1), Some('x') | Some('X')) {
            i += 2;
            continue;
        }
        if c.is_whitespace() || c == ':' || c == ',' {
            i += 1;
            continue;
        }
        let d = c.to_digit(16).ok_or(InputError::NotHex(c, i))?;
        digits.push(d as u8);
        i += 1;
    }
    if digits.len() % 2 != 0 {
        return Err(InputError::OddHex(digits.len()));
    }
    Ok(digits.chunks_exact(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Decodes messages one after another, carrying what OPENs negotiated.
#[derive(Debug)]
pub struct Decoder {
    pub force_as2: bool,
    opens_seen: usize,
    all_four_octet: bool,
    all_extended: bool,
}

/// Outcome of decoding a run of bytes.
#[derive(Debug, Default)]
pub struct Decoded {
    /// One JSON object per message, the last one an `{"error": ...}` when `failed`.
    pub lines: Vec<Value>,
    /// A message would reset the session.
    pub failed: bool,
}

impl Decoder {
    pub fn new(force_as2: bool) -> Self {
        Self {
            force_as2,
            opens_seen: 0,
            all_four_octet: true,
            all_extended: true,
        }
    }

    fn context(&self) -> Context {
        Context {
            four_octet_as: !self.force_as2 && self.all_four_octet,
            extended_message: self.opens_seen > 0 && self.all_extended,
        }
    }

    fn learn(&mut self, msg: &Message) {
        if let Message::Open(o) = msg {
            self.opens_seen += 1;
            self.all_four_octet &= o
                .capabilities()
                .any(|c| matches!(c, Capability::FourOctetAs(_)));
            self.all_extended &= o
                .capabilities()
                .any(|c| matches!(c, Capability::ExtendedMessage));
        }
    }

    /// Learn what an OPEN at the start of `stream` negotiates, before decoding anything: in a
    /// capture, the other direction's OPEN matters for this direction's UPDATEs.
    pub fn learn_open(&mut self, stream: &[u8]) {
        if let Ok(Some(h)) = decode_header(stream, MAX_EXTENDED_MESSAGE_LEN) {
            if let Some(Ok(m)) = stream
                .get(..usize::from(h.length))
                .map(|m| Message::decode(m, &self.context()))
            {
                self.learn(&m);
            }
        }
    }

    /// Decode one message (exactly one, header included) to its JSON line.
    pub fn decode_one(&mut self, msg: &[u8]) -> Result<Value, Value> {
        let ctx = self.context();
        match Message::decode(msg, &ctx) {
            Ok(m) => {
                let line = render::message(&m, msg.len(), &ctx);
                self.learn(&m);
                Ok(line)
            }
            Err(e) => Err(render::error(&e)),
        }
    }

    /// Decode a byte stream of back-to-back messages. `annotate` adds keys to each line.
    pub fn decode_stream(
        &mut self,
        bytes: &[u8],
        mut annotate: impl FnMut(usize, &mut Value),
    ) -> Result<Decoded, InputError> {
        let mut out = Decoded::default();
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            // Frame with the largest size here: the message's own decode applies the real limit.
            let length = match decode_header(rest, MAX_EXTENDED_MESSAGE_LEN) {
                Ok(Some(h)) => usize::from(h.length),
                Ok(None) => return Err(InputError::Trailing(rest.len())),
                Err(e) => {
                    out.lines.push(render::error(&e));
                    out.failed = true;
                    return Ok(out);
                }
            };
            let Some(msg) = rest.get(..length) else {
                return Err(InputError::Truncated {
                    offset: at,
                    length,
                    present: rest.len(),
                });
            };
            match self.decode_one(msg) {
                Ok(mut line) => {
                    annotate(at, &mut line);
                    out.lines.push(line);
                }
                Err(mut err) => {
                    annotate(at, &mut err);
                    out.lines.push(err);
                    out.failed = true;
                    return Ok(out);
                }
            }
            at += length;
        }
        Ok(out)
    }
}

/// Decode every BGP stream of a pcap capture, messages ordered by the packet they completed in.
pub fn decode_pcap(file: &[u8], force_as2: bool) -> Result<Decoded, InputError> {
    let streams = pcap::bgp_streams(file)?;
    // OPENs of both directions decide the encoding, so decode OPENs first.
    let mut decoder = Decoder::new(force_as2);
    for (_, stream) in &streams {
        decoder.learn_open(&stream.bytes);
    }
    let mut lines: Vec<(usize, Value)> = Vec::new();
    let mut failed = false;
    for (dir, stream) in &streams {
        let mut positions = Vec::new();
        let decoded = decoder.decode_stream(&stream.bytes, |offset, line| {
            positions.push(stream.packet_at(offset));
            if let Value::Object(o) = line {
                o.insert("direction".into(), Value::String(dir.to_string()));
            }
        });
        let decoded = match decoded {
            Ok(d) => d,
            // A capture may stop in the middle of a message: decode what is whole.
            Err(InputError::Truncated { .. }) | Err(InputError::Trailing(_)) => Decoded::default(),
            Err(e) => return Err(e),
        };
        failed |= decoded.failed;
        lines.extend(positions.into_iter().zip(decoded.lines));
    }
    lines.sort_by_key(|(packet, _)| *packet);
    Ok(Decoded {
        lines: lines.into_iter().map(|(_, l)| l).collect(),
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_separators_and_prefixes() {
        assert_eq!(
            parse_hex("0xff:FF, 01\n02").unwrap(),
            vec![0xff, 0xff, 1, 2]
        );
        assert_eq!(parse_hex("fg"), Err(InputError::NotHex('g', 1)));
        assert_eq!(parse_hex("abc"), Err(InputError::OddHex(3)));
    }

    #[test]
    fn keepalives_back_to_back_and_a_truncated_tail() {
        let mut ka = vec![0xff; 16];
        ka.extend_from_slice(&[0, 19, 4]);
        let two = [ka.clone(), ka.clone()].concat();
        let d = Decoder::new(false).decode_stream(&two, |_, _| {}).unwrap();
        assert_eq!(d.lines.len(), 2);
        assert_eq!(d.lines[1]["type"], "KEEPALIVE");
        assert_eq!(
            Decoder::new(false)
                .decode_stream(&two[..30], |_, _| {})
                .unwrap_err(),
            InputError::Trailing(11)
        );
        assert_eq!(
            Decoder::new(false)
                .decode_stream(&[&ka[..], &ka[..16], &[0, 23, 2, 0, 0]].concat(), |_, _| {})
                .unwrap_err(),
            InputError::Truncated {
                offset: 19,
                length: 23,
                present: 21
            }
        );
    }
}
