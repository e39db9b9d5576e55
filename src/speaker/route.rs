//! [`Route`]: one desired announcement, validated once at the edge (API, CLI, state file).
//!
//! Contract:
//! - A `Route` that exists is valid: its prefix has no host bits, its next hop (when given) is a
//!   unicast address of the prefix's family, its prepend count is at most [`MAX_PREPEND`], it
//!   has at most [`MAX_COMMUNITIES`] and [`MAX_LARGE_COMMUNITIES`] (so it always fits an UPDATE).
//!   [`Route::new`], [`Route::from_text`] and deserialization are the only ways in and all run
//!   [`Route::validate`]. The path attributes passed through unchanged are one
//!   [`Attributes`] (`super::attrs`), which also holds their part of the JSON form.
//! - Errors name the field and the bad value and, where one exists, the likely intended value
//!   ("prefix 198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?").
//! - JSON form (state file and HTTP API), communities as text (RFC 1997 "A:B" or a well-known
//!   name, RFC 8092 "A:B:C"), absent fields take their defaults:
//!   ```json
//!   {"prefix": "198.51.100.0/24", "next_hop": null, "origin": "igp",
//!    "communities": ["65001:100"], "large_communities": ["65001:1:2"],
//!    "med": null, "local_pref": null, "prepend": 0, "lease_secs": 30}
//!   ```
//!   `next_hop` null, absent or `"self"` means next hop self. `lease_secs` (absent: no lease)
//!   makes the speaker withdraw the route by itself unless the lease is renewed within that
//!   time (fencing, see `speaker::lease`).
//!
//! Never does: decide per-peer attributes (that is [`super::export`]). An IPv4 prefix with an
//! IPv6 next hop (RFC 8950) is rejected: Ferry does not negotiate the Extended Next Hop
//! capability.

use ipnet::IpNet;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

pub use super::attrs::{
    parse_origin, AttrError, Attributes, AttributesText, Field, Form, MAX_COMMUNITIES,
    MAX_LARGE_COMMUNITIES,
};
use super::prefix_text::PrefixText;

/// Most extra copies of our ASN a route may ask for; more only hides a configuration mistake.
pub const MAX_PREPEND: u8 = 32;
/// Longest lease a route may carry (a day); fencing wants seconds, not days.
pub const MAX_LEASE_SECS: u32 = 86_400;

/// A desired announcement. Fields are public for reading; build one with [`Route::new`] or
/// the `with_*` helpers followed by [`Route::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub prefix: IpNet,
    /// `None`: next hop self (the session's local address of the prefix's family).
    pub next_hop: Option<IpAddr>,
    /// The path attributes sent as they are.
    pub attrs: Attributes,
    /// Extra copies of our ASN in the AS_PATH, 0 to [`MAX_PREPEND`].
    pub prepend: u8,
    /// Withdraw the route unless its lease is renewed within this many seconds (1 to
    /// [`MAX_LEASE_SECS`]); `None`: announced until withdrawn.
    pub lease_secs: Option<u32>,
}

/// Why a route was refused; every variant names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("prefix {value:?} is not an IP prefix like 198.51.100.0/24 or 2001:db8::/48")]
    BadPrefix { value: String },
    #[error("prefix {value} has no length; did you mean {suggestion}?")]
    PrefixWithoutLength { value: String, suggestion: IpNet },
    #[error("prefix {prefix} has host bits set; did you mean {suggestion}?")]
    HostBitsSet { prefix: IpNet, suggestion: IpNet },
    #[error("next_hop {value:?} is not an IP address (or \"self\")")]
    BadNextHop { value: String },
    #[error("next_hop {next_hop} is {next_hop_family} but prefix {prefix} is {prefix_family}; give a next hop of the prefix's family or omit it for next hop self")]
    NextHopFamily {
        prefix: IpNet,
        next_hop: IpAddr,
        prefix_family: &'static str,
        next_hop_family: &'static str,
    },
    #[error("next_hop {next_hop} is {reason}; give a unicast address a router can forward to")]
    UnusableNextHop {
        next_hop: IpAddr,
        reason: &'static str,
    },
    #[error(transparent)]
    Attribute(#[from] AttrError),
    #[error("prepend {value} exceeds the maximum of {max}")]
    PrependTooLarge { value: u32, max: u8 },
    #[error("lease_secs {value} is outside 1-{MAX_LEASE_SECS}")]
    BadLease { value: u32 },
}

impl RouteError {
    /// The JSON field the error is about, for API error bodies.
    pub fn field(&self) -> &'static str {
        match self {
            Self::BadPrefix { .. }
            | Self::PrefixWithoutLength { .. }
            | Self::HostBitsSet { .. } => "prefix",
            Self::BadNextHop { .. } | Self::NextHopFamily { .. } | Self::UnusableNextHop { .. } => {
                "next_hop"
            }
            Self::Attribute(e) => e.field().name(),
            Self::PrependTooLarge { .. } => "prepend",
            Self::BadLease { .. } => "lease_secs",
        }
    }
}

fn family_name(v4: bool) -> &'static str {
    if v4 {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Parse a prefix as the user typed it, refusing host bits and a missing length.
pub fn parse_prefix(s: &str) -> Result<IpNet, RouteError> {
    let s = s.trim();
    if let Some(p) = super::prefix_parse::plain_prefix(s) {
        return check_prefix(p);
    }
    match s.parse::<IpNet>() {
        Ok(p) => check_prefix(p),
        Err(_) => match s.parse::<IpAddr>() {
            Ok(a) => Err(RouteError::PrefixWithoutLength {
                value: s.to_owned(),
                suggestion: IpNet::from(a),
            }),
            Err(_) => Err(RouteError::BadPrefix {
                value: s.to_owned(),
            }),
        },
    }
}

/// Refuse a prefix with host bits set.
pub fn check_prefix(prefix: IpNet) -> Result<IpNet, RouteError> {
    let trunc = prefix.trunc();
    if trunc != prefix {
        return Err(RouteError::HostBitsSet {
            prefix,
            suggestion: trunc,
        });
    }
    Ok(prefix)
}

impl Route {
    /// Whether `other` is exported with the same path attributes: same prefix family and the
    /// same values in every field but the prefix itself and the lease (which no peer sees).
    /// Written as a full destructuring, so a new field must be placed on one side or the other.
    pub fn same_attributes(&self, other: &Route) -> bool {
        let Route {
            prefix,
            next_hop,
            attrs,
            prepend,
            lease_secs: _,
        } = self;
        prefix.addr().is_ipv4() == other.prefix.addr().is_ipv4()
            && *next_hop == other.next_hop
            && *prepend == other.prepend
            && *attrs == other.attrs
    }

    /// A route to `prefix` with next hop self, origin IGP and nothing else; validated.
    pub fn new(prefix: IpNet) -> Result<Self, RouteError> {
        let r = Self {
            prefix,
            next_hop: None,
            attrs: Attributes::default(),
            prepend: 0,
            lease_secs: None,
        };
        r.validate()?;
        Ok(r)
    }

    pub fn with_next_hop(mut self, next_hop: IpAddr) -> Result<Self, RouteError> {
        self.next_hop = Some(next_hop);
        self.validate()?;
        Ok(self)
    }

    /// A route from its text form (JSON, a plan's site), checked in this order: prefix, next
    /// hop, attributes, prepend, then [`Route::validate`].
    pub fn from_text(
        prefix: &str,
        next_hop: Option<&str>,
        attrs: AttributesText,
        prepend: u32,
        lease_secs: Option<u32>,
    ) -> Result<Self, RouteError> {
        let prefix = parse_prefix(prefix)?;
        let next_hop = parse_next_hop(next_hop)?;
        let attrs = attrs.parse()?;
        // Wider than u8 so that 300 gets our message rather than serde's "invalid value".
        let prepend = u8::try_from(prepend)
            .ok()
            .filter(|p| *p <= MAX_PREPEND)
            .ok_or(RouteError::PrependTooLarge {
                value: prepend,
                max: MAX_PREPEND,
            })?;
        let r = Route {
            prefix,
            next_hop,
            attrs,
            prepend,
            lease_secs,
        };
        r.validate()?;
        Ok(r)
    }

    /// Check every invariant listed in the module contract.
    pub fn validate(&self) -> Result<(), RouteError> {
        check_prefix(self.prefix)?;
        if let Some(nh) = self.next_hop {
            let prefix_v4 = matches!(self.prefix, IpNet::V4(_));
            if prefix_v4 != nh.is_ipv4() {
                return Err(RouteError::NextHopFamily {
                    prefix: self.prefix,
                    next_hop: nh,
                    prefix_family: family_name(prefix_v4),
                    next_hop_family: family_name(nh.is_ipv4()),
                });
            }
            let reason = match nh {
                IpAddr::V4(a) if a.is_unspecified() => Some("unspecified"),
                IpAddr::V4(a) if a.is_multicast() => Some("multicast"),
                IpAddr::V4(a) if a.is_broadcast() => Some("broadcast"),
                IpAddr::V6(a) if a.is_unspecified() => Some("unspecified"),
                IpAddr::V6(a) if a.is_multicast() => Some("multicast"),
                // A link-local next hop only makes sense beside a global one (RFC 2545 §3),
                // and the link is the session's: next hop self does that.
                IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => {
                    Some("link-local (omit next_hop to send the session's own)")
                }
                _ => None,
            };
            if let Some(reason) = reason {
                return Err(RouteError::UnusableNextHop {
                    next_hop: nh,
                    reason,
                });
            }
        }
        self.attrs.validate()?;
        if self.prepend > MAX_PREPEND {
            return Err(RouteError::PrependTooLarge {
                value: u32::from(self.prepend),
                max: MAX_PREPEND,
            });
        }
        if let Some(l) = self
            .lease_secs
            .filter(|l| !(1..=MAX_LEASE_SECS).contains(l))
        {
            return Err(RouteError::BadLease { value: l });
        }
        Ok(())
    }

    /// Write the route's JSON fields into `m`: every one ([`Form::Full`], the API) or those
    /// that differ from their default ([`Form::Compact`], the store's files). `lease_secs` only
    /// when set, in both.
    pub fn write_fields<M: SerializeMap>(&self, m: &mut M, form: Form) -> Result<(), M::Error> {
        let full = form == Form::Full;
        m.serialize_entry("prefix", PrefixText::prefix(&self.prefix).as_str())?;
        match &self.next_hop {
            Some(nh) => m.serialize_entry("next_hop", PrefixText::addr(nh).as_str())?,
            None if full => m.serialize_entry("next_hop", &None::<&str>)?,
            None => {}
        }
        self.attrs.write_fields(m, form)?;
        if full || self.prepend != 0 {
            m.serialize_entry("prepend", &self.prepend)?;
        }
        if let Some(v) = self.lease_secs {
            m.serialize_entry("lease_secs", &v)?;
        }
        Ok(())
    }
}

/// A next hop as text: absent, empty or `self` is next hop self.
pub fn parse_next_hop(s: Option<&str>) -> Result<Option<IpAddr>, RouteError> {
    match s.map(str::trim) {
        None | Some("self") | Some("") => Ok(None),
        Some(s) => s
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| RouteError::BadNextHop { value: s.into() }),
    }
}

impl fmt::Display for Route {
    /// One line for logs: `198.51.100.0/24 via self origin igp ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via ", self.prefix)?;
        match self.next_hop {
            Some(nh) => write!(f, "{nh}")?,
            None => f.write_str("self")?,
        }
        write!(f, " {}", self.attrs)?;
        if self.prepend > 0 {
            write!(f, " prepend {}", self.prepend)?;
        }
        if let Some(l) = self.lease_secs {
            write!(f, " lease {l}s")?;
        }
        Ok(())
    }
}

impl Serialize for Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.write_fields(&mut m, Form::Full)?;
        m.end()
    }
}

/// A key of a route's JSON object.
enum Key {
    Prefix,
    NextHop,
    Attr(Field),
    Prepend,
    LeaseSecs,
}

/// The keys of a route's JSON object, in the order it writes them (named by the error about
/// an unknown one).
static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut k = vec!["prefix", "next_hop"];
    k.extend(Field::ALL.map(Field::name));
    k.extend(["prepend", "lease_secs"]);
    k
});

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "prefix" => Key::Prefix,
                    "next_hop" => Key::NextHop,
                    "prepend" => Key::Prepend,
                    "lease_secs" => Key::LeaseSecs,
                    _ => Key::Attr(
                        Field::from_name(s).ok_or_else(|| E::unknown_field(s, &KEYS[..]))?,
                    ),
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Text where the user types text; unknown and repeated keys are refused; absent fields take
/// their defaults; then [`Route::from_text`] checks it.
impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RouteVisitor;
        impl<'de> Visitor<'de> for RouteVisitor {
            type Value = Route;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("struct RouteJson")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Route, A::Error> {
                let mut prefix: Option<String> = None;
                let mut next_hop: Option<Option<String>> = None;
                let mut prepend: Option<u32> = None;
                let mut lease_secs: Option<Option<u32>> = None;
                let mut attrs = AttributesText::default();
                fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
                    slot: &mut Option<T>,
                    name: &'static str,
                    map: &mut A,
                ) -> Result<(), A::Error> {
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                    Ok(())
                }
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Prefix => once(&mut prefix, "prefix", &mut map)?,
                        Key::NextHop => once(&mut next_hop, "next_hop", &mut map)?,
                        Key::Attr(f) => attrs.read(f, &mut map)?,
                        Key::Prepend => once(&mut prepend, "prepend", &mut map)?,
                        Key::LeaseSecs => once(&mut lease_secs, "lease_secs", &mut map)?,
                    }
                }
                let prefix = prefix.ok_or_else(|| de::Error::missing_field("prefix"))?;
                Route::from_text(
                    &prefix,
                    next_hop.flatten().as_deref(),
                    attrs,
                    prepend.unwrap_or(0),
                    lease_secs.flatten(),
                )
                .map_err(de::Error::custom)
            }
        }
        d.deserialize_struct("RouteJson", &KEYS[..], RouteVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(s: &str) -> Result<Route, String> {
        serde_json::from_str::<Route>(s).map_err(|e| e.to_string())
    }

    #[test]
    fn host_bits_error_suggests_the_network() {
        let e = parse_prefix("198.51.100.1/24").unwrap_err();
        assert_eq!(
            e.to_string(),
            "prefix 198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?"
        );
        assert_eq!(e.field(), "prefix");
        let e = parse_prefix("192.0.2.10").unwrap_err();
        assert_eq!(
            e.to_string(),
            "prefix 192.0.2.10 has no length; did you mean 192.0.2.10/32?"
        );
        assert!(parse_prefix("2001:db8::1/48")
            .unwrap_err()
            .to_string()
            .contains("did you mean 2001:db8::/48?"));
        assert!(matches!(
            parse_prefix("banana"),
            Err(RouteError::BadPrefix { .. })
        ));
    }

    #[test]
    fn next_hop_of_the_other_family_is_rejected() {
        let r = Route::new("198.51.100.0/24".parse().unwrap()).unwrap();
        let e = r
            .clone()
            .with_next_hop("2001:db8::1".parse().unwrap())
            .unwrap_err();
        assert_eq!(e.field(), "next_hop");
        assert!(
            e.to_string()
                .starts_with("next_hop 2001:db8::1 is IPv6 but prefix 198.51.100.0/24 is IPv4"),
            "{e}"
        );
        let v6 = Route::new("2001:db8:1::/48".parse().unwrap()).unwrap();
        assert!(v6
            .clone()
            .with_next_hop("192.0.2.1".parse().unwrap())
            .is_err());
        assert!(v6
            .clone()
            .with_next_hop("fe80::1".parse().unwrap())
            .is_err());
        assert!(r.clone().with_next_hop("0.0.0.0".parse().unwrap()).is_err());
        assert!(r.with_next_hop("192.0.2.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn json_round_trip_with_communities_as_text() {
        let text = r#"{"prefix":"198.51.100.0/24","next_hop":"192.0.2.1","origin":"incomplete","communities":["65001:100","graceful-shutdown"],"large_communities":["65001:1:2"],"med":10,"local_pref":200,"prepend":2}"#;
        let r = from_json(text).unwrap();
        assert_eq!(
            r.attrs.communities,
            vec![
                crate::wire::Community::new(65001, 100),
                crate::wire::Community::GRACEFUL_SHUTDOWN
            ]
        );
        assert_eq!(r.attrs.origin, crate::wire::Origin::Incomplete);
        assert_eq!(r.prepend, 2);
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
    }

    #[test]
    fn json_defaults_and_self() {
        let r = from_json(r#"{"prefix":"2001:db8:1::/48","next_hop":"self"}"#).unwrap();
        assert_eq!(r, Route::new("2001:db8:1::/48".parse().unwrap()).unwrap());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"prefix":"2001:db8:1::/48","next_hop":null,"origin":"igp","communities":[],"large_communities":[],"med":null,"local_pref":null,"prepend":0}"#
        );
    }

    #[test]
    fn json_errors_name_field_and_value() {
        let e = from_json(r#"{"prefix":"198.51.100.1/24"}"#).unwrap_err();
        assert!(e.contains("did you mean 198.51.100.0/24?"), "{e}");
        let e = from_json(r#"{"prefix":"198.51.100.0/24","communities":["65536:1"]}"#).unwrap_err();
        assert!(e.starts_with("communities: community \"65536:1\""), "{e}");
        let e = from_json(r#"{"prefix":"198.51.100.0/24","prepend":300}"#).unwrap_err();
        assert!(
            e.starts_with("prepend 300 exceeds the maximum of 32"),
            "{e}"
        );
        let e = from_json(r#"{"prefix":"198.51.100.0/24","origin":"bgp"}"#).unwrap_err();
        assert!(e.starts_with("origin \"bgp\""), "{e}");
        let e = from_json(r#"{"prefix":"198.51.100.0/24","nexthop":"192.0.2.1"}"#).unwrap_err();
        assert!(e.starts_with("unknown field `nexthop`, expected one of `prefix`, `next_hop`, `origin`, `communities`, `large_communities`, `med`, `local_pref`, `prepend`, `lease_secs`"), "{e}");
        let e = from_json(r#"{"prefix":"198.51.100.0/24","med":1,"med":2}"#).unwrap_err();
        assert!(e.starts_with("duplicate field `med`"), "{e}");
        let e = from_json(r#"{"prefix":"198.51.100.0/24","prefix":"192.0.2.0/24"}"#).unwrap_err();
        assert!(e.starts_with("duplicate field `prefix`"), "{e}");
        let e = from_json(r#"{"next_hop":"192.0.2.1"}"#).unwrap_err();
        assert!(e.starts_with("missing field `prefix`"), "{e}");
        let e = from_json(r#"{"prefix":"198.51.100.0/24","next_hop":"192.0.2"}"#).unwrap_err();
        assert!(e.starts_with("next_hop \"192.0.2\""), "{e}");
    }

    /// The store's form (what the previous release wrote and this one must read and write the
    /// same): only what differs from the defaults.
    #[test]
    fn compact_form_skips_defaults() {
        struct Compact<'a>(&'a Route);
        impl Serialize for Compact<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                self.0.write_fields(&mut m, Form::Compact)?;
                m.end()
            }
        }
        let full = r#"{"prefix":"203.0.113.0/24","next_hop":"192.0.2.1","origin":"incomplete","communities":["65000:1","no-export"],"large_communities":["4200000000:1:2"],"med":7,"local_pref":200,"prepend":2,"lease_secs":30}"#;
        let r = from_json(full).unwrap();
        assert_eq!(serde_json::to_string(&Compact(&r)).unwrap(), full);
        let plain = Route::new("2001:db8:1::/48".parse().unwrap()).unwrap();
        assert_eq!(
            serde_json::to_string(&Compact(&plain)).unwrap(),
            r#"{"prefix":"2001:db8:1::/48"}"#
        );
    }

    #[test]
    fn lease_is_optional_in_json_and_bounded() {
        let r = from_json(r#"{"prefix":"198.51.100.0/24","lease_secs":30}"#).unwrap();
        assert_eq!(r.lease_secs, Some(30));
        assert!(serde_json::to_string(&r)
            .unwrap()
            .ends_with(r#""lease_secs":30}"#));
        let plain = from_json(r#"{"prefix":"198.51.100.0/24"}"#).unwrap();
        assert!(!serde_json::to_string(&plain).unwrap().contains("lease"));
        for bad in [0, MAX_LEASE_SECS + 1] {
            let e = from_json(&format!(
                r#"{{"prefix":"198.51.100.0/24","lease_secs":{bad}}}"#
            ))
            .unwrap_err();
            assert!(
                e.starts_with(&format!("lease_secs {bad} is outside")),
                "{e}"
            );
        }
    }
}
