//! Fencing tokens on the wire: the [`Fence`] a client puts on its state-changing calls, the
//! two HTTP headers that carry it, and their checks (Kleppmann's fencing tokens: a speaker
//! refuses a token lower than the highest it has seen for that fence, so a paused or cut-off
//! old leader cannot undo what a newer one did).
//!
//! Contract:
//! - A fence is a name (1-[`MAX_NAME_LEN`] letters, digits, `-`, `_`, `.`, `:`) and a token (a
//!   `u64`, written in decimal). Both headers or neither: [`from_headers`] refuses one alone,
//!   and a bad value, naming the header and the value.
//! - The client sends the headers on announce, withdraw and lease renew only (never on reads
//!   or dry runs); [`Fence::headers`] is what it writes.
//!
//! Never does: keep the held tokens (the speaker's `daemon::fences` does), or decide whether
//! a token is fresh enough.

use std::fmt;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// The header naming the fence (e.g. the plan whose leader makes the call).
pub const FENCE_HEADER: &str = "Ferry-Fence";
/// The header carrying the token, a decimal `u64`.
pub const TOKEN_HEADER: &str = "Ferry-Fence-Token";
/// Longest fence name taken.
pub const MAX_NAME_LEN: usize = 128;

/// A fence and the token its holder offers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    pub name: String,
    pub token: u64,
}

impl Fence {
    /// A fence with a checked name; the error says what is wrong with it.
    pub fn new(name: impl Into<String>, token: u64) -> Result<Self, String> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self { name, token })
    }

    /// The two headers, as sent.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            (FENCE_HEADER, self.name.clone()),
            (TOKEN_HEADER, self.token.to_string()),
        ]
    }
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fence {} token {}", self.name, self.token)
    }
}

/// Whether `name` may name a fence; the error quotes it.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("fence name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "fence name {:?}... is {} octets long, more than {MAX_NAME_LEN}",
            name.chars().take(32).collect::<String>(),
            name.len()
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(format!(
            "fence name {name:?}: use letters, digits, '-', '_', '.' and ':' only"
        ));
    }
    Ok(())
}

/// Why the fence headers of a request were refused: the header and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header {header}: {message}")]
pub struct HeaderError {
    pub header: &'static str,
    pub message: String,
}

/// The fence of a request: `Ok(None)` without either header.
pub fn from_headers(headers: &HeaderMap) -> Result<Option<Fence>, HeaderError> {
    let text = |header: &'static str| -> Result<Option<String>, HeaderError> {
        let mut values = headers.get_all(header).iter();
        let Some(v) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(HeaderError {
                header,
                message: "given more than once".into(),
            });
        }
        v.to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| HeaderError {
                header,
                message: format!(
                    "value {:?} is not visible ASCII",
                    String::from_utf8_lossy(v.as_bytes())
                ),
            })
    };
    match (text(FENCE_HEADER)?, text(TOKEN_HEADER)?) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(HeaderError {
            header: TOKEN_HEADER,
            message: format!("missing; {FENCE_HEADER} needs it (send both or neither)"),
        }),
        (None, Some(_)) => Err(HeaderError {
            header: FENCE_HEADER,
            message: format!("missing; {TOKEN_HEADER} needs it (send both or neither)"),
        }),
        (Some(name), Some(token)) => {
            check_name(&name).map_err(|message| HeaderError {
                header: FENCE_HEADER,
                message,
            })?;
            // Decimal digits only: `u64::from_str` would take a leading '+'.
            let token = token
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| token.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| HeaderError {
                    header: TOKEN_HEADER,
                    message: format!("value {token:?} is not a decimal number 0-{}", u64::MAX),
                })?;
            Ok(Some(Fence { name, token }))
        }
    }
}

/// One fence a speaker holds (`GET /v1/fences`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFence {
    pub fence: String,
    /// The highest token seen.
    pub token: u64,
    /// When it was raised to that token, milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Calls refused with a lower token since the speaker started.
    #[serde(default)]
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn both_headers_make_a_fence() {
        let f = from_headers(&headers(&[(FENCE_HEADER, "dc-plan"), (TOKEN_HEADER, "42")]));
        assert_eq!(f, Ok(Some(Fence::new("dc-plan", 42).unwrap())));
        let max = u64::MAX.to_string();
        let f = from_headers(&headers(&[(FENCE_HEADER, "a"), (TOKEN_HEADER, &max)])).unwrap();
        assert_eq!(f.unwrap().token, u64::MAX);
        assert_eq!(from_headers(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn bad_headers_name_the_header_and_value() {
        let e = from_headers(&headers(&[(FENCE_HEADER, "p"), (TOKEN_HEADER, "-1")])).unwrap_err();
        assert_eq!(e.header, TOKEN_HEADER);
        assert!(e.to_string().contains("\"-1\""), "{e}");
        for bad in ["+1", "1.0", "", "18446744073709551616", "0x10"] {
            let e = from_headers(&headers(&[(FENCE_HEADER, "p"), (TOKEN_HEADER, bad)]));
            assert_eq!(e.unwrap_err().header, TOKEN_HEADER, "{bad:?}");
        }
        let e = from_headers(&headers(&[(FENCE_HEADER, "a b"), (TOKEN_HEADER, "1")])).unwrap_err();
        assert_eq!(e.header, FENCE_HEADER);
        assert!(e.message.contains("\"a b\""), "{e}");
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let e = from_headers(&headers(&[(FENCE_HEADER, &long), (TOKEN_HEADER, "1")])).unwrap_err();
        assert!(e.message.contains("129 octets"), "{e}");
        let e = from_headers(&headers(&[(FENCE_HEADER, "p")])).unwrap_err();
        assert_eq!(e.header, TOKEN_HEADER);
        let e = from_headers(&headers(&[(TOKEN_HEADER, "3")])).unwrap_err();
        assert_eq!(e.header, FENCE_HEADER);
        let e = from_headers(&headers(&[
            (FENCE_HEADER, "p"),
            (FENCE_HEADER, "q"),
            (TOKEN_HEADER, "3"),
        ]))
        .unwrap_err();
        assert!(e.message.contains("more than once"), "{e}");
    }

    #[test]
    fn names_are_checked() {
        assert!(Fence::new("plan.a:leader_1-x", 0).is_ok());
        assert!(Fence::new("", 0).unwrap_err().contains("empty"));
        assert!(Fence::new("a/b", 0).unwrap_err().contains("\"a/b\""));
        assert!(Fence::new("é", 0).is_err());
    }
}
