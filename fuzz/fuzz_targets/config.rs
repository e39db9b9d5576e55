//! Speaker config parser (`Config::parse`): never panics, and never echoes a secret.
//!
//! The input is taken as UTF-8 text (other inputs are skipped: a config file that is not UTF-8
//! fails in `read_to_string`, before the parser). Properties:
//! - `Config::parse` returns, `Ok` or `Err`, for any text.
//! - An error message never contains the value given to a secret key (`md5_password`, or any
//!   key whose name says password, secret or token) on a line of the input, once that value is
//!   6 characters or more (shorter ones occur by chance in any message).
#![no_main]

use ferry::config::Config;
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
            (value.len() >= 6 && !k.contains(value)).then_some(value)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(message) = Config::parse(text) {
        for secret in secret_values(text) {
            assert!(
                !message.contains(secret),
                "the error shows the secret {secret:?}: {message}"
            );
        }
    }
});
