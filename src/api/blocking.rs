//! [`Speaker`]: the typed client ([`super::Speaker`]) for callers that are not async (the CLI,
//! the controller, the lab, tests). Each call is one HTTP exchange over std sockets on the
//! calling thread (`super::client_sync`): no runtime, no extra thread. Only an event stream
//! needs a runtime (hyper reads it); that current-thread runtime is built on the first
//! [`Speaker::events`], or shared with other clients ([`Speaker::sharing`]).
//!
//! Contract: the same methods, errors and timeouts as the async client; each call blocks the
//! calling thread until it is answered or its timeout passes. [`Speaker::events`] must not be
//! called from inside an async runtime (use the async client there).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ipnet::IpNet;

use super::client::Endpoint;
use super::speaker::{self, Call, SpeakerError};
use super::types::{
    AnnouncedRoute, ChangeResponse, Event, LeaseReport, PeerStatus, ReceivedRoute, ResetResponse,
    WithdrawRequest,
};
use crate::speaker::Route;

/// The current-thread runtime blocking event streams run on.
pub fn runtime() -> Result<Arc<tokio::runtime::Runtime>, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| format!("cannot start the API client's runtime: {e}"))
}

/// A blocking client of one speaker's API; a clone shares the runtime (once there is one).
#[derive(Clone)]
pub struct Speaker {
    inner: speaker::Speaker,
    rt: Arc<OnceLock<Arc<tokio::runtime::Runtime>>>,
}

impl Speaker {
    /// Wrap the async client. Builds nothing yet; the `Result` is kept for callers written
    /// when this built a runtime (it cannot fail now).
    pub fn new(inner: speaker::Speaker) -> Result<Self, String> {
        Ok(Self {
            inner,
            rt: Arc::new(OnceLock::new()),
        })
    }

    /// Wrap the async client with a runtime shared with other clients (from [`runtime`]) for
    /// its event streams: a controller talking to several sites needs one, not one per site.
    pub fn sharing(inner: speaker::Speaker, rt: Arc<tokio::runtime::Runtime>) -> Self {
        Self {
            inner,
            rt: Arc::new(OnceLock::from(rt)),
        }
    }

    /// The client of the Unix socket `path`, without a token.
    pub fn unix(path: impl Into<std::path::PathBuf>) -> Result<Self, String> {
        Self::new(speaker::Speaker::new(Endpoint::Unix(path.into()), None))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.with_timeout(timeout);
        self
    }

    /// See [`speaker::Speaker::with_fence`]: the fence goes with every state-changing call.
    pub fn with_fence(mut self, fence: super::Fence) -> Self {
        self.inner = self.inner.with_fence(fence);
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }

    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SpeakerError> {
        self.inner.answer_blocking(Call::get(path))
    }

    pub fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.get("/v1/peers")
    }

    pub fn announced(&self) -> Result<Vec<Route>, SpeakerError> {
        Ok(self
            .announced_changes()?
            .into_iter()
            .map(|a| a.route)
            .collect())
    }

    pub fn announced_changes(&self) -> Result<Vec<AnnouncedRoute>, SpeakerError> {
        self.get("/v1/routes")
    }

    pub fn received(&self, peer: Option<IpAddr>) -> Result<Vec<ReceivedRoute>, SpeakerError> {
        self.inner.answer_blocking(Call::received(peer))
    }

    pub fn announce(&self, routes: Vec<Route>) -> Result<ChangeResponse, SpeakerError> {
        self.inner
            .answer_blocking(self.inner.announce_call(routes)?)
    }

    pub fn announce_dry_run(&self, routes: Vec<Route>) -> Result<ChangeResponse, SpeakerError> {
        self.inner
            .answer_blocking(self.inner.announce_dry_run_call(routes)?)
    }

    pub fn withdraw(&self, prefixes: Vec<IpNet>) -> Result<ChangeResponse, SpeakerError> {
        self.change(WithdrawRequest {
            prefixes,
            all: false,
            graceful_secs: None,
            dry_run: false,
        })
    }

    pub fn withdraw_all(&self) -> Result<ChangeResponse, SpeakerError> {
        self.change(WithdrawRequest {
            prefixes: Vec::new(),
            all: true,
            graceful_secs: None,
            dry_run: false,
        })
    }

    pub fn change(&self, req: WithdrawRequest) -> Result<ChangeResponse, SpeakerError> {
        self.inner.answer_blocking(self.inner.change_call(req)?)
    }

    pub fn health(&self) -> Result<Vec<crate::api::HealthStatus>, SpeakerError> {
        self.get("/v1/health")
    }

    pub fn leases(&self) -> Result<LeaseReport, SpeakerError> {
        self.get("/v1/leases")
    }

    pub fn renew(&self, prefixes: Vec<IpNet>) -> Result<LeaseReport, SpeakerError> {
        self.inner.answer_blocking(self.inner.renew_call(prefixes)?)
    }

    pub fn fences(&self) -> Result<Vec<super::HeldFence>, SpeakerError> {
        self.get("/v1/fences")
    }

    pub fn reset(&self, peer: IpAddr, hard: bool) -> Result<ResetResponse, SpeakerError> {
        self.inner
            .answer_blocking(self.inner.reset_call(peer, hard)?)
    }

    pub fn reload(&self) -> Result<super::ReloadResponse, SpeakerError> {
        self.inner.answer_blocking(self.inner.post_call(
            "/v1/reload".into(),
            &serde_json::json!({}),
            None,
        )?)
    }

    pub fn disable(
        &self,
        peer: IpAddr,
        message: Option<String>,
    ) -> Result<super::AdminResponse, SpeakerError> {
        self.inner
            .answer_blocking(self.inner.disable_call(peer, message)?)
    }

    pub fn enable(&self, peer: IpAddr) -> Result<super::AdminResponse, SpeakerError> {
        self.inner.answer_blocking(self.inner.enable_call(peer)?)
    }

    pub fn metrics(&self) -> Result<String, SpeakerError> {
        let body = self.inner.call_blocking(Call::get("/metrics"))?;
        self.inner.text(body)
    }

    /// The runtime event streams run on, built on first use.
    fn runtime(&self) -> Result<Arc<tokio::runtime::Runtime>, SpeakerError> {
        if let Some(rt) = self.rt.get() {
            return Ok(rt.clone());
        }
        let rt = runtime().map_err(|message| SpeakerError::Internal { message })?;
        Ok(self.rt.get_or_init(|| rt).clone())
    }

    pub fn events(&self) -> Result<Events, SpeakerError> {
        let rt = self.runtime()?;
        let stream = rt.block_on(self.inner.events())?;
        Ok(Events { stream, rt })
    }
}

/// A blocking event stream.
pub struct Events {
    stream: speaker::Events,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Events {
    /// The next event, waiting at most `wait`: `Ok(None)` when none came in that time.
    /// A stream the speaker ended is a `NoAnswer` error.
    pub fn next_within(&mut self, wait: Duration) -> Result<Option<Event>, SpeakerError> {
        let next = self
            .rt
            .block_on(async { tokio::time::timeout(wait, self.stream.next()).await });
        match next {
            Err(_) => Ok(None),
            Ok(Ok(Some(e))) => Ok(Some(e)),
            Ok(Ok(None)) => Err(SpeakerError::NoAnswer {
                endpoint: self.stream.endpoint().to_owned(),
                detail: "(it ended the event stream)".into(),
            }),
            Ok(Err(e)) => Err(e),
        }
    }
}
