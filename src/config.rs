//! The speaker's configuration file (TOML), as DESIGN.md specifies it.
//!
//! Every value is checked while it is read, so an error names the key, the bad value and the
//! line (toml reports the position of the value); unknown keys are rejected by name. Options of
//! later features (MD5, GTSM, BFD) are not accepted until they work.
//! Never does: open sockets or files other than the config itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub speaker: SpeakerConfig,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerConfig {
    pub asn: Asn,
    pub router_id: RouterId,
    /// Accept sessions here (optional; peers may also be reached only actively).
    pub listen: Option<SocketAddr>,
    /// Control socket (Unix domain socket path).
    pub api: PathBuf,
    /// Optional TCP listener for the API; requires `api_token_file`.
    pub api_tcp: Option<SocketAddr>,
    /// File holding the bearer token the TCP API requires.
    pub api_token_file: Option<PathBuf>,
    /// Desired routes survive restarts here.
    pub state_dir: PathBuf,
    /// On SIGTERM, re-announce every route with GRACEFUL_SHUTDOWN (RFC 8326) and wait this
    /// long before closing the sessions, so peers move traffic to other paths first.
    pub shutdown_graceful_secs: Option<Seconds>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    pub address: IpAddr,
    pub remote_as: Asn,
    #[serde(default = "default_hold_time")]
    pub hold_time: HoldTime,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Only accept the session, never connect.
    #[serde(default)]
    pub passive: bool,
    /// Source address for the outgoing connection.
    pub local_address: Option<IpAddr>,
    /// Seconds between connection attempts (RFC 4271 §10 suggests 120; Ferry's sites want speed).
    #[serde(default = "default_connect_retry")]
    pub connect_retry: Seconds,
    #[serde(default = "default_families")]
    pub families: Vec<FamilyName>,
    /// Received prefixes above this end the session with Cease/1 (RFC 4486).
    #[serde(default = "default_max_prefixes")]
    pub max_prefixes: u32,
    pub description: Option<String>,
    /// Graceful restart (RFC 4724, with the N bit of RFC 8538): advertise the capability,
    /// and keep this peer's routes as stale when its session drops without a Hard Reset.
    #[serde(default)]
    pub graceful_restart: bool,
    /// Restart Time advertised with graceful restart: how long peers keep our routes while we
    /// restart (1-4095 s, default 120).
    pub restart_time: Option<RestartTime>,
}

fn default_hold_time() -> HoldTime {
    HoldTime(90)
}
fn default_port() -> u16 {
    179
}
fn default_connect_retry() -> Seconds {
    Seconds(5)
}
fn default_families() -> Vec<FamilyName> {
    vec![FamilyName::Ipv4, FamilyName::Ipv6]
}
fn default_max_prefixes() -> u32 {
    1_000_000
}

/// A 4-octet AS number other than 0 and AS_TRANS (RFC 7607, RFC 6793 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Asn(pub u32);

impl TryFrom<i64> for Asn {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(0) => Err("AS 0 is reserved (RFC 7607)".into()),
            Ok(23456) => Err("AS 23456 is AS_TRANS and cannot be a real AS (RFC 6793)".into()),
            Ok(asn) => Ok(Asn(asn)),
            Err(_) => Err(format!("AS {v} is outside 1-4294967295")),
        }
    }
}

/// A BGP identifier: a non-zero IPv4 address (RFC 6286 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RouterId(pub Ipv4Addr);

impl TryFrom<String> for RouterId {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        let addr: Ipv4Addr = v
            .parse()
            .map_err(|_| format!("router_id {v:?} is not an IPv4 address"))?;
        if addr.is_unspecified() {
            return Err("router_id 0.0.0.0 is not allowed (RFC 6286)".into());
        }
        Ok(RouterId(addr))
    }
}

/// Hold time in seconds: 0 (no keepalives) or 3-65535 (RFC 4271 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct HoldTime(pub u16);

impl TryFrom<i64> for HoldTime {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u16::try_from(v) {
            Ok(1 | 2) | Err(_) => Err(format!(
                "hold_time {v} must be 0 or 3-65535 seconds (RFC 4271 §4.2)"
            )),
            Ok(h) => Ok(HoldTime(h)),
        }
    }
}

/// A duration in whole seconds, 1-3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Seconds(pub u32);

impl TryFrom<i64> for Seconds {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=3600 => Ok(Seconds(v as u32)),
            _ => Err(format!("{v} seconds is outside 1-3600")),
        }
    }
}

impl Seconds {
    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

/// RFC 4724 §3 Restart Time: 12 bits; 0 would ask peers to drop our routes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct RestartTime(pub u16);

/// Restart time used when `graceful_restart = true` and `restart_time` is not given.
pub const DEFAULT_RESTART_TIME: u16 = 120;

impl TryFrom<i64> for RestartTime {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=4095 => Ok(RestartTime(v as u16)),
            _ => Err(format!(
                "restart_time {v} must be 1-4095 seconds (12 bits, RFC 4724 §3)"
            )),
        }
    }
}

impl NeighborConfig {
    /// The restart time to advertise, when graceful restart is on.
    pub fn restart_time(&self) -> Option<u16> {
        self.graceful_restart
            .then(|| self.restart_time.map_or(DEFAULT_RESTART_TIME, |r| r.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyName {
    Ipv4,
    Ipv6,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parse and check; the error text carries toml's line and column and the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Rules that span several keys.
    fn check(&self) -> Result<(), String> {
        if self.speaker.api_tcp.is_some() && self.speaker.api_token_file.is_none() {
            return Err("speaker.api_tcp is set but speaker.api_token_file is not: the TCP API requires a bearer token".into());
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            if self.neighbors[..i].iter().any(|m| m.address == n.address) {
                return Err(format!("neighbor.address {} appears twice", n.address));
            }
            if n.families.is_empty() {
                return Err(format!("neighbor {}: families is empty", n.address));
            }
            if n.restart_time.is_some() && !n.graceful_restart {
                return Err(format!(
                    "neighbor {}: restart_time is set but graceful_restart is not: add graceful_restart = true",
                    n.address
                ));
            }
            if n.passive && self.speaker.listen.is_none() {
                return Err(format!(
                    "neighbor {} is passive but speaker.listen is not set: the session could never come up",
                    n.address
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[speaker]
asn = 65100
router_id = "192.0.2.1"
api = "/run/ferry/ferry.sock"
state_dir = "/var/lib/ferry"

[[neighbor]]
address = "192.0.2.2"
remote_as = 4200000001
hold_time = 9
"#;

    #[test]
    fn design_example_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.speaker.asn, Asn(65100));
        let n = &c.neighbors[0];
        assert_eq!(
            (n.remote_as, n.hold_time, n.port),
            (Asn(4_200_000_001), HoldTime(9), 179)
        );
        assert_eq!(n.families, vec![FamilyName::Ipv4, FamilyName::Ipv6]);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = Config::parse(&GOOD.replace("hold_time = 9", "hold_tme = 9")).unwrap_err();
        assert!(e.contains("hold_tme") && e.contains("line 11"), "{e}");
    }

    #[test]
    fn bad_values_name_key_value_and_line() {
        let e = Config::parse(&GOOD.replace("hold_time = 9", "hold_time = 2")).unwrap_err();
        assert!(e.contains("hold_time 2") && e.contains("line 11"), "{e}");
        let e = Config::parse(&GOOD.replace("\"192.0.2.1\"", "\"0.0.0.0\"")).unwrap_err();
        assert!(e.contains("0.0.0.0") && e.contains("line 4"), "{e}");
        let e = Config::parse(&GOOD.replace("asn = 65100", "asn = 0")).unwrap_err();
        assert!(e.contains("AS 0") && e.contains("line 3"), "{e}");
        let e = Config::parse(&GOOD.replace("192.0.2.2", "192.0.2.999")).unwrap_err();
        assert!(e.contains("line 9"), "{e}");
    }

    #[test]
    fn features_not_built_are_rejected_not_ignored() {
        let e = Config::parse(&format!("{GOOD}md5_password = \"x\"\n")).unwrap_err();
        assert!(e.contains("md5_password"), "{e}");
    }

    #[test]
    fn graceful_restart_keys() {
        let c = Config::parse(&format!("{GOOD}graceful_restart = true\n")).unwrap();
        assert_eq!(c.neighbors[0].restart_time(), Some(DEFAULT_RESTART_TIME));
        let c = Config::parse(&format!(
            "{GOOD}graceful_restart = true\nrestart_time = 30\n"
        ))
        .unwrap();
        assert_eq!(c.neighbors[0].restart_time(), Some(30));
        assert_eq!(
            Config::parse(GOOD).unwrap().neighbors[0].restart_time(),
            None
        );
        let e = Config::parse(&format!(
            "{GOOD}graceful_restart = true\nrestart_time = 4096\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("restart_time 4096") && e.contains("line 13"),
            "{e}"
        );
        let e = Config::parse(&format!("{GOOD}restart_time = 30\n")).unwrap_err();
        assert!(e.contains("graceful_restart = true"), "{e}");
        let c = Config::parse(&GOOD.replace("state_dir", "shutdown_graceful_secs = 5\nstate_dir"))
            .unwrap();
        assert_eq!(c.speaker.shutdown_graceful_secs, Some(Seconds(5)));
    }

    #[test]
    fn cross_key_rules() {
        let dup = format!("{GOOD}\n[[neighbor]]\naddress = \"192.0.2.2\"\nremote_as = 65001\n");
        assert!(Config::parse(&dup).unwrap_err().contains("appears twice"));
        let tcp = GOOD.replace("state_dir", "api_tcp = \"127.0.0.1:8179\"\nstate_dir");
        assert!(Config::parse(&tcp).unwrap_err().contains("api_token_file"));
    }
}
