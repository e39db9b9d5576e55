//! State the speaker's tasks share, and the API's view of it ([`Control`]).
//!
//! The desired routes live in the [`RouteStore`] (persisted before a change is acknowledged,
//! published while it is persisted, and published back should that fail) and are published to
//! the peer drivers as changes: the changed prefixes go into the
//! [`DesiredLog`] (drain overlay applied) and its new version into a watch channel, so a change
//! of k prefixes costs O(k log n), not a copy of the table, and each update group applies only
//! the delta. The drivers share the [`UpdateGroups`] (lock order: `desired_log`, then
//! `groups`; the API side takes `store`, `draining`, then `desired_log`). Each
//! peer's status and Adj-RIB-In sit behind their own lock, held only for short reads/writes.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use ipnet::IpNet;
use tokio::sync::{broadcast, watch};

use crate::api::{
    ApiError, ChangeResponse, Control, Event, GracefulRestartStatus, PeerStatus, ReceivedRoute,
    ResetResponse,
};
use crate::api::{LeaseInfo, LeaseReport};
use crate::config::NeighborConfig;
use crate::speaker::lease::{now_ms, Leases};
use crate::speaker::store::{Applied, Change, RouteStore};
use crate::speaker::{AdjRibIn, DesiredLog, Retired, Route, UpdateGroups};
use crate::wire::Community;

/// The version of the [`DesiredLog`] the drivers are told about.
pub type Desired = u64;

/// Lock, recovering the data if a task panicked while holding it (each structure stays
/// consistent: every writer finishes its update before it could panic). One pair can then
/// disagree: a panic inside the store's commit, after the change was published, leaves the
/// desired log ahead of the store until the next change of those prefixes or a restart.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for readers of an `RwLock`.
pub fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for writers of an `RwLock`.
pub fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
pub struct PeerCounters {
    pub state: crate::session::State,
    pub established_at: Option<Instant>,
    pub prefixes_sent: u64,
    pub last_error: Option<String>,
    /// Graceful restart as the driver sees it (RFC 4724).
    pub gr: GrView,
}

#[derive(Debug, Default, Clone)]
pub struct GrView {
    /// We advertise the capability to this peer.
    pub local: bool,
    /// The peer advertised it on the last Established session.
    pub peer: bool,
    /// Both sides advertised the N bit (RFC 8538).
    pub notification: bool,
    /// The peer's stale routes are swept at this time.
    pub stale_until: Option<Instant>,
}

pub struct PeerShared {
    pub config: NeighborConfig,
    pub status: Mutex<PeerCounters>,
    pub rib_in: Mutex<AdjRibIn>,
    pub updates_sent: AtomicU64,
    pub updates_received: AtomicU64,
    /// Commands to the peer's driver (inbound connections, stop, reset).
    pub input: tokio::sync::mpsc::Sender<super::peer::PeerInput>,
    /// The neighbor's BFD session, when configured.
    pub bfd: Option<crate::bfd::Handle>,
}

pub struct Shared {
    pub store: Mutex<RouteStore>,
    pub desired: watch::Sender<Desired>,
    /// The desired routes as the drivers see them, with the log of recent changes.
    pub desired_log: RwLock<DesiredLog>,
    /// Update groups of the established sessions (see `speaker::update_group`).
    pub groups: Mutex<UpdateGroups>,
    /// Ids for update group members, one per established session.
    pub next_member: AtomicU64,
    pub events: broadcast::Sender<Event>,
    pub peers: Vec<Arc<PeerShared>>,
    /// Prefixes being drained (RFC 8326): published with GRACEFUL_SHUTDOWN added, never
    /// persisted.
    pub draining: Mutex<BTreeSet<IpNet>>,
    /// Lease deadlines of leased routes (fencing). Lock order: `leases`, then `store`.
    pub leases: Mutex<Leases>,
    /// Wakes the lease task when a deadline may have moved earlier.
    pub lease_wake: tokio::sync::Notify,
    /// Wakes the compaction task when the route journal outgrew the snapshot.
    pub compact_wake: tokio::sync::Notify,
    pub lease_expiries: AtomicU64,
    pub last_expiry: Mutex<Option<(Vec<IpNet>, Instant)>>,
}

impl Shared {
    pub fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Hand the changed `prefixes` to the drivers as they are now in `store`, with the drain
    /// overlay applied; O(changed), not O(table).
    fn publish(&self, store: &RouteStore, prefixes: impl IntoIterator<Item = IpNet>) {
        drop(self.publish_routes(prefixes.into_iter().map(|p| (p, store.get(&p).cloned()))));
    }

    /// Hand these changes (the route as stored now, `None`: withdrawn) to the drivers, with
    /// the drain overlay applied; returns the routes the drivers no longer see, for the
    /// caller to free once that is off the drivers' way.
    fn publish_routes(&self, changes: impl IntoIterator<Item = (IpNet, Option<Route>)>) -> Retired {
        let draining = lock(&self.draining);
        let changes = changes.into_iter().map(|(p, route)| {
            let route = route.map(|mut r| {
                if draining.contains(&p) && !r.communities.contains(&Community::GRACEFUL_SHUTDOWN) {
                    r.communities.push(Community::GRACEFUL_SHUTDOWN);
                }
                r
            });
            (p, route)
        });
        let (version, retired) = write(&self.desired_log).apply_retiring(changes);
        self.desired.send_if_modified(|v| {
            let changed = *v != version;
            *v = version;
            changed
        });
        retired
    }

    /// Compact the route journal into a new snapshot if it is due. The daemon's compaction
    /// task calls this a moment after a change made it due, so the snapshot is not written
    /// while the drivers send that change; the journal is durable meanwhile.
    pub fn compact_journal(&self) {
        if let Err(e) = lock(&self.store).compact_if_due() {
            tracing::warn!(error = %e, "cannot compact the route journal; changes stay journaled");
        }
    }

    /// Withdraw the leased routes whose lease ran out; returns the next deadline (Unix ms).
    /// `at_start`: the speaker was down meanwhile (logged as such).
    pub fn expire_leases(&self, at_start: bool) -> Option<u64> {
        let mut leases = lock(&self.leases);
        let now = now_ms();
        let expired = leases.expired(lock(&self.store).routes().values(), now);
        if !expired.is_empty() {
            // Written before the peers hear of it: a failed write retried every tick must not
            // withdraw and re-announce the routes to every peer each time.
            match self.change_in_order(Change::Withdraw(expired.clone()), Order::WriteFirst) {
                Ok(_) => {
                    if let Err(e) = leases.forget(&expired) {
                        tracing::error!(error = %e, "cannot persist leases");
                    }
                    let n = expired.len() as u64;
                    self.lease_expiries.fetch_add(n, Ordering::Relaxed);
                    for p in &expired {
                        if at_start {
                            tracing::warn!(prefix = %p, "lease ran out while the speaker was down: route withdrawn");
                        } else {
                            tracing::warn!(prefix = %p, "lease not renewed in time: route withdrawn");
                        }
                    }
                    *lock(&self.last_expiry) = Some((expired.clone(), Instant::now()));
                    self.emit(Event::LeaseExpired { prefixes: expired });
                }
                // Retried at the next tick; the route stays announced meanwhile.
                Err(e) => tracing::error!(error = %e, "cannot withdraw routes whose lease expired"),
            }
        }
        leases.next_deadline()
    }

    fn lease_report(&self, leases: &Leases) -> LeaseReport {
        let now = now_ms();
        let store = lock(&self.store);
        let last = lock(&self.last_expiry).clone();
        LeaseReport {
            leases: store
                .routes()
                .values()
                .filter_map(|r| {
                    Some(LeaseInfo {
                        prefix: r.prefix,
                        lease_secs: r.lease_secs?,
                        expires_in_ms: leases.until(&r.prefix).map_or(0, |u| u.saturating_sub(now)),
                    })
                })
                .collect(),
            expiries_total: self.lease_expiries.load(Ordering::Relaxed),
            last_expired_secs_ago: last.as_ref().map(|(_, t)| t.elapsed().as_secs()),
            last_expired: last.map(|(p, _)| p).unwrap_or_default(),
        }
    }

    /// Drain every announced route (SIGTERM with `shutdown_graceful_secs`); returns how many.
    pub fn drain_all(&self) -> usize {
        self.drain(self.announced_prefixes(), true).unwrap_or(0)
    }

    /// The prefixes of the desired routes, in order.
    fn announced_prefixes(&self) -> Vec<IpNet> {
        lock(&self.store).routes().keys().copied().collect()
    }

    /// Withdraw `prefixes` with the leases lock held (as every change of the desired routes
    /// is made), then forget their leases.
    fn withdraw_holding(
        &self,
        leases: &mut Leases,
        prefixes: Vec<IpNet>,
    ) -> Result<ChangeResponse, ApiError> {
        let resp = self.change(Change::Withdraw(prefixes.clone()))?;
        if let Err(e) = leases.forget(&prefixes) {
            // Harmless: a lease of a route that is gone is never looked at.
            tracing::warn!(error = %e, "cannot persist leases");
        }
        Ok(resp)
    }

    /// Apply a change: checked, handed to the drivers, made durable, then answered. The
    /// drivers get it before the store has written it, so the first UPDATEs are on the wire
    /// while the journal is written and synced; the answer still waits for the sync. Should
    /// the write fail, a second `desired_changed` (with the stored, earlier generation) says
    /// the change is taken back, the drivers get the stored routes of those prefixes back, and
    /// the call fails: nothing unacknowledged stays announced. A crash between the two leaves
    /// no trace of the change once the speaker is back.
    fn change(&self, change: Change) -> Result<ChangeResponse, ApiError> {
        self.change_in_order(change, Order::PublishFirst)
    }

    fn change_in_order(&self, change: Change, order: Order) -> Result<ChangeResponse, ApiError> {
        let mut store = lock(&self.store);
        let applied = store.prepare(change).map_err(|e| {
            if e.is_bad_input() {
                ApiError::BadRequest(e.to_string())
            } else {
                ApiError::Internal(e.to_string())
            }
        })?;
        let changed = applied.announced.len() + applied.withdrawn.len();
        let generation = applied.generation;
        if changed == 0 {
            return Ok(ChangeResponse {
                changed,
                generation,
            });
        }
        if order == Order::WriteFirst {
            let prefixes: Vec<IpNet> = applied.prefixes().collect();
            store.commit(applied).map_err(|f| not_written(&f.error))?;
            self.emit(Event::DesiredChanged {
                generation,
                changed,
            });
            self.publish(&store, prefixes);
        } else {
            // Emit before the drivers see the change, so that the events stream keeps causal
            // order: desired_changed, then the routes_sent it causes.
            self.emit(Event::DesiredChanged {
                generation,
                changed,
            });
            // `applied` holds the routes as they will be stored: no lookup in the store.
            let retired = self.publish_routes(applied_changes(&applied));
            let committed = store.commit(applied);
            // Freed after the write: the drivers are sending meanwhile.
            drop(retired);
            if let Err(failed) = committed {
                // The events say it before the drivers act on it, as above: the state is
                // back at the stored generation.
                self.emit(Event::DesiredChanged {
                    generation: store.generation(),
                    changed,
                });
                self.publish(&store, failed.applied.prefixes());
                return Err(not_written(&failed.error));
            }
        }
        // Not now: a snapshot of a large table takes CPU the drivers need while they send
        // this change (see `compact_journal`).
        if store.compaction_due() {
            self.compact_wake.notify_one();
        }
        Ok(ChangeResponse {
            changed,
            generation,
        })
    }
}

/// When the peers hear of a change: before the store has written it (the API's changes: the
/// UPDATEs leave while the journal is synced) or after (lease expiry, retried every tick
/// while the write fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    PublishFirst,
    WriteFirst,
}

/// The API error for a change the store could not write.
fn not_written(error: &crate::speaker::store::StoreError) -> ApiError {
    tracing::error!(%error, "change refused: the desired routes could not be written");
    ApiError::Internal(format!(
        "{error}; the change was not applied (the peers got it and were told to forget it \
         again; should the state file hold it anyway, a restart loads it): check the state \
         directory's disk space and permissions, then retry"
    ))
}

/// What a batch changed, as the desired log takes it: the new routes, then the gone prefixes.
fn applied_changes(applied: &Applied) -> impl Iterator<Item = (IpNet, Option<Route>)> + '_ {
    applied
        .announced
        .iter()
        .map(|r| (r.prefix, Some(r.clone())))
        .chain(applied.withdrawn.iter().map(|p| (*p, None)))
}

impl Control for Shared {
    fn peers(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|p| {
                let s = lock(&p.status);
                let graceful_restart = s.gr.local.then(|| {
                    let stale = lock(&p.rib_in).stale_count() as u64;
                    GracefulRestartStatus {
                        peer_capable: s.gr.peer,
                        notification: s.gr.notification,
                        state: if s.gr.stale_until.is_some() {
                            "helping"
                        } else if s.gr.peer {
                            "ready"
                        } else {
                            "off"
                        }
                        .into(),
                        stale_routes: stale,
                        stale_timer_secs: s
                            .gr
                            .stale_until
                            .map(|t| t.saturating_duration_since(Instant::now()).as_secs()),
                    }
                });
                PeerStatus {
                    address: p.config.address,
                    remote_as: p.config.remote_as.0,
                    description: p.config.description.clone(),
                    state: s.state,
                    uptime_secs: s.established_at.map(|t| t.elapsed().as_secs()),
                    prefixes_sent: s.prefixes_sent,
                    prefixes_received: lock(&p.rib_in).len() as u64,
                    last_error: s.last_error.clone(),
                    graceful_restart,
                    bfd: p.bfd.as_ref().map(|b| bfd_status(&p.config, &b.snapshot())),
                    md5: p.config.md5_password.is_some(),
                    ttl_security: p.config.ttl_security.map(|h| h.0),
                    send_hold_time_secs: (p.config.send_hold_time.0 > 0)
                        .then_some(p.config.send_hold_time.0),
                }
            })
            .collect()
    }

    fn announced(&self) -> Vec<Route> {
        lock(&self.store).routes().values().cloned().collect()
    }

    fn received(&self, peer: Option<IpAddr>) -> Result<Vec<ReceivedRoute>, ApiError> {
        if let Some(addr) = peer {
            if !self.peers.iter().any(|p| p.config.address == addr) {
                return Err(ApiError::NotFound(format!(
                    "peer {addr} is not a configured neighbor"
                )));
            }
        }
        let mut out = Vec::new();
        for p in self
            .peers
            .iter()
            .filter(|p| peer.is_none_or(|a| a == p.config.address))
        {
            out.extend(lock(&p.rib_in).routes().into_iter().map(|r| {
                ReceivedRoute {
                    peer: p.config.address,
                    prefix: r.prefix,
                    next_hop: r.next_hop,
                    as_path: r.as_path.to_string(),
                    origin: r.origin.map_or("-", |o| o.name()).to_owned(),
                    med: r.med,
                    local_pref: r.local_pref,
                    communities: r.communities.iter().map(ToString::to_string).collect(),
                    large_communities: r
                        .large_communities
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    stale: r.stale,
                }
            }));
        }
        Ok(out)
    }

    fn announce(&self, routes: Vec<Route>) -> Result<ChangeResponse, ApiError> {
        // Under the leases lock, so the lease task never sees a new leased route without
        // its deadline. An announce (even an unchanged one) starts or renews the lease.
        let mut leases = lock(&self.leases);
        let resp = self.change(Change::Announce(routes.clone()))?;
        leases.renew(routes.iter(), now_ms()).map_err(|e| {
            tracing::error!(error = %e, "routes announced, but their leases could not be written");
            ApiError::Internal(format!("routes announced, but leases not persisted: {e}"))
        })?;
        drop(leases);
        // Only a leased route can move the next deadline earlier; waking the lease task for
        // others would walk the whole table on every change.
        if routes.iter().any(|r| r.lease_secs.is_some()) {
            self.lease_wake.notify_one();
        }
        Ok(resp)
    }

    fn withdraw(&self, prefixes: Vec<IpNet>) -> Result<ChangeResponse, ApiError> {
        self.withdraw_holding(&mut lock(&self.leases), prefixes)
    }

    fn withdraw_all(&self) -> Result<ChangeResponse, ApiError> {
        // Listed under the leases lock, which every change of the desired routes holds: the
        // list is the table as the change finds it.
        let mut leases = lock(&self.leases);
        self.withdraw_holding(&mut leases, self.announced_prefixes())
    }

    fn leases(&self) -> LeaseReport {
        self.lease_report(&lock(&self.leases))
    }

    fn renew_leases(&self, prefixes: Vec<IpNet>) -> Result<LeaseReport, ApiError> {
        let mut leases = lock(&self.leases);
        let routes: Vec<Route> = {
            let store = lock(&self.store);
            if prefixes.is_empty() {
                store
                    .routes()
                    .values()
                    .filter(|r| r.lease_secs.is_some())
                    .cloned()
                    .collect()
            } else {
                let missing: Vec<String> = prefixes
                    .iter()
                    .filter(|p| store.get(p).is_none_or(|r| r.lease_secs.is_none()))
                    .map(ToString::to_string)
                    .collect();
                if !missing.is_empty() {
                    return Err(ApiError::NotFound(format!(
                        "no leased route for {}: expired or never announced with a lease; announce it again",
                        missing.join(", ")
                    )));
                }
                prefixes
                    .iter()
                    .filter_map(|p| store.get(p).cloned())
                    .collect()
            }
        };
        leases
            .renew(routes.iter(), now_ms())
            .map_err(|e| ApiError::Internal(format!("cannot persist leases: {e}")))?;
        Ok(self.lease_report(&leases))
    }

    fn drain(&self, prefixes: Vec<IpNet>, on: bool) -> Result<usize, ApiError> {
        let store = lock(&self.store);
        let present = prefixes.iter().filter(|p| store.get(p).is_some()).count();
        {
            let mut draining = lock(&self.draining);
            for p in prefixes.iter().copied() {
                if on {
                    draining.insert(p);
                } else {
                    draining.remove(&p);
                }
            }
        }
        if on {
            tracing::info!(
                routes = present,
                "graceful shutdown: announcing with GRACEFUL_SHUTDOWN"
            );
        }
        self.publish(&store, prefixes);
        Ok(present)
    }

    fn reset_peer(&self, peer: IpAddr, hard: bool) -> Result<ResetResponse, ApiError> {
        let p = self
            .peers
            .iter()
            .find(|p| p.config.address == peer)
            .ok_or_else(|| {
                ApiError::NotFound(format!("peer {peer} is not a configured neighbor"))
            })?;
        let state = lock(&p.status).state;
        p.input
            .try_send(super::peer::PeerInput::Reset { hard })
            .map_err(|e| ApiError::Internal(format!("peer {peer}: driver busy or gone: {e}")))?;
        Ok(ResetResponse { peer, hard, state })
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn metrics(&self) -> String {
        let mut m = String::new();
        let desired = lock(&self.store).len();
        let _ = writeln!(
            m,
            "# HELP ferry_desired_routes Routes the speaker is asked to announce."
        );
        let _ = writeln!(
            m,
            "# TYPE ferry_desired_routes gauge\nferry_desired_routes {desired}"
        );
        let _ = writeln!(
            m,
            "# HELP ferry_peer_established 1 when the session is Established."
        );
        let _ = writeln!(m, "# TYPE ferry_peer_established gauge");
        for p in &self.peers {
            let up = u8::from(lock(&p.status).state == crate::session::State::Established);
            let _ = writeln!(
                m,
                "ferry_peer_established{{peer=\"{}\"}} {up}",
                p.config.address
            );
        }
        let _ = writeln!(m, "# TYPE ferry_peer_prefixes_sent gauge");
        for p in &self.peers {
            let _ = writeln!(
                m,
                "ferry_peer_prefixes_sent{{peer=\"{}\"}} {}",
                p.config.address,
                lock(&p.status).prefixes_sent
            );
        }
        let _ = writeln!(m, "# TYPE ferry_peer_prefixes_received gauge");
        for p in &self.peers {
            let _ = writeln!(
                m,
                "ferry_peer_prefixes_received{{peer=\"{}\"}} {}",
                p.config.address,
                lock(&p.rib_in).len()
            );
        }
        let _ = writeln!(m, "# TYPE ferry_peer_updates_sent_total counter");
        for p in &self.peers {
            let _ = writeln!(
                m,
                "ferry_peer_updates_sent_total{{peer=\"{}\"}} {}",
                p.config.address,
                p.updates_sent.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            m,
            "# HELP ferry_peer_stale_routes Routes kept from a restarting peer (graceful restart helper)."
        );
        let _ = writeln!(m, "# TYPE ferry_peer_stale_routes gauge");
        for p in &self.peers {
            let _ = writeln!(
                m,
                "ferry_peer_stale_routes{{peer=\"{}\"}} {}",
                p.config.address,
                lock(&p.rib_in).stale_count()
            );
        }
        let _ = writeln!(
            m,
            "# HELP ferry_peer_graceful_restart_helping 1 while the peer's stale routes wait for its End-of-RIB or restart timer."
        );
        let _ = writeln!(m, "# TYPE ferry_peer_graceful_restart_helping gauge");
        for p in &self.peers {
            let helping = u8::from(lock(&p.status).gr.stale_until.is_some());
            let _ = writeln!(
                m,
                "ferry_peer_graceful_restart_helping{{peer=\"{}\"}} {helping}",
                p.config.address
            );
        }
        security_metrics(&mut m, &self.peers);
        bfd_metrics(&mut m, &self.peers);
        let _ = writeln!(
            m,
            "# HELP ferry_lease_expiries_total Leased routes withdrawn because their lease was not renewed."
        );
        let _ = writeln!(
            m,
            "# TYPE ferry_lease_expiries_total counter\nferry_lease_expiries_total {}",
            self.lease_expiries.load(Ordering::Relaxed)
        );
        let (leased, lease_failures) = {
            let l = lock(&self.leases);
            (l.len(), l.write_failures())
        };
        let _ = writeln!(
            m,
            "# HELP ferry_state_write_failures_total Writes to state_dir that failed (each refused its change, or a compaction waits for the next try).\n\
             # TYPE ferry_state_write_failures_total counter\n\
             ferry_state_write_failures_total{{file=\"routes\"}} {}\n\
             ferry_state_write_failures_total{{file=\"leases\"}} {lease_failures}",
            lock(&self.store).write_failures()
        );
        let _ = writeln!(
            m,
            "# HELP ferry_leased_routes Routes announced with a lease.\n# TYPE ferry_leased_routes gauge\nferry_leased_routes {leased}"
        );
        let _ = writeln!(m, "# TYPE ferry_peer_updates_received_total counter");
        for p in &self.peers {
            let _ = writeln!(
                m,
                "ferry_peer_updates_received_total{{peer=\"{}\"}} {}",
                p.config.address,
                p.updates_received.load(Ordering::Relaxed)
            );
        }
        update_group_metrics(&mut m, &lock(&self.groups));
        m
    }
}

/// Update groups: how many, and how much encoding and memory sharing saves.
fn update_group_metrics(m: &mut String, groups: &UpdateGroups) {
    let s = groups.stats();
    let _ = writeln!(
        m,
        "# HELP ferry_update_groups Update groups of established sessions (one encoding each).\n# TYPE ferry_update_groups gauge\nferry_update_groups {}",
        s.groups
    );
    let _ = writeln!(
        m,
        "# HELP ferry_update_messages_encoded_total UPDATEs encoded, once per group.\n# TYPE ferry_update_messages_encoded_total counter\nferry_update_messages_encoded_total {}",
        s.messages_encoded
    );
    let _ = writeln!(
        m,
        "# HELP ferry_update_group_splits_total Members split off for lagging or a route refresh.\n# TYPE ferry_update_group_splits_total counter\nferry_update_group_splits_total {}",
        s.splits
    );
    let _ = writeln!(
        m,
        "# HELP ferry_update_group_log_bytes Octets of encoded UPDATEs held for members.\n# TYPE ferry_update_group_log_bytes gauge\nferry_update_group_log_bytes {}",
        groups.log_bytes()
    );
}

/// Session security per peer (RFC 2385 MD5, RFC 5082 GTSM, RFC 9687 send hold time), from the
/// config; 0 means off. Never the key itself.
fn security_metrics(m: &mut String, peers: &[Arc<PeerShared>]) {
    let _ = writeln!(
        m,
        "# HELP ferry_peer_md5 1 when TCP MD5 signatures (RFC 2385) protect the session.\n# TYPE ferry_peer_md5 gauge"
    );
    for p in peers {
        let on = u8::from(p.config.md5_password.is_some());
        let _ = writeln!(m, "ferry_peer_md5{{peer=\"{}\"}} {on}", p.config.address);
    }
    let _ = writeln!(
        m,
        "# HELP ferry_peer_ttl_security_hops GTSM (RFC 5082) hop limit of the peer; 0 when off.\n# TYPE ferry_peer_ttl_security_hops gauge"
    );
    for p in peers {
        let hops = p.config.ttl_security.map_or(0, |h| h.0);
        let _ = writeln!(
            m,
            "ferry_peer_ttl_security_hops{{peer=\"{}\"}} {hops}",
            p.config.address
        );
    }
    let _ = writeln!(
        m,
        "# HELP ferry_peer_send_hold_time_seconds RFC 9687 send hold time; 0 when off.\n# TYPE ferry_peer_send_hold_time_seconds gauge"
    );
    for p in peers {
        let _ = writeln!(
            m,
            "ferry_peer_send_hold_time_seconds{{peer=\"{}\"}} {}",
            p.config.address, p.config.send_hold_time.0
        );
    }
    // A key mismatch leaves no other trace: the kernel drops the segments without an answer.
    if peers.iter().any(|p| p.config.md5_password.is_some()) {
        let netstat = std::fs::read_to_string("/proc/net/netstat").ok();
        if let Some(drops) = netstat
            .as_deref()
            .and_then(super::security::kernel_md5_drops)
        {
            let _ = writeln!(
                m,
                "# HELP ferry_tcp_md5_drops_total TCP segments the kernel dropped for MD5 (RFC 2385): no signature where a key is set (not_found), a signature where none is (unexpected), a wrong one (failure); whole network namespace.\n# TYPE ferry_tcp_md5_drops_total counter"
            );
            for (reason, n) in drops {
                let _ = writeln!(m, "ferry_tcp_md5_drops_total{{reason=\"{reason}\"}} {n}");
            }
        }
    }
}

/// `ferry status`'s view of a BFD session.
fn bfd_status(config: &NeighborConfig, s: &crate::bfd::Snapshot) -> crate::api::BfdStatus {
    let (min_tx_ms, min_rx_ms, multiplier) = config.bfd.map_or((0, 0, 0), |b| {
        (b.min_tx_ms.0, b.min_rx_ms.0, b.multiplier.0)
    });
    crate::api::BfdStatus {
        state: s.state.to_string(),
        remote_state: s.remote_state.to_string(),
        local_discriminator: s.local_discriminator,
        remote_discriminator: s.remote_discriminator,
        diagnostic: s.local_diag.to_string(),
        remote_diagnostic: s.remote_diag.to_string(),
        min_tx_ms,
        min_rx_ms,
        multiplier,
        tx_interval_ms: s.tx_interval.as_millis() as u64,
        detection_time_ms: s.detection_time.map(|d| d.as_millis() as u64),
        transitions: s.transitions,
    }
}

/// BFD per peer that has it configured: Up or not, and state changes.
fn bfd_metrics(m: &mut String, peers: &[Arc<PeerShared>]) {
    let sessions: Vec<_> = peers
        .iter()
        .filter_map(|p| Some((p.config.address, p.bfd.as_ref()?.snapshot())))
        .collect();
    let _ = writeln!(
        m,
        "# HELP ferry_peer_bfd_up 1 when the peer's BFD session (RFC 5880) is Up.\n# TYPE ferry_peer_bfd_up gauge"
    );
    for (peer, s) in &sessions {
        let up = u8::from(s.state == crate::bfd::State::Up);
        let _ = writeln!(m, "ferry_peer_bfd_up{{peer=\"{peer}\"}} {up}");
    }
    let _ = writeln!(
        m,
        "# HELP ferry_peer_bfd_transitions_total BFD session state changes.\n# TYPE ferry_peer_bfd_transitions_total counter"
    );
    for (peer, s) in &sessions {
        let _ = writeln!(
            m,
            "ferry_peer_bfd_transitions_total{{peer=\"{peer}\"}} {}",
            s.transitions
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(dir: &std::path::Path) -> Shared {
        let store = RouteStore::load(dir).unwrap();
        let desired_log = DesiredLog::new(store.routes().values().cloned());
        Shared {
            store: Mutex::new(store),
            desired: watch::channel(0).0,
            desired_log: RwLock::new(desired_log),
            groups: Mutex::new(UpdateGroups::default()),
            next_member: Default::default(),
            events: broadcast::channel(16).0,
            peers: Vec::new(),
            draining: Default::default(),
            leases: Mutex::new(Leases::load(dir).unwrap()),
            lease_wake: tokio::sync::Notify::new(),
            compact_wake: tokio::sync::Notify::new(),
            lease_expiries: Default::default(),
            last_expiry: Mutex::new(None),
        }
    }

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    /// What the drivers are told, in prefix order.
    fn published(s: &Shared) -> Vec<IpNet> {
        read(&s.desired_log).routes().map(|r| r.prefix).collect()
    }

    /// A speaker with `a` announced and written, whose next write fails: the first change
    /// writes a snapshot, later ones append to the journal, and a directory where the journal
    /// goes makes that fail (as root too). Returns the journal's path, to unblock it.
    fn one_route_then_writes_fail() -> (tempfile::TempDir, Shared, Route, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let s = shared(dir.path());
        let a = route("198.51.100.0/24");
        s.announce(vec![a.clone()]).unwrap();
        assert_eq!(published(&s), vec![a.prefix]);
        let journal = dir.path().join(crate::speaker::store::JOURNAL_FILE);
        std::fs::create_dir(&journal).unwrap();
        (dir, s, a, journal)
    }

    /// The drivers get a change before it is written; when the write fails they get the
    /// stored routes back, the call fails, and the next change that can be written goes out.
    #[test]
    fn a_change_that_cannot_be_written_is_published_back_and_fails() {
        let (dir, s, a, journal) = one_route_then_writes_fail();
        let mut events = s.events.subscribe();
        let b = route("203.0.113.0/24");
        let err = s.announce(vec![b.clone()]).unwrap_err();
        assert!(format!("{err:?}").contains("not applied"), "{err:?}");
        assert_eq!(published(&s), vec![a.prefix], "b is taken back");
        let err = s.withdraw(vec![a.prefix]).unwrap_err();
        assert!(format!("{err:?}").contains("not applied"), "{err:?}");
        assert_eq!(published(&s), vec![a.prefix], "a is put back");
        assert_eq!(lock(&s.store).generation(), 1);
        // Each failed change: desired_changed for the change, then one for the undo.
        let mut generations = Vec::new();
        while let Ok(Event::DesiredChanged { generation, .. }) = events.try_recv() {
            generations.push(generation);
        }
        assert_eq!(generations, vec![2, 1, 2, 1]);
        // Both failures are counted where an operator looks.
        let m = s.metrics();
        assert!(
            m.contains("ferry_state_write_failures_total{file=\"routes\"} 2"),
            "{m}"
        );

        std::fs::remove_dir(&journal).unwrap();
        s.announce(vec![b.clone()]).unwrap();
        assert_eq!(published(&s), vec![a.prefix, b.prefix]);
        drop(s);
        let reloaded = RouteStore::load(dir.path()).unwrap();
        assert_eq!(
            reloaded.routes().keys().copied().collect::<Vec<_>>(),
            vec![a.prefix, b.prefix]
        );
    }

    /// A lease expiry is written before the peers hear of it: while the write fails (it is
    /// retried every tick) the peers see nothing, not a withdraw and a re-announce each time.
    #[test]
    fn a_write_first_change_that_cannot_be_written_is_never_published() {
        let (_dir, s, a, journal) = one_route_then_writes_fail();
        let version = read(&s.desired_log).version();
        let mut events = s.events.subscribe();
        let err = s
            .change_in_order(Change::Withdraw(vec![a.prefix]), Order::WriteFirst)
            .unwrap_err();
        assert!(format!("{err:?}").contains("not applied"), "{err:?}");
        assert_eq!(read(&s.desired_log).version(), version, "nothing published");
        assert_eq!(published(&s), vec![a.prefix]);
        assert!(events.try_recv().is_err(), "no event");
        std::fs::remove_dir(&journal).unwrap();
        s.change_in_order(Change::Withdraw(vec![a.prefix]), Order::WriteFirst)
            .unwrap();
        assert!(published(&s).is_empty());
        assert!(matches!(
            events.try_recv(),
            Ok(Event::DesiredChanged {
                generation: 2,
                changed: 1
            })
        ));
    }
}
