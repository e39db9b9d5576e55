//! The fences this speaker holds: per fence name, the highest fencing token a state-changing
//! call has carried, persisted in `state_dir/fences.json` so a restarted speaker still
//! refuses an old leader (fencing tokens, Kleppmann; issue 17 item 3).
//!
//! Contract:
//! - [`FenceTable::admit`] takes a token equal to or higher than the one held and refuses a
//!   lower one ([`Refused`]: the fence, the token held and the one offered). A higher token
//!   (or a new fence) is written to the file ([`crate::durable::replace()`]: temp file,
//!   fsync, rename) before `admit` returns, so the caller acts only on a raise that is
//!   durable; a failed write changes nothing, in memory or on disk.
//! - The caller holds the table's lock across the change it admits, so a refused stale
//!   holder can never slip a change in after a newer one (the speaker takes it under the
//!   leases lock, which every change of the desired routes holds).
//! - At most [`MAX_FENCES`] fences: a new name beyond that is refused, so a client cannot
//!   grow the file without bound.
//! - Refusals are counted per fence in memory (for `/metrics`), not persisted.
//!
//! Never does: look at headers (see [`crate::api::fence`]), decide whether fences are required
//! (the backend does, from `speaker.require_fence`), or forget a fence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::{Fence, HeldFence};

/// The file in `state_dir`.
pub const FENCES_FILE: &str = "fences.json";

/// The most fences one speaker holds.
pub const MAX_FENCES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Held {
    token: u64,
    /// When the token was raised to this value, milliseconds since the Unix epoch.
    since_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    fences: BTreeMap<String, Held>,
}

/// The held tokens, as on disk, and the refusals since start.
#[derive(Debug)]
pub struct FenceTable {
    path: PathBuf,
    held: BTreeMap<String, Held>,
    refused: BTreeMap<String, u64>,
}

/// A token lower than the one held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub fence: String,
    pub held: u64,
    pub offered: u64,
}

/// Why a fence was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a fences file ({source}); fix it (removing it forgets every held token, so an old leader's calls would be taken again)", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("fence {0:?}: this speaker already holds {MAX_FENCES} fences and takes no new one")]
    Full(String),
    #[error("cannot persist the fence token: {0}")]
    Write(#[from] crate::durable::ReplaceError),
}

impl FenceTable {
    /// The table in `state_dir`; empty when the file does not exist.
    pub fn load(state_dir: &Path) -> Result<Self, FenceError> {
        let path = state_dir.join(FENCES_FILE);
        let held = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File =
                    serde_json::from_slice(&bytes).map_err(|source| FenceError::Parse {
                        path: path.clone(),
                        source,
                    })?;
                if let Some(bad) = file
                    .fences
                    .keys()
                    .find_map(|n| crate::api::fence::check_name(n).err())
                {
                    return Err(FenceError::Parse {
                        path,
                        source: serde::de::Error::custom(bad),
                    });
                }
                file.fences
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(FenceError::Read { path, source }),
        };
        Ok(Self {
            path,
            held,
            refused: BTreeMap::new(),
        })
    }

    /// Take `fence` if its token is at least the one held (raising and persisting the held
    /// token when higher, as of `now_ms`); `Ok(Err(Refused))` when it is lower.
    pub fn admit(&mut self, fence: &Fence, now_ms: u64) -> Result<Result<(), Refused>, FenceError> {
        match self.held.get(&fence.name) {
            Some(h) if fence.token < h.token => {
                *self.refused.entry(fence.name.clone()).or_default() += 1;
                return Ok(Err(Refused {
                    fence: fence.name.clone(),
                    held: h.token,
                    offered: fence.token,
                }));
            }
            Some(h) if fence.token == h.token => return Ok(Ok(())),
            Some(_) => {}
            None if self.held.len() >= MAX_FENCES => {
                return Err(FenceError::Full(fence.name.clone()))
            }
            None => {}
        }
        let mut next = self.held.clone();
        next.insert(
            fence.name.clone(),
            Held {
                token: fence.token,
                since_ms: now_ms,
            },
        );
        let text = serde_json::to_vec_pretty(&File {
            fences: next.clone(),
        })
        .map_err(|source| FenceError::Parse {
            path: self.path.clone(),
            source,
        })?;
        crate::durable::replace(&self.path, &text, 0o600)?;
        self.held = next;
        Ok(Ok(()))
    }

    /// Every fence held, by name.
    pub fn list(&self) -> Vec<HeldFence> {
        self.held
            .iter()
            .map(|(name, h)| HeldFence {
                fence: name.clone(),
                token: h.token,
                since_ms: h.since_ms,
                refused: self.refused.get(name).copied().unwrap_or(0),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(name: &str, token: u64) -> Fence {
        Fence::new(name, token).unwrap()
    }

    #[test]
    fn lower_is_refused_equal_and_higher_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = FenceTable::load(dir.path()).unwrap();
        assert_eq!(t.admit(&fence("p", 5), 1).unwrap(), Ok(()));
        assert_eq!(
            t.admit(&fence("p", 4), 2).unwrap(),
            Err(Refused {
                fence: "p".into(),
                held: 5,
                offered: 4
            })
        );
        assert_eq!(t.admit(&fence("p", 5), 3).unwrap(), Ok(()));
        assert_eq!(t.admit(&fence("p", 7), 4).unwrap(), Ok(()));
        assert!(t.admit(&fence("p", 6), 5).unwrap().is_err());
        // Another fence is separate: a low token there is new.
        assert_eq!(t.admit(&fence("q", 0), 6).unwrap(), Ok(()));
        let list = t.list();
        assert_eq!(list.len(), 2);
        assert_eq!(
            (
                list[0].fence.as_str(),
                list[0].token,
                list[0].since_ms,
                list[0].refused
            ),
            ("p", 7, 4, 2)
        );
        assert_eq!((list[1].token, list[1].refused), (0, 0));
    }

    #[test]
    fn held_tokens_survive_a_reload_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = FenceTable::load(dir.path()).unwrap();
        t.admit(&fence("plan-a", u64::MAX), 1).unwrap().unwrap();
        t.admit(&fence("plan-b", 3), 1).unwrap().unwrap();
        let mut again = FenceTable::load(dir.path()).unwrap();
        assert_eq!(
            again.admit(&fence("plan-a", u64::MAX - 1), 2).unwrap(),
            Err(Refused {
                fence: "plan-a".into(),
                held: u64::MAX,
                offered: u64::MAX - 1
            })
        );
        assert!(again.admit(&fence("plan-b", 2), 2).unwrap().is_err());
        // Refusals are not persisted.
        assert_eq!(FenceTable::load(dir.path()).unwrap().list()[0].refused, 0);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = FenceTable::load(dir.path()).unwrap();
        t.admit(&fence("p", 1), 1).unwrap().unwrap();
        // The directory gone: the temp file cannot be made.
        t.path = dir.path().join("gone").join(FENCES_FILE);
        let e = t.admit(&fence("p", 9), 2).unwrap_err();
        assert!(matches!(e, FenceError::Write(_)), "{e}");
        assert_eq!(t.list()[0].token, 1);
        assert!(t.admit(&fence("p", 1), 3).unwrap().is_ok());
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FENCES_FILE), b"{\"fences\": 3}").unwrap();
        let e = FenceTable::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(FENCES_FILE) && e.contains("not a fences file"),
            "{e}"
        );
        std::fs::write(
            dir.path().join(FENCES_FILE),
            br#"{"fences": {"a b": {"token": 1, "since_ms": 0}}}"#,
        )
        .unwrap();
        let e = FenceTable::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("\"a b\""), "{e}");
    }

    #[test]
    fn the_table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = FenceTable::load(dir.path()).unwrap();
        for i in 0..MAX_FENCES {
            t.held.insert(
                format!("f{i}"),
                Held {
                    token: 0,
                    since_ms: 0,
                },
            );
        }
        let e = t.admit(&fence("one-more", 1), 1).unwrap_err();
        assert!(matches!(e, FenceError::Full(_)), "{e}");
        // Held ones still work.
        assert!(t.admit(&fence("f1", 0), 1).unwrap().is_ok());
    }
}
