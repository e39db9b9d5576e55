//! [`Stamp`]: when and by whom a desired route was last changed.
//!
//! The store keeps one per route and writes it with each change (journal line and snapshot);
//! the API shows it with the desired routes. JSON: `{"at": "2026-01-02T03:04:05Z", "at_ms":
//! 1767323045000, "by": "uid 0 gid 0 pid 42 (ferry)"}`; `at` is for people, `at_ms` (Unix
//! milliseconds) is what is read back.
//!
//! Never does: decide who the caller is (the API does, see `api::caller`).

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// When (Unix ms) and by whom a change was made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Stamp {
    pub at_ms: u64,
    pub by: String,
}

impl Stamp {
    /// Now, by `by`.
    pub fn now(by: impl Into<String>) -> Self {
        Self {
            at_ms: super::lease::now_ms(),
            by: by.into(),
        }
    }

    /// `at_ms` as UTC text to the second.
    pub fn at_text(&self) -> String {
        crate::controller::runs::utc(self.at_ms)
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("at", &self.at_text())?;
        m.serialize_entry("at_ms", &self.at_ms)?;
        m.serialize_entry("by", &self.by)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let s = Stamp {
            at_ms: 1_767_323_045_000,
            by: "uid 0 gid 0 pid 42 (ferry)".into(),
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"at":"2026-01-02T03:04:05Z","at_ms":1767323045000,"by":"uid 0 gid 0 pid 42 (ferry)"}"#
        );
        assert_eq!(serde_json::from_str::<Stamp>(&text).unwrap(), s);
    }
}
