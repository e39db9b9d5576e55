//! [`Attributes`]: the path attributes a route carries through Ferry unchanged (ORIGIN, MED,
//! LOCAL_PREF, COMMUNITIES, LARGE_COMMUNITIES), in one type shared by desired routes, the
//! store, the per-peer export, received routes, the API, plans and the CLI.
//!
//! Contract: everything that lists these attributes one by one lives here, so adding one
//! touches the codec, this file and the CLI flag, and the compiler finds the rest:
//! - the field list ([`Field`], in the order the JSON forms write them);
//! - validation ([`Attributes::validate`]: counts, so a route always fits an UPDATE; errors
//!   name the field);
//! - the JSON text forms: [`Attributes::write_field`] writes one field into a serde map, in
//!   full or without its default ([`Form`]); [`AttributesText`] reads fields by name from a
//!   map and [`AttributesText::parse`] checks the text (RFC 1997 "A:B" or a well-known name,
//!   RFC 8092 "A:B:C", origin "igp" / "egp" / "incomplete");
//! - the wire mapping: [`Attributes::push_path_attributes`] for an UPDATE we send,
//!   [`Attributes::from_path_attributes`] from a received one (RFC 4271 §5.1.1, §5.1.4,
//!   §5.1.5, RFC 1997, RFC 8092);
//! - `Display` for log lines.
//!
//! Never does: next hop, AS_PATH or prepend (resolved per peer at export), leases, or decide
//! which peers see LOCAL_PREF (that is [`super::export`]).

use serde::de::{Error as _, MapAccess};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::fmt;

use crate::wire::{AttributeValue, Community, LargeCommunity, Origin, PathAttribute};

/// Most standard communities on one route. With [`MAX_LARGE_COMMUNITIES`] and the prepend
/// limit this keeps every exported attribute set plus one prefix well inside a 4096-octet
/// UPDATE.
pub const MAX_COMMUNITIES: usize = 256;
/// Most large communities on one route.
pub const MAX_LARGE_COMMUNITIES: usize = 128;

/// The pass-through path attributes of a route. Field order is the sort order (the
/// Adj-RIB-Out's groups) and the wire order of their type codes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attributes {
    pub origin: Origin,
    pub med: Option<u32>,
    /// Sent to iBGP peers only (RFC 4271 §5.1.5); `None` sends 100.
    pub local_pref: Option<u32>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
}

impl Default for Attributes {
    /// Origin IGP and nothing else.
    fn default() -> Self {
        Self {
            origin: Origin::Igp,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }
    }
}

/// Why attributes were refused; names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrError {
    #[error("origin {value:?} is not one of igp, egp, incomplete")]
    BadOrigin { value: String },
    /// A value of a list field that does not parse; `message` names it.
    #[error("{}: {message}", field.name())]
    BadText { field: Field, message: String },
    #[error("{}: {count} values exceed the maximum of {max}", field.name())]
    TooMany {
        field: Field,
        count: usize,
        max: usize,
    },
}

impl AttrError {
    /// The field the error is about.
    pub fn field(&self) -> Field {
        match self {
            Self::BadOrigin { .. } => Field::Origin,
            Self::BadText { field, .. } | Self::TooMany { field, .. } => *field,
        }
    }
}

/// One field of the text forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Origin,
    Communities,
    LargeCommunities,
    Med,
    LocalPref,
}

impl Field {
    /// Every field, in the order a route's JSON writes them.
    pub const ALL: [Field; 5] = [
        Field::Origin,
        Field::Communities,
        Field::LargeCommunities,
        Field::Med,
        Field::LocalPref,
    ];

    /// The key in JSON and plan files (also the error's field).
    pub fn name(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Communities => "communities",
            Self::LargeCommunities => "large_communities",
            Self::Med => "med",
            Self::LocalPref => "local_pref",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// A list of values rather than one (the API's received routes write these last).
    pub fn is_list(self) -> bool {
        match self {
            Self::Origin | Self::Med | Self::LocalPref => false,
            Self::Communities | Self::LargeCommunities => true,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// How a field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Every field, defaults included (`"med": null`, `"communities": []`): the API.
    Full,
    /// Only fields that differ from [`Attributes::default`]: the store's files.
    Compact,
}

/// Values written by their `Display` text, without a `String` each.
struct Texts<'a, T>(&'a [T]);

impl<T: fmt::Display> Serialize for Texts<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&DisplayText(v))?;
        }
        seq.end()
    }
}

struct DisplayText<'a, T>(&'a T);

impl<T: fmt::Display> Serialize for DisplayText<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

impl Attributes {
    /// Refuse more communities than fit an UPDATE.
    pub fn validate(&self) -> Result<(), AttrError> {
        for (field, count, max) in [
            (Field::Communities, self.communities.len(), MAX_COMMUNITIES),
            (
                Field::LargeCommunities,
                self.large_communities.len(),
                MAX_LARGE_COMMUNITIES,
            ),
        ] {
            if count > max {
                return Err(AttrError::TooMany { field, count, max });
            }
        }
        Ok(())
    }

    /// Add GRACEFUL_SHUTDOWN (RFC 8326 §3) unless present, so peers lower the route's preference
    /// before it is withdrawn.
    pub fn mark_graceful_shutdown(&mut self) {
        if !self.communities.contains(&Community::GRACEFUL_SHUTDOWN) {
            self.communities.push(Community::GRACEFUL_SHUTDOWN);
        }
    }

    /// Write `field` into `m` under its name; in [`Form::Compact`] nothing when it holds its
    /// default.
    pub fn write_field<M: SerializeMap>(
        &self,
        field: Field,
        m: &mut M,
        form: Form,
    ) -> Result<(), M::Error> {
        let full = form == Form::Full;
        let key = field.name();
        match field {
            Field::Origin => {
                if full || self.origin != Origin::Igp {
                    m.serialize_entry(key, self.origin.name())?;
                }
            }
            Field::Communities => {
                if full || !self.communities.is_empty() {
                    m.serialize_entry(key, &Texts(&self.communities))?;
                }
            }
            Field::LargeCommunities => {
                if full || !self.large_communities.is_empty() {
                    m.serialize_entry(key, &Texts(&self.large_communities))?;
                }
            }
            Field::Med => {
                if full || self.med.is_some() {
                    m.serialize_entry(key, &self.med)?;
                }
            }
            Field::LocalPref => {
                if full || self.local_pref.is_some() {
                    m.serialize_entry(key, &self.local_pref)?;
                }
            }
        }
        Ok(())
    }

    /// Write every field, in [`Field::ALL`] order.
    pub fn write_fields<M: SerializeMap>(&self, m: &mut M, form: Form) -> Result<(), M::Error> {
        Field::ALL
            .into_iter()
            .try_for_each(|f| self.write_field(f, m, form))
    }

    /// Append the path attributes of an UPDATE that carries these: ORIGIN always, the others
    /// when set (LOCAL_PREF as given: export decides whether the peer gets one). Not in type
    /// code order with the caller's own; the caller sorts.
    pub fn push_path_attributes(&self, out: &mut Vec<PathAttribute>) {
        // Every field by name, so a new one cannot be left off the wire unnoticed.
        let Self {
            origin,
            med,
            local_pref,
            communities,
            large_communities,
        } = self;
        let mut push = |v| out.push(PathAttribute::new(v));
        push(AttributeValue::Origin(*origin));
        if let Some(m) = med {
            push(AttributeValue::Med(*m));
        }
        if let Some(l) = local_pref {
            push(AttributeValue::LocalPref(*l));
        }
        if !communities.is_empty() {
            push(AttributeValue::Communities(communities.clone()));
        }
        if !large_communities.is_empty() {
            push(AttributeValue::LargeCommunities(large_communities.clone()));
        }
    }

    /// The attributes of a received UPDATE; the first of a repeated one counts. Missing ORIGIN
    /// reads as IGP: an UPDATE without it is treat-as-withdraw (RFC 7606 §3 d), so no route
    /// held from one has none.
    pub fn from_path_attributes(attrs: &[PathAttribute]) -> Self {
        let mut a = Self::default();
        for attr in attrs.iter().rev() {
            match &attr.value {
                AttributeValue::Origin(o) => a.origin = *o,
                AttributeValue::Med(m) => a.med = Some(*m),
                AttributeValue::LocalPref(l) => a.local_pref = Some(*l),
                AttributeValue::Communities(c) => a.communities.clone_from(c),
                AttributeValue::LargeCommunities(c) => a.large_communities.clone_from(c),
                _ => {}
            }
        }
        a
    }
}

impl fmt::Display for Attributes {
    /// `origin igp community 65001:1 large-community 65001:1:2 med 5 local-pref 200`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            origin,
            med,
            local_pref,
            communities,
            large_communities,
        } = self;
        write!(f, "origin {}", origin.name())?;
        for c in communities {
            write!(f, " community {c}")?;
        }
        for c in large_communities {
            write!(f, " large-community {c}")?;
        }
        if let Some(m) = med {
            write!(f, " med {m}")?;
        }
        if let Some(l) = local_pref {
            write!(f, " local-pref {l}")?;
        }
        Ok(())
    }
}

/// The attributes as a map holds them, before their text is checked: the reading half of the
/// text forms. Absent fields take their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributesText {
    /// `None`: IGP (no text to allocate for the usual case).
    pub origin: Option<String>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    /// The fields read so far ([`Field::bit`]), to refuse one given twice.
    seen: u8,
}

impl AttributesText {
    /// Read the value of `field`, whose key `map` just returned; a field given twice is an
    /// error, as serde's derive makes it.
    pub fn read<'de, A: MapAccess<'de>>(
        &mut self,
        field: Field,
        map: &mut A,
    ) -> Result<(), A::Error> {
        if self.seen & field.bit() != 0 {
            return Err(A::Error::duplicate_field(field.name()));
        }
        self.seen |= field.bit();
        match field {
            Field::Origin => self.origin = map.next_value()?,
            Field::Communities => self.communities = map.next_value()?,
            Field::LargeCommunities => self.large_communities = map.next_value()?,
            Field::Med => self.med = map.next_value()?,
            Field::LocalPref => self.local_pref = map.next_value()?,
        }
        Ok(())
    }

    /// The attributes the text names (not yet [`Attributes::validate`]d: received routes may
    /// carry more than we send). Text is trimmed; errors name the field and the value.
    pub fn parse(self) -> Result<Attributes, AttrError> {
        let communities = parse_all(&self.communities, Field::Communities)?;
        let large_communities = parse_all(&self.large_communities, Field::LargeCommunities)?;
        Ok(Attributes {
            origin: self
                .origin
                .as_deref()
                .map_or(Ok(Origin::Igp), parse_origin)?,
            med: self.med,
            local_pref: self.local_pref,
            communities,
            large_communities,
        })
    }
}

/// Every text of a list field, trimmed; the first bad one is the error.
fn parse_all<T: std::str::FromStr>(texts: &[String], field: Field) -> Result<Vec<T>, AttrError>
where
    T::Err: fmt::Display,
{
    texts
        .iter()
        .map(|t| t.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|e| AttrError::BadText {
            field,
            message: e.to_string(),
        })
}

/// An origin by name, any case; `?` is incomplete, as routers print it.
pub fn parse_origin(s: &str) -> Result<Origin, AttrError> {
    [
        ("igp", Origin::Igp),
        ("egp", Origin::Egp),
        ("incomplete", Origin::Incomplete),
        ("?", Origin::Incomplete),
    ]
    .into_iter()
    .find(|(name, _)| s.eq_ignore_ascii_case(name))
    .map(|(_, origin)| origin)
    .ok_or_else(|| AttrError::BadOrigin {
        value: s.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Attributes {
        Attributes {
            origin: Origin::Incomplete,
            med: Some(5),
            local_pref: Some(200),
            communities: vec![Community::new(65001, 1), Community::GRACEFUL_SHUTDOWN],
            large_communities: vec!["65001:1:2".parse().unwrap()],
        }
    }

    /// The attributes as one JSON object in `form`.
    fn json(a: &Attributes, form: Form) -> String {
        struct Obj<'a>(&'a Attributes, Form);
        impl Serialize for Obj<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                self.0.write_fields(&mut m, self.1)?;
                m.end()
            }
        }
        serde_json::to_string(&Obj(a, form)).unwrap()
    }

    #[test]
    fn text_forms_write_every_field_or_only_those_set() {
        let d = Attributes::default();
        assert_eq!(
            json(&d, Form::Full),
            r#"{"origin":"igp","communities":[],"large_communities":[],"med":null,"local_pref":null}"#
        );
        assert_eq!(json(&d, Form::Compact), "{}");
        assert_eq!(
            json(&full(), Form::Compact),
            r#"{"origin":"incomplete","communities":["65001:1","graceful-shutdown"],"large_communities":["65001:1:2"],"med":5,"local_pref":200}"#
        );
    }

    #[test]
    fn text_is_read_back_and_errors_name_the_field() {
        let text = AttributesText {
            origin: Some("INCOMPLETE".into()),
            communities: vec![" 65001:1".into(), "graceful-shutdown".into()],
            large_communities: vec!["65001:1:2".into()],
            med: Some(5),
            local_pref: Some(200),
            ..AttributesText::default()
        };
        assert_eq!(text.parse().unwrap(), full());
        let bad = AttributesText {
            large_communities: vec!["1:2".into()],
            ..AttributesText::default()
        };
        let e = bad.parse().unwrap_err();
        assert_eq!(e.field(), Field::LargeCommunities);
        assert!(e
            .to_string()
            .starts_with("large_communities: large community \"1:2\""));
        assert_eq!(parse_origin("bgp").unwrap_err().field(), Field::Origin);
    }

    #[test]
    fn counts_are_bounded() {
        let a = Attributes {
            communities: vec![Community::new(1, 1); MAX_COMMUNITIES + 1],
            ..Attributes::default()
        };
        let e = a.validate().unwrap_err();
        assert_eq!(e.field(), Field::Communities);
        assert_eq!(
            e.to_string(),
            "communities: 257 values exceed the maximum of 256"
        );
    }

    #[test]
    fn wire_form_round_trips_and_skips_what_is_unset() {
        let mut out = Vec::new();
        full().push_path_attributes(&mut out);
        assert_eq!(out.len(), 5);
        assert_eq!(Attributes::from_path_attributes(&out), full());
        out.clear();
        Attributes::default().push_path_attributes(&mut out);
        assert_eq!(
            out,
            vec![PathAttribute::new(AttributeValue::Origin(Origin::Igp))]
        );
    }

    #[test]
    fn field_names_are_unique_and_found_again() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
        assert_eq!(Field::from_name("prefix"), None);
        assert_eq!(
            full().to_string(),
            "origin incomplete community 65001:1 community graceful-shutdown large-community 65001:1:2 med 5 local-pref 200"
        );
    }
}
