//! The speaker's configuration file (TOML): README.md shows the keys, examples/speaker/ whole
//! configs (docs/design.md, "Contracts users rely on", for the rules of errors).
//!
//! Every value is checked while it is read, so an error names the key, the bad value and the
//! line (toml reports the position of the value); unknown keys are rejected by name. Secrets
//! (`md5_password`) never appear in `Debug` output or errors: a parse error that points at a
//! line that may hold one (it names a password, key or token, or continues such a value)
//! gives the position and message without quoting the line or the value.
//! A config that holds `md5_password` must be readable by its owner only
//! ([`ConfigError::Exposed`] otherwise, naming the mode and the `chmod` that fixes it).
//! Every type also serializes, so a typed `Config` written with `toml::to_string` parses back
//! to an equal one (tests and benches start speakers that way). A secret file
//! (`api_token_file`) serializes as its path; `md5_password`, which the file itself holds,
//! serializes as its value, so a written config that has one must be private as well.
//! Never does: open sockets or files other than the config itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// The file holds a secret and others than its owner may read it.
    #[error("config {} holds md5_password but is open to group or others (mode {mode:04o}): run `chmod 600 {}`", path.display(), path.display())]
    Exposed { path: PathBuf, mode: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub speaker: SpeakerConfig,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborConfig>,
    /// Health checks that govern announced routes (see `daemon::health`); a reload refuses
    /// a change of them (restart).
    #[serde(
        default,
        rename = "health_check",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub health_checks: Vec<HealthCheckConfig>,
}

/// One `[[health_check]]`: a probe run every `interval_ms`; while it fails (`fall` failures
/// in a row) the routes within `prefixes` are withdrawn, or de-preferred with `med` and/or
/// `community` when `on_fall = "deprefer"`; `rise` successes in a row (and `hold_down_ms`
/// since the fall) bring them back as configured. Exactly one of `tcp`, `http`, `command`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    pub name: String,
    /// The announced routes equal to or inside one of these are governed by the check.
    pub prefixes: Vec<ipnet::IpNet>,
    /// `ip:port` that must accept a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<SocketAddr>,
    /// `http://` or `https://` URL that must answer a GET with 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Program and arguments that must exit 0 (no shell). ICMP: `["ping", "-c1", "-W1", HOST]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default = "default_health_interval")]
    pub interval_ms: HealthMs,
    #[serde(default = "default_health_timeout")]
    pub timeout_ms: HealthMs,
    #[serde(default = "default_rise")]
    pub rise: HealthCount,
    #[serde(default = "default_fall")]
    pub fall: HealthCount,
    /// After a fall, the routes stay down at least this long (flap damping).
    #[serde(default)]
    pub hold_down_ms: u32,
    #[serde(default)]
    pub on_fall: OnFall,
    /// `on_fall = "deprefer"`: extra copies of our ASN in the AS_PATH while the check fails
    /// (added to the route's own `prepend`, capped at 32 in all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepend: Option<u8>,
    /// `on_fall = "deprefer"`: the MED the routes carry while the check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// `on_fall = "deprefer"`: a community (`ASN:VALUE`) added while the check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community: Option<String>,
}

/// What a failing health check does to its routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFall {
    #[default]
    Withdraw,
    Deprefer,
}

/// A health check period in milliseconds, 10-3600000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct HealthMs(pub u32);

impl TryFrom<i64> for HealthMs {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            10..=3_600_000 => Ok(HealthMs(v as u32)),
            _ => Err(format!("health_check time {v} ms is outside 10-3600000")),
        }
    }
}

/// A rise or fall count, 1-100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct HealthCount(pub u32);

impl TryFrom<i64> for HealthCount {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=100 => Ok(HealthCount(v as u32)),
            _ => Err(format!("health_check rise/fall {v} is outside 1-100")),
        }
    }
}

fn default_health_interval() -> HealthMs {
    HealthMs(2000)
}
fn default_health_timeout() -> HealthMs {
    HealthMs(1000)
}
fn default_rise() -> HealthCount {
    HealthCount(2)
}
fn default_fall() -> HealthCount {
    HealthCount(3)
}

impl HealthCheckConfig {
    /// The rules between this check's keys; errors name the check and the key.
    fn check(&self) -> Result<(), String> {
        let n = &self.name;
        let kinds = [
            self.tcp.is_some(),
            self.http.is_some(),
            self.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(format!(
                "health_check {n:?}: set exactly one of tcp, http, command"
            ));
        }
        if let Some(url) = &self.http {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "health_check {n:?}: http {url:?} is not an http:// or https:// URL"
                ));
            }
        }
        if let Some(argv) = &self.command {
            if argv.first().is_none_or(|p| p.is_empty()) {
                return Err(format!(
                    "health_check {n:?}: command is empty; give the program and its arguments, e.g. [\"/usr/bin/check\", \"--quiet\"]"
                ));
            }
        }
        if self.prefixes.is_empty() {
            return Err(format!(
                "health_check {n:?}: prefixes is empty; name the routes it governs"
            ));
        }
        for p in &self.prefixes {
            if p.trunc() != *p {
                return Err(format!(
                    "health_check {n:?}: prefixes: {p} has host bits set; did you mean {}?",
                    p.trunc()
                ));
            }
        }
        if self.timeout_ms.0 > self.interval_ms.0 {
            return Err(format!(
                "health_check {n:?}: timeout_ms {} is longer than interval_ms {}",
                self.timeout_ms.0, self.interval_ms.0
            ));
        }
        if let Some(c) = &self.community {
            c.parse::<crate::wire::community::Community>()
                .map_err(|e| format!("health_check {n:?}: community {c:?}: {e}"))?;
        }
        if let Some(p) = self.prepend {
            let max = crate::speaker::route::MAX_PREPEND;
            if p == 0 || p > max {
                return Err(format!(
                    "health_check {n:?}: prepend {p} is outside 1-{max}"
                ));
            }
        }
        let deprefers = self.prepend.is_some() || self.med.is_some() || self.community.is_some();
        match self.on_fall {
            OnFall::Deprefer if !deprefers => Err(format!(
                "health_check {n:?}: on_fall = \"deprefer\" needs prepend, med or community (what the routes carry while failing)"
            )),
            OnFall::Withdraw if deprefers => Err(format!(
                "health_check {n:?}: prepend/med/community apply only with on_fall = \"deprefer\" (on_fall is \"withdraw\")"
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerConfig {
    pub asn: Asn,
    pub router_id: RouterId,
    /// Accept sessions here (optional; peers may also be reached only actively).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Control socket (Unix domain socket path).
    pub api: PathBuf,
    /// Optional TCP listener for the API; requires `api_token_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_tcp: Option<SocketAddr>,
    /// File holding the bearer token the TCP API requires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_file: Option<PathBuf>,
    /// Optional TCP listener that serves only `GET /metrics`, without a token (read-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Desired routes survive restarts here.
    pub state_dir: PathBuf,
    /// On SIGTERM, re-announce every route with GRACEFUL_SHUTDOWN (RFC 8326) and wait this
    /// long before closing the sessions, so peers move traffic to other paths first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_graceful_secs: Option<Seconds>,
    /// A group whose members may use the control socket: the socket is then mode 0660 and
    /// owned by this group (without it: 0600, the speaker's user only). Resolved at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// When set, announcements of prefixes outside these (each announced prefix must lie
    /// within one of them) are refused with an error naming the prefix and this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_prefixes: Option<Vec<ipnet::IpNet>>,
    /// What the speaker logs, as a tracing filter (`info`, `debug`, `info,ferry::daemon=debug`).
    /// Unset: the `FERRY_LOG` environment variable, else `info`. A reload applies a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// Refuse announce, withdraw and lease renew calls that carry no fencing token (headers
    /// `Ferry-Fence` and `Ferry-Fence-Token`) with HTTP 428. Off: such calls bypass fencing.
    /// A reload applies a change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_fence: bool,
}

/// A log filter in the syntax of `tracing_subscriber::EnvFilter`, checked when read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct LogLevel(pub String);

impl TryFrom<String> for LogLevel {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::try_new(&v)
            .map_err(|e| format!("log_level {v:?} is not a log filter ({e}); e.g. \"info\" or \"info,ferry::daemon=debug\""))?;
        Ok(LogLevel(v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_address: Option<IpAddr>,
    /// Seconds between connection attempts (RFC 4271 §10 suggests 120; Ferry's sites want speed).
    #[serde(default = "default_connect_retry")]
    pub connect_retry: Seconds,
    #[serde(default = "default_families")]
    pub families: Vec<FamilyName>,
    /// Received prefixes above this end the session with Cease/1 (RFC 4486).
    #[serde(default = "default_max_prefixes")]
    pub max_prefixes: u32,
    /// Octets of received path attributes this peer may hold: its distinct attribute sets,
    /// each counted once (encoded size + 64). Above it the session ends with Cease/8 Out of
    /// Resources (RFC 4486), as max_prefixes bounds the count of routes but not their size.
    #[serde(default = "default_max_attribute_bytes")]
    pub max_attribute_bytes: AttributeBytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Extended messages (RFC 8654): advertise the capability, so that with a peer that
    /// advertises it too UPDATEs may be up to 65,535 octets instead of 4,096 (fewer, larger
    /// messages for big batches), and accept messages that long from the peer (§4). On by
    /// default, as in FRR; `false` keeps every message at 4,096 octets both ways.
    #[serde(default = "default_extended_messages")]
    pub extended_messages: bool,
    /// Graceful restart (RFC 4724, with the N bit of RFC 8538): advertise the capability,
    /// and keep this peer's routes as stale when its session drops without a Hard Reset.
    #[serde(default)]
    pub graceful_restart: bool,
    /// Restart Time advertised with graceful restart: how long peers keep our routes while we
    /// restart (1-4095 s, default 120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_time: Option<RestartTime>,
    /// TCP MD5 signature key (RFC 2385), 1-80 octets; both ends must agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5_password: Option<Md5Password>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only packets from at most this many
    /// hops away (1-254; 1 = directly connected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<TtlHops>,
    /// RFC 9687 SendHoldTimer in seconds: a peer that accepts none of our data for this long
    /// is dropped. 0 turns it off; default 480 (8 minutes, the RFC's suggestion).
    #[serde(default = "default_send_hold_time")]
    pub send_hold_time: SendHoldTime,
    /// BFD (RFC 5880 asynchronous mode, RFC 5881 single hop) for this neighbor; when its
    /// session goes Down, the BGP session is taken down at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdConfig>,
}

/// BFD timers of one neighbor (RFC 5880 §6.8.1 variables, in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BfdConfig {
    /// Desired Min TX Interval: how often we would like to send (10-60000 ms, default 300).
    #[serde(default = "default_bfd_interval")]
    pub min_tx_ms: BfdInterval,
    /// Required Min RX Interval: how often we can receive (10-60000 ms, default 300).
    #[serde(default = "default_bfd_interval")]
    pub min_rx_ms: BfdInterval,
    /// Detect Mult: missed packets before the session is declared Down (2-255, default 3).
    #[serde(default = "default_bfd_multiplier")]
    pub multiplier: BfdMultiplier,
}

fn default_bfd_interval() -> BfdInterval {
    BfdInterval(300)
}
fn default_bfd_multiplier() -> BfdMultiplier {
    BfdMultiplier(3)
}
fn default_extended_messages() -> bool {
    true
}
fn default_send_hold_time() -> SendHoldTime {
    SendHoldTime(480)
}

/// A BFD interval in milliseconds, 10-60000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct BfdInterval(pub u32);

impl TryFrom<i64> for BfdInterval {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            10..=60_000 => Ok(BfdInterval(v as u32)),
            _ => Err(format!("BFD interval {v} ms is outside 10-60000")),
        }
    }
}

/// BFD Detect Mult, 2-255 (1 would declare Down on a single lost packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct BfdMultiplier(pub u8);

impl TryFrom<i64> for BfdMultiplier {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            2..=255 => Ok(BfdMultiplier(v as u8)),
            _ => Err(format!("BFD multiplier {v} is outside 2-255")),
        }
    }
}

/// A TCP MD5 key: 1-80 octets (Linux's TCP_MD5SIG_MAXKEYLEN). `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct Md5Password(String);

impl Md5Password {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Md5Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Md5Password(<hidden>)")
    }
}

impl TryFrom<String> for Md5Password {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.len() {
            1..=crate::sockopt::MD5_MAX_KEY_LEN => Ok(Md5Password(v)),
            n => Err(format!(
                "md5_password of {n} octets is outside 1-{} (the value is not shown)",
                crate::sockopt::MD5_MAX_KEY_LEN
            )),
        }
    }
}

/// GTSM hop count, 1-254 (RFC 5082 §3: accept TTL >= 256 - hops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct TtlHops(pub u8);

impl TtlHops {
    /// The lowest TTL a packet from the peer may arrive with.
    pub fn min_ttl(self) -> u8 {
        (256 - u16::from(self.0)) as u8
    }
}

impl TryFrom<i64> for TtlHops {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=254 => Ok(TtlHops(v as u8)),
            _ => Err(format!("ttl_security {v} hops is outside 1-254")),
        }
    }
}

/// RFC 9687 send hold time in seconds: 0 (off) or 1-3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct SendHoldTime(pub u32);

impl SendHoldTime {
    pub fn duration(self) -> Option<Duration> {
        (self.0 > 0).then(|| Duration::from_secs(u64::from(self.0)))
    }
}

impl TryFrom<i64> for SendHoldTime {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            0..=3600 => Ok(SendHoldTime(v as u32)),
            _ => Err(format!(
                "send_hold_time {v} must be 0 (off) or 1-3600 seconds"
            )),
        }
    }
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

/// Default `max_attribute_bytes`, 512 MiB: a synthetic full table (800,000 prefixes, 272,583
/// sets) counts 29 MB, 106 octets a set (proto-tests/tests/attribute_budget.rs), so a table
/// with several times its sets and their size still fits; one hostile peer is held to about
/// half a GB of attributes instead of tens of GB.
pub const DEFAULT_MAX_ATTRIBUTE_BYTES: u64 = 512 << 20;
/// Smallest `max_attribute_bytes`: the attributes of one 65,535-octet UPDATE, many times over.
pub const MIN_MAX_ATTRIBUTE_BYTES: u64 = 1 << 20;

fn default_max_attribute_bytes() -> AttributeBytes {
    AttributeBytes(DEFAULT_MAX_ATTRIBUTE_BYTES)
}

/// A per-peer budget of received path attribute octets, at least 1 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct AttributeBytes(pub u64);

impl TryFrom<i64> for AttributeBytes {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u64::try_from(v) {
            Ok(b) if b >= MIN_MAX_ATTRIBUTE_BYTES => Ok(AttributeBytes(b)),
            _ => Err(format!(
                "max_attribute_bytes {v} is below {MIN_MAX_ATTRIBUTE_BYTES} (1 MiB): one peer's attributes need at least that; the default is {DEFAULT_MAX_ATTRIBUTE_BYTES}"
            )),
        }
    }
}

/// A 4-octet AS number other than 0 and AS_TRANS (RFC 7607, RFC 6793 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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

impl SpeakerConfig {
    /// A speaker with only the required keys set.
    pub fn new(asn: Asn, router_id: RouterId, api: PathBuf, state_dir: PathBuf) -> Self {
        Self {
            asn,
            router_id,
            listen: None,
            api,
            api_tcp: None,
            api_token_file: None,
            metrics_listen: None,
            state_dir,
            shutdown_graceful_secs: None,
            log_level: None,
            api_group: None,
            allowed_prefixes: None,
            require_fence: false,
        }
    }
}

impl NeighborConfig {
    /// A neighbor with only the required keys set, every other one at its default.
    pub fn new(address: IpAddr, remote_as: Asn) -> Self {
        Self {
            address,
            remote_as,
            hold_time: default_hold_time(),
            port: default_port(),
            passive: false,
            local_address: None,
            connect_retry: default_connect_retry(),
            families: default_families(),
            max_prefixes: default_max_prefixes(),
            max_attribute_bytes: default_max_attribute_bytes(),
            description: None,
            extended_messages: default_extended_messages(),
            graceful_restart: false,
            restart_time: None,
            md5_password: None,
            ttl_security: None,
            send_hold_time: default_send_hold_time(),
            bfd: None,
        }
    }

    /// The restart time to advertise, when graceful restart is on.
    pub fn restart_time(&self) -> Option<u16> {
        self.graceful_restart
            .then(|| self.restart_time.map_or(DEFAULT_RESTART_TIME, |r| r.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyName {
    Ipv4,
    Ipv6,
}

/// Words that make a config line secret: it names a password, key or token (or a typo of
/// one: an unknown-key error quotes the line as well).
pub const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pasword",
    "secret",
    "token",
    "md5",
    "key",
    "psk",
    "credential",
];

/// Which lines (0-based) may hold a secret: each line naming one of [`SECRET_WORDS`], and the
/// lines its value continues on (a multi-line array, inline table or string), judged by open
/// brackets and triple quotes. Brackets inside strings are counted too, so a value such as
/// `md5_password = "a[b"` marks every later line secret until a `]` closes it: that only hides
/// harmless lines from an error message, never shows a secret one.
fn secret_lines(text: &str) -> Vec<bool> {
    let mut out = Vec::new();
    let mut depth: usize = 0;
    let mut in_multiline = false;
    for line in text.split('\n') {
        let lower = line.to_ascii_lowercase();
        let continues = depth > 0 || in_multiline;
        let secret = continues || SECRET_WORDS.iter().any(|w| lower.contains(w));
        if secret {
            let value = if continues {
                line
            } else {
                line.split_once('=').map_or("", |(_, v)| v)
            };
            depth += value.matches(['[', '{']).count();
            depth = depth.saturating_sub(value.matches([']', '}']).count());
            let triples = value.matches(r#"""""#).count() + value.matches("'''").count();
            in_multiline ^= triples % 2 == 1;
        }
        out.push(secret);
    }
    out
}

/// `message` with each quoted part (`...` or "...") that is not a plain key name replaced:
/// toml quotes the offending value in some messages ("invalid type: integer `123`").
fn hide_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['`', '"']) {
        let q = &rest[i..i + 1];
        out.push_str(&rest[..i]);
        let Some(len) = rest[i + 1..].find(q) else {
            out.push_str(q);
            out.push_str("<hidden>");
            return out;
        };
        let inner = &rest[i + 1..i + 1 + len];
        let key_name = inner.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && inner
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        out.push_str(q);
        out.push_str(if key_name { inner } else { "<hidden>" });
        out.push_str(q);
        rest = &rest[i + 2 + len..];
    }
    out.push_str(rest);
    out
}

/// toml's error quotes the source line it points at; when that line may hold a secret
/// ([`secret_lines`]) the error gives only the position and the message, with quoted values
/// hidden. Decided by the line, not by the message's wording: a syntax error (unterminated
/// string, unquoted value) does not name the key.
fn render_toml_error(text: &str, e: &toml::de::Error) -> String {
    let secret = secret_lines(text);
    let Some(span) = e.span() else {
        return if secret.contains(&true) {
            hide_quoted_values(&e.to_string())
        } else {
            e.to_string()
        };
    };
    let at = span.start.min(text.len());
    // A span may start inside a multi-octet character; count from the boundary before it.
    let at = (0..=at)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let before = &text[..at];
    let line = before.matches('\n').count();
    // toml quotes the line it counts the error on, which is not always the one the span's
    // start falls on (an error at the end of the text is shown on the last line): judge by
    // what its message would show, too.
    let shown = e.to_string();
    let shows_secret = text
        .split('\n')
        .zip(&secret)
        .any(|(l, s)| *s && !l.trim().is_empty() && shown.contains(l.trim()));
    if !shows_secret && !secret.get(line).copied().unwrap_or(false) {
        return shown;
    }
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(
        "TOML parse error at line {}, column {column} (the line is not shown: it may hold a secret): {}",
        line + 1,
        hide_quoted_values(e.message().trim_end())
    )
}

/// A group name as useradd(8) accepts it: letters, digits, `_`, `-`, `.`, not starting with `-`,
/// at most 32 characters (a trailing `$` is allowed, for Samba machine accounts).
fn check_group_name(name: &str) -> Result<(), String> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 32
        && !body.starts_with('-')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "speaker.api_group {name:?} is not a group name (letters, digits, `_`, `-`, `.`; at most 32)"
        ))
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        // Like ssh with its keys, a secret others may read is refused rather than used:
        // anyone who can read it can sign BGP segments.
        if config.neighbors.iter().any(|n| n.md5_password.is_some()) {
            let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            if let Some(mode) = crate::private_fs::exposed_mode(&meta) {
                return Err(ConfigError::Exposed {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        Ok(config)
    }

    /// Parse and check; the error text carries toml's line and column and the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text)
            .map_err(|e| crate::suggest::did_you_mean(&render_toml_error(text, &e)))?;
        config.check()?;
        Ok(config)
    }

    /// Rules that span several keys.
    fn check(&self) -> Result<(), String> {
        if let Some(g) = &self.speaker.api_group {
            check_group_name(g)?;
        }
        if let Some(list) = &self.speaker.allowed_prefixes {
            for p in list {
                if p.trunc() != *p {
                    return Err(format!(
                        "speaker.allowed_prefixes: {p} has host bits set; did you mean {}?",
                        p.trunc()
                    ));
                }
            }
        }
        if self.speaker.api_tcp.is_some() && self.speaker.api_token_file.is_none() {
            return Err("speaker.api_tcp is set but speaker.api_token_file is not: the TCP API requires a bearer token".into());
        }
        if let Some(m) = self.speaker.metrics_listen {
            let taken = [
                ("speaker.api_tcp", self.speaker.api_tcp),
                ("speaker.listen", self.speaker.listen),
            ];
            if let Some((key, _)) = taken.iter().find(|(_, a)| *a == Some(m)) {
                return Err(format!(
                    "speaker.metrics_listen {m} is also {key}: give the metrics an address of their own (or leave metrics_listen out: the API serves /metrics too)"
                ));
            }
        }
        for (i, h) in self.health_checks.iter().enumerate() {
            if h.name.is_empty() {
                return Err(format!("health_check #{}: name is empty", i + 1));
            }
            if self.health_checks[..i].iter().any(|o| o.name == h.name) {
                return Err(format!("health_check name {:?} appears twice", h.name));
            }
            h.check()?;
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

    /// Every key set (including the optional ones), for the serialization round trip.
    const FULL: &str = r#"
[speaker]
asn = 65100
router_id = "192.0.2.1"
listen = "[2001:db8::1]:179"
api = "/run/ferry/ferry.sock"
api_tcp = "127.0.0.1:8179"
api_token_file = "/etc/ferry/token"
metrics_listen = "127.0.0.1:9179"
state_dir = "/var/lib/ferry"
shutdown_graceful_secs = 10
log_level = "info,ferry::daemon=debug"
api_group = "ferry"
allowed_prefixes = ["198.51.100.0/24", "2001:db8::/32"]

[[neighbor]]
address = "2001:db8::2"
remote_as = 65001
hold_time = 0
port = 1179
passive = true
local_address = "2001:db8::1"
connect_retry = 7
families = ["ipv6"]
max_prefixes = 10
max_attribute_bytes = 2097152
description = "site \"b\"\nsecond line"
extended_messages = false
graceful_restart = true
restart_time = 30
md5_password = "s3cret"
ttl_security = 1
send_hold_time = 0
bfd = { min_tx_ms = 100, min_rx_ms = 200, multiplier = 5 }

[[neighbor]]
address = "192.0.2.3"
remote_as = 4200000001
"#;

    /// The ```toml blocks of the README and docs/ that hold a `[speaker]` table.
    fn documented_configs() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md")];
        if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
            files.extend(dir.flatten().map(|e| e.path()));
        }
        let mut out = Vec::new();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            for (i, block) in text.split("```toml\n").skip(1).enumerate() {
                let block = block.split("```").next().unwrap_or("");
                if block.contains("[speaker]") {
                    out.push((format!("{} block {i}", f.display()), block.to_string()));
                }
            }
        }
        out
    }

    /// A config serialized with toml parses back to an equal one: the README's and docs'
    /// examples, and one with every key set. The token file stays a path.
    #[test]
    fn serialized_config_parses_back_equal() {
        let mut cases = documented_configs();
        assert!(!cases.is_empty(), "the README documents a config");
        cases.push(("GOOD".into(), GOOD.into()));
        cases.push(("FULL".into(), FULL.into()));
        for (name, text) in cases {
            let c = Config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let written = toml::to_string(&c).unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = Config::parse(&written).unwrap_or_else(|e| panic!("{name}: {e}\n{written}"));
            assert_eq!(back, c, "{name}:\n{written}");
        }
        let full = toml::to_string(&Config::parse(FULL).unwrap()).unwrap();
        assert!(
            full.contains("api_token_file = \"/etc/ferry/token\""),
            "{full}"
        );
    }

    /// The typed constructors agree with the defaults of the file format.
    #[test]
    fn constructors_agree_with_the_file_defaults() {
        let c = Config::parse(GOOD).unwrap();
        let mut n = NeighborConfig::new("192.0.2.2".parse().unwrap(), Asn(4_200_000_001));
        n.hold_time = HoldTime(9);
        assert_eq!(c.neighbors, vec![n]);
        let s = SpeakerConfig::new(
            Asn(65100),
            RouterId(Ipv4Addr::new(192, 0, 2, 1)),
            "/run/ferry/ferry.sock".into(),
            "/var/lib/ferry".into(),
        );
        assert_eq!(c.speaker, s);
    }

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
        assert!(e.contains("did you mean `hold_time`?"), "{e}");
        let e = Config::parse(&GOOD.replace("router_id", "routerid")).unwrap_err();
        assert!(e.contains("did you mean `router_id`?"), "{e}");
        // British spelling of a table; a misspelt value of a fixed set.
        let e = Config::parse(&GOOD.replace("[[neighbor]]", "[[neighbour]]")).unwrap_err();
        assert!(e.contains("did you mean `neighbor`?"), "{e}");
        // A word near no key gets no guess.
        let e = Config::parse(&GOOD.replace("hold_time = 9", "keepalive = 3")).unwrap_err();
        assert!(
            e.contains("keepalive") && !e.contains("did you mean"),
            "{e}"
        );
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
    fn max_attribute_bytes_defaults_and_refuses_less_than_1_mib() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.neighbors[0].max_attribute_bytes.0, 512 << 20);
        let c = Config::parse(&format!("{GOOD}max_attribute_bytes = 16777216\n")).unwrap();
        assert_eq!(c.neighbors[0].max_attribute_bytes.0, 16 << 20);
        for bad in ["1000", "-1"] {
            let e = Config::parse(&format!("{GOOD}max_attribute_bytes = {bad}\n")).unwrap_err();
            assert!(
                e.contains(&format!("max_attribute_bytes {bad} is below")),
                "{e}"
            );
        }
    }

    #[test]
    fn extended_messages_on_unless_turned_off() {
        let c = Config::parse(GOOD).unwrap();
        assert!(c.neighbors[0].extended_messages);
        let c = Config::parse(&format!("{GOOD}extended_messages = false\n")).unwrap();
        assert!(!c.neighbors[0].extended_messages);
        let e = Config::parse(&format!("{GOOD}extended_messages = 1\n")).unwrap_err();
        assert!(e.contains("extended_messages"), "{e}");
    }

    #[test]
    fn security_and_bfd_keys() {
        let c = Config::parse(&format!(
            "{GOOD}md5_password = \"s3cret\"\nttl_security = 1\nsend_hold_time = 30\nbfd = {{ min_tx_ms = 100, min_rx_ms = 100 }}\n"
        ))
        .unwrap();
        let n = &c.neighbors[0];
        assert_eq!(n.md5_password.as_ref().unwrap().as_bytes(), b"s3cret");
        assert!(
            !format!("{n:?}").contains("s3cret"),
            "password leaked into Debug"
        );
        assert_eq!(n.ttl_security.unwrap().min_ttl(), 255);
        assert_eq!(n.send_hold_time.duration(), Some(Duration::from_secs(30)));
        let bfd = n.bfd.unwrap();
        assert_eq!(
            (bfd.min_tx_ms.0, bfd.min_rx_ms.0, bfd.multiplier.0),
            (100, 100, 3)
        );
        let d = &Config::parse(GOOD).unwrap().neighbors[0];
        assert_eq!(d.send_hold_time.duration(), Some(Duration::from_secs(480)));
        assert!(d.bfd.is_none() && d.md5_password.is_none() && d.ttl_security.is_none());

        for (line, want) in [
            ("md5_password = \"\"", "md5_password of 0 octets"),
            ("ttl_security = 255", "ttl_security 255"),
            ("send_hold_time = -1", "send_hold_time -1"),
            ("bfd = { min_tx_ms = 5 }", "BFD interval 5 ms"),
            ("bfd = { multiplier = 1 }", "BFD multiplier 1"),
            ("bfd = { min_tx = 100 }", "min_tx"),
        ] {
            let e = Config::parse(&format!("{GOOD}{line}\n")).unwrap_err();
            assert!(e.contains(want) && e.contains("line 12"), "{line}: {e}");
        }
        let long = "k".repeat(81);
        let e = Config::parse(&format!("{GOOD}md5_password = \"{long}\"\n")).unwrap_err();
        assert!(e.contains("81 octets") && !e.contains(&long), "{e}");
    }

    /// A parse error never prints a line that may hold a secret, whatever toml's message says
    /// (a syntax error does not name the key): it keeps the position and the message, with
    /// quoted values hidden. Other lines are still quoted.
    #[test]
    fn parse_errors_never_print_a_secret_line() {
        let secret = "Sup3r-s3cret-Value";
        let cases = [
            (
                "unterminated string",
                format!("md5_password = \"{secret}\n"),
            ),
            ("unquoted value", format!("md5_password = {secret}\n")),
            ("array", format!("md5_password = [\"{secret}\"]\n")),
            ("wrong type", "md5_password = 98765432123\n".to_owned()),
            (
                "inline table",
                format!("md5_password = {{ v = \"{secret}\" }}\n"),
            ),
            (
                "multi-line array",
                format!("md5_password = [\n  \"{secret}\",\n]\n"),
            ),
            (
                "unterminated multi-line string",
                format!("md5_password = \"\"\"\n{secret}\n"),
            ),
            ("typo of the key", format!("md5_pasword = \"{secret}\"\n")),
            // Found by the `config` fuzz target: toml shows an error at the end of the text
            // on the last line, not on the (empty) line after the last newline.
            (
                "a multi-line literal string opened earlier, error at the end",
                format!("description = ''''x\nmd5_password = \"{secret}\n"),
            ),
            (
                "too long",
                format!("md5_password = \"{}\"\n", secret.repeat(5)),
            ),
        ];
        for (case, line) in cases {
            let e = Config::parse(&format!("{GOOD}{line}")).unwrap_err();
            eprintln!("{case}: {e}");
            assert!(
                !e.contains("s3cret") && !e.contains("98765432123"),
                "{case}: {e}"
            );
            assert!(e.contains("line 1"), "{case}: the position: {e}");
        }
        // The typo of the secret's key gets its suggestion, still without the value.
        let e = Config::parse(&format!("{GOOD}md5_pasword = \"{secret}\"\n")).unwrap_err();
        assert!(
            e.contains("did you mean `md5_password`?") && !e.contains("s3cret"),
            "{e}"
        );
        let e = Config::parse(&format!("{GOOD}md5_password = 98765432123\n")).unwrap_err();
        assert!(
            e.contains("line 12, column 16") && e.contains("invalid type: integer"),
            "{e}"
        );
        // A line without a secret is quoted as toml quotes it.
        let e = Config::parse(&GOOD.replace("hold_time = 9", "hold_time = \"x9\"")).unwrap_err();
        assert!(e.contains("hold_time = \"x9\""), "{e}");
    }

    /// A config with a secret that group or others may read is refused, naming the file, its
    /// mode and the fix; owner-only, or without a secret, it loads.
    #[test]
    fn a_config_with_a_secret_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        let chmod = |m: u32| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
        std::fs::write(&path, format!("{GOOD}md5_password = \"s3cret\"\n")).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            chmod(mode).unwrap();
            let e = Config::load(&path).unwrap_err().to_string();
            let want = format!("(mode {mode:04o}): run `chmod 600 {}`", path.display());
            assert!(e.contains(&want) && e.contains("md5_password"), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        chmod(0o600).unwrap();
        assert!(Config::load(&path).is_ok());
        std::fs::write(&path, GOOD).unwrap();
        chmod(0o644).unwrap();
        assert!(Config::load(&path).is_ok(), "no secret, no rule");
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
    fn log_level_is_a_checked_filter() {
        let c =
            Config::parse(&GOOD.replace("state_dir", "log_level = \"debug\"\nstate_dir")).unwrap();
        assert_eq!(c.speaker.log_level, Some(LogLevel("debug".into())));
        let e = Config::parse(&GOOD.replace("state_dir", "log_level = \"info,[bad\"\nstate_dir"))
            .unwrap_err();
        assert!(
            e.contains("log_level") && e.contains("info,[bad") && e.contains("line 6"),
            "{e}"
        );
    }

    #[test]
    fn cross_key_rules() {
        let dup = format!("{GOOD}\n[[neighbor]]\naddress = \"192.0.2.2\"\nremote_as = 65001\n");
        assert!(Config::parse(&dup).unwrap_err().contains("appears twice"));
        let tcp = GOOD.replace("state_dir", "api_tcp = \"127.0.0.1:8179\"\nstate_dir");
        assert!(Config::parse(&tcp).unwrap_err().contains("api_token_file"));
        let same = GOOD.replace(
            "state_dir",
            "api_tcp = \"127.0.0.1:8179\"\napi_token_file = \"/t\"\nmetrics_listen = \"127.0.0.1:8179\"\nstate_dir",
        );
        let e = Config::parse(&same).unwrap_err();
        assert!(
            e.contains("speaker.metrics_listen 127.0.0.1:8179 is also speaker.api_tcp"),
            "{e}"
        );
        let own = same.replace(
            "metrics_listen = \"127.0.0.1:8179\"",
            "metrics_listen = \"127.0.0.1:9179\"",
        );
        assert_eq!(
            Config::parse(&own).unwrap().speaker.metrics_listen,
            Some("127.0.0.1:9179".parse().unwrap())
        );
    }

    #[test]
    fn api_group_and_allowed_prefixes_are_checked() {
        let with =
            |keys: &str| Config::parse(&GOOD.replace("state_dir", &format!("{keys}\nstate_dir")));
        let c =
            with("api_group = \"ferry-ops\"\nallowed_prefixes = [\"198.51.100.0/24\"]").unwrap();
        assert_eq!(c.speaker.api_group.as_deref(), Some("ferry-ops"));
        assert_eq!(
            c.speaker.allowed_prefixes,
            Some(vec!["198.51.100.0/24".parse().unwrap()])
        );
        let e = with("api_group = \"no group\"").unwrap_err();
        assert!(e.contains("speaker.api_group \"no group\""), "{e}");
        let e = with("api_group = \"-x\"").unwrap_err();
        assert!(e.contains("not a group name"), "{e}");
        let e = with("allowed_prefixes = [\"198.51.100.1/24\"]").unwrap_err();
        assert!(
            e.contains("198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24"),
            "{e}"
        );
        let e = with("allowed_prefixes = [\"nope\"]").unwrap_err();
        assert!(e.contains("allowed_prefixes"), "{e}");
    }

    #[test]
    fn health_checks_are_checked_and_round_trip() {
        let check = |body: &str| {
            Config::parse(&format!(
                "{GOOD}\n[[health_check]]\nname = \"web\"\nprefixes = [\"203.0.113.0/24\"]\n{body}\n"
            ))
        };
        let c = check("tcp = \"127.0.0.1:8080\"\nrise = 3\nfall = 2\nhold_down_ms = 5000").unwrap();
        let h = &c.health_checks[0];
        assert_eq!(h.tcp, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!((h.rise.0, h.fall.0, h.hold_down_ms), (3, 2, 5000));
        assert_eq!((h.interval_ms.0, h.timeout_ms.0), (2000, 1000));
        assert_eq!(h.on_fall, OnFall::Withdraw);
        // Written and read back: equal (tests start speakers from typed configs).
        assert_eq!(Config::parse(&toml::to_string(&c).unwrap()).unwrap(), c);
        let d = check("http = \"http://127.0.0.1/\"\non_fall = \"deprefer\"\nprepend = 3\nmed = 500\ncommunity = \"65000:666\"").unwrap();
        assert_eq!(d.health_checks[0].prepend, Some(3));

        let refused = [
            ("", "exactly one of tcp, http, command"),
            (
                "tcp = \"127.0.0.1:1\"\ncommand = [\"true\"]",
                "exactly one of",
            ),
            ("http = \"ftp://x\"", "http \"ftp://x\" is not an http"),
            ("command = []", "command is empty"),
            (
                "tcp = \"127.0.0.1:1\"\ninterval_ms = 100\ntimeout_ms = 200",
                "timeout_ms 200 is longer than interval_ms 100",
            ),
            (
                "tcp = \"127.0.0.1:1\"\nrise = 0",
                "rise/fall 0 is outside 1-100",
            ),
            ("tcp = \"127.0.0.1:1\"\ninterval_ms = 5", "5 ms is outside"),
            (
                "tcp = \"127.0.0.1:1\"\non_fall = \"deprefer\"",
                "needs prepend, med or community",
            ),
            (
                "tcp = \"127.0.0.1:1\"\nmed = 5",
                "only with on_fall = \"deprefer\"",
            ),
            (
                "tcp = \"127.0.0.1:1\"\non_fall = \"deprefer\"\ncommunity = \"x\"",
                "community \"x\"",
            ),
            (
                "tcp = \"127.0.0.1:1\"\non_fall = \"deprefer\"\nprepend = 40",
                "prepend 40 is outside 1-32",
            ),
            ("tcp = \"127.0.0.1:1\"\non_fall = \"drop\"", "on_fall"),
            ("tcp = \"127.0.0.1:1\"\nintervall_ms = 5", "intervall_ms"),
        ];
        for (body, want) in refused {
            let e = check(body).unwrap_err();
            assert!(e.contains(want), "{body:?}: {e}");
            assert!(
                e.contains("health_check") || e.contains("on_fall") || e.contains("intervall"),
                "{e}"
            );
        }
        let e = Config::parse(&format!(
            "{GOOD}\n[[health_check]]\nname = \"a\"\nprefixes = [\"203.0.113.1/24\"]\ntcp = \"127.0.0.1:1\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("did you mean 203.0.113.0/24"), "{e}");
        let twice = "[[health_check]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\ntcp = \"127.0.0.1:1\"\n";
        let e = Config::parse(&format!("{GOOD}\n{twice}{twice}")).unwrap_err();
        assert!(e.contains("name \"a\" appears twice"), "{e}");
    }
}
