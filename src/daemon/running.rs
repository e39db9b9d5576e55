//! The running neighbors: start one (its session, BFD and driver thread), stop one, and apply
//! a reload's [`Plan`](super::reload::Plan) to them and to the listener.
//!
//! A reload runs on the speaker's main task, one at a time (SIGHUP and `POST /v1/reload` both
//! end up in [`Running::reload`]). It first does everything that can fail without touching a
//! session (read and check the file, the plan, the kernel's checks of MD5/GTSM options, the new
//! sessions' settings, BFD sessions of new neighbors), so a refused config changes nothing.
//! Then it stops the removed neighbors and those to reset (Cease/Administrative Shutdown with
//! a message saying why, RFC 9003), swaps the list the listener and the API read, updates the
//! listener's MD5 keys and GTSM settings, and starts the new drivers. Sessions not in the plan
//! are never touched: their drivers, connections and Adj-RIB-In stay as they are.
//!
//! Never does: decide what changes (see [`super::reload`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::peer::{Driver, PeerInput};
use super::reload::{self, Plan};
use super::state::{lock, write, PeerCounters, PeerShared, Shared};
use crate::api::{ReloadResponse, ReloadedNeighbor};
use crate::config::{Config, NeighborConfig};
use crate::session::Session;
use crate::speaker::AdjRibIn;

/// Sets the log filter (a `tracing_subscriber::EnvFilter` directive string).
pub type LogControl = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How long a stopping driver may take to send its Cease.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The shutdown communication of a neighbor removed by a reload.
const REMOVED_MESSAGE: &str = "ferry: neighbor removed from the configuration";

/// A started neighbor whose driver has not been spawned yet.
pub struct Started {
    pub peer: Arc<PeerShared>,
    session: Session,
    inputs: mpsc::Receiver<PeerInput>,
}

/// The speaker as a reload changes it.
pub struct Running {
    pub config: Config,
    /// The file `config` was read from; a reload reads it again.
    pub path: PathBuf,
    pub shared: Arc<Shared>,
    pub bfd: crate::bfd::Bfd,
    /// The BGP listener and its address, when `speaker.listen` is set.
    pub listener: Option<(Arc<tokio::net::TcpListener>, SocketAddr)>,
    pub log: LogControl,
}

/// The peer's session, BFD and state; `restarted` sets the R bit (RFC 4724 §3). Fails before
/// anything runs, except a BFD session, which is started last.
pub fn start(
    config: &Config,
    n: &NeighborConfig,
    restarted: bool,
    bfd: &crate::bfd::Bfd,
) -> anyhow::Result<Started> {
    let session = Session::new(super::session_config(config, n, restarted))
        .map_err(|e| anyhow::anyhow!("neighbor {}: {e}", n.address))?;
    let (tx, rx) = mpsc::channel(16);
    let bfd_handle = match &n.bfd {
        Some(c) => Some(super::start_bfd(bfd, n, c, tx.clone())?),
        None => None,
    };
    let peer = Arc::new(PeerShared {
        config: n.clone(),
        description: Mutex::new(n.description.clone()),
        status: Mutex::new(PeerCounters {
            state: crate::session::State::Idle,
            ..Default::default()
        }),
        rib_in: Mutex::new({
            let mut rib = AdjRibIn::new(n.max_prefixes as usize);
            // Over usize (32-bit targets only): as much as the address space allows.
            rib.set_attribute_budget(Some(
                usize::try_from(n.max_attribute_bytes.0).unwrap_or(usize::MAX),
            ));
            rib
        }),
        updates_sent: Default::default(),
        updates_received: Default::default(),
        input: tx,
        bfd: bfd_handle,
    });
    Ok(Started {
        peer,
        session,
        inputs: rx,
    })
}

/// Run a started neighbor's driver; it starts Idle when the operator disabled it.
pub fn spawn(s: Started, shared: &Arc<Shared>, local_asn: u32) -> anyhow::Result<()> {
    let address = s.peer.config.address;
    let disabled = lock(&shared.admin).get(address).is_some();
    let driver = Driver::new(s.session, s.peer, shared.clone(), local_asn, disabled);
    super::spawn_driver(driver, s.inputs)
        .map_err(|e| anyhow::anyhow!("neighbor {address}: cannot start: {e}"))
}

/// Close each neighbor's session with Cease/Administrative Shutdown and its message, and end
/// its driver; all at once, waiting at most [`STOP_WAIT`] in all (a reload of many neighbors
/// answers within the API client's timeout).
pub async fn stop_all(peers: &[(Arc<PeerShared>, String)]) {
    let mut done = Vec::new();
    for (peer, message) in peers {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let stop = PeerInput::Stop {
            message: Some(message.clone()),
            done: done_tx,
        };
        if tokio::time::timeout(STOP_WAIT, peer.input.send(stop))
            .await
            .is_ok_and(|sent| sent.is_ok())
        {
            done.push(done_rx);
        }
    }
    let _ = tokio::time::timeout(STOP_WAIT, async {
        for rx in done {
            let _ = rx.await;
        }
    })
    .await;
}

impl Running {
    /// Read the config file again and apply it; Err (nothing changed) says why not.
    pub async fn reload(&mut self) -> Result<ReloadResponse, String> {
        let new = Config::load(&self.path).map_err(|e| e.to_string())?;
        let plan = reload::plan(&self.config, &new)?;
        let mut resp = ReloadResponse {
            config: self.path.display().to_string(),
            unchanged: plan.unchanged,
            speaker: plan.speaker.clone(),
            ..Default::default()
        };
        if plan.is_empty() {
            tracing::info!(config = %self.path.display(), "reload: nothing changed");
            return Ok(resp);
        }
        let starting: Vec<NeighborConfig> = plan
            .added
            .iter()
            .chain(plan.reset.iter().map(|(n, _)| n))
            .cloned()
            .collect();
        super::security::preflight(&starting).map_err(|e| format!("{e}; nothing was changed"))?;
        // Every session's settings before any BFD session starts (those cannot be undone).
        for n in &starting {
            Session::new(super::session_config(&new, n, false))
                .map_err(|e| format!("neighbor {}: {e}; nothing was changed", n.address))?;
        }
        let mut started = Vec::new();
        for n in &starting {
            started.push(
                start(&new, n, false, &self.bfd)
                    .map_err(|e| format!("{e:#}; nothing was changed"))?,
            );
        }
        // From here on the new config is applied.
        self.apply_speaker_keys(&plan, &new);
        for (n, keys) in &plan.updated {
            if let Some(p) = self.shared.peer(n.address) {
                *lock(&p.description) = n.description.clone();
            }
            tracing::info!(peer = %n.address, keys = %keys.join(","), "reload: neighbor updated, session untouched");
            resp.updated.push(ReloadedNeighbor {
                peer: n.address,
                keys: keys.clone(),
            });
        }
        let stopping: Vec<(IpAddr, String)> = plan
            .removed
            .iter()
            .map(|n| (n.address, REMOVED_MESSAGE.to_string()))
            .chain(plan.reset.iter().map(|(n, keys)| {
                (
                    n.address,
                    format!("ferry: configuration changed ({})", keys.join(", ")),
                )
            }))
            .collect();
        // Out of the list first: the listener no longer hands this peer's connections to the
        // old driver, and the API no longer shows it.
        let old: Vec<Arc<PeerShared>> = {
            let mut list = write(&self.shared.peer_list);
            let (gone, kept) = list
                .drain(..)
                .partition(|p| stopping.iter().any(|(a, _)| *a == p.config.address));
            *list = kept;
            gone
        };
        let old: Vec<(Arc<PeerShared>, String)> = old
            .into_iter()
            .map(|p| {
                let message = stopping
                    .iter()
                    .find(|(a, _)| *a == p.config.address)
                    .map_or(REMOVED_MESSAGE.to_string(), |(_, m)| m.clone());
                (p, message)
            })
            .collect();
        stop_all(&old).await;
        for n in &plan.removed {
            tracing::warn!(peer = %n.address, "reload: neighbor removed, its session closed");
            resp.removed.push(n.address);
        }
        if let Some((listener, addr)) = &self.listener {
            if let Err(e) = super::security::update_listener(
                listener,
                *addr,
                &self.config.neighbors,
                &new.neighbors,
            ) {
                tracing::error!(error = %e, "reload: the listener's security options could not be updated; inbound sessions of the neighbor named may fail until a restart");
            }
        }
        let asn = new.speaker.asn.0;
        for s in started {
            let peer = s.peer.clone();
            let address = peer.config.address;
            // Listed first: an inbound connection that comes as the driver starts finds it.
            write(&self.shared.peer_list).push(peer.clone());
            if let Err(e) = spawn(s, &self.shared, asn) {
                write(&self.shared.peer_list).retain(|p| !Arc::ptr_eq(p, &peer));
                tracing::error!(peer = %address, error = %e, "reload: neighbor not started");
                continue;
            }
            match plan.reset.iter().find(|(n, _)| n.address == address) {
                Some((_, keys)) => {
                    tracing::warn!(peer = %address, keys = %keys.join(","), "reload: neighbor's settings changed, its session reset");
                    resp.reset.push(ReloadedNeighbor {
                        peer: address,
                        keys: keys.clone(),
                    });
                }
                None => {
                    tracing::info!(peer = %address, "reload: neighbor added");
                    resp.added.push(address);
                }
            }
        }
        // Configuration order, as at start.
        write(&self.shared.peer_list).sort_by_key(|p| {
            new.neighbors
                .iter()
                .position(|n| n.address == p.config.address)
        });
        self.config = new;
        tracing::info!(
            config = %self.path.display(),
            added = resp.added.len(),
            removed = resp.removed.len(),
            reset = resp.reset.len(),
            updated = resp.updated.len(),
            unchanged = resp.unchanged,
            "reload: applied"
        );
        Ok(resp)
    }

    fn apply_speaker_keys(&self, plan: &Plan, new: &Config) {
        for key in &plan.speaker {
            match key.as_str() {
                "log_level" => {
                    let filter = log_filter(new);
                    match (self.log)(&filter) {
                        Ok(()) => tracing::info!(filter = %filter, "reload: log level set"),
                        Err(e) => {
                            tracing::error!(filter = %filter, error = %e, "reload: log level not changed")
                        }
                    }
                }
                "allowed_prefixes" => {
                    *write(&self.shared.allowed_prefixes) = new.speaker.allowed_prefixes.clone();
                    tracing::info!(allowed = ?new.speaker.allowed_prefixes, "reload: allowed_prefixes set");
                }
                "require_fence" => {
                    self.shared.require_fence.store(
                        new.speaker.require_fence,
                        std::sync::atomic::Ordering::SeqCst,
                    );
                    tracing::info!(
                        require_fence = new.speaker.require_fence,
                        "reload: require_fence set"
                    );
                }
                other => tracing::info!(key = other, "reload: speaker setting changed"),
            }
        }
    }
}

/// The log filter a config asks for: `speaker.log_level`, else `FERRY_LOG`, else `info`.
pub fn log_filter(config: &Config) -> String {
    match &config.speaker.log_level {
        Some(l) => l.0.clone(),
        None => std::env::var("FERRY_LOG").unwrap_or_else(|_| "info".into()),
    }
}
