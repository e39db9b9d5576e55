//! [`PrefixText`]: the text form of a prefix or an address, built on the stack without the
//! `core::fmt` machinery, for writers that format one per route (the store's snapshot and
//! journal: a tenth of a 10,000-route command's time went into `Display` for `Ipv6Addr`).
//!
//! Contract: the text is exactly what `Display` prints for the same value (IPv4 dotted quad;
//! IPv6 as RFC 5952 §4 recommends: lowercase hex without leading zeros, the longest run of two or
//! more zero groups, the first of equally long ones, written as `::`; `/LEN` for a prefix).
//! IPv6 addresses whose first 80 bits are zero (`::`, `::1`, IPv4-mapped, ...) are rare in
//! routes and take `Display`'s own path, so its special forms stay its own. Never allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Longest text: a full IPv6 address (39) plus `/128`.
const CAP: usize = 48;

/// A prefix or address as text, on the stack.
#[derive(Clone, Copy)]
pub struct PrefixText {
    buf: [u8; CAP],
    len: usize,
}

impl PrefixText {
    pub fn prefix(p: &IpNet) -> Self {
        let mut t = Self::empty();
        match p {
            IpNet::V4(n) => t.v4(n.addr()),
            IpNet::V6(n) => t.v6(n.addr()),
        }
        t.push(b'/');
        t.decimal(u32::from(p.prefix_len()));
        t
    }

    pub fn addr(a: &IpAddr) -> Self {
        let mut t = Self::empty();
        match a {
            IpAddr::V4(a) => t.v4(*a),
            IpAddr::V6(a) => t.v6(*a),
        }
        t
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    fn empty() -> Self {
        Self {
            buf: [0; CAP],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn decimal(&mut self, v: u32) {
        if v >= 100 {
            self.push(b'0' + (v / 100 % 10) as u8);
        }
        if v >= 10 {
            self.push(b'0' + (v / 10 % 10) as u8);
        }
        self.push(b'0' + (v % 10) as u8);
    }

    fn v4(&mut self, a: Ipv4Addr) {
        for (i, o) in a.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.decimal(u32::from(o));
        }
    }

    fn hex(&mut self, v: u16) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12u16, 8, 4, 0] {
            let d = (v >> shift) & 0xf;
            if d != 0 || started || shift == 0 {
                self.push(DIGITS[usize::from(d)]);
                started = true;
            }
        }
    }

    fn v6(&mut self, a: Ipv6Addr) {
        let seg = a.segments();
        if seg[..5] == [0; 5] {
            self.via_display(a);
            return;
        }
        // The longest run of zero groups (the first of equally long ones), if 2 or longer.
        let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
        for (i, &s) in seg.iter().enumerate() {
            if s == 0 {
                if run_len == 0 {
                    run = i;
                }
                run_len += 1;
                if run_len > best_len {
                    (best, best_len) = (run, run_len);
                }
            } else {
                run_len = 0;
            }
        }
        if best_len < 2 {
            for (i, &s) in seg.iter().enumerate() {
                if i > 0 {
                    self.push(b':');
                }
                self.hex(s);
            }
            return;
        }
        for (i, &s) in seg[..best].iter().enumerate() {
            if i > 0 {
                self.push(b':');
            }
            self.hex(s);
        }
        self.push(b':');
        self.push(b':');
        for (i, &s) in seg[best + best_len..].iter().enumerate() {
            if i > 0 {
                self.push(b':');
            }
            self.hex(s);
        }
    }

    fn via_display(&mut self, a: Ipv6Addr) {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut self.buf[self.len..]);
        // `::ffff:255.255.255.255` (22) is the longest such text; it fits.
        let _ = write!(cur, "{a}");
        self.len += cur.position() as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no extra dependency): xorshift64*.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn the_text_is_what_display_prints() {
        let fixed = [
            "198.51.100.0/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "10.0.0.0/8",
            "2001:db8::/32",
            "2001:db8:1:2::/64",
            "2001:db8:0:0:1:0:0:1/128",
            "2001:0:0:1:0:0:0:1/128",
            "2001:db8:0:1:1:1:1:1/128",
            "2001:db8:1:0:0:0:0:0/128",
            "fe80::1/128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
            "::/0",
            "::1/128",
            "::ffff:192.0.2.1/128",
            "::192.0.2.1/128",
            "0:0:0:0:1::/80",
            "1::/16",
            "1:0:1:0:1:0:1:0/128",
        ];
        for s in fixed {
            let p: IpNet = s.parse().unwrap();
            assert_eq!(PrefixText::prefix(&p).as_str(), p.to_string(), "{s}");
            let a = p.addr();
            assert_eq!(PrefixText::addr(&a).as_str(), a.to_string(), "{s}");
        }
        // Random addresses with many zero groups, so every run shape and position occurs.
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            let r = next(&mut state);
            let mut seg = [0u16; 8];
            for (i, s) in seg.iter_mut().enumerate() {
                if (r >> (i * 2)) & 3 != 0 {
                    *s = (next(&mut state) >> (r as usize % 48)) as u16;
                }
            }
            let a = Ipv6Addr::from(seg);
            let len = (r >> 20) as u8 % 129;
            let p = IpNet::V6(ipnet::Ipv6Net::new(a, len).unwrap());
            assert_eq!(PrefixText::prefix(&p).as_str(), p.to_string());
            let v4 = Ipv4Addr::from((r >> 16) as u32);
            let p = IpNet::V4(ipnet::Ipv4Net::new(v4, len % 33).unwrap());
            assert_eq!(PrefixText::prefix(&p).as_str(), p.to_string());
        }
    }
}
