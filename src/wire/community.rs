//! Community values: standard (RFC 1997), extended (RFC 4360) and large (RFC 8092).
//!
//! Parsing from text ("65001:100", "graceful-shutdown", "65001:1:2") lives here too, so the CLI,
//! config and API accept exactly what `ferry decode` prints. Never does: policy.

use std::fmt;
use std::str::FromStr;

/// A standard community, ASN:value in one u32 (RFC 1997).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

/// Well-known communities printed by name (IANA "BGP Well-known Communities").
const WELL_KNOWN: [(u32, &str); 7] = [
    (0xFFFF_0000, "graceful-shutdown"), // RFC 8326
    (0xFFFF_0001, "accept-own"),        // RFC 7611
    (0xFFFF_029A, "blackhole"),         // RFC 7999
    (0xFFFF_FF01, "no-export"),         // RFC 1997
    (0xFFFF_FF02, "no-advertise"),      // RFC 1997
    (0xFFFF_FF03, "no-export-subconfed"),
    (0xFFFF_FF04, "no-peer"), // RFC 3765
];

impl Community {
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);

    pub fn new(asn: u16, value: u16) -> Self {
        Self((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match WELL_KNOWN.iter().find(|(v, _)| *v == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff),
        }
    }
}

/// Error of a community given as text; the message names the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseCommunityError(String);

impl FromStr for Community {
    type Err = ParseCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((v, _)) = WELL_KNOWN
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
        {
            return Ok(Self(*v));
        }
        let bad = || {
            ParseCommunityError(format!(
                "community {s:?} is not ASN:VALUE with both in 0-65535 or a well-known name"
            ))
        };
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        Ok(Self::new(
            a.parse().map_err(|_| bad())?,
            b.parse().map_err(|_| bad())?,
        ))
    }
}

/// A large community, Global Administrator:Local Data 1:Local Data 2 (RFC 8092 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl FromStr for LargeCommunity {
    type Err = ParseCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ParseCommunityError(format!(
                "large community {s:?} is not A:B:C with each in 0-4294967295"
            ))
        };
        let mut parts = s.split(':').map(|p| p.parse::<u32>().map_err(|_| bad()));
        let c = LargeCommunity {
            global: parts.next().ok_or_else(bad)??,
            local1: parts.next().ok_or_else(bad)??,
            local2: parts.next().ok_or_else(bad)??,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(c)
    }
}

/// An extended community as its 8 octets (RFC 4360 §2); types are not interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl fmt::Display for ExtendedCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names_print_and_parse() {
        assert_eq!(
            Community::GRACEFUL_SHUTDOWN.to_string(),
            "graceful-shutdown"
        );
        assert_eq!(
            "no-export".parse::<Community>().unwrap(),
            Community::NO_EXPORT
        );
        assert_eq!(
            "65535:0".parse::<Community>().unwrap(),
            Community::GRACEFUL_SHUTDOWN
        );
        assert_eq!(Community::new(65001, 100).to_string(), "65001:100");
    }

    #[test]
    fn bad_text_names_the_value() {
        let e = "65536:1".parse::<Community>().unwrap_err();
        assert!(e.to_string().contains("\"65536:1\""));
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert!("1:2:3:4".parse::<LargeCommunity>().is_err());
        assert_eq!(
            "4200000001:1:2"
                .parse::<LargeCommunity>()
                .unwrap()
                .to_string(),
            "4200000001:1:2"
        );
    }
}
