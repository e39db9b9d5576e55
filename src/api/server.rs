//! The HTTP/JSON API server: a Unix socket by default, optionally TCP with a bearer token.
//!
//! Handlers only translate: they parse and check the request, call [`Control`] and render the
//! answer. Announce, withdraw and lease renew read the fence headers ([`super::fence`]; a bad
//! one is 400 naming the header) into the [`Caller`]; [`Control`] admits or refuses the fence
//! with the change. State lives in the speaker behind [`Control`], so the server is tested with a fake.
//!
//! Routes: `GET /v1/peers`, `GET /v1/routes`, `GET /v1/routes/received[?peer=ADDR]`,
//! `POST /v1/announce`, `POST /v1/withdraw`, `GET /v1/events` (newline-delimited JSON),
//! `POST /v1/peers/{addr}/reset` (`{"hard": true}` for Cease/Hard Reset), `GET /v1/leases`,
//! `POST /v1/lease/renew`, `GET /metrics` (OpenMetrics or Prometheus text, see
//! [`super::metrics`]), `POST /v1/reload` (re-read the config file),
//! `POST /v1/peers/{addr}/disable` (`{"message": "..."}`, RFC 9003) and
//! `POST /v1/peers/{addr}/enable`, `GET /v1/fences`. [`serve_metrics`] serves only `GET /metrics`, without a
//! token, for `speaker.metrics_listen`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::caller::Caller;
use super::error::ApiError;
use super::listen::{self, ApiCounters, Limits, Listener};
use super::neighbor_types::{
    check_shutdown_message, AdminResponse, DisableRequest, ReloadResponse,
};
use super::types::{
    AnnounceRequest, AnnouncedRoute, ChangeResponse, Event, PeerStatus, ReceivedRoute,
    ResetRequest, ResetResponse, WithdrawRequest,
};
use super::types::{LeaseRenewRequest, LeaseReport};
use crate::speaker::Route;

/// What the API can ask of a speaker.
pub trait Control: Send + Sync + 'static {
    fn peers(&self) -> Vec<PeerStatus>;
    fn announced(&self) -> Vec<Route>;
    fn received(&self, peer: Option<IpAddr>) -> Result<Vec<ReceivedRoute>, ApiError>;
    /// Persist, then send; returns once the desired routes are on disk. Every change names
    /// its `caller` (the audit log and the route journal record it).
    fn announce(
        &self,
        routes: Vec<Arc<Route>>,
        caller: &Caller,
    ) -> Result<ChangeResponse, ApiError>;
    fn withdraw(&self, prefixes: Vec<IpNet>, caller: &Caller) -> Result<ChangeResponse, ApiError>;
    /// Withdraw every announced route in one change (the routes held when it is applied).
    fn withdraw_all(&self, caller: &Caller) -> Result<ChangeResponse, ApiError>;
    /// What `announce` (with `routes`) or `withdraw` (of `prefixes`; `all`: every route) would
    /// change, checked the same way; changes nothing.
    fn dry_run(
        &self,
        routes: Option<Vec<Arc<Route>>>,
        prefixes: Vec<IpNet>,
        all: bool,
    ) -> Result<ChangeResponse, ApiError> {
        let _ = (routes, prefixes, all);
        Err(ApiError::NotFound("dry runs not supported".into()))
    }
    /// The desired routes with when and by whom each was last changed.
    fn announced_changes(&self) -> Vec<AnnouncedRoute> {
        self.announced()
            .into_iter()
            .map(|route| AnnouncedRoute {
                route,
                changed: None,
            })
            .collect()
    }
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// Graceful shutdown (RFC 8326): `on` re-announces these prefixes (those announced) with
    /// GRACEFUL_SHUTDOWN added, without persisting it; `off` ends that. Returns how many of
    /// the prefixes are announced.
    fn drain(&self, prefixes: Vec<IpNet>, on: bool, caller: &Caller) -> Result<usize, ApiError> {
        let _ = (prefixes, on, caller);
        Err(ApiError::NotFound("graceful shutdown not supported".into()))
    }
    /// The health checks and their states.
    fn health(&self) -> Vec<super::types::HealthStatus> {
        Vec::new()
    }
    /// The fences held and their highest tokens.
    fn fences(&self) -> Vec<super::fence::HeldFence> {
        Vec::new()
    }
    /// The leased routes and their deadlines.
    fn leases(&self) -> LeaseReport {
        LeaseReport::default()
    }
    /// Renew the leases of `prefixes` (empty: all); an unknown or unleased prefix is NotFound.
    fn renew_leases(&self, prefixes: Vec<IpNet>, caller: &Caller) -> Result<LeaseReport, ApiError> {
        let _ = (prefixes, caller);
        Err(ApiError::NotFound("leases not supported".into()))
    }
    /// End the session with `peer` (Cease/Administrative Reset, or Hard Reset).
    fn reset_peer(
        &self,
        peer: IpAddr,
        hard: bool,
        caller: &Caller,
    ) -> Result<ResetResponse, ApiError> {
        let _ = (hard, caller);
        Err(ApiError::NotFound(format!(
            "peer {peer}: reset not supported"
        )))
    }
    /// Re-read the config file and apply it (see `daemon::reload`); a config that cannot be
    /// applied is refused with the reason and changes nothing. Blocks until applied.
    fn reload(&self, caller: &Caller) -> Result<ReloadResponse, ApiError> {
        let _ = caller;
        Err(ApiError::NotFound("reload not supported".into()))
    }
    /// Take `peer` down (`Some(message)`: disable, with its shutdown communication if any) or
    /// bring it back (`None`: enable); persisted before it is acted on.
    fn set_admin(
        &self,
        peer: IpAddr,
        disable: Option<Option<String>>,
        caller: &Caller,
    ) -> Result<AdminResponse, ApiError> {
        let _ = (disable, caller);
        Err(ApiError::NotFound(format!(
            "peer {peer}: disable/enable not supported"
        )))
    }
}

type Shared = Arc<dyn Control>;

/// Largest request body: a bulk announce of 100,000 routes fits.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What `/metrics` encodes on every scrape (the speaker builds it once, with its collectors).
pub type Metrics = Arc<prometheus_client::registry::Registry>;

/// The API's routes; `/metrics` encodes `metrics`.
pub fn router(control: Shared, metrics: Metrics) -> Router {
    Router::new()
        .route("/v1/peers", get(peers))
        .route("/v1/routes", get(routes))
        .route("/v1/routes/received", get(received))
        .route("/v1/announce", post(announce))
        .route("/v1/withdraw", post(withdraw))
        .route("/v1/events", get(events))
        .route("/v1/peers/{addr}/reset", post(reset_peer))
        .route("/v1/peers/{addr}/disable", post(disable_peer))
        .route("/v1/peers/{addr}/enable", post(enable_peer))
        .route("/v1/reload", post(reload))
        .route("/v1/leases", get(leases))
        .route("/v1/health", get(health))
        .route("/v1/lease/renew", post(renew_leases))
        .route("/v1/fences", get(fences))
        .route("/metrics", get(get_metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /v1/peers, /v1/routes, /v1/announce, /v1/withdraw, /v1/events, /metrics".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::Extension(metrics))
        .with_state(control)
}

/// Parse a JSON body; the error names the path of the bad field (e.g. `routes[0].prefix`),
/// and for an unknown field the nearest known one when it looks like a typo of it.
/// A good body is parsed once without path tracking (a third of the parse time of a
/// 100,000-route announce); only a bad one is parsed again to find the path.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = crate::suggest::did_you_mean(&e.into_inner().to_string());
        if path == "." {
            ApiError::BadRequest(format!("request body: {inner}"))
        } else {
            ApiError::Invalid {
                message: format!("request body field `{path}`: {inner}"),
                field: path,
            }
        }
    })
}

async fn peers(State(c): State<Shared>) -> Json<Vec<PeerStatus>> {
    Json(c.peers())
}

async fn routes(State(c): State<Shared>) -> Json<Vec<AnnouncedRoute>> {
    Json(c.announced_changes())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceivedQuery {
    peer: Option<IpAddr>,
}

async fn received(
    State(c): State<Shared>,
    query: Result<Query<ReceivedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ReceivedRoute>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Invalid {
        field: "peer".into(),
        message: format!("query: {}", e.body_text()),
    })?;
    Ok(Json(c.received(q.peer)?))
}

/// `caller` with the fence of the request's headers, if it has them.
fn fenced(caller: Caller, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    match super::fence::from_headers(headers) {
        Ok(Some(fence)) => Ok(caller.fenced(fence)),
        Ok(None) => Ok(caller),
        Err(e) => Err(ApiError::Invalid {
            field: e.header.into(),
            message: e.to_string(),
        }),
    }
}

async fn announce(
    State(c): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<ChangeResponse>, ApiError> {
    let caller = fenced(caller, &headers)?;
    let req: AnnounceRequest<Arc<Route>> = parse_body(&body)?;
    // The text is not needed past the parse: not held while the change is applied (3.5 MB of
    // a 100,000-route announce's peak).
    drop(body);
    if req.routes.is_empty() {
        return Err(ApiError::Invalid {
            field: "routes".into(),
            message: "request body field `routes`: empty list".into(),
        });
    }
    if req.dry_run {
        return blocking(move || c.dry_run(Some(req.routes), Vec::new(), false)).await;
    }
    blocking(move || c.announce(req.routes, &caller)).await
}

async fn withdraw(
    State(c): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<ChangeResponse>, ApiError> {
    let caller = fenced(caller, &headers)?;
    let mut req: WithdrawRequest = parse_body(&body)?;
    drop(body);
    match (req.all, req.prefixes.is_empty()) {
        (true, false) => {
            return Err(ApiError::BadRequest(
                "request body: `all` and `prefixes` exclude each other (give one)".into(),
            ))
        }
        (false, true) => {
            return Err(ApiError::Invalid {
                field: "prefixes".into(),
                message: "request body field `prefixes`: empty list (or `\"all\": true`)".into(),
            })
        }
        _ => {}
    }
    if req.dry_run {
        // What the withdrawal would take; a graceful one would drain the same routes first.
        return blocking(move || c.dry_run(None, req.prefixes, req.all)).await;
    }
    let Some(secs) = req.graceful_secs else {
        if req.all {
            return blocking(move || c.withdraw_all(&caller)).await;
        }
        return blocking(move || c.withdraw(req.prefixes, &caller)).await;
    };
    if !(1..=super::types::MAX_GRACEFUL_SECS).contains(&secs) {
        return Err(ApiError::Invalid {
            field: "graceful_secs".into(),
            message: format!(
                "request body field `graceful_secs`: {secs} is outside 1-{}",
                super::types::MAX_GRACEFUL_SECS
            ),
        });
    }
    if req.all {
        // The drain and the withdrawal cover the routes announced now (read off the async
        // workers: the store's lock is held through a journal sync).
        let c2 = c.clone();
        req.prefixes = tokio::task::spawn_blocking(move || {
            c2.announced().into_iter().map(|r| r.prefix).collect()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("listing the routes failed: {e}")))?;
        if req.prefixes.is_empty() {
            // Nothing to drain or withdraw: changed 0 and the generation, without the wait
            // (and without taking back a route announced since).
            return blocking(move || c.withdraw(Vec::new(), &caller)).await;
        }
    }
    // Its own task: a client that hangs up mid-wait must not leave the routes drained and
    // never withdrawn.
    let task = tokio::spawn(async move {
        let prefixes = req.prefixes;
        let drained = {
            let (c, p, caller) = (c.clone(), prefixes.clone(), caller.clone());
            tokio::task::spawn_blocking(move || c.drain(p, true, &caller))
                .await
                .map_err(|e| ApiError::Internal(format!("drain task failed: {e}")))??
        };
        if drained > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(u64::from(secs))).await;
        }
        let (c2, p, caller2) = (c.clone(), prefixes.clone(), caller.clone());
        let result = tokio::task::spawn_blocking(move || c2.withdraw(p, &caller2))
            .await
            .map_err(|e| ApiError::Internal(format!("change task failed: {e}")))?;
        // Withdrawn or not, the drain ends here.
        let _ = c.drain(prefixes, false, &caller);
        result
    });
    task.await
        .map_err(|e| ApiError::Internal(format!("graceful withdraw task failed: {e}")))?
        .map(Json)
}

/// Persisting fsyncs: keep it off the async workers.
async fn blocking(
    f: impl FnOnce() -> Result<ChangeResponse, ApiError> + Send + 'static,
) -> Result<Json<ChangeResponse>, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("change task failed: {e}")))?
        .map(Json)
}

async fn health(State(c): State<Shared>) -> Json<Vec<super::types::HealthStatus>> {
    Json(c.health())
}

async fn leases(State(c): State<Shared>) -> Json<LeaseReport> {
    Json(c.leases())
}

async fn fences(State(c): State<Shared>) -> Json<Vec<super::fence::HeldFence>> {
    Json(c.fences())
}

async fn renew_leases(
    State(c): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<LeaseReport>, ApiError> {
    let caller = fenced(caller, &headers)?;
    let req: LeaseRenewRequest = if body.is_empty() {
        LeaseRenewRequest::default()
    } else {
        parse_body(&body)?
    };
    tokio::task::spawn_blocking(move || c.renew_leases(req.prefixes, &caller))
        .await
        .map_err(|e| ApiError::Internal(format!("renew task failed: {e}")))?
        .map(Json)
}

async fn reset_peer(
    State(c): State<Shared>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(addr): axum::extract::Path<String>,
    body: Bytes,
) -> Result<Json<ResetResponse>, ApiError> {
    let peer = peer_param(&addr)?;
    let req: ResetRequest = if body.is_empty() {
        ResetRequest::default()
    } else {
        parse_body(&body)?
    };
    Ok(Json(c.reset_peer(peer, req.hard, &caller)?))
}

/// The `{addr}` of a peer's path.
fn peer_param(addr: &str) -> Result<IpAddr, ApiError> {
    addr.parse().map_err(|_| ApiError::Invalid {
        field: "peer".into(),
        message: format!("peer {addr:?} is not an IP address"),
    })
}

async fn disable_peer(
    State(c): State<Shared>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(addr): axum::extract::Path<String>,
    body: Bytes,
) -> Result<Json<AdminResponse>, ApiError> {
    let peer = peer_param(&addr)?;
    let req: DisableRequest = if body.is_empty() {
        DisableRequest::default()
    } else {
        parse_body(&body)?
    };
    if let Some(m) = &req.message {
        check_shutdown_message(m).map_err(|e| ApiError::Invalid {
            field: "message".into(),
            message: format!("request body field `message`: {e}"),
        })?;
    }
    // Persisting fsyncs: off the async workers.
    tokio::task::spawn_blocking(move || c.set_admin(peer, Some(req.message), &caller))
        .await
        .map_err(|e| ApiError::Internal(format!("disable task failed: {e}")))?
        .map(Json)
}

async fn enable_peer(
    State(c): State<Shared>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(addr): axum::extract::Path<String>,
) -> Result<Json<AdminResponse>, ApiError> {
    let peer = peer_param(&addr)?;
    tokio::task::spawn_blocking(move || c.set_admin(peer, None, &caller))
        .await
        .map_err(|e| ApiError::Internal(format!("enable task failed: {e}")))?
        .map(Json)
}

async fn reload(
    State(c): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ReloadResponse>, ApiError> {
    // Waits for the speaker's main task, which applies reloads one at a time.
    tokio::task::spawn_blocking(move || c.reload(&caller))
        .await
        .map_err(|e| ApiError::Internal(format!("reload task failed: {e}")))?
        .map(Json)
}

async fn events(State(c): State<Shared>) -> Response {
    let stream = BroadcastStream::new(c.subscribe()).filter_map(|item| match item {
        Ok(event) => serde_json::to_string(&event).ok().map(|mut line| {
            line.push('\n');
            Ok::<_, std::convert::Infallible>(line)
        }),
        // A consumer that fell behind is told so, instead of silently missing events.
        Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
            serde_json::to_string(&Event::Lagged { missed })
                .ok()
                .map(|mut line| {
                    line.push('\n');
                    Ok(line)
                })
        }
    });
    let mut resp = (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response();
    // Open until the client leaves: counted against the listener's stream share.
    resp.extensions_mut().insert(listen::LongLived);
    resp
}

async fn get_metrics(
    axum::Extension(registry): axum::Extension<Metrics>,
    headers: axum::http::HeaderMap,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match super::metrics::encode(&registry, accept) {
        Ok((content_type, text)) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(fmt::Error) => {
            ApiError::Internal("metrics could not be encoded".into()).into_response()
        }
    }
}

/// Serve only `GET /metrics` on TCP until `shutdown` resolves, without a token: the metrics
/// are read-only, so a scraper needs no credential that could announce. Anything else is 404.
/// Connection budget and timeouts: [`Limits::metrics`].
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    counters: Arc<ApiCounters>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(get_metrics))
        .fallback(|| async {
            ApiError::NotFound("only GET /metrics is served on this address".into())
        })
        .layer(axum::Extension(metrics));
    listen::serve(
        listener,
        Listener::Metrics,
        app,
        Limits::metrics(),
        counters,
        shutdown,
    )
    .await
}

pub use super::unix_socket::{bind_unix, BindError};

/// Serve on a bound Unix socket until `shutdown` resolves, with its own connection budget
/// ([`Limits::unix`]) apart from TCP's.
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    control: Shared,
    metrics: Metrics,
    counters: Arc<ApiCounters>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(control, metrics);
    listen::serve(
        listener,
        Listener::Unix,
        app,
        Limits::unix(),
        counters,
        shutdown,
    )
    .await
}

/// Serve on TCP until `shutdown` resolves; every request must carry `Authorization: Bearer
/// TOKEN`. Connection budget, header-read and idle timeouts: [`Limits::tcp`].
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    token: String,
    control: Shared,
    metrics: Metrics,
    counters: Arc<ApiCounters>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = Arc::new(token);
    let app =
        router(control, metrics).layer(middleware::from_fn(move |req: Request, next: Next| {
            let token = token.clone();
            async move {
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                match given {
                    Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => {
                        next.run(req).await
                    }
                    _ => ApiError::Unauthorized.into_response(),
                }
            }
        }));
    listen::serve(
        listener,
        Listener::Tcp,
        app,
        Limits::tcp(),
        counters,
        shutdown,
    )
    .await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
