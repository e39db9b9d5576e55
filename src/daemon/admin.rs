//! Neighbors an operator took down (`ferry neighbor disable`), persisted in
//! `state_dir/neighbors.json` so that a restarted speaker keeps them down.
//!
//! A disabled neighbor's session was closed with Cease/Administrative Shutdown and the
//! operator's shutdown communication (RFC 4486 §4, RFC 9003 §2); its driver stays in Idle and
//! refuses inbound connections until it is enabled. The file holds one entry per disabled
//! address (its message and when), is replaced atomically on every change
//! ([`crate::durable::replace()`]) before the change is acted on, and is read once at start.
//! An entry for an address that is not (or no longer) a configured neighbor is kept, so that a
//! neighbor removed and added back by a reload comes back as the operator left it.
//!
//! Never does: talk to sessions; the caller sends the drivers their orders.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file in `state_dir`.
pub const ADMIN_FILE: &str = "neighbors.json";

/// Why a neighbor is down, as the operator said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disabled {
    /// The shutdown communication sent in the Cease (RFC 9003), if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub since_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    disabled: BTreeMap<IpAddr, Disabled>,
}

/// The disabled neighbors, as on disk.
#[derive(Debug)]
pub struct AdminStates {
    path: PathBuf,
    disabled: BTreeMap<IpAddr, Disabled>,
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a neighbors file ({source}); fix or remove it (every neighbor then starts enabled)", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::durable::ReplaceError),
}

impl AdminStates {
    /// The states in `state_dir`; none disabled when the file does not exist.
    pub fn load(state_dir: &Path) -> Result<Self, AdminError> {
        let path = state_dir.join(ADMIN_FILE);
        let disabled = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<File>(&bytes)
                    .map_err(|source| AdminError::Parse {
                        path: path.clone(),
                        source,
                    })?
                    .disabled
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(AdminError::Read { path, source }),
        };
        Ok(Self { path, disabled })
    }

    pub fn get(&self, peer: IpAddr) -> Option<&Disabled> {
        self.disabled.get(&peer)
    }

    /// Record `peer` as disabled (or enabled with `None`) and write the file; on a failed
    /// write nothing changes, in memory or on disk.
    pub fn set(&mut self, peer: IpAddr, state: Option<Disabled>) -> Result<(), AdminError> {
        let mut next = self.disabled.clone();
        match state {
            Some(d) => next.insert(peer, d),
            None => next.remove(&peer),
        };
        let text = serde_json::to_vec_pretty(&File {
            disabled: next.clone(),
        })
        .map_err(|source| AdminError::Parse {
            path: self.path.clone(),
            source,
        })?;
        crate::durable::replace(&self.path, &text, 0o600)?;
        self.disabled = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn disabled_neighbors_survive_a_reload_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = AdminStates::load(dir.path()).unwrap();
        assert!(a.get(addr("192.0.2.2")).is_none());
        let d = Disabled {
            message: Some("maintenance ticket 42".into()),
            since_ms: 1_700_000_000_000,
        };
        a.set(addr("192.0.2.2"), Some(d.clone())).unwrap();
        a.set(addr("2001:db8::2"), Some(d.clone())).unwrap();
        a.set(addr("2001:db8::2"), None).unwrap();
        let b = AdminStates::load(dir.path()).unwrap();
        assert_eq!(b.get(addr("192.0.2.2")), Some(&d));
        assert!(b.get(addr("2001:db8::2")).is_none());
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ADMIN_FILE), b"{\"disabled\": 3}").unwrap();
        let e = AdminStates::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(ADMIN_FILE) && e.contains("not a neighbors file"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = AdminStates::load(dir.path()).unwrap();
        // A directory where the file goes: the rename fails.
        std::fs::create_dir(dir.path().join(ADMIN_FILE)).unwrap();
        std::fs::write(dir.path().join(ADMIN_FILE).join("x"), b"").unwrap();
        let d = Disabled {
            message: None,
            since_ms: 1,
        };
        assert!(a.set(addr("192.0.2.2"), Some(d)).is_err());
        assert!(a.get(addr("192.0.2.2")).is_none());
    }
}
