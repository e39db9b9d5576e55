//! [`Speaker`]: the typed client of one speaker's API, the only way the CLI, the controller,
//! the lab, the tests and the benches talk to a speaker. [`super::blocking::Speaker`] is the
//! same for callers without a runtime.
//!
//! Contract:
//! - One method per operation; requests and answers are the server's own types
//!   ([`super::types`]), so a field added there reaches both sides.
//! - Every call is bounded by the client's timeout (connect, request and answer together);
//!   an event stream, once open, is read as long as the caller waits.
//! - Errors say what kind of failure it was ([`SpeakerError`]), so a caller can tell a site
//!   that took nothing ([`SpeakerError::Unreachable`]: no connection) from one that took the
//!   request and never answered ([`SpeakerError::NoAnswer`]: done or not, nobody knows) and
//!   from one that refused it ([`SpeakerError::Rejected`]). The controller skips the first at
//!   a losing site in an unplanned run, the second only where leases fence the site, and fails
//!   on the rest.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::{Endpoint, Transport, TransportError};
use super::fence::Fence;
use super::request_body::RequestBody;
use super::types::{
    AnnounceRequest, AnnouncedRoute, ChangeResponse, ErrorBody, Event, LeaseRenewRequest,
    LeaseReport, PeerStatus, ReceivedRoute, ResetRequest, ResetResponse, WithdrawRequest,
};
use crate::speaker::attrs::Form;
use crate::speaker::prefix_text::PrefixText;
use crate::speaker::Route;

/// How long a call may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to a speaker failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeakerError {
    /// Nothing was sent: no connection (refused, no such socket, no route, or none within
    /// the timeout). The speaker is down, or cut off from us.
    /// The message names no option: which one sets the address depends on the caller (the
    /// CLI's `--api`, a plan's `[[site]] api`), so the caller adds it.
    #[error(
        "cannot reach the speaker at {endpoint}: {detail} (is `ferry speaker` running there?)"
    )]
    Unreachable { endpoint: String, detail: String },
    /// The request went out and no whole answer came back (the connection broke, or the
    /// timeout passed): the speaker may or may not have done it.
    #[error("the speaker at {endpoint} did not answer {detail}")]
    NoAnswer { endpoint: String, detail: String },
    /// The speaker refused the request as wrong (HTTP 4xx other than 409): `field` names the
    /// part of the request at fault when the speaker said which.
    #[error("{message}")]
    Rejected {
        status: u16,
        field: Option<String>,
        message: String,
    },
    /// The request conflicts with the speaker's state (HTTP 409), other than a fence.
    #[error("{message}")]
    Conflict { message: String },
    /// The speaker refused our fencing token (HTTP 409 naming a fence): it holds a higher
    /// one for `fence`, so a newer holder has acted since. Nothing was changed; a controller
    /// that sees this is no longer the leader and must stop.
    #[error("fence {fence}: the speaker holds token {held} and refused the offered token {offered} (a newer holder of the fence has acted since; this one must stop)")]
    Fenced {
        fence: String,
        held: u64,
        offered: u64,
    },
    /// A limit of the speaker is reached (HTTP 503); the same request may work later.
    #[error("{message}")]
    Busy { message: String },
    /// The speaker failed to do it (HTTP 500), answered something that is not the API, or
    /// this side could not make the call (e.g. no permission on the socket).
    #[error("{message}")]
    Internal { message: String },
}

impl SpeakerError {
    /// The request itself is wrong (for the CLI: a usage error).
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    /// Nothing was sent: the speaker is down or cut off.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Sent, but no answer: done or not, nobody knows.
    pub fn is_no_answer(&self) -> bool {
        matches!(self, Self::NoAnswer { .. })
    }

    /// Our fencing token was refused: someone newer holds the fence.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced { .. })
    }
}

/// Why a client could not be made from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The API address is not a socket path or `http://HOST:PORT`.
    #[error("{0}")]
    Api(String),
    #[error("api_token_file {}: {error}", path.display())]
    TokenFile {
        path: std::path::PathBuf,
        error: String,
    },
}

/// A client of one speaker's API.
#[derive(Debug, Clone)]
pub struct Speaker {
    transport: Transport,
    /// Sent with every state-changing call (announce, withdraw, lease renew), never with
    /// reads or dry runs.
    fence: Option<Fence>,
}

impl Speaker {
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Self {
        Self {
            transport: Transport {
                endpoint,
                token,
                timeout: DEFAULT_TIMEOUT,
            },
            fence: None,
        }
    }

    /// The client for `api` (a Unix socket path or `http://HOST:PORT`) with the bearer token (no
    /// connection is made yet) read from `token_file`; the error names the bad value.
    pub fn from_settings(api: &str, token_file: Option<&Path>) -> Result<Self, SettingsError> {
        let endpoint = Endpoint::parse(api).map_err(SettingsError::Api)?;
        let token = match token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| SettingsError::TokenFile {
                        path: p.to_owned(),
                        error: e.to_string(),
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Self::new(endpoint, token))
    }

    /// Bound every call by `timeout` instead of [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.transport.timeout = timeout;
        self
    }

    /// Carry `fence` (headers `Ferry-Fence` and `Ferry-Fence-Token`) on every state-changing
    /// call: announce, withdraw, withdraw_all, change and renew; not on reads or dry runs.
    /// A speaker holding a higher token for the fence refuses with [`SpeakerError::Fenced`].
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// The fence this client sends, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.transport.endpoint
    }

    /// The neighbors and their sessions (`GET /v1/peers`).
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.get("/v1/peers").await
    }

    /// The routes the speaker announces (`GET /v1/routes`).
    pub async fn announced(&self) -> Result<Vec<Route>, SpeakerError> {
        Ok(self
            .announced_changes()
            .await?
            .into_iter()
            .map(|a| a.route)
            .collect())
    }

    /// [`Speaker::announced`] with when and by whom each route was last changed.
    pub async fn announced_changes(&self) -> Result<Vec<AnnouncedRoute>, SpeakerError> {
        self.get("/v1/routes").await
    }

    /// The routes received from `peer`, or from every peer (`GET /v1/routes/received`).
    pub async fn received(&self, peer: Option<IpAddr>) -> Result<Vec<ReceivedRoute>, SpeakerError> {
        match peer {
            Some(p) => self.get(&format!("/v1/routes/received?peer={p}")).await,
            None => self.get("/v1/routes/received").await,
        }
    }

    /// Announce `routes` (or re-announce them with new attributes), atomically; answers once
    /// the change is on disk.
    /// A large set is written as it is sent ([`RequestBody::json_array`]), in the compact
    /// form the server reads alike (fields at their default left out).
    pub async fn announce(&self, routes: Vec<Route>) -> Result<ChangeResponse, SpeakerError> {
        // `AnnounceRequest { routes, dry_run: false }`, written route by route (`dry_run` false
        // is its default and left out; a field added to the type stops this from compiling
        // until it is written here too).
        let AnnounceRequest { routes, dry_run: _ } = AnnounceRequest {
            routes,
            dry_run: false,
        };
        let body = RequestBody::json_array("{\"routes\":[", routes, write_route, "]}".into())
            .map_err(|e| self.internal(e.to_string()))?;
        let answer = self
            .call(
                Method::POST,
                "/v1/announce",
                Some(body),
                self.fence.as_ref(),
            )
            .await?;
        self.parse(&answer)
    }

    /// What announcing `routes` would change (`dry_run`), changing nothing: checked as an
    /// announce is (bad routes, `allowed_prefixes`).
    pub async fn announce_dry_run(
        &self,
        routes: Vec<Route>,
    ) -> Result<ChangeResponse, SpeakerError> {
        self.post(
            "/v1/announce",
            &AnnounceRequest {
                routes,
                dry_run: true,
            },
        )
        .await
    }

    /// Withdraw `prefixes`, atomically; unknown prefixes are no-ops.
    pub async fn withdraw(&self, prefixes: Vec<IpNet>) -> Result<ChangeResponse, SpeakerError> {
        self.change(WithdrawRequest {
            prefixes,
            all: false,
            graceful_secs: None,
            dry_run: false,
        })
        .await
    }

    /// Withdraw every announced route in one change.
    pub async fn withdraw_all(&self) -> Result<ChangeResponse, SpeakerError> {
        self.change(WithdrawRequest {
            prefixes: Vec::new(),
            all: true,
            graceful_secs: None,
            dry_run: false,
        })
        .await
    }

    /// Any withdrawal, graceful shutdown (RFC 8326) included. A graceful one answers after
    /// its wait: give the client a timeout longer than `graceful_secs`.
    /// A long list of prefixes is written as it is sent ([`RequestBody::json_array`]).
    pub async fn change(&self, req: WithdrawRequest) -> Result<ChangeResponse, SpeakerError> {
        let fence = if req.dry_run {
            None
        } else {
            self.fence.as_ref()
        };
        if req.prefixes.is_empty() {
            return self.post_fenced("/v1/withdraw", &req, fence).await;
        }
        // The other fields as the type writes them (`{}`, `{"graceful_secs":5}` or
        // `{"dry_run":true}`), after the prefixes.
        let WithdrawRequest {
            prefixes,
            all,
            graceful_secs,
            dry_run,
        } = req;
        let rest = serde_json::to_string(&WithdrawRequest {
            prefixes: Vec::new(),
            all,
            graceful_secs,
            dry_run,
        })
        .map_err(|e| self.internal(e.to_string()))?;
        let tail = match rest.strip_prefix('{') {
            Some("}") | None => "]}".to_owned(),
            Some(fields) => format!("],{fields}"),
        };
        let body = RequestBody::json_array("{\"prefixes\":[", prefixes, write_prefix, tail)
            .map_err(|e| self.internal(e.to_string()))?;
        let answer = self
            .call(Method::POST, "/v1/withdraw", Some(body), fence)
            .await?;
        self.parse(&answer)
    }

    /// The leased routes and their deadlines (`GET /v1/leases`).
    /// The health checks and their states (`GET /v1/health`).
    pub async fn health(&self) -> Result<Vec<crate::api::HealthStatus>, SpeakerError> {
        self.get("/v1/health").await
    }

    pub async fn leases(&self) -> Result<LeaseReport, SpeakerError> {
        self.get("/v1/leases").await
    }

    /// Renew the leases of `prefixes` (empty: every leased route).
    pub async fn renew(&self, prefixes: Vec<IpNet>) -> Result<LeaseReport, SpeakerError> {
        self.post_fenced(
            "/v1/lease/renew",
            &LeaseRenewRequest { prefixes },
            self.fence.as_ref(),
        )
        .await
    }

    /// The fences the speaker holds and their highest tokens (`GET /v1/fences`).
    pub async fn fences(&self) -> Result<Vec<super::HeldFence>, SpeakerError> {
        self.get("/v1/fences").await
    }

    /// End `peer`'s session now (Cease/Hard Reset when `hard`).
    pub async fn reset(&self, peer: IpAddr, hard: bool) -> Result<ResetResponse, SpeakerError> {
        self.post(&format!("/v1/peers/{peer}/reset"), &ResetRequest { hard })
            .await
    }

    /// The metrics in Prometheus text format (`GET /metrics`).
    /// Re-read the speaker's config file and apply it (`POST /v1/reload`); a config the
    /// speaker refuses is `Rejected` with the reason, and nothing changed.
    pub async fn reload(&self) -> Result<super::ReloadResponse, SpeakerError> {
        self.post("/v1/reload", &serde_json::json!({})).await
    }

    /// Take a neighbor down with an optional shutdown communication (RFC 9003), persisted.
    pub async fn disable(
        &self,
        peer: IpAddr,
        message: Option<String>,
    ) -> Result<super::AdminResponse, SpeakerError> {
        self.post(
            &format!("/v1/peers/{peer}/disable"),
            &super::DisableRequest { message },
        )
        .await
    }

    /// Bring a disabled neighbor back.
    pub async fn enable(&self, peer: IpAddr) -> Result<super::AdminResponse, SpeakerError> {
        self.post(&format!("/v1/peers/{peer}/enable"), &serde_json::json!({}))
            .await
    }

    pub async fn metrics(&self) -> Result<String, SpeakerError> {
        let body = self.call(Method::GET, "/metrics", None, None).await?;
        String::from_utf8(body.to_vec()).map_err(|e| {
            self.internal(format!(
                "unexpected answer from the speaker at {}: {e}",
                self.transport.endpoint
            ))
        })
    }

    /// Subscribe to the speaker's events (`GET /v1/events`); they come as they happen.
    pub async fn events(&self) -> Result<Events, SpeakerError> {
        let (status, body) = self
            .transport
            .open("/v1/events")
            .await
            .map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            // An error body that stalls must not hold the caller past its timeout.
            let bytes = tokio::time::timeout(self.transport.timeout, body.collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(self.refusal(status, &bytes));
        }
        Ok(Events {
            body,
            buf: Vec::new(),
            endpoint: self.transport.endpoint.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, SpeakerError> {
        let body = self.call(Method::GET, path, None, None).await?;
        self.parse(&body)
    }

    /// A POST that changes nothing fenced (dry runs, resets, reloads).
    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, SpeakerError> {
        self.post_fenced(path, body, None).await
    }

    async fn post_fenced<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        fence: Option<&Fence>,
    ) -> Result<T, SpeakerError> {
        let bytes = serde_json::to_vec(body).map_err(|e| self.internal(e.to_string()))?;
        let body = self
            .call(Method::POST, path, Some(RequestBody::whole(bytes)), fence)
            .await?;
        self.parse(&body)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<RequestBody>,
        fence: Option<&Fence>,
    ) -> Result<Bytes, SpeakerError> {
        let (status, body) = self
            .transport
            .send(method, path, body, fence)
            .await
            .map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(self.refusal(status, &body))
        }
    }

    fn parse<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, SpeakerError> {
        serde_json::from_slice(body).map_err(|e| {
            self.internal(format!(
                "unexpected answer from the speaker at {}: {e} in {}",
                self.transport.endpoint,
                String::from_utf8_lossy(body)
            ))
        })
    }

    /// What an error status means, with the speaker's own message.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> SpeakerError {
        let (message, field) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody {
                fence: Some(fence),
                held_token: Some(held),
                offered_token: Some(offered),
                ..
            }) if status == StatusCode::CONFLICT => {
                return SpeakerError::Fenced {
                    fence,
                    held,
                    offered,
                }
            }
            Ok(e) => (e.error, e.field),
            Err(_) => (
                format!("HTTP {status}: {}", String::from_utf8_lossy(body)),
                None,
            ),
        };
        match status {
            StatusCode::CONFLICT => SpeakerError::Conflict { message },
            StatusCode::SERVICE_UNAVAILABLE => SpeakerError::Busy { message },
            s if s.is_client_error() => SpeakerError::Rejected {
                status: s.as_u16(),
                field,
                message,
            },
            _ => self.internal(message),
        }
    }

    fn transport_error(&self, e: TransportError) -> SpeakerError {
        let endpoint = self.transport.endpoint.to_string();
        match e {
            TransportError::NotConnected(detail) => SpeakerError::Unreachable { endpoint, detail },
            TransportError::NoAnswer(detail) => SpeakerError::NoAnswer { endpoint, detail },
            TransportError::Local(message) => SpeakerError::Internal {
                message: format!("cannot call the speaker at {endpoint}: {message}"),
            },
        }
    }

    fn internal(&self, message: String) -> SpeakerError {
        SpeakerError::Internal { message }
    }
}

/// Longest event line taken from a speaker (the longest real one, a `routes_sent` of a
/// full UPDATE's prefixes, is well under this).
const MAX_EVENT_LINE: usize = 1 << 20;

/// A speaker's event stream, one [`Event`] at a time.
pub struct Events {
    body: Incoming,
    buf: Vec<u8>,
    endpoint: String,
}

impl Events {
    /// The speaker this stream comes from.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The next event; `Ok(None)` when the speaker ended the stream. A line that is not an
    /// event this client knows (a newer speaker's) is skipped. Waits as long as it takes: the
    /// stream is open-ended, so bound the wait yourself (the blocking client's
    /// [`super::blocking::Events::next_within`] does).
    pub async fn next(&mut self) -> Result<Option<Event>, SpeakerError> {
        loop {
            while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                if let Ok(event) = serde_json::from_slice::<Event>(&line) {
                    return Ok(Some(event));
                }
            }
            if self.buf.len() > MAX_EVENT_LINE {
                return Err(SpeakerError::Internal {
                    message: format!(
                        "unexpected answer from the speaker at {}: an event line longer than {MAX_EVENT_LINE} octets",
                        self.endpoint
                    ),
                });
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(SpeakerError::NoAnswer {
                        endpoint: self.endpoint.clone(),
                        detail: format!("(the event stream broke: {e})"),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// One route of an announce body, in the compact form (the server fills in the defaults).
fn write_route(route: &Route, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    struct Compact<'a>(&'a Route);
    impl Serialize for Compact<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(None)?;
            self.0.write_fields(&mut m, Form::Compact)?;
            m.end()
        }
    }
    serde_json::to_writer(buf, &Compact(route))
}

/// One prefix of a withdraw body.
fn write_prefix(prefix: &IpNet, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(buf, PrefixText::prefix(prefix).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(status: u16, body: &str) -> SpeakerError {
        let s = Speaker::new(Endpoint::Unix("/x.sock".into()), None);
        s.refusal(StatusCode::from_u16(status).unwrap(), body.as_bytes())
    }

    #[test]
    fn statuses_map_to_kinds() {
        let e = kind(
            400,
            r#"{"error":"request body field `routes[0].prefix`: bad","field":"routes[0].prefix"}"#,
        );
        assert_eq!(
            e,
            SpeakerError::Rejected {
                status: 400,
                field: Some("routes[0].prefix".into()),
                message: "request body field `routes[0].prefix`: bad".into()
            }
        );
        assert!(matches!(
            kind(404, r#"{"error":"no"}"#),
            SpeakerError::Rejected {
                status: 404,
                field: None,
                ..
            }
        ));
        assert!(
            matches!(kind(409, r#"{"error":"held"}"#), SpeakerError::Conflict { message } if message == "held")
        );
        let fenced = kind(
            409,
            r#"{"error":"x","fence":"plan-a","held_token":5,"offered_token":4}"#,
        );
        assert_eq!(
            fenced,
            SpeakerError::Fenced {
                fence: "plan-a".into(),
                held: 5,
                offered: 4
            }
        );
        assert!(fenced.is_fenced());
        let text = fenced.to_string();
        assert!(
            text.contains("plan-a") && text.contains("token 5") && text.contains("token 4"),
            "{text}"
        );
        assert!(matches!(
            kind(428, r#"{"error":"fence required"}"#),
            SpeakerError::Rejected { status: 428, .. }
        ));
        assert!(matches!(
            kind(503, r#"{"error":"full"}"#),
            SpeakerError::Busy { .. }
        ));
        assert!(
            matches!(kind(500, r#"{"error":"disk"}"#), SpeakerError::Internal { message, .. } if message == "disk")
        );
        // Not our error body (a proxy's page): the status and the text.
        assert!(
            matches!(kind(502, "<html>"), SpeakerError::Internal { message, .. } if message.contains("502") && message.contains("<html>"))
        );
        assert!(kind(401, "{}").is_rejected());
        assert!(!kind(500, "{}").is_unreachable());
    }
}
