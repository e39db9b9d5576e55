//! What the executor asks of the world, behind two traits so its unit tests use fakes.
//!
//! - [`Sites`]: the speaker operations of one named site (announce, withdraw, peers, the routes
//!   it announces, the routes it received), failing with a typed [`SiteError`] that tells an
//!   unreachable site from a refused request. [`ApiSites`] is the real one over
//!   [`crate::api::blocking::Speaker`], each call with a timeout.
//! - [`Probes`]: hooks, one attempt of a probe, ending a dead controller's leftover hook, and
//!   the clock. [`SystemProbes`] runs commands ([`super::hook`]: own process group, dying with
//!   the controller, killed as a group on timeout), HTTP(S) calls ([`super::http`]: one
//!   deadline for the whole call) and TCP connects.
//!
//! Never does: decide what to do next (that is [`super::executor`]); retry on its own.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::hook::{self, HookProcess, OnSpawn};
use super::http;
use super::plan::{Hook, Plan, Probe};
use crate::api::{blocking, LeaseReport, PeerStatus, ReceivedRoute, Speaker, SpeakerError};
use crate::speaker::Route;

/// A speaker operation at a named site that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    #[error("no site {0:?} in the plan")]
    NoSuchSite(String),
    /// `op` is the change that failed ("announce"), `None` for a read.
    #[error("site {site}: {}{error}{}", op.map(|o| format!("{o}: ")).unwrap_or_default(),
            if error.is_unreachable() { format!(" (its address is `api` of the plan's [[site]] {site:?})") } else { String::new() })]
    Speaker {
        site: String,
        op: Option<&'static str>,
        error: SpeakerError,
    },
    /// An HA controller's etcd lease ran out: another controller may lead, so this one
    /// changes nothing more at any site.
    #[error("not sent: this controller's etcd lease ran out (another controller may lead now)")]
    NotLeading,
    /// An `[auto]` failover waits for this site's leases to run out.
    #[error("not sent: an auto failover is waiting for this site's leases to run out")]
    Fencing,
}

impl SiteError {
    /// The site's speaker took nothing (no connection: down or cut off).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Speaker { error, .. } if error.is_unreachable())
    }

    /// The site took the request and never answered: done or not, nobody knows.
    pub fn is_no_answer(&self) -> bool {
        matches!(self, Self::Speaker { error, .. } if error.is_no_answer())
    }
}

/// Steps record errors as text in the journal.
impl From<SiteError> for String {
    fn from(e: SiteError) -> Self {
        e.to_string()
    }
}

/// Speaker operations by site name, typed as [`crate::api::Speaker`]'s.
pub trait Sites {
    fn announce(&self, site: &str, routes: &[Route]) -> Result<(), SiteError>;
    fn withdraw(&self, site: &str, prefixes: &[IpNet]) -> Result<(), SiteError>;
    fn peers(&self, site: &str) -> Result<Vec<PeerStatus>, SiteError>;
    fn announced(&self, site: &str) -> Result<Vec<Route>, SiteError>;
    /// The routes `site` received, the request bounded by `within` (a step's deadline).
    fn received(&self, site: &str, within: Duration) -> Result<Vec<ReceivedRoute>, SiteError>;
}

/// An Established session, for the fake sites of unit tests: from JSON, so that fields added
/// to [`PeerStatus`] later take their defaults.
#[cfg(test)]
pub(crate) fn established_peer() -> PeerStatus {
    serde_json::from_value(serde_json::json!({
        "address": "127.0.0.2", "remote_as": 65001, "description": null,
        "state": "Established", "uptime_secs": 1, "prefixes_sent": 0,
        "prefixes_received": 0, "last_error": null
    }))
    .expect("a PeerStatus")
}

/// Hooks, probes and time.
pub trait Probes {
    /// Run a hook (or its `undo` command); `env` is added to the hook's own environment.
    /// A command's process goes to `on_spawn` before the hook is waited for.
    fn hook(
        &self,
        hook: &Hook,
        undo: bool,
        env: &[(String, String)],
        on_spawn: OnSpawn<'_>,
    ) -> Result<(), String>;
    /// End what is still alive of a hook that a dead controller started ([`hook::end_group`]):
    /// `Ok(Some(what))` when something was ended.
    fn end_orphan(&self, p: &HookProcess) -> Result<Option<String>, String>;
    /// One attempt of a probe, bounded by `timeout`.
    fn probe(
        &self,
        probe: &Probe,
        timeout: Duration,
        env: &[(String, String)],
    ) -> Result<(), String>;
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration);
}

/// The real sites: one API client per site of the plan, each call with a timeout.
pub struct ApiSites {
    speakers: BTreeMap<String, blocking::Speaker>,
    /// The bound of every call; [`Sites::received`] may be given less.
    timeout: Duration,
}

impl ApiSites {
    /// Clients for every site of `plan`, each request bounded by `timeout`.
    pub fn new(plan: &Plan, timeout: Duration) -> Result<Self, String> {
        let rt = blocking::runtime()?;
        let mut speakers = BTreeMap::new();
        for s in &plan.sites {
            let speaker = Speaker::from_settings(&s.api, s.api_token_file.as_deref())
                .map_err(|e| format!("site {:?}: {e}", s.name))?;
            speakers.insert(
                s.name.clone(),
                blocking::Speaker::sharing(speaker.with_timeout(timeout), rt.clone()),
            );
        }
        Ok(Self { speakers, timeout })
    }

    /// Send `fence` with every state-changing call to every site (announce, withdraw, lease
    /// renew): a speaker that holds a higher token for it refuses with
    /// [`SpeakerError::Fenced`]. Without it, calls carry no fence (and bypass fencing).
    pub fn with_fence(mut self, fence: crate::api::Fence) -> Self {
        for speaker in self.speakers.values_mut() {
            *speaker = speaker.clone().with_fence(fence.clone());
        }
        self
    }

    /// Bound every call to `site` by `timeout` instead (an `[auto]` failover's calls to the
    /// primary it found unreachable within that time).
    pub fn with_timeout_at(mut self, site: &str, timeout: Duration) -> Self {
        if let Some(speaker) = self.speakers.get_mut(site) {
            *speaker = speaker.clone().with_timeout(timeout);
        }
        self
    }

    /// Renew the leases of `prefixes` at `site` (the fencing keeper); the speaker's report of
    /// its leases afterwards.
    pub fn renew_leases(&self, site: &str, prefixes: &[IpNet]) -> Result<LeaseReport, SiteError> {
        self.call(site, Some("lease renew"), |s| s.renew(prefixes.to_vec()))
    }

    fn call<T>(
        &self,
        site: &str,
        op: Option<&'static str>,
        f: impl FnOnce(&blocking::Speaker) -> Result<T, SpeakerError>,
    ) -> Result<T, SiteError> {
        let speaker = self
            .speakers
            .get(site)
            .ok_or_else(|| SiteError::NoSuchSite(site.to_owned()))?;
        f(speaker).map_err(|error| SiteError::Speaker {
            site: site.to_owned(),
            op,
            error,
        })
    }
}

impl Sites for ApiSites {
    fn announce(&self, site: &str, routes: &[Route]) -> Result<(), SiteError> {
        self.call(site, Some("announce"), |s| s.announce(routes.to_vec()))
            .map(|_| ())
    }

    fn withdraw(&self, site: &str, prefixes: &[IpNet]) -> Result<(), SiteError> {
        self.call(site, Some("withdraw"), |s| s.withdraw(prefixes.to_vec()))
            .map(|_| ())
    }

    fn peers(&self, site: &str) -> Result<Vec<PeerStatus>, SiteError> {
        self.call(site, None, |s| s.peers())
    }

    fn announced(&self, site: &str) -> Result<Vec<Route>, SiteError> {
        self.call(site, None, |s| s.announced())
    }

    fn received(&self, site: &str, within: Duration) -> Result<Vec<ReceivedRoute>, SiteError> {
        let t = within.min(self.timeout);
        self.call(site, None, |s| s.clone().with_timeout(t).received(None))
    }
}

/// Commands, HTTP calls and TCP connects on this host; the real clock.
pub struct SystemProbes;

impl Probes for SystemProbes {
    fn hook(
        &self,
        hook: &Hook,
        undo: bool,
        env: &[(String, String)],
        on_spawn: OnSpawn<'_>,
    ) -> Result<(), String> {
        let timeout = Duration::from_millis(hook.timeout_ms);
        let mut env: Vec<(String, String)> = env.to_vec();
        env.extend(hook.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        match (undo, &hook.command, &hook.http, &hook.undo) {
            (true, _, _, Some(u)) => hook::run_command(u, &env, timeout, on_spawn),
            (true, _, _, None) => Ok(()),
            (false, Some(c), _, _) => hook::run_command(c, &env, timeout, on_spawn),
            (false, None, Some(h), _) => http::call(h, timeout),
            (false, None, None, _) => Err("hook has neither command nor http".into()),
        }
    }

    fn end_orphan(&self, p: &HookProcess) -> Result<Option<String>, String> {
        hook::end_group(p, hook::ORPHAN_GRACE)
    }

    fn probe(
        &self,
        probe: &Probe,
        timeout: Duration,
        env: &[(String, String)],
    ) -> Result<(), String> {
        match probe {
            // Checks are not journaled: they die with the controller, and a leftover of one
            // only reads.
            Probe::Command(c) => hook::run_command(c, env, timeout, &|_| Ok(())),
            Probe::Http(call) => http::call(call, timeout),
            Probe::Tcp(addr) => {
                let t0 = Instant::now();
                let sa = resolve(addr, timeout)?;
                let left = timeout.saturating_sub(t0.elapsed());
                if left.is_zero() {
                    return Err(format!(
                        "tcp {addr}: no connection within {} ms",
                        timeout.as_millis()
                    ));
                }
                TcpStream::connect_timeout(&sa, left)
                    .map(|_| ())
                    .map_err(|e| format!("tcp {addr}: {e}"))
            }
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// The first address of `host:port`, looked up on a side thread so that a name server that
/// never answers cannot hold the probe past `timeout` (the thread ends when the system's
/// resolver gives up).
fn resolve(addr: &str, timeout: Duration) -> Result<SocketAddr, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = addr.to_owned();
    std::thread::spawn(move || {
        let r = name.to_socket_addrs().map(|mut a| a.next());
        let _ = tx.send(r);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(sa))) => Ok(sa),
        Ok(Ok(None)) => Err(format!("tcp {addr}: no address")),
        Ok(Err(e)) => Err(format!("tcp {addr}: {e}")),
        Err(_) => Err(format!(
            "tcp {addr}: name lookup did not finish within {} ms",
            timeout.as_millis()
        )),
    }
}
