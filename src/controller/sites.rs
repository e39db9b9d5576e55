//! What the executor asks of the world, behind two traits so its unit tests use fakes.
//!
//! - [`Sites`]: the speaker operations of one named site (announce, withdraw, peers, the routes
//!   it announces, the routes it received). [`ApiSites`] is the real one over
//!   [`crate::api::Client`], each call with a timeout.
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
use crate::api::{
    ChangeResponse, Client, Endpoint, LeaseRenewRequest, LeaseReport, PeerStatus, ReceivedRoute,
};
use crate::speaker::Route;

/// Speaker operations by site name. Errors are text that names the site and what failed.
pub trait Sites {
    fn announce(&self, site: &str, routes: &[Route]) -> Result<(), String>;
    fn withdraw(&self, site: &str, prefixes: &[IpNet]) -> Result<(), String>;
    fn peers(&self, site: &str) -> Result<Vec<PeerStatus>, String>;
    fn announced(&self, site: &str) -> Result<Vec<Route>, String>;
    fn received(&self, site: &str) -> Result<Vec<ReceivedRoute>, String>;
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

/// The real sites: one API client per site of the plan.
pub struct ApiSites {
    clients: BTreeMap<String, Client>,
    rt: tokio::runtime::Runtime,
}

impl ApiSites {
    /// Clients for every site of `plan`, each request bounded by `timeout`.
    pub fn new(plan: &Plan, timeout: Duration) -> Result<Self, String> {
        let mut clients = BTreeMap::new();
        for s in &plan.sites {
            let endpoint =
                Endpoint::parse(&s.api).map_err(|e| format!("site {:?}: {e}", s.name))?;
            let token = match &s.api_token_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| {
                            format!("site {:?}: api_token_file {}: {e}", s.name, p.display())
                        })?
                        .trim()
                        .to_owned(),
                ),
                None => None,
            };
            let mut c = Client::new(endpoint, token);
            c.timeout = timeout;
            clients.insert(s.name.clone(), c);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        Ok(Self { clients, rt })
    }

    /// Renew the leases of `prefixes` at `site` (the fencing keeper); the speaker's report of
    /// its leases afterwards.
    pub fn renew_leases(&self, site: &str, prefixes: &[IpNet]) -> Result<LeaseReport, String> {
        let c = self.client(site)?;
        let body = LeaseRenewRequest {
            prefixes: prefixes.to_vec(),
        };
        self.rt
            .block_on(c.post::<_, LeaseReport>("/v1/lease/renew", &body))
            .map_err(|e| format!("site {site}: lease renew: {e}"))
    }

    fn client(&self, site: &str) -> Result<&Client, String> {
        self.clients
            .get(site)
            .ok_or_else(|| format!("no site {site:?} in the plan"))
    }
}

impl Sites for ApiSites {
    fn announce(&self, site: &str, routes: &[Route]) -> Result<(), String> {
        let c = self.client(site)?;
        // JSON rather than the request structs: fields added to them later take their defaults.
        let body = serde_json::json!({ "routes": routes });
        self.rt
            .block_on(c.post::<_, ChangeResponse>("/v1/announce", &body))
            .map(|_| ())
            .map_err(|e| format!("site {site}: announce: {e}"))
    }

    fn withdraw(&self, site: &str, prefixes: &[IpNet]) -> Result<(), String> {
        let c = self.client(site)?;
        let body = serde_json::json!({ "prefixes": prefixes });
        self.rt
            .block_on(c.post::<_, ChangeResponse>("/v1/withdraw", &body))
            .map(|_| ())
            .map_err(|e| format!("site {site}: withdraw: {e}"))
    }

    fn peers(&self, site: &str) -> Result<Vec<PeerStatus>, String> {
        let c = self.client(site)?;
        self.rt
            .block_on(c.get("/v1/peers"))
            .map_err(|e| format!("site {site}: {e}"))
    }

    fn announced(&self, site: &str) -> Result<Vec<Route>, String> {
        let c = self.client(site)?;
        self.rt
            .block_on(c.get("/v1/routes"))
            .map_err(|e| format!("site {site}: {e}"))
    }

    fn received(&self, site: &str) -> Result<Vec<ReceivedRoute>, String> {
        let c = self.client(site)?;
        self.rt
            .block_on(c.get("/v1/routes/received"))
            .map_err(|e| format!("site {site}: {e}"))
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
