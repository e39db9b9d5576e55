//! The file of `ferry announce --file` and `ferry withdraw --file`: routes or prefixes in the
//! format people have, told apart by the first character that is not white space.
//!
//! Formats:
//! - Text (anything else, e.g. a digit or `#`): one route a line, what `ip route`, IPAM
//!   exports and `cut` produce. `#` starts a comment to the end of the line; blank lines are
//!   skipped. A line is a prefix, then optional attribute columns `KEY=VALUE` separated by
//!   white space, keys named as in a route's JSON (docs/api.md):
//!   ```text
//!   198.51.100.0/24
//!   203.0.113.0/24 next_hop=192.0.2.1 med=10 communities=65000:1,no-export  # comment
//!   2001:db8:1::/48 next_hop=2001:db8::1 origin=incomplete large_communities=65000:1:2
//!   ```
//!   Keys: `next_hop`, `origin`, `med`, `local_pref`, `communities` and `large_communities`
//!   (comma-separated), `prepend`, `lease_secs`; each at most once.
//! - A JSON array (`[`): of prefix strings or route objects (docs/api.md), mixed as wanted.
//! - JSON lines (`{` or `"`): one prefix string or route object a line; blank lines skipped.
//!
//! For a withdrawal only each entry's prefix is used, so the file given to `announce --file`
//! withdraws what it announced. `-` is standard input.
//!
//! Contract: the input is read as it comes (a line, or a JSON value, at a time); what is held
//! is the parsed routes, never the text in full. Every error names the line (and the column
//! where one is known) and what was expected there; the first error stops the reading. Values
//! are checked by the same code as the command-line flags and the API ([`Route::from_text`],
//! [`parse_prefix`]), so a file says nothing they would refuse.
//!
//! Never: talks to the speaker, or reads a line longer than [`MAX_LINE`] octets.

use std::fmt;
use std::io::{BufRead, Read};
use std::marker::PhantomData;
use std::path::Path;

use ipnet::IpNet;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::speaker::attrs::{AttributesText, Field};
use crate::speaker::{parse_prefix, Route};

/// The longest line read, in octets.
pub const MAX_LINE: usize = 64 * 1024;

/// The text columns after the prefix.
const COLUMNS: [&str; 8] = [
    "next_hop",
    "origin",
    "med",
    "local_pref",
    "communities",
    "large_communities",
    "prepend",
    "lease_secs",
];

/// Where the input went wrong and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// 1-based; 0 for an error about the input as a whole (empty, unreadable).
    pub line: usize,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => f.write_str(&self.message),
            (l, Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (l, None) => write!(f, "line {l}: {}", self.message),
        }
    }
}

impl FileError {
    fn at(line: usize, column: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            line,
            column,
            message: message.into(),
        }
    }
}

/// The format of an input, from its first character that is not white space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    JsonArray,
    JsonLines,
}

/// What one entry of a file becomes: a route to announce or a prefix to withdraw.
pub trait Entry: Sized {
    /// The entry of a text line: its prefix token and its columns (text, 1-based column).
    fn from_columns(prefix: &str, columns: &[(&str, usize)]) -> Result<Self, (usize, String)>;
    fn from_prefix(text: &str) -> Result<Self, String>;
    fn from_object<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl Entry for Route {
    fn from_columns(prefix: &str, columns: &[(&str, usize)]) -> Result<Self, (usize, String)> {
        if columns.is_empty() {
            // A prefix alone (the common file): no attribute text to parse.
            return Self::from_prefix(prefix).map_err(|e| (0, e));
        }
        let mut attrs = AttributesText::default();
        let mut next_hop = None;
        let mut prepend = 0;
        let mut lease_secs = None;
        let mut seen = [false; COLUMNS.len()];
        for &(text, col) in columns {
            let Some((key, value)) = text.split_once('=') else {
                return Err((
                    col,
                    format!("{text:?} is not KEY=VALUE; keys: {}", COLUMNS.join(", ")),
                ));
            };
            let Some(k) = COLUMNS.iter().position(|c| *c == key) else {
                return Err((
                    col,
                    format!("unknown key {key:?}; keys: {}", COLUMNS.join(", ")),
                ));
            };
            if std::mem::replace(&mut seen[k], true) {
                return Err((col, format!("{key} given twice")));
            }
            let number = |max: u64| {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| (col, format!("{key} {value:?} is not a number 0-{max}")))
            };
            let list = || value.split(',').map(str::to_owned).collect::<Vec<_>>();
            match Field::from_name(key) {
                Some(Field::Origin) => attrs.origin = Some(value.to_owned()),
                Some(Field::Communities) => attrs.communities = list(),
                Some(Field::LargeCommunities) => attrs.large_communities = list(),
                Some(Field::Med) => attrs.med = Some(number(u32::MAX.into())? as u32),
                Some(Field::LocalPref) => attrs.local_pref = Some(number(u32::MAX.into())? as u32),
                None if key == "next_hop" => next_hop = Some(value),
                None if key == "prepend" => prepend = number(u32::MAX.into())? as u32,
                None => lease_secs = Some(number(u32::MAX.into())? as u32),
            }
        }
        Route::from_text(prefix, next_hop, attrs, prepend, lease_secs)
            .map_err(|e| (0, e.to_string()))
    }

    fn from_prefix(text: &str) -> Result<Self, String> {
        parse_prefix(text)
            .and_then(Route::new)
            .map_err(|e| e.to_string())
    }

    fn from_object<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Route::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

impl Entry for IpNet {
    /// The columns are the announcement's: not needed to withdraw it.
    fn from_columns(prefix: &str, _columns: &[(&str, usize)]) -> Result<Self, (usize, String)> {
        Self::from_prefix(prefix).map_err(|e| (0, e))
    }

    fn from_prefix(text: &str) -> Result<Self, String> {
        parse_prefix(text).map_err(|e| e.to_string())
    }

    fn from_object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut prefix = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "prefix" {
                if prefix.is_some() {
                    return Err(de::Error::duplicate_field("prefix"));
                }
                prefix = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let prefix = prefix.ok_or_else(|| de::Error::missing_field("prefix"))?;
        Self::from_prefix(&prefix).map_err(de::Error::custom)
    }
}

/// Read every entry of the file at `path` (`-`: standard input); the error names the file.
pub fn read_path<T: Entry>(path: &Path) -> Result<Vec<T>, String> {
    if path == Path::new("-") {
        return read(std::io::stdin().lock())
            .map_err(|e| format!("--file - (standard input): {e}"));
    }
    let named = |e: &dyn fmt::Display| format!("--file {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| named(&e))?;
    read(std::io::BufReader::with_capacity(1 << 16, file)).map_err(|e| named(&e))
}

/// Read every entry of `input`; see the module doc. An input without any is an error.
pub fn read<T: Entry>(mut input: impl BufRead) -> Result<Vec<T>, FileError> {
    let (format, skipped) = detect(&mut input)?;
    let entries = match format {
        Format::Text => read_text(input, skipped)?,
        Format::JsonLines => read_json_lines(input, skipped)?,
        Format::JsonArray => read_json_array(input, skipped)?,
    };
    if entries.is_empty() {
        return Err(FileError::at(
            0,
            None,
            "no prefixes in it: give one prefix a line (e.g. 198.51.100.0/24), a JSON array of \
             prefixes or routes, or JSON lines",
        ));
    }
    Ok(entries)
}

/// Skip the leading white space; the format and the number of whole lines skipped.
fn detect(input: &mut impl BufRead) -> Result<(Format, usize), FileError> {
    let mut lines = 0;
    loop {
        let buf = input.fill_buf().map_err(|e| io_error(lines + 1, &e))?;
        if buf.is_empty() {
            return Ok((Format::Text, lines));
        }
        let Some(at) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            lines += buf.iter().filter(|b| **b == b'\n').count();
            let n = buf.len();
            input.consume(n);
            continue;
        };
        let format = match buf[at] {
            b'[' => Format::JsonArray,
            b'{' | b'"' => Format::JsonLines,
            _ => Format::Text,
        };
        // Only whole lines are skipped, so that text columns stay right.
        let through = buf[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        lines += buf[..through].iter().filter(|b| **b == b'\n').count();
        input.consume(through);
        return Ok((format, lines));
    }
}

fn io_error(line: usize, e: &std::io::Error) -> FileError {
    match e.kind() {
        std::io::ErrorKind::InvalidData => FileError::at(line, None, "not UTF-8 text"),
        _ => FileError::at(line, None, format!("cannot read: {e}")),
    }
}

/// Each line in turn, with its 1-based number, at most [`MAX_LINE`] octets, without its end.
fn each_line(
    mut input: impl BufRead,
    skipped: usize,
    mut f: impl FnMut(&str, usize) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let mut line = String::new();
    let mut number = skipped;
    loop {
        number += 1;
        line.clear();
        let n = input
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_line(&mut line)
            .map_err(|e| io_error(number, &e))?;
        if n == 0 {
            return Ok(());
        }
        if n > MAX_LINE {
            return Err(FileError::at(
                number,
                None,
                format!("longer than {MAX_LINE} octets"),
            ));
        }
        f(line.trim_end_matches(['\n', '\r']), number)?;
    }
}

fn read_text<T: Entry>(input: impl BufRead, skipped: usize) -> Result<Vec<T>, FileError> {
    let mut out = Vec::new();
    each_line(input, skipped, |line, number| {
        let text = line.split_once('#').map_or(line, |(t, _)| t);
        let mut tokens = tokens(text);
        let Some((prefix, col)) = tokens.next() else {
            return Ok(());
        };
        // A line of a prefix alone (the common file) allocates nothing here.
        let columns: Vec<(&str, usize)> = tokens.collect();
        let entry = T::from_columns(prefix, &columns).map_err(|(c, m)| {
            // Errors of the route as a whole point at its prefix.
            FileError::at(number, Some(if c == 0 { col } else { c }), m)
        })?;
        out.push(entry);
        Ok(())
    })?;
    Ok(out)
}

/// The tokens of `text` split at ASCII white space (as `split_ascii_whitespace`), each with
/// its 1-based column, found in the same pass (no search for the token afterwards).
fn tokens(text: &str) -> impl Iterator<Item = (&str, usize)> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        if at == bytes.len() {
            return None;
        }
        let start = at;
        while bytes.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
            at += 1;
        }
        // Both ends sit next to ASCII octets or the ends of `text`: char boundaries.
        Some((&text[start..at], start + 1))
    })
}

fn read_json_lines<T: Entry>(input: impl BufRead, skipped: usize) -> Result<Vec<T>, FileError> {
    let mut out = Vec::new();
    each_line(input, skipped, |line, number| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let entry: One<T> = serde_json::from_str(line).map_err(|e| {
            json_error(
                &e,
                number,
                "JSON lines: the input starts with JSON, so each line is a JSON value",
            )
        })?;
        out.push(entry.0);
        Ok(())
    })?;
    Ok(out)
}

fn read_json_array<T: Entry>(input: impl BufRead, skipped: usize) -> Result<Vec<T>, FileError> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_reader(input);
    let fix = |e: serde_json::Error| {
        json_error(
            &e,
            e.line() + skipped,
            "in the JSON array the input starts with",
        )
    };
    All(&mut out).deserialize(&mut de).map_err(fix)?;
    de.end().map_err(fix)?;
    Ok(out)
}

/// serde_json's error at `line` (its own position left out of the message).
fn json_error(e: &serde_json::Error, line: usize, format: &str) -> FileError {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let column = (e.column() > 0).then_some(e.column());
    if e.is_io() {
        return FileError::at(line, None, format!("cannot read: {message}"));
    }
    let message = crate::suggest::did_you_mean(&message);
    FileError::at(line, column, format!("{message} ({format})"))
}

/// One entry of a JSON file: a prefix string or a route object.
struct One<T>(T);

impl<'de, T: Entry> Deserialize<'de> for One<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneVisitor(PhantomData))
    }
}

struct OneVisitor<T>(PhantomData<T>);

impl<'de, T: Entry> Visitor<'de> for OneVisitor<T> {
    type Value = One<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a prefix string such as \"198.51.100.0/24\" or a route object such as \
             {\"prefix\": \"198.51.100.0/24\"}",
        )
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<One<T>, E> {
        T::from_prefix(s).map(One).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<One<T>, A::Error> {
        T::from_object(map).map(One)
    }
}

/// The entries of a JSON array, pushed as they are read (no array of JSON values first).
struct All<'a, T>(&'a mut Vec<T>);

impl<'de, T: Entry> DeserializeSeed<'de> for All<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Entry> Visitor<'de> for All<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of prefix strings or route objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let index = self.0.len();
            match seq.next_element::<One<T>>() {
                Ok(Some(one)) => self.0.push(one.0),
                Ok(None) => return Ok(()),
                Err(e) => return Err(de::Error::custom(format_args!("item [{index}]: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(text: &str) -> Result<Vec<Route>, String> {
        read::<Route>(text.as_bytes()).map_err(|e| e.to_string())
    }

    fn prefixes(text: &str) -> Result<Vec<String>, String> {
        read::<IpNet>(text.as_bytes())
            .map(|v| v.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    fn route(json: &str) -> Route {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn text_lines_with_comments_blanks_and_columns() {
        let text = "# site A\n\n198.51.100.0/24\n  203.0.113.0/24 next_hop=192.0.2.1 med=10 \
                    communities=65000:1,no-export # edge\r\n2001:db8:1::/48\tnext_hop=2001:db8::1 \
                    origin=incomplete large_communities=65000:1:2 local_pref=200 prepend=2 \
                    lease_secs=30\n";
        assert_eq!(
            routes(text).unwrap(),
            vec![
                route(r#"{"prefix": "198.51.100.0/24"}"#),
                route(
                    r#"{"prefix": "203.0.113.0/24", "next_hop": "192.0.2.1", "med": 10,
                        "communities": ["65000:1", "no-export"]}"#
                ),
                route(
                    r#"{"prefix": "2001:db8:1::/48", "next_hop": "2001:db8::1",
                        "origin": "incomplete", "large_communities": ["65000:1:2"],
                        "local_pref": 200, "prepend": 2, "lease_secs": 30}"#
                ),
            ]
        );
        // Withdraw reads the same file for its prefixes.
        assert_eq!(
            prefixes(text).unwrap(),
            ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/48"]
        );
    }

    #[test]
    fn text_errors_name_line_column_and_what_was_expected() {
        // The issue's case: a bare address where a prefix was wanted.
        assert_eq!(
            routes("198.51.100.0/24\n\n10.0\n").unwrap_err(),
            "line 3, column 1: prefix \"10.0\" is not an IP prefix like 198.51.100.0/24 or 2001:db8::/48"
        );
        assert_eq!(
            routes("198.51.100.1/24").unwrap_err(),
            "line 1, column 1: prefix 198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?"
        );
        let e = routes("# x\n198.51.100.0/24 med=ten").unwrap_err();
        assert_eq!(
            e,
            "line 2, column 17: med \"ten\" is not a number 0-4294967295"
        );
        let e = routes("198.51.100.0/24  nexthop=192.0.2.1").unwrap_err();
        assert!(
            e.starts_with("line 1, column 18: unknown key \"nexthop\"; keys: next_hop, origin"),
            "{e}"
        );
        let e = routes("198.51.100.0/24 192.0.2.1").unwrap_err();
        assert!(
            e.starts_with("line 1, column 17: \"192.0.2.1\" is not KEY=VALUE"),
            "{e}"
        );
        let e = routes("198.51.100.0/24 med=1 med=2").unwrap_err();
        assert_eq!(e, "line 1, column 23: med given twice");
        let e = routes("198.51.100.0/24 communities=65000:1,70000:1").unwrap_err();
        assert!(
            e.starts_with("line 1, column 1: communities") && e.contains("70000:1"),
            "{e}"
        );
        let e = routes("198.51.100.0/24 next_hop=2001:db8::1").unwrap_err();
        assert!(
            e.contains("next_hop 2001:db8::1 is IPv6 but prefix 198.51.100.0/24 is IPv4"),
            "{e}"
        );
        assert!(routes("198.51.100.0/24 prepend=99")
            .unwrap_err()
            .contains("prepend 99"));
        assert!(prefixes("198.51.100.0/24\n2001:db8::/200")
            .unwrap_err()
            .starts_with("line 2, column 1: "));
    }

    #[test]
    fn json_array_of_prefixes_and_route_objects() {
        let text = "\n\n[\"198.51.100.0/24\", {\"prefix\": \"2001:db8:1::/48\", \"med\": 5}]\n";
        assert_eq!(
            routes(text).unwrap(),
            vec![
                route(r#"{"prefix": "198.51.100.0/24"}"#),
                route(r#"{"prefix": "2001:db8:1::/48", "med": 5}"#)
            ]
        );
        assert_eq!(
            prefixes(text).unwrap(),
            ["198.51.100.0/24", "2001:db8:1::/48"]
        );
    }

    #[test]
    fn json_errors_name_line_item_and_what_was_expected() {
        let e =
            routes("[\n\"198.51.100.0/24\",\n{\"prefix\": \"198.51.100.0/24\", \"medd\": 1}\n]")
                .unwrap_err();
        assert!(
            e.starts_with("line 3, column ")
                && e.contains("item [1]: unknown field `medd`")
                && e.contains("did you mean `med`?"),
            "{e}"
        );
        let e = prefixes("\n[\"198.51.100.0/24\", 7]").unwrap_err();
        assert!(
            e.starts_with("line 2, column ")
                && e.contains("item [1]: invalid type: integer `7`, expected a prefix string"),
            "{e}"
        );
        let e = prefixes("[{\"next_hop\": \"192.0.2.1\"}]").unwrap_err();
        assert!(e.contains("missing field `prefix`"), "{e}");
        let e = prefixes("[\"198.51.100.1/24\"]").unwrap_err();
        assert!(
            e.contains("item [0]: prefix 198.51.100.1/24 has host bits set"),
            "{e}"
        );
        let e = prefixes("[\"198.51.100.0/24\"").unwrap_err();
        assert!(e.starts_with("line 1") && e.contains("EOF"), "{e}");
        let e = prefixes("[\"198.51.100.0/24\"] x").unwrap_err();
        assert!(e.contains("trailing characters"), "{e}");
        assert!(prefixes("[]").unwrap_err().starts_with("no prefixes in it"));
    }

    #[test]
    fn json_lines() {
        let text = "{\"prefix\": \"198.51.100.0/24\", \"communities\": [\"65000:1\"]}\n\n\"203.0.113.0/24\"\n";
        assert_eq!(
            routes(text).unwrap(),
            vec![
                route(r#"{"prefix": "198.51.100.0/24", "communities": ["65000:1"]}"#),
                route(r#"{"prefix": "203.0.113.0/24"}"#)
            ]
        );
        let e = routes("{\"prefix\": \"198.51.100.0/24\"}\n{\"prefix\": 1}\n").unwrap_err();
        assert!(
            e.starts_with("line 2, column ")
                && e.contains("invalid type: integer `1`, expected a string"),
            "{e}"
        );
        let e = routes("\"198.51.100.0/24\"\n198.51.100.0/24\n").unwrap_err();
        assert!(
            e.starts_with(
                "line 2, column 6: invalid type: floating point `198.51`, expected a prefix string"
            ) && e.ends_with(
                "(JSON lines: the input starts with JSON, so each line is a JSON value)"
            ),
            "{e}"
        );
    }

    #[test]
    fn empty_binary_and_overlong_input_are_refused() {
        for empty in ["", "\n\n  \n", "# only a comment\n"] {
            assert!(
                routes(empty)
                    .unwrap_err()
                    .starts_with("no prefixes in it: give one prefix a line"),
                "{empty:?}"
            );
        }
        let e = read::<Route>(&b"198.51.100.0/24\n\xff\xfe\n"[..]).unwrap_err();
        assert_eq!(e.to_string(), "line 2: not UTF-8 text");
        let long = format!(
            "198.51.100.0/24\n198.51.100.0/24 {}\n",
            "x".repeat(MAX_LINE)
        );
        assert_eq!(
            routes(&long).unwrap_err(),
            format!("line 2: longer than {MAX_LINE} octets")
        );
    }

    #[test]
    fn a_file_is_named_in_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.txt");
        std::fs::write(&path, "198.51.100.0/24\n203.0.113.0/24 med=x\n").unwrap();
        let e = read_path::<Route>(&path).unwrap_err();
        assert_eq!(
            e,
            format!(
                "--file {}: line 2, column 16: med \"x\" is not a number 0-4294967295",
                path.display()
            )
        );
        std::fs::write(&path, "198.51.100.0/24\n").unwrap();
        assert_eq!(read_path::<IpNet>(&path).unwrap().len(), 1);
        let missing = dir.path().join("nope");
        let e = read_path::<IpNet>(&missing).unwrap_err();
        assert!(
            e.starts_with(&format!("--file {}: ", missing.display())) && e.contains("No such file"),
            "{e}"
        );
    }

    #[test]
    fn a_large_text_input_is_read_through_a_small_buffer() {
        let text: String = (0..50_000u32)
            .map(|i| format!("2001:db8:{i:x}::/48\n"))
            .collect();
        let r = std::io::BufReader::with_capacity(64, text.as_bytes());
        let got = read::<IpNet>(r).unwrap();
        assert_eq!(got.len(), 50_000);
        assert_eq!(got[49_999].to_string(), "2001:db8:c34f::/48");
        let json = serde_json::to_string(&got).unwrap();
        let r = std::io::BufReader::with_capacity(64, json.as_bytes());
        assert_eq!(read::<IpNet>(r).unwrap(), got);
    }
}
