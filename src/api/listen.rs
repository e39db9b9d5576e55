//! The API's accept loop and connection limits: one loop per listener (Unix socket, TCP).
//!
//! Contract:
//! - Each listener has its own connection budget ([`Limits::max_connections`]), so a flood of
//!   TCP connections can never take the slots (or the file descriptors) the Unix socket's local
//!   operator needs. The budgets are clamped to a fraction of `RLIMIT_NOFILE` ([`Limits::tcp`],
//!   [`Limits::unix`]) so that all API connections together stay well below the fd limit.
//! - A new connection over budget takes the slot of the oldest *idle* connection, which is
//!   closed; if there is none, the new one is answered a short `503` (written only if the
//!   socket takes it at once, after discarding what the client already sent so the close is
//!   not a reset) and closed. Idle: no request in flight, and
//!   the connection has found its socket empty at least once (a read returned Pending): it is
//!   waiting for its first request head, or kept alive between requests. A client that sent its
//!   request with the connection is so never evicted before the server has read it, however
//!   fast a flood connects. The accept loop never waits for a slot: idle connections cost an
//!   attacker a connection each and buy nothing.
//! - hyper runs with a timer: a request head must arrive complete within
//!   [`Limits::header_read_timeout`] of the moment the server starts waiting for it (the
//!   connection's start, or the end of the previous response). hyper restarts that timer when a
//!   kept-alive connection goes idle, so the same bound is the keep-alive idle timeout
//!   ([`Limits::idle_timeout`] is the same value, named for the reader).
//! - An accept error never ends the loop. Out of file descriptors (`EMFILE`, `ENFILE`) or kernel
//!   memory: the oldest idle connection of this listener is closed to free one, the loop sleeps
//!   [`ACCEPT_BACKOFF`] (the pending connection stays in the backlog) and tries again; the
//!   warning is logged at most once a second with a count.
//! - A request body must arrive whole within [`Limits::body_read_timeout`] plus a second per
//!   MiB received ([`super::body_deadline`]); a client that sends headers and stalls its body
//!   gets 408 with a JSON error and the connection is closed (a request in flight is never
//!   evicted, so without this it would hold its slot for ever).
//! - Per listener, the connections evicted to make room, refused over budget, and request
//!   bodies timed out are counted ([`ApiCounters`], rendered into `/metrics`).
//! - A request with a response still streaming (`/v1/events`) counts as in flight until its body
//!   ends: such connections are never evicted and never timed out here. So that they can never
//!   fill the budget and lock requests out, long-lived responses (marked [`LongLived`] by their
//!   handler) may hold at most half of it ([`Limits::max_streams`]); one more is answered `503`
//!   with a JSON error naming the limit (and counted).
//!
//! Never: blocks the accept loop on a slow client, or parses HTTP itself.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower_service::Service;

use super::body_deadline::TimedBody;
use super::caller::Caller;
use super::error::ApiError;

/// Longest wait for a complete request head (and so also the keep-alive idle time): generous
/// for a client on the same host or across a WAN, short enough that a client which sends half
/// a head and stalls gives its slot back soon.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Base deadline for a whole request body (plus a second per MiB received, see
/// [`super::body_deadline`]): a client on the same host sends a 5 MB announce in milliseconds.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TCP connections at once, before clamping to the fd limit.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// Most Unix-socket connections at once, before clamping to the fd limit.
pub const MAX_UNIX_CONNECTIONS: usize = 64;
/// Most connections at once on `speaker.metrics_listen` (scrapers), before clamping.
pub const MAX_METRICS_CONNECTIONS: usize = 16;
/// Pause after an accept error such as `EMFILE`: the pending connection stays queued, so
/// retrying at once would spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One listener's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// The keep-alive idle timeout; hyper's header timer enforces it, so it equals
    /// `header_read_timeout`.
    pub idle_timeout: Duration,
    /// Base deadline for receiving a whole request body ([`super::body_deadline`]).
    pub body_read_timeout: Duration,
}

/// Response extension a handler sets on a response that stays open (an event stream): it then
/// takes one of the listener's [`Limits::max_streams`] places, or is replaced by a `503`.
#[derive(Debug, Clone, Copy)]
pub struct LongLived;

impl Limits {
    /// The TCP listener's: [`MAX_TCP_CONNECTIONS`], at most a quarter of the fd limit.
    pub fn tcp() -> Self {
        Self::with_cap(clamp(MAX_TCP_CONNECTIONS, fd_limit(), 4))
    }

    /// The Unix socket's: [`MAX_UNIX_CONNECTIONS`], at most an eighth of the fd limit.
    pub fn unix() -> Self {
        Self::with_cap(clamp(MAX_UNIX_CONNECTIONS, fd_limit(), 8))
    }

    /// The metrics listener's: [`MAX_METRICS_CONNECTIONS`], at most a sixteenth of the fd
    /// limit.
    pub fn metrics() -> Self {
        Self::with_cap(clamp(MAX_METRICS_CONNECTIONS, fd_limit(), 16))
    }

    /// Most long-lived responses at once: half the budget (at least 1), so the other half is
    /// always there for requests.
    pub fn max_streams(&self) -> usize {
        (self.max_connections / 2).max(1)
    }

    fn with_cap(max_connections: usize) -> Self {
        Self {
            max_connections,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
        }
    }
}

/// `cap`, but at most `fds / divisor` and at least 4 (a speaker with a tiny fd limit still
/// answers its operator).
fn clamp(cap: usize, fds: Option<u64>, divisor: u64) -> usize {
    let Some(fds) = fds else { return cap };
    let share = usize::try_from(fds / divisor).unwrap_or(usize::MAX);
    cap.min(share).max(4)
}

/// The soft `RLIMIT_NOFILE`, if known and finite.
fn fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if soft != RLIM_INFINITY => Some(soft),
        _ => None,
    }
}

/// Which listener: labels log lines and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Unix,
    Tcp,
    /// `speaker.metrics_listen`: serves only `GET /metrics`, without a token.
    Metrics,
}

impl Listener {
    pub const ALL: [Listener; 3] = [Self::Unix, Self::Tcp, Self::Metrics];

    pub fn name(self) -> &'static str {
        match self {
            Self::Unix => "unix",
            Self::Tcp => "tcp",
            Self::Metrics => "metrics",
        }
    }
}

/// What one listener counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Idle connections closed to make room (budget full, or out of fds).
    pub evicted: AtomicU64,
    /// New connections closed at once: the budget was full of requests in flight.
    pub refused: AtomicU64,
    /// Requests answered 408: the body did not arrive in time.
    pub body_timeouts: AtomicU64,
    /// Long-lived responses (event streams) answered 503: half the budget already streams.
    pub streams_refused: AtomicU64,
}

/// The counters of every listener; one per speaker, shared by its listeners and `/metrics`.
#[derive(Debug, Default)]
pub struct ApiCounters {
    pub unix: ListenerCounters,
    pub tcp: ListenerCounters,
    pub metrics: ListenerCounters,
}

impl ApiCounters {
    pub fn of(&self, listener: Listener) -> &ListenerCounters {
        match listener {
            Listener::Unix => &self.unix,
            Listener::Tcp => &self.tcp,
            Listener::Metrics => &self.metrics,
        }
    }
}

/// One counter family per kind, labelled by listener (`unix`, `tcp`, `metrics`), read at scrape
/// time.
impl prometheus_client::collector::Collector for ApiCounters {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        let mut family =
            |name: &str, help: &str, get: fn(&ListenerCounters) -> u64| -> std::fmt::Result {
                super::metrics::counter_family(
                    &mut enc,
                    name,
                    help,
                    "listener",
                    Listener::ALL.map(|l| (l.name(), get(self.of(l)))),
                )
            };
        family(
            "ferry_api_connections_evicted",
            "API connections closed to make room for new ones (the oldest idle first).",
            |c| c.evicted.load(Ordering::Relaxed),
        )?;
        family(
            "ferry_api_connections_refused",
            "New API connections closed at once: the budget was full of requests in flight.",
            |c| c.refused.load(Ordering::Relaxed),
        )?;
        family(
            "ferry_api_body_timeouts",
            "API requests answered 408: the body did not arrive within its deadline.",
            |c| c.body_timeouts.load(Ordering::Relaxed),
        )?;
        family(
            "ferry_api_streams_refused",
            "API event streams answered 503: half of the connection budget was already streaming.",
            |c| c.streams_refused.load(Ordering::Relaxed),
        )
    }
}

/// A listener the loop accepts from.
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The connection and who is on its other end (for the audit log).
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Caller)>> + Send;
    /// Answer a connection refused over budget with `response` as far as it can be done without
    /// waiting, then close it.
    fn refuse(io: Self::Io, response: &[u8]);
}

/// Discard what the client has already sent (closing with unread data makes the kernel reset
/// the connection, and the client may lose the answer), write `response` once, never waiting.
fn refuse_now(
    mut try_read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    try_write: impl FnOnce(&[u8]) -> io::Result<usize>,
    response: &[u8],
) {
    let mut buf = [0u8; 4096];
    // Bounded: a client streaming into a refused connection is not read for ever.
    for _ in 0..4 {
        match try_read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = try_write(response);
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Io, Caller)> {
        let (s, remote) = tokio::net::TcpListener::accept(self).await?;
        // Responses are small and written whole: do not hold the last segment back.
        let _ = s.set_nodelay(true);
        Ok((s, Caller::Tcp { remote }))
    }
    fn refuse(io: Self::Io, response: &[u8]) {
        refuse_now(|b| io.try_read(b), |b| io.try_write(b), response);
    }
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<(Self::Io, Caller)> {
        let (s, _) = tokio::net::UnixListener::accept(self).await?;
        let caller = Caller::of_unix(&s);
        Ok((s, caller))
    }
    fn refuse(io: Self::Io, response: &[u8]) {
        refuse_now(|b| io.try_read(b), |b| io.try_write(b), response);
    }
}

/// The whole `503` for a connection over budget: short enough to fit any socket buffer.
fn over_budget_response(max_connections: usize) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"all {max_connections} API connections of this listener have a request in flight; try again shortly\"}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serve `app` on `listener` until `shutdown` resolves, then finish the requests in flight
/// (connections close after their current response). `which` labels the log lines and picks
/// this listener's `counters`.
pub async fn serve<L: Accept>(
    listener: L,
    which: Listener,
    app: Router,
    limits: Limits,
    counters: Arc<ApiCounters>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let name = which.name();
    tracing::info!(
        listener = name,
        max_connections = limits.max_connections,
        header_read_timeout_ms = limits.header_read_timeout.as_millis() as u64,
        body_read_timeout_ms = limits.body_read_timeout.as_millis() as u64,
        "API connection limits"
    );
    let registry = Arc::new(Registry::new(limits.max_connections, limits.max_streams()));
    let refusal = over_budget_response(limits.max_connections);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut over_budget = LogGate::default();
    let mut accept_failed = LogGate::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((io, caller)) => match registry.admit() {
                    Admission::Admitted { slot, evicted } => {
                        if evicted {
                            counters.of(which).evicted.fetch_add(1, Ordering::Relaxed);
                            over_budget.note(|n| tracing::warn!(listener = name, evicted = n, max_connections = limits.max_connections, "API connection budget full: closed the oldest idle connections to admit new ones"));
                        }
                        conns.spawn(serve_connection(io, caller, slot, app.clone(), limits, Arc::clone(&counters), which, stop_rx.clone()));
                        // Let the new connection read once before the next accept: what its
                        // client sent with the connection is then in flight (kept), and an
                        // empty socket makes it idle (evictable). Without this, a burst of
                        // accepts fills the budget with connections that are neither.
                        tokio::task::yield_now().await;
                    }
                    Admission::Refused => {
                        L::refuse(io, &refusal);
                        counters.of(which).refused.fetch_add(1, Ordering::Relaxed);
                        over_budget.note(|n| tracing::warn!(listener = name, refused = n, max_connections = limits.max_connections, "API connection budget full of requests in flight: closed new connections"));
                    }
                },
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    // Out of fds: closing an idle connection of ours frees one for the next
                    // accept (the pending connection waits in the backlog meanwhile).
                    let freed = is_resource_exhaustion(&e) && registry.evict_oldest_idle();
                    if freed {
                        counters.of(which).evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    accept_failed.note(|n| tracing::warn!(listener = name, error = %e, failures = n, closed_idle = freed, backoff_ms = ACCEPT_BACKOFF.as_millis() as u64, "API accept failed; backing off and going on"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Errors that concern only the connection being accepted: go on at once.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().map(Errno::from_raw).is_some_and(|n| {
        matches!(
            n,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM
        )
    })
}

/// One connection: hyper's HTTP/1.1 server with a timer, stopped early when the slot is
/// evicted, drained when the server shuts down.
#[allow(clippy::too_many_arguments)]
async fn serve_connection<I>(
    io: I,
    caller: Caller,
    slot: Slot,
    app: Router,
    limits: Limits,
    counters: Arc<ApiCounters>,
    which: Listener,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = slot.state.clone();
    let registry = slot.registry.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = InFlight::begin(&state);
        let registry = registry.clone();
        let mut app = app.clone();
        let counters = counters.clone();
        let late = Arc::new(AtomicBool::new(false));
        let mut req =
            req.map(|b| Body::new(TimedBody::new(b, limits.body_read_timeout, late.clone())));
        // Every handler can name who asked (the audit log, the route journal).
        req.extensions_mut().insert(caller.clone());
        async move {
            let resp = app.call(req).await?;
            if late.load(Ordering::SeqCst) {
                // Whatever the handler made of the failed read (axum: a plain-text 400), the
                // client is told what happened; the rest of its body is never read, so the
                // connection cannot be reused.
                counters
                    .of(which)
                    .body_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    listener = which.name(),
                    "request body not received in time: 408"
                );
                let mut resp = ApiError::RequestTimeout(format!(
                    "request body not received in time: send it whole within {} s, plus 1 s per MiB",
                    limits.body_read_timeout.as_secs()
                ))
                .into_response();
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Ok::<_, Infallible>(resp);
            }
            // A stream holds its place until its body is dropped, like `busy` below.
            let stream = match resp.extensions().get::<LongLived>() {
                None => None,
                Some(LongLived) => match registry.open_stream() {
                    Some(permit) => Some(permit),
                    None => {
                        // Dropping `resp` ends the handler's stream before it sent anything.
                        counters
                            .of(which)
                            .streams_refused
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(listener = which.name(), "event stream refused: 503");
                        return Ok(ApiError::Unavailable(format!(
                            "too many open streams: at most {} of this listener's {} connections may stream (half, so requests always find room); close one or try again later",
                            registry.max_streams, registry.cap
                        ))
                        .into_response());
                    }
                },
            };
            // In flight until the body is sent (or dropped): a streaming response keeps it.
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = (&busy, &stream);
                    frame
                }))
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(
            TokioIo::new(Watched {
                io,
                state: slot.state.clone(),
            }),
            service,
        );
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
        }
        // Dropping the connection closes it.
        () = slot.state.evict.notified() => {}
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// What a connection shares with the registry.
#[derive(Default)]
struct ConnState {
    in_flight: AtomicUsize,
    /// A read found the socket empty: from then on, with no request in flight, it waits on
    /// the client and may be evicted.
    waited: AtomicBool,
    evict: Notify,
}

impl ConnState {
    fn idle(&self) -> bool {
        self.waited.load(Ordering::SeqCst) && self.in_flight.load(Ordering::SeqCst) == 0
    }
}

/// The connection's stream, noting when a read finds nothing to read.
struct Watched<I> {
    io: I,
    state: Arc<ConnState>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if r.is_pending() {
            self.state.waited.store(true, Ordering::SeqCst);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Counts a request in flight while alive.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connections of one listener, oldest first.
struct Registry {
    cap: usize,
    /// Most long-lived responses at once ([`Limits::max_streams`]).
    max_streams: usize,
    streams: AtomicUsize,
    next_id: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

enum Admission {
    Admitted { slot: Slot, evicted: bool },
    Refused,
}

/// A connection's place in the budget; gives it back on drop.
struct Slot {
    id: u64,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

/// One open long-lived response; gives its place back on drop.
struct StreamPermit(Arc<Registry>);

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn new(cap: usize, max_streams: usize) -> Self {
        Self {
            cap: cap.max(1),
            max_streams,
            streams: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ConnState>>> {
        // The map stays consistent under a panic elsewhere: every change is one call.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(self: &Arc<Self>) -> Admission {
        let mut conns = self.lock();
        let mut evicted = false;
        if conns.len() >= self.cap {
            if !Self::evict_locked(&mut conns) {
                return Admission::Refused;
            }
            evicted = true;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::default());
        conns.insert(id, state.clone());
        Admission::Admitted {
            slot: Slot {
                id,
                state,
                registry: self.clone(),
            },
            evicted,
        }
    }

    /// A place for one more long-lived response, or None if [`Self::max_streams`] are open.
    fn open_stream(self: &Arc<Self>) -> Option<StreamPermit> {
        self.streams
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_streams).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamPermit(self.clone()))
    }

    fn evict_oldest_idle(&self) -> bool {
        Self::evict_locked(&mut self.lock())
    }

    /// Close the oldest idle connection ([`ConnState::idle`]); false if there is none.
    fn evict_locked(conns: &mut BTreeMap<u64, Arc<ConnState>>) -> bool {
        let Some(id) = conns.iter().find(|(_, c)| c.idle()).map(|(id, _)| *id) else {
            return false;
        };
        if let Some(victim) = conns.remove(&id) {
            // notify_one keeps the wake-up if the task is not waiting yet.
            victim.evict.notify_one();
        }
        true
    }
}

/// Logs an event at most once a second, with how many happened since the last line: a flood
/// must not turn into a flood of log lines.
#[derive(Default)]
struct LogGate {
    last: Option<Instant>,
    count: u64,
}

impl LogGate {
    fn note(&mut self, log: impl FnOnce(u64)) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            log(self.count);
            self.count = 0;
            self.last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_clamped_to_a_share_of_the_fd_limit() {
        assert_eq!(clamp(256, Some(1024), 4), 256);
        assert_eq!(clamp(256, Some(128), 4), 32);
        assert_eq!(clamp(64, Some(128), 8), 16);
        assert_eq!(clamp(64, Some(8), 8), 4, "never below 4");
        assert_eq!(clamp(256, None, 4), 256);
    }

    #[test]
    fn counters_render_as_prometheus_counters_labelled_by_listener() {
        let c = ApiCounters::default();
        c.tcp.evicted.fetch_add(3, Ordering::Relaxed);
        c.unix.refused.fetch_add(1, Ordering::Relaxed);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(c));
        let (_, text) = super::super::metrics::encode(&registry, None).unwrap();
        for line in [
            "# TYPE ferry_api_connections_evicted_total counter",
            "ferry_api_connections_evicted_total{listener=\"metrics\"} 0",
            "ferry_api_connections_evicted_total{listener=\"tcp\"} 3",
            "ferry_api_connections_evicted_total{listener=\"unix\"} 0",
            "ferry_api_connections_refused_total{listener=\"unix\"} 1",
            "ferry_api_body_timeouts_total{listener=\"tcp\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 4);
    }

    #[test]
    fn a_full_budget_evicts_the_oldest_idle_connection_and_refuses_when_none_is_idle() {
        let r = Arc::new(Registry::new(2, 1));
        let Admission::Admitted { slot: a, .. } = r.admit() else {
            panic!("first refused")
        };
        let Admission::Admitted { slot: b, .. } = r.admit() else {
            panic!("second refused")
        };
        for s in [&a.state, &b.state] {
            s.waited.store(true, Ordering::SeqCst);
        }
        let busy_b = InFlight::begin(&b.state);
        // Full: a (idle) goes, b (busy) stays.
        let Admission::Admitted { slot: c, evicted } = r.admit() else {
            panic!("third refused")
        };
        assert!(evicted);
        assert!(!r.lock().contains_key(&a.id) && r.lock().contains_key(&b.id));
        // c has not read yet: it is not idle, whatever it may have sent.
        assert!(
            matches!(r.admit(), Admission::Refused),
            "b busy, c not read yet"
        );
        c.state.waited.store(true, Ordering::SeqCst);
        let _busy_c = InFlight::begin(&c.state);
        assert!(matches!(r.admit(), Admission::Refused), "all busy");
        drop(busy_b);
        assert!(matches!(
            r.admit(),
            Admission::Admitted { evicted: true, .. }
        ));
        assert!(!r.lock().contains_key(&b.id));
    }

    #[test]
    fn streams_take_at_most_half_the_budget_and_give_their_place_back() {
        let limits = Limits::with_cap(16);
        assert_eq!(limits.max_streams(), 8);
        assert_eq!(Limits::with_cap(1).max_streams(), 1);
        let r = Arc::new(Registry::new(16, limits.max_streams()));
        let open: Vec<_> = (0..8)
            .map(|_| r.open_stream().expect("within half"))
            .collect();
        assert!(r.open_stream().is_none(), "a ninth stream of 16");
        drop(open);
        assert!(r.open_stream().is_some(), "places given back");
    }

    #[test]
    fn the_over_budget_answer_is_a_complete_503() {
        let text = String::from_utf8(over_budget_response(16)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("all 16 API connections"),
            "{v}"
        );
    }
}
