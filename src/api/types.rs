//! Request and response bodies of the HTTP/JSON API, shared by server, client and CLI.
//!
//! Requests reject unknown fields so a typo never silently does less than asked.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::speaker::Route;

/// One neighbor as `ferry status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub remote_as: u32,
    pub description: Option<String>,
    /// RFC 4271 state name: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    /// Seconds since the session reached Established (absent when it is not).
    pub uptime_secs: Option<u64>,
    pub prefixes_sent: u64,
    pub prefixes_received: u64,
    /// The last error that took the session down, e.g. the NOTIFICATION received.
    pub last_error: Option<String>,
}

/// Announce (or re-announce with new attributes) routes, atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceRequest {
    pub routes: Vec<Route>,
}

/// Withdraw prefixes, atomically. Unknown prefixes are no-ops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    pub prefixes: Vec<IpNet>,
}

/// The outcome of an announce or withdraw: persisted before this is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeResponse {
    /// Prefixes whose desired state changed.
    pub changed: usize,
    /// Generation of the desired-routes file after the change.
    pub generation: u64,
}

/// A route received from a peer (Adj-RIB-In).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedRoute {
    pub peer: IpAddr,
    pub prefix: IpNet,
    pub next_hop: Option<String>,
    pub as_path: String,
    pub origin: String,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
}

/// Something the controller may wait on; streamed as one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PeerState {
        peer: IpAddr,
        from: String,
        to: String,
        reason: Option<String>,
    },
    /// UPDATEs left the socket for `peer`.
    RoutesSent {
        peer: IpAddr,
        announced: Vec<IpNet>,
        withdrawn: Vec<IpNet>,
    },
    DesiredChanged {
        generation: u64,
        changed: usize,
    },
}

/// Every error body: what went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
