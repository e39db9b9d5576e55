//! TSIG keys from BIND's key file format, as `tsig-keygen` writes it:
//!
//! ```text
//! key "ferry-app" {
//!         algorithm hmac-sha256;
//!         secret "c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IQ==";
//! };
//! ```
//!
//! Contract:
//! - One `key` clause per file; `algorithm` defaults to hmac-sha256 (tsig-keygen's default)
//!   and must be one Hickory signs with (hmac-sha256, hmac-sha384, hmac-sha512); `secret` is
//!   base64 of at least 16 bytes. Comments (`#`, `//`, `/* */`) are skipped.
//! - Every error names the file, the field and the value (never the secret).
//!
//! Never does: talk to a server ([`super::client`]), or print the secret (`Debug` hides it).

use std::path::Path;

use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};

/// A TSIG key (RFC 8945 section 4.1: name, algorithm, secret).
#[derive(Clone)]
pub struct TsigKey {
    /// The key's name as the server knows it (absolute).
    pub name: String,
    pub algorithm: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TsigKey({} {}, secret hidden)",
            self.name, self.algorithm
        )
    }
}

/// RFC 8945 section 5.2.3: the server accepts a request whose time is within `fudge` seconds
/// of its own; 300 is the RFC's recommendation.
const FUDGE_SECS: u16 = 300;

impl TsigKey {
    /// Read and check the key file at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("tsig_key_file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("tsig_key_file {}: {e}", path.display()))
    }

    /// Parse the text of a key file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokens(text)?;
        let mut it = tokens.iter().map(String::as_str).peekable();
        let mut key: Option<TsigKey> = None;
        while let Some(t) = it.next() {
            if t != "key" {
                return Err(format!(
                    "expected `key \"NAME\" {{ ... }};`, found {t:?} (a BIND key file, as tsig-keygen writes it)"
                ));
            }
            if key.is_some() {
                return Err("more than one key clause: give each key its own file".into());
            }
            let name = it.next().ok_or("key: the name is missing")?;
            expect(&mut it, "{", "after the key name")?;
            let (mut algorithm, mut secret) = (None, None);
            loop {
                match it.next() {
                    Some("}") => break,
                    Some("algorithm") => {
                        algorithm = Some(it.next().ok_or("algorithm: value missing")?.to_owned());
                        expect(&mut it, ";", "after algorithm")?;
                    }
                    Some("secret") => {
                        secret = Some(it.next().ok_or("secret: value missing")?.to_owned());
                        expect(&mut it, ";", "after secret")?;
                    }
                    Some(other) => {
                        return Err(format!(
                            "key {name:?}: unknown field {other:?} (a key has algorithm and secret)"
                        ))
                    }
                    None => return Err(format!("key {name:?}: no closing `}};`")),
                }
            }
            expect(&mut it, ";", "after the key's `}`")?;
            let algorithm = algorithm
                .unwrap_or_else(|| "hmac-sha256".into())
                .to_ascii_lowercase();
            let secret = secret.ok_or_else(|| format!("key {name:?}: secret is missing"))?;
            let secret = data_encoding::BASE64
                .decode(secret.as_bytes())
                .map_err(|e| format!("key {name:?}: secret is not base64 ({e})"))?;
            if secret.len() < 16 {
                return Err(format!(
                    "key {name:?}: secret is {} bytes; use at least 16 (tsig-keygen makes 32)",
                    secret.len()
                ));
            }
            let name = if name.ends_with('.') {
                name.to_owned()
            } else {
                format!("{name}.")
            };
            Name::from_ascii(&name).map_err(|e| format!("key name {name:?}: {e}"))?;
            let k = TsigKey {
                name,
                algorithm,
                secret,
            };
            k.signer()?;
            key = Some(k);
        }
        key.ok_or_else(|| {
            "no key clause (expected `key \"NAME\" { algorithm ...; secret \"...\"; };`)".into()
        })
    }

    /// The signer Hickory signs requests and verifies answers with.
    pub fn signer(&self) -> Result<TSigner, String> {
        let alg_name = Name::from_ascii(&self.algorithm)
            .map_err(|e| format!("algorithm {:?}: {e}", self.algorithm))?;
        let algorithm = TsigAlgorithm::from_name(alg_name);
        if !matches!(
            algorithm,
            TsigAlgorithm::HmacSha256 | TsigAlgorithm::HmacSha384 | TsigAlgorithm::HmacSha512
        ) {
            return Err(format!(
                "key {:?}: algorithm {:?} is not supported: use hmac-sha256, hmac-sha384 or hmac-sha512",
                self.name, self.algorithm
            ));
        }
        let name = Name::from_ascii(&self.name).map_err(|e| format!("key {:?}: {e}", self.name))?;
        TSigner::new(self.secret.clone(), algorithm, name, FUDGE_SECS)
            .map_err(|e| format!("key {:?}: {e}", self.name))
    }
}

fn expect<'a>(
    it: &mut impl Iterator<Item = &'a str>,
    want: &str,
    where_: &str,
) -> Result<(), String> {
    match it.next() {
        Some(t) if t == want => Ok(()),
        Some(t) => Err(format!("expected `{want}` {where_}, found {t:?}")),
        None => Err(format!(
            "expected `{want}` {where_}, found the end of the file"
        )),
    }
}

/// Words, quoted strings (without quotes) and the punctuation `{ } ;`; comments dropped.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    prev = c;
                }
                if !closed {
                    return Err("a /* comment is not closed".into());
                }
            }
            '{' | '}' | ';' => out.push(c.to_string()),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("a quoted string is not closed".into()),
                    }
                }
                out.push(s);
            }
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};\"".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "key \"ferry-app\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IQ==\";\n};\n";

    #[test]
    fn reads_tsig_keygen_output() {
        let k = TsigKey::parse(KEY).unwrap();
        assert_eq!(
            (k.name.as_str(), k.algorithm.as_str()),
            ("ferry-app.", "hmac-sha256")
        );
        assert_eq!(k.secret, b"secret secret secret secret!");
        assert!(!format!("{k:?}").contains("c2Vj"));
        let with_comments = format!("# made by tsig-keygen\n/* a\n b */ {KEY} // end\n");
        assert_eq!(TsigKey::parse(&with_comments).unwrap().name, "ferry-app.");
        let default_alg = KEY.replace("\talgorithm hmac-sha256;\n", "");
        assert_eq!(
            TsigKey::parse(&default_alg).unwrap().algorithm,
            "hmac-sha256"
        );
        assert!(TsigKey::parse(&KEY.replace("sha256", "sha512")).is_ok());
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let e = TsigKey::parse(&KEY.replace("hmac-sha256", "hmac-md5")).unwrap_err();
        assert!(e.contains("algorithm \"hmac-md5\" is not supported"), "{e}");
        let e = TsigKey::parse(&KEY.replace("c2Vj", "!!!!")).unwrap_err();
        assert!(e.contains("secret is not base64"), "{e}");
        let e =
            TsigKey::parse(&KEY.replace("c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IQ==", "c2VjcmV0"))
                .unwrap_err();
        assert!(e.contains("secret is 6 bytes"), "{e}");
        let e = TsigKey::parse(&KEY.replace("algorithm", "algo")).unwrap_err();
        assert!(e.contains("unknown field \"algo\""), "{e}");
        let e = TsigKey::parse(&KEY.replace(
            "\tsecret \"c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IQ==\";\n",
            "",
        ))
        .unwrap_err();
        assert!(e.contains("secret is missing"), "{e}");
        let e = TsigKey::parse(&format!("{KEY}{KEY}")).unwrap_err();
        assert!(e.contains("more than one key"), "{e}");
        assert!(TsigKey::parse("").unwrap_err().contains("no key clause"));
        assert!(TsigKey::parse(&KEY.replace("};", "}"))
            .unwrap_err()
            .contains("expected `;`"));
        let e = TsigKey::load(Path::new("/nonexistent/ferry.key")).unwrap_err();
        assert!(e.contains("tsig_key_file /nonexistent/ferry.key"), "{e}");
    }
}
