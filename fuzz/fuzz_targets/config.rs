//! Speaker config parser (`Config::parse`): never panics, and never echoes a secret.
//!
//! The input is taken as UTF-8 text (other inputs are skipped: a config file that is not UTF-8
//! fails in `read_to_string`, before the parser). Properties:
//! - `Config::parse` returns, `Ok` or `Err`, for any text.
//! - An error message never contains the value given to a secret key (`md5_password`, or any
//!   key whose name says password, secret or token) on a line of the input, once that value is
//!   6 characters or more (shorter ones occur by chance in any message) and stands only on
//!   lines that name a secret (the parser hides those; a plain line may be quoted), and the
//!   message shows it because the input held it (with the value replaced by other text of the
//!   same length, the message no longer contains it).
#![no_main]

use ferry::config::{Config, SECRET_WORDS};
use libfuzzer_sys::fuzz_target;

/// The values of `key = value` lines whose key names a secret (not a file that holds one):
/// a quoted value up to its closing quote, a bare one up to white space. Values of under 6
/// characters, or that the key's own name contains, are left out: they occur in messages by
/// chance.
fn secret_values(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !k.trim().ends_with("_file")
                && ["password", "secret", "token"]
                    .iter()
                    .any(|s| k.contains(s))
        })
        .filter_map(|(k, v)| {
            let v = v.trim_start();
            let value = match v.chars().next() {
                Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or(""),
                _ => v.split_whitespace().next().unwrap_or(""),
            };
            (value.len() >= 6
                && !k.contains(value)
                && !REDACTION.contains(value)
                && only_on_secret_lines(text, value))
            .then_some(value)
        })
        .collect()
}

/// What the parser's redacted messages say in place of a line or a value: a "secret" that is
/// part of it is not a leak.
const REDACTION: &str = "(the line is not shown: it may hold a secret) <hidden>";

/// Whether every line holding `value` names a secret: a value that also stands on a plain
/// line (in a comment, say) may be quoted from there.
fn only_on_secret_lines(text: &str, value: &str) -> bool {
    text.lines().filter(|l| l.contains(value)).all(|l| {
        let l = l.to_ascii_lowercase();
        SECRET_WORDS.iter().any(|w| l.contains(w))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(message) = Config::parse(text) {
        for secret in secret_values(text) {
            if !message.contains(secret) {
                continue;
            }
            // A leak is a message that shows the secret because the input held it: with the
            // secret replaced by other text of the same length, it must not be there any more
            // (a value that spells part of the message's own words is not a leak).
            let masked = text.replace(secret, &"Z".repeat(secret.len()));
            let shown_anyway = Config::parse(&masked).is_err_and(|m| m.contains(secret));
            assert!(
                shown_anyway,
                "the error shows the secret {secret:?}: {message}"
            );
        }
    }
});
