//! One controller per plan: a lock file in the state directory that names its holder.
//!
//! Contract:
//! - [`Lock::acquire`] creates `locks/<plan>.lock` with `create_new` (atomic), holding a
//!   [`Holder`] as JSON. If it exists and its holder is alive, the error names the holder
//!   (pid, user, host, since, what it runs). A holder on this host whose pid is gone died
//!   (`kill -9`, power loss of the process): its lock is taken over, and the caller is told.
//! - The lock is removed when the [`Lock`] is dropped.
//!
//! Never does: guess about holders on other hosts; those locks are only removed by the operator.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::now_ms;

/// Who runs (or ran) something: in the lock and in the journal's audit records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub since_ms: u64,
    /// What it is doing, e.g. "failover web".
    pub doing: String,
}

impl Holder {
    pub fn me(doing: &str) -> Self {
        Self {
            pid: std::process::id(),
            host: hostname(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            since_ms: now_ms(),
            doing: doing.to_owned(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = now_ms().saturating_sub(self.since_ms) / 1000;
        write!(
            f,
            "pid {} ({}@{}, {}, for {age} s)",
            self.pid, self.user, self.host, self.doing
        )
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("plan {plan} is being run by {holder}; wait for it, or if that process is gone for good remove {path}")]
    Held {
        plan: String,
        holder: Box<Holder>,
        path: PathBuf,
    },
    #[error("lock {path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

pub struct Lock {
    path: PathBuf,
    /// The dead holder whose lock was taken over, if any.
    pub took_over: Option<Holder>,
}

impl Lock {
    pub fn acquire(state_dir: &Path, plan: &str, me: &Holder) -> Result<Self, LockError> {
        let dir = state_dir.join("locks");
        let path = dir.join(format!("{plan}.lock"));
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut took_over = None;
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let text = serde_json::to_string(me).unwrap_or_default();
                    f.write_all(text.as_bytes()).map_err(io)?;
                    f.sync_all().map_err(io)?;
                    return Ok(Self { path, took_over });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let holder: Holder =
                        serde_json::from_str(&text).map_err(|e| LockError::Io {
                            path: path.clone(),
                            detail: format!(
                                "unreadable holder ({e}); remove it if no controller runs"
                            ),
                        })?;
                    if holder.host == me.host && !alive(holder.pid) {
                        let _ = std::fs::remove_file(&path);
                        took_over = Some(holder);
                        continue;
                    }
                    return Err(LockError::Held {
                        plan: plan.to_owned(),
                        holder: Box::new(holder),
                        path,
                    });
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(LockError::Io {
            path,
            detail: "another controller took the stale lock at the same time".into(),
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named_and_dead_holders_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = Holder::me("failover web");
        let lock = Lock::acquire(dir.path(), "web", &a).unwrap();
        let e = Lock::acquire(dir.path(), "web", &Holder::me("failover web"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("pid {}", a.pid)) && e.contains(&a.host),
            "{e}"
        );
        let other = Lock::acquire(dir.path(), "db", &a).unwrap();
        drop((lock, other));
        let mut dead = Holder::me("failover web");
        dead.pid = u32::MAX - 1;
        std::fs::write(
            dir.path().join("locks/web.lock"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let lock = Lock::acquire(dir.path(), "web", &a).unwrap();
        assert_eq!(lock.took_over, Some(dead));
    }
}
