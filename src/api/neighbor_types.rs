//! Bodies of the reload and neighbor admin-state endpoints (`POST /v1/reload`,
//! `POST /v1/peers/{addr}/disable`, `POST /v1/peers/{addr}/enable`), shared by the server, the
//! typed client and the CLI.
//!
//! Requests reject unknown fields. A shutdown communication is at most
//! [`MAX_SHUTDOWN_MESSAGE`] octets of UTF-8 (RFC 9003 §2: one length octet).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::types::SessionState;

/// RFC 9003 §2: the length octet bounds the shutdown communication.
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

/// What a reload changed. Sessions not named here were not touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResponse {
    /// The configuration file read.
    pub config: String,
    /// Neighbors started.
    pub added: Vec<IpAddr>,
    /// Neighbors stopped (Cease/Administrative Shutdown) and forgotten.
    pub removed: Vec<IpAddr>,
    /// Neighbors whose session was reset to apply changed settings, with the keys that changed.
    pub reset: Vec<ReloadedNeighbor>,
    /// Neighbors whose changes applied without touching the session (e.g. `description`).
    pub updated: Vec<ReloadedNeighbor>,
    /// Speaker keys applied (e.g. `shutdown_graceful_secs`, `log_level`).
    pub speaker: Vec<String>,
    /// Neighbors left as they were.
    pub unchanged: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadedNeighbor {
    pub peer: IpAddr,
    /// The config keys that changed (`hold_time`, `md5_password`; values are not shown).
    pub keys: Vec<String>,
}

/// `POST /v1/peers/{addr}/disable`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// Shutdown communication sent in the Cease (RFC 9003), at most 255 octets of UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer to disable and enable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminResponse {
    pub peer: IpAddr,
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The session state when the change was asked for.
    pub state: SessionState,
}

/// A neighbor taken down by the operator, as `ferry status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminDown {
    /// The shutdown communication sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When, as UTC (`2026-12-04T20:00:00Z`).
    pub since: String,
}

/// Checks a shutdown communication; the error names the field and the length.
pub fn check_shutdown_message(message: &str) -> Result<(), String> {
    if message.len() > MAX_SHUTDOWN_MESSAGE {
        return Err(format!(
            "message is {} octets; a shutdown communication holds at most {MAX_SHUTDOWN_MESSAGE} (RFC 9003 §2)",
            message.len()
        ));
    }
    Ok(())
}
