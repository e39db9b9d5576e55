//! AS_PATH and AS4_PATH values (RFC 4271 §4.3, §5.1.2; RFC 6793 §3-4; RFC 5065 confederations).
//!
//! ```text
//! +-----------------+-----------------+--------------------------------+
//! | Segment type(1) | Segment len (1) | len x ASN (2 or 4 octets each) |
//! +-----------------+-----------------+--------------------------------+
//! ```
//!
//! Malformed paths (a segment that overruns, has no ASNs or an unknown type, or an AS 0
//! anywhere: RFC 7607 §2) are RFC 7606 §7.2 errors; the caller picks the action (treat-as-withdraw for AS_PATH, attribute discard for
//! AS4_PATH per RFC 6793 §6). [`AsPath::merge_as4`] reconstructs the path of a 2-octet session
//! (RFC 6793 §4.2.3).

use bytes::{BufMut, BytesMut};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentType {
    Set,
    Sequence,
    ConfedSequence,
    ConfedSet,
}

impl SegmentType {
    pub fn from_code(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Set,
            2 => Self::Sequence,
            3 => Self::ConfedSequence,
            4 => Self::ConfedSet,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Set => 1,
            Self::Sequence => 2,
            Self::ConfedSequence => 3,
            Self::ConfedSet => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Sequence => "sequence",
            Self::ConfedSequence => "confed_sequence",
            Self::ConfedSet => "confed_set",
        }
    }
}

/// One segment, owned: how a path is built from parts ([`AsPath::from_segments`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    pub kind: SegmentType,
    /// 1 to 255 ASNs.
    pub asns: Vec<u32>,
}

/// One segment of a path, as [`AsPath::segments`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRef<'a> {
    pub kind: SegmentType,
    /// 1 to 255 ASNs.
    pub asns: &'a [u32],
}

/// An AS path, held flat: each segment is a head word (type code << 8 | ASN count, the count
/// 1-255) followed by its ASNs, so a path is one allocation, not one per segment plus one (a
/// decoded full table has a path per UPDATE). Built only by [`AsPath::push`] and
/// [`AsPath::decode`], which keep the heads right.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    words: Vec<u32>,
}

impl AsPath {
    /// A single AS_SEQUENCE (split into segments of at most 255 ASNs).
    pub fn sequence(asns: &[u32]) -> Self {
        let mut p = Self {
            words: Vec::with_capacity(asns.len() + asns.len().div_ceil(255)),
        };
        p.push(SegmentType::Sequence, asns);
        p
    }

    /// The path of these segments (an empty one left out; a long one split at 255 ASNs).
    pub fn from_segments(segments: impl IntoIterator<Item = Segment>) -> Self {
        let mut p = Self::default();
        for s in segments {
            p.push(s.kind, &s.asns);
        }
        p
    }

    /// Append `asns` as segments of `kind` of at most 255 ASNs each (none when empty).
    pub fn push(&mut self, kind: SegmentType, asns: &[u32]) {
        for chunk in asns.chunks(255) {
            self.words
                .push(u32::from(kind.code()) << 8 | chunk.len() as u32);
            self.words.extend_from_slice(chunk);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The segments in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments { rest: &self.words }
    }

    /// Decode with ASNs of `width` octets (2 or 4). The error text names the bad value.
    pub fn decode(mut value: &[u8], width: usize) -> Result<Self, String> {
        // Exactly the room a one-segment path needs (nearly every path), enough for most.
        let mut words = Vec::with_capacity(value.len() / width + 1);
        let mut segment = 0;
        while !value.is_empty() {
            let [kind, count, rest @ ..] = value else {
                return Err(format!("{} stray octet at the end", value.len()));
            };
            let kind = SegmentType::from_code(*kind)
                .ok_or_else(|| format!("segment type {kind} is not 1-4"))?;
            if *count == 0 {
                return Err("segment with no ASNs".into());
            }
            let n = usize::from(*count) * width;
            let Some(raw) = rest.get(..n) else {
                return Err(format!(
                    "segment of {count} ASNs needs {n} octets, {} left",
                    rest.len()
                ));
            };
            segment += 1;
            words.push(u32::from(kind.code()) << 8 | u32::from(*count));
            let first = words.len();
            if width == 4 {
                words.extend(
                    raw.chunks_exact(4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
                );
            } else {
                words.extend(
                    raw.chunks_exact(2)
                        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))),
                );
            }
            // RFC 7607 §2: an AS_PATH or AS4_PATH containing AS 0 is malformed.
            if let Some(i) = words[first..].iter().position(|&a| a == 0) {
                return Err(format!(
                    "segment {segment} ASN {} is AS 0, which is reserved (RFC 7607 §2)",
                    i + 1
                ));
            }
            value = &rest[n..];
        }
        Ok(Self { words })
    }

    pub fn encoded_len(&self, width: usize) -> usize {
        self.segments().map(|s| 2 + width * s.asns.len()).sum()
    }

    /// ASNs that do not fit 2 octets become AS_TRANS when `width` is 2 (RFC 6793 §4.2.2).
    pub fn encode(&self, width: usize, buf: &mut BytesMut) {
        for s in self.segments() {
            buf.put_u8(s.kind.code());
            buf.put_u8(s.asns.len() as u8);
            for &asn in s.asns {
                if width == 4 {
                    buf.put_u32(asn);
                } else {
                    buf.put_u16(u16::try_from(asn).unwrap_or(super::iana::AS_TRANS));
                }
            }
        }
    }

    /// Path length for best-path selection and RFC 6793 merging: a set counts one,
    /// confederation segments count none (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// RFC 6793 §4.2.3: the leading ASNs of AS_PATH that AS4_PATH does not cover, then AS4_PATH.
    /// When AS4_PATH is longer than AS_PATH, AS4_PATH is ignored.
    pub fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let (n, n4) = (self.path_len(), as4.path_len());
        if n < n4 {
            return self.clone();
        }
        let mut keep = n - n4;
        let mut out = AsPath::default();
        for s in self.segments() {
            if keep == 0 {
                break;
            }
            match s.kind {
                SegmentType::Sequence => {
                    let take = keep.min(s.asns.len());
                    out.push(s.kind, &s.asns[..take]);
                    keep -= take;
                }
                SegmentType::Set => {
                    out.push(s.kind, s.asns);
                    keep -= 1;
                }
                SegmentType::ConfedSequence | SegmentType::ConfedSet => out.push(s.kind, s.asns),
            }
        }
        out.words.extend_from_slice(&as4.words);
        out
    }
}

/// The segments of an [`AsPath`], in order.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    rest: &'a [u32],
}

impl<'a> Iterator for Segments<'a> {
    type Item = SegmentRef<'a>;

    fn next(&mut self) -> Option<SegmentRef<'a>> {
        let (&head, after) = self.rest.split_first()?;
        let count = (head & 0xff) as usize;
        // The heads are written by `push` and `decode` only, so these always hold.
        let kind = SegmentType::from_code((head >> 8) as u8)?;
        let asns = after.get(..count)?;
        self.rest = &after[count..];
        Some(SegmentRef { kind, asns })
    }
}

/// In segment order, each compared by type, then ASNs: the order of a list of [`Segment`]s.
impl Ord for AsPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.segments()
            .map(|s| (s.kind, s.asns))
            .cmp(other.segments().map(|s| (s.kind, s.asns)))
    }
}

impl PartialOrd for AsPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.segments()).finish()
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self.segments() {
            let asns: Vec<String> = s.asns.iter().map(u32::to_string).collect();
            let text = match s.kind {
                SegmentType::Sequence => asns.join(" "),
                SegmentType::Set => format!("{{{}}}", asns.join(",")),
                SegmentType::ConfedSequence => format!("({})", asns.join(" ")),
                SegmentType::ConfedSet => format!("[{}]", asns.join(",")),
            };
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(&text)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_and_four_octet_round_trip() {
        let wire4 = [
            2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x01, 1, 1, 0, 0, 0xfd, 0xea,
        ];
        let p = AsPath::decode(&wire4, 4).unwrap();
        assert_eq!(p.to_string(), "65001 4200000001 {65002}");
        let mut out = BytesMut::new();
        p.encode(4, &mut out);
        assert_eq!(&out[..], &wire4);
        let mut two = BytesMut::new();
        p.encode(2, &mut two);
        assert_eq!(
            AsPath::decode(&two, 2).unwrap().to_string(),
            "65001 23456 {65002}"
        );
    }

    #[test]
    fn malformed_segments_are_named() {
        assert!(AsPath::decode(&[2, 0], 4).unwrap_err().contains("no ASNs"));
        assert!(AsPath::decode(&[7, 1, 0, 1], 2)
            .unwrap_err()
            .contains("type 7"));
        assert!(AsPath::decode(&[2, 2, 0, 1], 2)
            .unwrap_err()
            .contains("needs 4 octets"));
        assert!(AsPath::decode(&[2], 2).unwrap_err().contains("stray"));
    }

    #[test]
    fn segments_come_back_as_built_and_order_as_segment_lists_do() {
        let parts = vec![
            Segment {
                kind: SegmentType::Sequence,
                asns: vec![65001, 65002],
            },
            Segment {
                kind: SegmentType::Set,
                asns: vec![65003],
            },
        ];
        let p = AsPath::from_segments(parts.clone());
        let back: Vec<Segment> = p
            .segments()
            .map(|s| Segment {
                kind: s.kind,
                asns: s.asns.to_vec(),
            })
            .collect();
        assert_eq!(back, parts);
        assert_eq!(p.path_len(), 3);
        // 300 ASNs are two segments of 255 and 45.
        let long = AsPath::sequence(&(1..=300).collect::<Vec<u32>>());
        assert_eq!(
            long.segments().map(|s| s.asns.len()).collect::<Vec<_>>(),
            [255, 45]
        );
        assert!(AsPath::sequence(&[]).is_empty());
        // A shorter first segment that is greater sorts after, as a list of segments would.
        let a = AsPath::sequence(&[2]);
        let b = AsPath::sequence(&[1, 5]);
        assert!(a > b);
        assert!(AsPath::default() < b);
    }

    #[test]
    fn as4_merge_keeps_leading_2_octet_asns() {
        // AS_PATH 65001 23456 23456, AS4_PATH 4200000001 4200000002 -> 65001 4200000001 4200000002
        let as_path = AsPath::sequence(&[65001, 23456, 23456]);
        let as4 = AsPath::sequence(&[4_200_000_001, 4_200_000_002]);
        assert_eq!(
            as_path.merge_as4(&as4).to_string(),
            "65001 4200000001 4200000002"
        );
        // AS4_PATH longer than AS_PATH is ignored.
        let long = AsPath::sequence(&[1, 2, 3, 4]);
        assert_eq!(as_path.merge_as4(&long), as_path);
    }
}
