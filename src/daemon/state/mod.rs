//! State the speaker's tasks share, and the lock helpers every task uses on it.
//!
//! The desired routes live in the [`RouteStore`] (persisted before a change is acknowledged,
//! published while it is persisted, and published back should that fail) and are published to
//! the peer drivers as changes: the changed prefixes go into the
//! [`DesiredLog`] (drain and health overlays applied) and its new version into a watch channel, so a change
//! of k prefixes costs O(k log n), not a copy of the table, and each update group applies only
//! the delta. The drivers share the [`UpdateGroups`] (lock order: `desired_log`, then
//! `groups`; the API side takes `store`, `draining`, then `desired_log`). Each
//! peer's status and Adj-RIB-In sit behind their own lock, held only for short reads/writes.
//!
//! One concern per file: [`publish`] changes the desired routes and hands them to the
//! drivers, [`leases`] withdraws routes whose lease ran out, [`fencing`] admits or refuses
//! a change by its fencing token, [`backend`] answers the API
//! ([`crate::api::Control`]), [`neighbors`] its reload and disable/enable, [`health`] the health checks' transitions, and [`metrics`]
//! collects the metrics at each scrape.
//!
//! Audit: every change an API caller (or the speaker itself) makes is logged at info with the
//! target `ferry::audit`, the caller ([`crate::api::Caller`]), the action and what it changed;
//! changes of the desired routes also record the caller and the time in the route journal.
//! A reload (when the speaker gains one) logs the same way: `action = "reload"`.
//!
//! Never does: I/O on sockets; the drivers and the API server own those.

mod backend;
mod fencing;
mod health;
mod leases;
pub mod metrics;
mod neighbors;
mod publish;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use ipnet::IpNet;
use tokio::sync::{broadcast, watch};

use super::admin::AdminStates;
use crate::api::Event;
use crate::config::NeighborConfig;
use crate::speaker::lease::Leases;
use crate::speaker::store::RouteStore;
use crate::speaker::{AdjRibIn, DesiredLog, UpdateGroups};

/// How many prefixes an audit line names before it says how many more.
pub const AUDIT_PREFIXES: usize = 8;

/// The one audit line: `audit: ACTION by CALLER: WHAT` at info, target `ferry::audit`, with
/// the caller and the action as fields too. Every change the API or the speaker makes goes
/// through here; a reload logs `audit(caller, "reload", ...)` (the caller of a SIGHUP is
/// `Caller::Speaker("SIGHUP")`).
pub fn audit(caller: &crate::api::Caller, action: &str, what: std::fmt::Arguments<'_>) {
    tracing::info!(target: "ferry::audit", %caller, action, "audit: {action} by {caller}: {what}");
}

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
    /// The config's `description`, which a reload changes without touching the session.
    pub description: Mutex<Option<String>>,
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
    /// The running neighbors; a reload replaces the list (see `daemon::reload`). Read through
    /// [`Shared::peers`], a copy, so no lock is held while a peer is looked at.
    pub peer_list: RwLock<Vec<Arc<PeerShared>>>,
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
    /// Neighbors the operator disabled, as persisted in `state_dir` (see `daemon::admin`).
    pub admin: Mutex<AdminStates>,
    /// Reload requests to the speaker's main task, which applies them one at a time.
    pub reloads: tokio::sync::mpsc::Sender<ReloadAsk>,
    /// `speaker.allowed_prefixes`: announcements outside these are refused (`None`: any).
    /// Behind a lock so a reload can change it.
    pub allowed_prefixes: RwLock<Option<Vec<IpNet>>>,
    /// The health checks (`daemon::health`), in config order: their states decide the health
    /// overlay applied when routes are published. Lock order: `draining`, then `health`;
    /// never held while `store` is taken.
    pub health: Mutex<Vec<super::health::Gate>>,
    /// The fencing tokens held (`daemon::fences`). Lock order: `leases`, then `fences`; held
    /// across the change it admits, so an admitted stale call cannot land after a newer one.
    pub fences: Mutex<super::fences::FenceTable>,
    /// `speaker.require_fence`: a change from the API without fence headers is refused (428).
    /// Reloadable.
    pub require_fence: std::sync::atomic::AtomicBool,
}

/// A reload asked for through the API, and where its outcome goes.
pub type ReloadAsk = tokio::sync::oneshot::Sender<Result<crate::api::ReloadResponse, String>>;

impl Shared {
    /// The running neighbors, in configuration order.
    pub fn peers(&self) -> Vec<Arc<PeerShared>> {
        read(&self.peer_list).clone()
    }

    /// The running neighbor at `address`.
    pub fn peer(&self, address: std::net::IpAddr) -> Option<Arc<PeerShared>> {
        read(&self.peer_list)
            .iter()
            .find(|p| p.config.address == address)
            .cloned()
    }

    /// How many sessions are Established now.
    pub fn established(&self) -> usize {
        self.peers()
            .iter()
            .filter(|p| lock(&p.status).state == crate::session::State::Established)
            .count()
    }

    pub fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}
