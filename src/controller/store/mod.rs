//! Where the controller keeps what it must not lose: run journals, the plan lock, run history
//! and (through the runs) the keeper's view of the active site.
//!
//! Two stores:
//! - the state directory ([`Store::Dir`], the default): one controller host, files under
//!   `--state-dir`, exactly as [`super::runs`], [`super::lock`] and [`super::journal`] keep
//!   them (format and behaviour unchanged);
//! - etcd ([`Store::Etcd`], `--store etcd://host:2379,host:2379`): one controller per site
//!   sharing one truth ([`etcd`]). Journal records are written by transactions that compare
//!   on revision, so two writers never both append the next step.
//!
//! Contract: [`StoreSpec::parse`] checks the whole `--store` value and its options and names
//! the bad part; nothing here connects until [`StoreSpec::open`].
//!
//! Never does: decide what to run (that is [`super::executor`]) or which sites to renew
//! ([`super::keeper`]).

pub mod etcd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::journal::{Journal, JournalError};
use super::lock::Holder;
use super::runs::{self, Listing};

/// The etcd lease TTL when none is given: see docs/ha.md ("lease arithmetic").
pub const DEFAULT_TTL_SECS: u64 = 5;

/// TLS and credentials for etcd, as its clients take them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdAuth {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub user: Option<String>,
    /// Read from this file (never from the command line, where `ps` would show it).
    pub password_file: Option<PathBuf>,
}

/// A store, checked but not yet connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Dir(PathBuf),
    Etcd {
        /// `http://host:port` or, with a CA, `https://host:port`.
        endpoints: Vec<String>,
        auth: EtcdAuth,
        /// The lease TTL of the plan lock and of leadership.
        ttl_secs: u64,
        /// The bound of each call to etcd.
        timeout: Duration,
    },
}

impl StoreSpec {
    /// `store`: `etcd://host:port[,host:port...]`, or none for the state directory.
    pub fn parse(
        store: Option<&str>,
        state_dir: &Path,
        auth: EtcdAuth,
        ttl_secs: u64,
    ) -> Result<Self, String> {
        let Some(store) = store else {
            return Ok(Self::Dir(state_dir.to_owned()));
        };
        let Some(hosts) = store.strip_prefix("etcd://") else {
            return Err(format!(
                "--store {store:?}: expected etcd://HOST:PORT[,HOST:PORT...] (or no --store for the state directory)"
            ));
        };
        let scheme = if auth.ca.is_some() { "https" } else { "http" };
        let mut endpoints = Vec::new();
        for h in hosts.split(',') {
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| format!("--store {store:?}: member {h:?} has no :PORT"))?;
            let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                format!("--store {store:?}: member {h:?}: port {port:?} is not 1-65535")
            })?;
            if host.is_empty() || host.contains('/') {
                return Err(format!(
                    "--store {store:?}: member {h:?}: bad host {host:?}"
                ));
            }
            endpoints.push(format!("{scheme}://{host}:{port}"));
        }
        if auth.cert.is_some() != auth.key.is_some() {
            return Err(
                "--etcd-cert and --etcd-key go together (a client certificate and its key)".into(),
            );
        }
        if auth.user.is_some() != auth.password_file.is_some() {
            return Err("--etcd-user and --etcd-password-file go together".into());
        }
        if !(2..=3600).contains(&ttl_secs) {
            return Err(format!(
                "--etcd-ttl-secs {ttl_secs}: expected 2-3600 seconds"
            ));
        }
        Ok(Self::Etcd {
            endpoints,
            auth,
            ttl_secs,
            timeout: Duration::from_secs(2),
        })
    }

    /// Connect (etcd) or take the directory as it is.
    pub fn open(&self) -> Result<Store, String> {
        match self {
            Self::Dir(d) => Ok(Store::Dir(d.clone())),
            Self::Etcd {
                endpoints,
                auth,
                ttl_secs,
                timeout,
            } => etcd::EtcdStore::connect(endpoints, auth, *ttl_secs, *timeout)
                .map(|s| Store::Etcd(Box::new(s)))
                .map_err(|e| e.to_string()),
        }
    }
}

/// An open store.
pub enum Store {
    Dir(PathBuf),
    Etcd(Box<etcd::EtcdStore>),
}

impl Store {
    /// For messages: the directory, or the etcd endpoints.
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(d) => d.display().to_string(),
            Self::Etcd(e) => e.describe(),
        }
    }

    /// The runs of `plan` (all plans: `None`), oldest first.
    pub fn runs(&self, plan: Option<&str>) -> Result<Listing, String> {
        match (self, plan) {
            (Self::Dir(d), Some(p)) => runs::of_plan(d, p),
            (Self::Dir(d), None) => runs::list(d),
            (Self::Etcd(e), plan) => e.runs(plan).map_err(|e| e.to_string()),
        }
    }

    /// A new, empty journal for `run_id` of `plan`, written under `lock` (etcd: only while
    /// the lock is still held).
    pub fn create_journal(
        &self,
        plan: &str,
        run_id: &str,
        lock: &PlanLock,
    ) -> Result<Journal, JournalError> {
        match (self, lock) {
            (Self::Dir(d), _) => {
                let dir = super::executor::runs_dir(d);
                Journal::create(&dir.join(format!("{run_id}.jsonl")))
            }
            (Self::Etcd(e), PlanLock::Etcd(l)) => e.journal(plan, run_id, Some(l)),
            (Self::Etcd(e), PlanLock::Dir(_)) => e.journal(plan, run_id, None),
        }
    }

    /// The journal of an existing run, to take it over.
    pub fn open_journal(
        &self,
        run: &runs::RunSummary,
        lock: &PlanLock,
    ) -> Result<Journal, JournalError> {
        match (self, lock) {
            (Self::Dir(_), _) => Journal::open(&run.path),
            (Self::Etcd(e), PlanLock::Etcd(l)) => e.journal(&run.plan, &run.run_id, Some(l)),
            (Self::Etcd(e), PlanLock::Dir(_)) => e.journal(&run.plan, &run.run_id, None),
        }
    }

    /// Take `plan`'s lock now or fail naming the holder.
    pub fn lock(&self, plan: &str, me: &Holder) -> Result<PlanLock, String> {
        match self {
            Self::Dir(d) => super::claim::plan(d, plan, me)
                .map(|c| PlanLock::Dir(c.lock))
                .map_err(|r| r.error),
            Self::Etcd(e) => e
                .lock(plan, me)
                .map(|h| PlanLock::Etcd(Box::new(h)))
                .map_err(|e| e.to_string()),
        }
    }
}

/// A plan's lock in either store; released when dropped.
pub enum PlanLock {
    Dir(super::lock::Lock),
    Etcd(Box<etcd::Held>),
}

impl PlanLock {
    /// The fencing token of this lock: etcd's revision at which it was taken (larger for
    /// every later holder); `None` in the state directory (one host, nothing to fence).
    pub fn token(&self) -> Option<u64> {
        match self {
            Self::Dir(_) => None,
            Self::Etcd(h) => Some(h.token()),
        }
    }
}
