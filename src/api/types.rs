//! Request and response bodies of the HTTP/JSON API, shared by server, client and CLI.
//!
//! Requests reject unknown fields so a typo never silently does less than asked.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, Deserializer, MapAccess, Unexpected, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

pub use crate::session::State as SessionState;
use crate::speaker::attrs::{AttributesText, Field, Form};
use crate::speaker::prefix_parse::plain_prefix;
use crate::speaker::{Attributes, Route};

/// One neighbor as `ferry status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub remote_as: u32,
    pub description: Option<String>,
    /// RFC 4271 state, named as the RFC does: Idle, Connect, Active, OpenSent, OpenConfirm,
    /// Established.
    pub state: SessionState,
    /// Seconds since the session reached Established (absent when it is not).
    pub uptime_secs: Option<u64>,
    pub prefixes_sent: u64,
    pub prefixes_received: u64,
    /// The last error that took the session down, e.g. the NOTIFICATION received.
    pub last_error: Option<String>,
    /// Graceful restart (RFC 4724); absent when not configured for this neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestartStatus>,
    /// BFD (RFC 5880 asynchronous mode, RFC 5881 single hop); absent when not configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdStatus>,
    /// TCP MD5 signatures (RFC 2385) are configured for this neighbor (the key is never shown).
    #[serde(default)]
    pub md5: bool,
    /// GTSM (RFC 5082): the most hops the neighbor may be away; absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    /// RFC 9687 send hold time in seconds; absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_hold_time_secs: Option<u32>,
    /// Taken down by the operator (`ferry neighbor disable`); absent when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_down: Option<super::neighbor_types::AdminDown>,
}

/// The BFD session of one neighbor as `ferry status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BfdStatus {
    /// RFC 5880 §6.2 state: AdminDown, Down, Init or Up.
    pub state: String,
    /// The state the peer last reported.
    pub remote_state: String,
    pub local_discriminator: u32,
    /// 0 until the peer is heard from, and again after a detection time of silence.
    pub remote_discriminator: u32,
    /// Why our state last changed (RFC 5880 §4.1 Diag), e.g. "control detection time expired".
    pub diagnostic: String,
    pub remote_diagnostic: String,
    /// Configured Desired Min TX, Required Min RX (ms) and Detect Mult.
    pub min_tx_ms: u32,
    pub min_rx_ms: u32,
    pub multiplier: u8,
    /// Interval between our packets now (max of ours and the peer's Required Min RX, before
    /// jitter; 1 s or more while not Up).
    pub tx_interval_ms: u64,
    /// Silence for this long takes the session Down; absent before the peer is heard from.
    pub detection_time_ms: Option<u64>,
    /// State changes since the speaker started.
    pub transitions: u64,
}

/// Graceful restart of one neighbor as `ferry status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GracefulRestartStatus {
    /// The peer advertised the capability on the last Established session.
    pub peer_capable: bool,
    /// Both sides advertised the N bit (RFC 8538): NOTIFICATIONs other than Hard Reset are
    /// graceful too.
    pub notification: bool,
    /// "off" (peer not capable), "ready", or "helping" (the peer is restarting: its routes are
    /// kept as stale until its End-of-RIB or the timer).
    pub state: String,
    pub stale_routes: u64,
    /// Seconds until the stale routes are swept.
    pub stale_timer_secs: Option<u64>,
}

/// End a peer's session now; it comes back after the connect-retry time. `hard` sends
/// Cease/Hard Reset (RFC 8538 §3) so the peer drops our routes at once even with graceful
/// restart; otherwise Cease/Administrative Reset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[serde(default)]
    pub hard: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetResponse {
    pub peer: IpAddr,
    pub hard: bool,
    /// The session state when the reset was asked for; a session that is not up has nothing
    /// to reset (it keeps trying to connect).
    pub state: SessionState,
}

/// Announce (or re-announce with new attributes) routes, atomically. The speaker reads the
/// routes as `Arc<Route>`: each allocated once as it is parsed and shared from there on with
/// the store and the drivers (a `Vec<Route>` of 100,000 doubling as it grew, then copied into
/// the store, was the peak of a bulk announce's memory); a client writes plain `Route`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceRequest<R = Route> {
    pub routes: Vec<R>,
    /// Check the routes and answer what would change, changing nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Withdraw prefixes, atomically. Unknown prefixes are no-ops. Either `prefixes` (not empty)
/// or `all: true` (every announced route, as the speaker holds them when the change is
/// applied), never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    #[serde(
        default,
        deserialize_with = "prefix_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub prefixes: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Graceful shutdown (RFC 8326): first re-announce the routes with GRACEFUL_SHUTDOWN
    /// (65535:0) added, wait this many seconds (1-3600), then withdraw. The call answers once
    /// the withdrawal is done; the drain is not persisted (a crash meanwhile leaves the routes
    /// announced, as they were before the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_secs: Option<u32>,
    /// Answer what would change, changing nothing (and waiting for nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// A list of prefixes in a request body: the plain forms by the fast parser
/// ([`plain_prefix`]), anything else by `IpNet`'s own `FromStr`, which decides.
fn prefix_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    struct Prefix(IpNet);
    struct PrefixVisitor;
    impl Visitor<'_> for PrefixVisitor {
        type Value = Prefix;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an IP prefix such as 198.51.100.0/24 or 2001:db8::/48")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Prefix, E> {
            plain_prefix(s)
                .or_else(|| s.parse().ok())
                .map(Prefix)
                .ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
        }
    }
    impl<'de> Deserialize<'de> for Prefix {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(PrefixVisitor)
        }
    }
    Ok(Vec::<Prefix>::deserialize(d)?
        .into_iter()
        .map(|p| p.0)
        .collect())
}

/// Longest graceful-shutdown wait a withdraw may ask for.
pub const MAX_GRACEFUL_SECS: u32 = 3600;

/// A desired route as `GET /v1/routes` lists it: the route's JSON object, with `changed`
/// (when and by whom it was last changed: `{"at", "at_ms", "by"}`) added when the speaker
/// recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnouncedRoute {
    pub route: Route,
    pub changed: Option<crate::speaker::stamp::Stamp>,
}

impl Serialize for AnnouncedRoute {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        self.route
            .write_fields(&mut m, crate::speaker::route::Form::Full)?;
        if let Some(c) = &self.changed {
            m.serialize_entry("changed", c)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for AnnouncedRoute {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::deserialize(d)?;
        let changed = map
            .remove("changed")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| D::Error::custom(format!("changed: {e}")))?;
        let route = Route::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Self { route, changed })
    }
}

/// The outcome of an announce or withdraw: persisted before this is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeResponse {
    /// Prefixes whose desired state changed.
    pub changed: usize,
    /// Generation of the desired-routes file after the change.
    pub generation: u64,
    /// Present on a dry run: what the change would do. Nothing was changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
}

/// What a change would do (`"dry_run": true`): the routes it would announce (new or with
/// other attributes) and the prefixes it would withdraw, in prefix order; `generation` in
/// the [`ChangeResponse`] is the one it would get.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    pub announce: Vec<IpNet>,
    pub withdraw: Vec<IpNet>,
}

/// A route received from a peer (Adj-RIB-In). JSON: `peer`, `prefix`, `next_hop`, `as_path`
/// (text), the attributes in full (their text forms, scalars before lists), `stale`; unknown
/// keys are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRoute {
    pub peer: IpAddr,
    pub prefix: IpNet,
    pub next_hop: Option<IpAddr>,
    pub as_path: String,
    pub attrs: Attributes,
    /// Kept from the peer's previous session while it restarts (graceful restart helper).
    pub stale: bool,
}

impl Serialize for ReceivedRoute {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("peer", &self.peer)?;
        m.serialize_entry("prefix", &self.prefix)?;
        m.serialize_entry("next_hop", &self.next_hop)?;
        m.serialize_entry("as_path", &self.as_path)?;
        let mut fields = Field::ALL;
        fields.sort_by_key(|f| f.is_list());
        for f in fields {
            self.attrs.write_field(f, &mut m, Form::Full)?;
        }
        m.serialize_entry("stale", &self.stale)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for ReceivedRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReceivedRoute;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a received route")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReceivedRoute, A::Error> {
                let (mut peer, mut prefix, mut next_hop, mut as_path, mut stale) =
                    (None, None, None, None, None);
                let mut attrs = AttributesText::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "peer" => peer = Some(map.next_value()?),
                        "prefix" => prefix = Some(map.next_value()?),
                        "next_hop" => next_hop = Some(map.next_value()?),
                        "as_path" => as_path = Some(map.next_value()?),
                        "stale" => stale = Some(map.next_value()?),
                        k => match Field::from_name(k) {
                            Some(f) => attrs.read(f, &mut map)?,
                            None => {
                                map.next_value::<de::IgnoredAny>()?;
                            }
                        },
                    }
                }
                Ok(ReceivedRoute {
                    peer: peer.ok_or_else(|| de::Error::missing_field("peer"))?,
                    prefix: prefix.ok_or_else(|| de::Error::missing_field("prefix"))?,
                    next_hop: next_hop.flatten(),
                    as_path: as_path.ok_or_else(|| de::Error::missing_field("as_path"))?,
                    attrs: attrs.parse().map_err(de::Error::custom)?,
                    stale: stale.unwrap_or(false),
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Something the controller may wait on; streamed as one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PeerState {
        peer: IpAddr,
        from: SessionState,
        to: SessionState,
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
    /// Leased routes whose lease was not renewed in time: withdrawn by the speaker.
    LeaseExpired {
        prefixes: Vec<IpNet>,
    },
    /// A health check changed state (`init`, `up`, `down`); `routes` are the announced routes
    /// it governs, now withdrawn or de-preferred (not up) or back as configured (up).
    HealthChanged {
        name: String,
        from: String,
        to: String,
        routes: Vec<IpNet>,
        /// The failed probe's error, when the check failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// This subscriber fell behind and `missed` events were dropped for it: what it knows may
    /// be stale (read the state again).
    Lagged {
        missed: u64,
    },
}

/// One health check (`GET /v1/health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    pub name: String,
    /// `tcp`, `http` or `command`.
    pub kind: String,
    /// The address, URL or command line probed.
    pub target: String,
    /// `init` (no result yet), `up` or `down`.
    pub state: String,
    pub prefixes: Vec<IpNet>,
    /// `withdraw` or `deprefer`: what happens to the routes while the check is not up.
    pub on_fall: String,
    /// Seconds in this state.
    pub since_secs: u64,
    pub transitions: u64,
    /// The last probe's error (`None` once a probe succeeds).
    pub last_error: Option<String>,
}

/// Renew the leases of these prefixes (empty or absent: every leased route).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRenewRequest {
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
}

/// One leased route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub prefix: IpNet,
    pub lease_secs: u32,
    /// Milliseconds until the speaker withdraws it unless renewed.
    pub expires_in_ms: u64,
}

/// The speaker's leases (`GET /v1/leases`, and the answer to a renewal).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseReport {
    pub leases: Vec<LeaseInfo>,
    /// Routes withdrawn because their lease ran out, since the speaker started.
    pub expiries_total: u64,
    /// The routes of the last expiry and how long ago it was.
    pub last_expired: Vec<IpNet>,
    pub last_expired_secs_ago: Option<u64>,
}

/// Every error body: what went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// The request field the error is about (`routes[0].prefix`), when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A refused fencing token (HTTP 409): the fence, the token the speaker holds and the one
    /// offered (see [`super::fence`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_token: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_token: Option<u64>,
}

/// Session states travel by their RFC 4271 names ("Established").
impl Serialize for SessionState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SessionState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        use SessionState::*;
        [Idle, Connect, Active, OpenSent, OpenConfirm, Established]
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                de::Error::invalid_value(Unexpected::Str(&name), &"an RFC 4271 state name")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of `GET /v1/routes/received` as the previous release wrote it, key order
    /// included, reads back to the same value and is written again byte for byte.
    #[test]
    fn received_route_json_is_unchanged() {
        let text = r#"{"peer":"192.0.2.2","prefix":"198.51.100.0/24","next_hop":"192.0.2.2","as_path":"65002 65002","origin":"incomplete","med":50,"local_pref":null,"communities":["64512:100","no-export"],"large_communities":["65002:1:2"],"stale":false}"#;
        let r: ReceivedRoute = serde_json::from_str(text).unwrap();
        assert_eq!(r.attrs.med, Some(50));
        assert_eq!(r.attrs.origin, crate::wire::Origin::Incomplete);
        assert_eq!(r.attrs.large_communities[0].to_string(), "65002:1:2");
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
        // Unknown keys are ignored, absent stale is false, a bad community names its field.
        let r: ReceivedRoute = serde_json::from_str(
            r#"{"peer":"192.0.2.2","prefix":"198.51.100.0/24","as_path":"","origin":"igp","new":1}"#,
        )
        .unwrap();
        assert!(!r.stale && r.next_hop.is_none() && r.attrs.communities.is_empty());
        let e = serde_json::from_str::<ReceivedRoute>(
            r#"{"peer":"192.0.2.2","prefix":"198.51.100.0/24","as_path":"","communities":["x"]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("communities: community \"x\""),
            "{e}"
        );
    }
}
