//! Route origin validation (RFC 6811 §2): the state of a route (prefix, origin AS) against a
//! set of Validated ROA Payloads.
//!
//! Contract (RFC 6811 §2, the definitions and the procedure):
//! - A VRP *covers* a route when its prefix contains the route's prefix (same family, the
//!   VRP's length at most the route's, the leading bits equal).
//! - A VRP *matches* a route when it covers it, the route's length is at most the VRP's
//!   maxLength, and the route's origin AS equals the VRP's AS.
//! - A VRP for AS 0 never matches (RFC 6483 §4, RFC 7607: no route is originated by AS 0): it
//!   covers, so it makes every route it covers Invalid unless another VRP matches.
//! - NotFound: no VRP covers the route. Valid: at least one VRP matches. Invalid: some VRP
//!   covers it and none matches.
//! - [`Verdict::covering`] lists every covering VRP (sorted), for the message that names them.
//!
//! Never does: I/O, or decide what a state means for a run (that is
//! [`crate::controller::rpki`]).

use std::fmt;

use ipnet::IpNet;

/// One Validated ROA Payload (RFC 6811 §2; RFC 8210 §5.6/§5.7 as an RTR prefix PDU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vrp {
    /// The ROA's prefix, host bits clear.
    pub prefix: IpNet,
    /// The longest route length the ROA allows; at least the prefix's length.
    pub max_len: u8,
    pub asn: u32,
}

impl Vrp {
    /// A VRP, checked: maxLength within the prefix length and the family's bits.
    pub fn new(prefix: IpNet, max_len: u8, asn: u32) -> Result<Self, String> {
        if max_len < prefix.prefix_len() || max_len > prefix.max_prefix_len() {
            return Err(format!(
                "VRP {prefix} AS{asn}: maxLength {max_len} is outside {}..={}",
                prefix.prefix_len(),
                prefix.max_prefix_len()
            ));
        }
        Ok(Vrp {
            prefix: prefix.trunc(),
            max_len,
            asn,
        })
    }

    /// RFC 6811 §2 "Covered": the VRP's prefix contains `route`.
    pub fn covers(&self, route: IpNet) -> bool {
        // IpNet::contains(&IpNet): same family, at least as long, equal bits under ours.
        self.prefix.contains(&route)
    }

    /// RFC 6811 §2 "Matched": covers, within maxLength, same origin AS; never for AS 0.
    pub fn matches(&self, route: IpNet, origin_as: u32) -> bool {
        self.covers(route)
            && route.prefix_len() <= self.max_len
            && self.asn != 0
            && self.asn == origin_as
    }
}

impl fmt::Display for Vrp {
    /// As validators print them: `198.51.100.0/24-24 AS65101` (prefix, maxLength, AS).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{} AS{}", self.prefix, self.max_len, self.asn)
    }
}

/// The three states of RFC 6811 §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Valid,
    Invalid,
    NotFound,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Valid => "Valid",
            State::Invalid => "Invalid",
            State::NotFound => "NotFound",
        })
    }
}

/// A route's state and the VRPs that cover it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub covering: Vec<Vrp>,
}

/// The RFC 6811 §2 state of `route` originated by `origin_as`.
pub fn validate(vrps: &[Vrp], route: IpNet, origin_as: u32) -> Verdict {
    let route = route.trunc();
    let mut covering: Vec<Vrp> = vrps.iter().filter(|v| v.covers(route)).copied().collect();
    covering.sort();
    covering.dedup();
    let state = if covering.is_empty() {
        State::NotFound
    } else if covering.iter().any(|v| v.matches(route, origin_as)) {
        State::Valid
    } else {
        State::Invalid
    };
    Verdict { state, covering }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrp(p: &str, max_len: u8, asn: u32) -> Vrp {
        Vrp::new(p.parse().unwrap(), max_len, asn).unwrap()
    }
    fn state(vrps: &[Vrp], route: &str, asn: u32) -> State {
        validate(vrps, route.parse().unwrap(), asn).state
    }

    #[test]
    fn no_covering_vrp_is_not_found() {
        assert_eq!(state(&[], "198.51.100.0/24", 65101), State::NotFound);
        // A more specific VRP does not cover a shorter route, and another range does not.
        let v = [
            vrp("198.51.100.0/25", 25, 65101),
            vrp("203.0.113.0/24", 24, 65101),
        ];
        assert_eq!(state(&v, "198.51.100.0/24", 65101), State::NotFound);
        // Families never mix (::/0 style VRPs do not cover IPv4).
        assert_eq!(
            state(&[vrp("2001:db8::/32", 48, 65101)], "198.51.100.0/24", 65101),
            State::NotFound
        );
    }

    #[test]
    fn a_covering_vrp_of_the_origin_as_within_max_length_is_valid() {
        let v = [vrp("198.51.100.0/24", 24, 65101)];
        assert_eq!(state(&v, "198.51.100.0/24", 65101), State::Valid);
        let v = [vrp("198.51.100.0/22", 24, 65101)];
        assert_eq!(state(&v, "198.51.101.0/24", 65101), State::Valid);
        let v = [vrp("2001:db8::/32", 48, 65101)];
        assert_eq!(state(&v, "2001:db8:7::/48", 65101), State::Valid);
    }

    #[test]
    fn covered_by_another_as_only_is_invalid_and_names_the_covering_vrps() {
        let v = [
            vrp("198.51.100.0/24", 24, 65101),
            vrp("203.0.113.0/24", 24, 65102),
        ];
        let got = validate(&v, "198.51.100.0/24".parse().unwrap(), 65102);
        assert_eq!(got.state, State::Invalid);
        assert_eq!(got.covering, vec![v[0]]);
        assert_eq!(got.covering[0].to_string(), "198.51.100.0/24-24 AS65101");
    }

    #[test]
    fn longer_than_max_length_is_invalid_even_for_the_right_as() {
        // The host move: a /32 under a /24-24 ROA is Invalid (RFC 6811 §2, maxLength).
        let v = [vrp("198.51.100.0/24", 24, 65102)];
        assert_eq!(state(&v, "198.51.100.10/32", 65102), State::Invalid);
        let v = [vrp("198.51.100.0/24", 32, 65102)];
        assert_eq!(state(&v, "198.51.100.10/32", 65102), State::Valid);
    }

    #[test]
    fn one_matching_vrp_among_covering_ones_makes_it_valid() {
        let v = [
            vrp("198.51.100.0/24", 24, 65101),
            vrp("198.51.100.0/23", 24, 65102),
            vrp("198.51.100.0/24", 24, 65101),
        ];
        let got = validate(&v, "198.51.100.0/24".parse().unwrap(), 65102);
        assert_eq!(got.state, State::Valid);
        assert_eq!(got.covering.len(), 2, "sorted, duplicates once: {got:?}");
    }

    #[test]
    fn an_as0_vrp_covers_but_never_matches() {
        let v = [vrp("198.51.100.0/24", 32, 0)];
        assert_eq!(state(&v, "198.51.100.0/24", 65101), State::Invalid);
        // Not even a route claiming origin AS 0.
        assert_eq!(state(&v, "198.51.100.0/24", 0), State::Invalid);
        // A ROA of the origin AS next to the AS0 ROA still makes it Valid.
        let both = [v[0], vrp("198.51.100.0/24", 24, 65101)];
        assert_eq!(state(&both, "198.51.100.0/24", 65101), State::Valid);
    }

    #[test]
    fn max_length_is_checked_when_built() {
        let p: IpNet = "198.51.100.0/24".parse().unwrap();
        assert!(Vrp::new(p, 23, 65101).unwrap_err().contains("maxLength 23"));
        assert!(Vrp::new(p, 33, 65101).is_err());
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(Vrp::new(v6, 128, 65101).is_ok());
        // Host bits are cleared so that covering compares networks.
        let sloppy: IpNet = "198.51.100.7/24".parse().unwrap();
        assert_eq!(Vrp::new(sloppy, 24, 1).unwrap().prefix, p);
    }
}
