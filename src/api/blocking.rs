//! [`Speaker`]: the typed client ([`super::Speaker`]) for callers that are not async (the CLI,
//! the controller, the lab, tests). It owns (or shares with other clients) one current-thread
//! runtime for its whole life instead of building one per call.
//!
//! Contract: the same methods, errors and timeouts as the async client; each call blocks the
//! calling thread until it is answered or its timeout passes. Must not be called from inside
//! an async runtime (use the async client there).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::client::Endpoint;
use super::speaker::{self, SpeakerError};
use super::types::{
    AnnouncedRoute, ChangeResponse, Event, LeaseReport, PeerStatus, ReceivedRoute, ResetResponse,
    WithdrawRequest,
};
use crate::speaker::Route;

/// The current-thread runtime blocking clients run on.
pub fn runtime() -> Result<Arc<tokio::runtime::Runtime>, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| format!("cannot start the API client's runtime: {e}"))
}

/// A blocking client of one speaker's API; a clone shares the runtime.
#[derive(Clone)]
pub struct Speaker {
    inner: speaker::Speaker,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Speaker {
    /// Wrap the async client; fails only if the runtime cannot be made (out of threads or
    /// file descriptors).
    pub fn new(inner: speaker::Speaker) -> Result<Self, String> {
        Ok(Self::sharing(inner, runtime()?))
    }

    /// Wrap the async client on a runtime shared with other clients (from [`runtime`]): a
    /// controller talking to several sites needs one, not one per site.
    pub fn sharing(inner: speaker::Speaker, rt: Arc<tokio::runtime::Runtime>) -> Self {
        Self { inner, rt }
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

    pub fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.rt.block_on(self.inner.peers())
    }

    pub fn announced(&self) -> Result<Vec<Route>, SpeakerError> {
        self.rt.block_on(self.inner.announced())
    }

    pub fn announced_changes(&self) -> Result<Vec<AnnouncedRoute>, SpeakerError> {
        self.rt.block_on(self.inner.announced_changes())
    }

    pub fn received(&self, peer: Option<IpAddr>) -> Result<Vec<ReceivedRoute>, SpeakerError> {
        self.rt.block_on(self.inner.received(peer))
    }

    pub fn announce(&self, routes: Vec<Route>) -> Result<ChangeResponse, SpeakerError> {
        self.rt.block_on(self.inner.announce(routes))
    }

    pub fn announce_dry_run(&self, routes: Vec<Route>) -> Result<ChangeResponse, SpeakerError> {
        self.rt.block_on(self.inner.announce_dry_run(routes))
    }

    pub fn withdraw(&self, prefixes: Vec<IpNet>) -> Result<ChangeResponse, SpeakerError> {
        self.rt.block_on(self.inner.withdraw(prefixes))
    }

    pub fn withdraw_all(&self) -> Result<ChangeResponse, SpeakerError> {
        self.rt.block_on(self.inner.withdraw_all())
    }

    pub fn change(&self, req: WithdrawRequest) -> Result<ChangeResponse, SpeakerError> {
        self.rt.block_on(self.inner.change(req))
    }

    pub fn health(&self) -> Result<Vec<crate::api::HealthStatus>, SpeakerError> {
        self.rt.block_on(self.inner.health())
    }

    pub fn leases(&self) -> Result<LeaseReport, SpeakerError> {
        self.rt.block_on(self.inner.leases())
    }

    pub fn renew(&self, prefixes: Vec<IpNet>) -> Result<LeaseReport, SpeakerError> {
        self.rt.block_on(self.inner.renew(prefixes))
    }

    pub fn fences(&self) -> Result<Vec<super::HeldFence>, SpeakerError> {
        self.rt.block_on(self.inner.fences())
    }

    pub fn reset(&self, peer: IpAddr, hard: bool) -> Result<ResetResponse, SpeakerError> {
        self.rt.block_on(self.inner.reset(peer, hard))
    }

    pub fn reload(&self) -> Result<super::ReloadResponse, SpeakerError> {
        self.rt.block_on(self.inner.reload())
    }

    pub fn disable(
        &self,
        peer: IpAddr,
        message: Option<String>,
    ) -> Result<super::AdminResponse, SpeakerError> {
        self.rt.block_on(self.inner.disable(peer, message))
    }

    pub fn enable(&self, peer: IpAddr) -> Result<super::AdminResponse, SpeakerError> {
        self.rt.block_on(self.inner.enable(peer))
    }

    pub fn metrics(&self) -> Result<String, SpeakerError> {
        self.rt.block_on(self.inner.metrics())
    }

    pub fn events(&self) -> Result<Events, SpeakerError> {
        let stream = self.rt.block_on(self.inner.events())?;
        Ok(Events {
            stream,
            rt: self.rt.clone(),
        })
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
