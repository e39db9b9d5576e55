//! [`plain_prefix`]: a fast parser for the plain text forms of an IP prefix, the ones a bulk
//! API call carries by the thousand (`198.51.100.0/24`, `2001:db8:1:2::/64`).
//!
//! Contract:
//! - It answers `Some(prefix)` only for text that [`ipnet::IpNet`]'s `FromStr` parses to the
//!   same value, and `None` for everything else, valid or not: an IPv4 address with a leading
//!   zero in an octet, an IPv6 address with an embedded IPv4 part, a length with a leading
//!   zero or a sign, text around the prefix. The caller then runs the full parser, which
//!   decides (and words the error). So the fast path changes speed, never results; the tests
//!   check that against `FromStr` on generated and mangled text.
//! - Host bits are not checked here (the caller's [`super::route::check_prefix`] does).
//!
//! Why: `FromStr` spends about 50 ns a prefix, this about 20 (one pass over the bytes); for
//! the 100,000 prefixes of one call that is 3 of the 5 ms before the first UPDATE can leave.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The prefix `s` names, when it is in a plain form (see the module contract).
pub fn plain_prefix(s: &str) -> Option<IpNet> {
    let b = s.as_bytes();
    let slash = b.iter().rposition(|&c| c == b'/')?;
    let (addr, len) = (&b[..slash], &b[slash + 1..]);
    let len = u8::try_from(plain_decimal(len)?).ok()?;
    if addr.contains(&b':') {
        Ipv6Net::new(plain_ipv6(addr)?, len).ok().map(IpNet::V6)
    } else {
        Ipv4Net::new(plain_ipv4(addr)?, len).ok().map(IpNet::V4)
    }
}

/// 1 to 3 ASCII digits without a leading zero (`0` itself is fine).
fn plain_decimal(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 3 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

fn plain_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = b.split(|&c| c == b'.');
    for o in &mut octets {
        *o = u8::try_from(plain_decimal(parts.next()?)?).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

fn hex_digit(c: u8) -> Option<u16> {
    match c {
        b'0'..=b'9' => Some(u16::from(c - b'0')),
        b'a'..=b'f' => Some(u16::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(c - b'A' + 10)),
        _ => None,
    }
}

/// Groups of 1 to 4 hex digits separated by `:`, at most one `::`, no embedded IPv4; one
/// pass over the bytes.
fn plain_ipv6(b: &[u8]) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    let mut n = 0;
    // Where `::` stands: the index of the first group after it.
    let mut gap = None;
    let mut i = 0;
    if b.starts_with(b"::") {
        gap = Some(0);
        i = 2;
    }
    while i < b.len() {
        let start = i;
        let mut group = 0u16;
        while i < b.len() && i - start < 4 {
            let Some(d) = hex_digit(b[i]) else { break };
            group = group << 4 | d;
            i += 1;
        }
        if i == start || n == 8 {
            return None;
        }
        groups[n] = group;
        n += 1;
        if i == b.len() {
            break;
        }
        // A fifth digit, a `.` (embedded IPv4) or anything else is not plain.
        if b[i] != b':' {
            return None;
        }
        i += 1;
        if b.get(i) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            i += 1;
        } else if i == b.len() {
            // A single trailing `:`.
            return None;
        }
    }
    match gap {
        None => (n == 8).then_some(Ipv6Addr::from(groups)),
        // `::` stands for at least one group of zeros.
        Some(_) if n > 7 => None,
        Some(g) => {
            let tail = n - g;
            groups.copy_within(g..n, 8 - tail);
            groups[g..8 - tail].fill(0);
            Some(Ipv6Addr::from(groups))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speaker::prefix_text::PrefixText;

    fn agrees(s: &str) {
        let fast = plain_prefix(s);
        let full = s.parse::<IpNet>().ok();
        if let Some(p) = fast {
            assert_eq!(Some(p), full, "{s:?}: fast path gave {p}, FromStr {full:?}");
        }
    }

    #[test]
    fn plain_forms_parse_fast() {
        for (s, want) in [
            ("198.51.100.0/24", "198.51.100.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8:1:2::/64", "2001:db8:1:2::/64"),
            ("::/0", "::/0"),
            ("2001:db8::1/128", "2001:db8::1/128"),
            ("::1/128", "::1/128"),
            ("2001:0db8:0:0:0:0:0:0/32", "2001:db8::/32"),
            ("2001:DB8::/32", "2001:db8::/32"),
            ("1:2:3:4:5:6:7:8/128", "1:2:3:4:5:6:7:8/128"),
            ("1:2:3:4:5:6:7::/112", "1:2:3:4:5:6:7:0/112"),
        ] {
            assert_eq!(plain_prefix(s), Some(want.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn other_forms_are_left_to_the_full_parser() {
        for s in [
            "198.51.100.0",
            "198.51.100.0/33",
            "198.51.100.0/024",
            "198.51.100.0/+24",
            "198.051.100.0/24",
            "198.51.100/24",
            "198.51.100.0.1/24",
            "256.0.0.0/8",
            " 198.51.100.0/24",
            "::ffff:192.0.2.1/128",
            "2001:db8::/129",
            "2001:db8:::/48",
            "2001::db8::/48",
            "1:2:3:4:5:6:7:8::/128",
            "1:2:3:4:5:6:7/112",
            "2001:db8:12345::/48",
            "2001:db8:g::/48",
            ":2001:db8::/48",
            "2001:db8::/",
            "/24",
            "",
        ] {
            assert_eq!(plain_prefix(s), None, "{s:?}");
            agrees(s);
        }
    }

    /// Random prefixes as `Display` and the formatter write them, then mangled one character
    /// at a time: wherever the fast path answers, `FromStr` gives the same.
    #[test]
    fn agrees_with_from_str_on_generated_and_mangled_text() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"0123456789abcdefABCDEF:./ x";
        let mut answered = 0;
        for i in 0..50_000 {
            let r = rand();
            let p: IpNet = if i % 2 == 0 {
                let a = Ipv4Addr::from(r as u32);
                Ipv4Net::new(a, (r >> 32) as u8 % 33).unwrap().into()
            } else {
                // Zero runs of random length, so that `::` lands everywhere.
                let mut g = [0u16; 8];
                for (k, x) in g.iter_mut().enumerate() {
                    if (r >> (k * 3)) & 3 != 0 {
                        *x = (rand() & 0xffff) as u16;
                    }
                }
                Ipv6Net::new(Ipv6Addr::from(g), (r >> 40) as u8 % 129)
                    .unwrap()
                    .into()
            };
            let text = PrefixText::prefix(&p).as_str().to_string();
            assert_eq!(plain_prefix(&text), Some(p), "{text}");
            answered += 1;
            let mut mangled = text.into_bytes();
            let at = (rand() as usize) % mangled.len();
            mangled[at] = alphabet[(rand() as usize) % alphabet.len()];
            if let Ok(m) = String::from_utf8(mangled) {
                agrees(&m);
            }
        }
        assert_eq!(answered, 50_000);
    }
}
