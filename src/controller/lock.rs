//! One controller per plan: `locks/<plan>.lock` in the state directory, held with the
//! kernel's `flock` ([`crate::filelock::FileLock`]).
//!
//! Contract:
//! - [`Lock::acquire`] takes the plan's lock at once or fails with [`LockError::Held`], which
//!   names the holder (pid, user, host, since when, what it runs) from the [`Holder`] JSON the
//!   holder wrote into the file. A holder that died (`kill -9`, a crash, power loss) holds
//!   nothing: there is no takeover, so no two controllers can both take over a dead one.
//! - The lock file is never removed, by its holder or anyone else; it is released when the
//!   [`Lock`] drops or its process ends. Its descriptor is close-on-exec, so a hook the
//!   controller started does not keep the plan locked after the controller died.
//! - [`running`] says which process holds a plan's lock now, from the kernel (`/proc/locks`),
//!   without taking the lock (so `status` never makes a starting controller fail).
//!
//! Never does: wait for a lock, or lock across hosts (the state directory is local).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::now_ms;
use crate::filelock::{self, FileLock};

/// Who runs (or ran) something: in the lock and in the journal's audit records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub since_ms: u64,
    /// What it is doing, e.g. "failover web".
    pub doing: String,
    /// The fencing token its speaker calls carry (HA controllers on etcd: the revision at
    /// which it took the plan lock or the leadership); absent in the state directory, so
    /// the files written there are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_token: Option<u64>,
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
            fence_token: None,
        }
    }

    /// The same holder, acting with fencing token `token`.
    pub fn fenced(mut self, token: u64) -> Self {
        self.fence_token = Some(token);
        self
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = now_ms().saturating_sub(self.since_ms) / 1000;
        write!(
            f,
            "pid {} ({}@{}, {}, since {}, for {age} s)",
            self.pid,
            self.user,
            self.host,
            self.doing,
            super::runs::utc(self.since_ms)
        )?;
        match self.fence_token {
            Some(t) => write!(f, " fencing token {t}"),
            None => Ok(()),
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("plan {plan} is being run by {holder}; wait for it to end (`ferry failover status` shows the run)")]
    Held {
        plan: String,
        /// The holding process, from the kernel, when it could be read.
        pid: Option<u32>,
        /// The holder as it named itself, or as the kernel names it.
        holder: String,
        path: PathBuf,
    },
    #[error(transparent)]
    Io(filelock::LockError),
    #[error(transparent)]
    StateDir(#[from] super::statedir::StateDirError),
}

/// The lock file of `plan` under `state_dir`.
pub fn path(state_dir: &Path, plan: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{plan}.lock"))
}

/// A plan's lock, held until dropped.
#[derive(Debug)]
pub struct Lock {
    file: FileLock,
}

impl Lock {
    pub fn acquire(state_dir: &Path, plan: &str, me: &Holder) -> Result<Self, LockError> {
        let path = path(state_dir, plan);
        if let Some(dir) = path.parent() {
            super::statedir::private_dir(dir)?;
        }
        let mut file = match FileLock::try_acquire(&path) {
            Ok(f) => f,
            Err(filelock::LockError::Held { path, holder }) => {
                let pid = running_at(&path);
                return Err(LockError::Held {
                    plan: plan.to_owned(),
                    pid,
                    holder: name_holder(&holder, pid),
                    path,
                });
            }
            Err(e) => return Err(LockError::Io(e)),
        };
        // Test-only: hold the lock unnamed for a while, so that racing controllers meet here.
        #[cfg(debug_assertions)]
        if let Some(ms) = std::env::var("FERRY_TEST_LOCK_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let text = serde_json::to_string(me).unwrap_or_default();
        file.describe(&text).map_err(LockError::Io)?;
        Ok(Self { file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// The holder for a refusal: what the file says, unless the kernel says another process holds
/// it (a new holder between taking the lock and writing its name, which still names the last).
fn name_holder(text: &str, pid: Option<u32>) -> String {
    match (serde_json::from_str::<Holder>(text), pid) {
        (Ok(h), Some(p)) if h.pid != p => {
            format!("pid {p} (it has not named itself yet)")
        }
        (Ok(h), _) => h.to_string(),
        (Err(_), Some(p)) => format!("pid {p} ({text})"),
        (Err(_), None) => text.to_owned(),
    }
}

/// The pid of the process holding `plan`'s lock now, if any (see [`running_at`]).
pub fn running(state_dir: &Path, plan: &str) -> Option<u32> {
    running_at(&path(state_dir, plan))
}

/// The pid holding an exclusive `flock` on the file at `path`, from `/proc/locks`; `None` when
/// nobody holds it or it cannot be told.
fn running_at(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let dev = meta.dev();
    let named = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
        .map(|h| h.pid);
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    flock_holder(
        &locks,
        (
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev),
            meta.ino(),
        ),
        named,
    )
}

/// In `/proc/locks` text (lines `N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`, device
/// numbers in hex), the pid holding the exclusive flock of the file `(major, minor, inode)`.
/// Where `stat` and the kernel's lock table disagree on the device (btrfs subvolumes,
/// overlayfs), a lock on the same inode number held by the pid the file names counts too.
fn flock_holder(locks: &str, file: (u64, u64, u64), named: Option<u32>) -> Option<u32> {
    let held: Vec<((u64, u64, u64), u32)> = locks
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Waiters are listed as "N: -> FLOCK ..."; they hold nothing.
            if f.get(1..4)? != ["FLOCK", "ADVISORY", "WRITE"] {
                return None;
            }
            let mut id = f.get(5)?.split(':');
            let major = u64::from_str_radix(id.next()?, 16).ok()?;
            let minor = u64::from_str_radix(id.next()?, 16).ok()?;
            let ino = id.next()?.parse().ok()?;
            Some(((major, minor, ino), f.get(4)?.parse().ok()?))
        })
        .collect();
    let exact = held.iter().find(|(id, _)| *id == file);
    let by_name = || {
        held.iter()
            .find(|(id, pid)| id.2 == file.2 && Some(*pid) == named)
    };
    exact.or_else(by_name).map(|(_, pid)| *pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named_and_the_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let a = Holder::me("failover web");
        let lock = Lock::acquire(dir.path(), "web", &a).unwrap();
        assert_eq!(running(dir.path(), "web"), Some(std::process::id()));
        let e = Lock::acquire(dir.path(), "web", &Holder::me("resume web"))
            .err()
            .unwrap();
        assert!(
            matches!(&e, LockError::Held { pid: Some(p), .. } if *p == a.pid),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(
            e.contains(&format!("pid {}", a.pid))
                && e.contains(&a.host)
                && e.contains(&a.user)
                && e.contains("failover web")
                && e.contains("since 20"),
            "{e}"
        );
        let other = Lock::acquire(dir.path(), "db", &a).unwrap();
        drop((lock, other));
        assert!(path(dir.path(), "web").exists(), "never removed");
        assert_eq!(running(dir.path(), "web"), None);
        // The file still names the last holder; a new one takes it and names itself.
        let b = Lock::acquire(dir.path(), "web", &Holder::me("abort web")).unwrap();
        let text = std::fs::read_to_string(b.path()).unwrap();
        assert!(text.contains("abort web"), "{text}");
    }

    #[test]
    fn threads_racing_for_a_lock_left_by_a_dead_holder_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("locks")).unwrap();
        let mut dead = Holder::me("failover web");
        dead.pid = u32::MAX - 1;
        std::fs::write(
            path(dir.path(), "web"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let barrier = std::sync::Barrier::new(8);
        let won = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    if let Ok(l) = Lock::acquire(dir.path(), "web", &Holder::me("failover web")) {
                        won.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Hold it until every other thread has tried.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        drop(l);
                    }
                });
            }
        });
        assert_eq!(won.into_inner(), 1);
    }

    #[test]
    fn the_holder_is_found_in_the_kernels_lock_table() {
        let locks = "1: FLOCK  ADVISORY  WRITE 14389 fe:00:5636444 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 200 fe:00:5636444 0 EOF\n\
                     2: FLOCK  ADVISORY  READ 300 fe:01:77 0 EOF\n\
                     3: POSIX  ADVISORY  WRITE 400 00:2a:77 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 500 00:2a:77 0 EOF\n";
        assert_eq!(flock_holder(locks, (0xfe, 0, 5636444), None), Some(14389));
        assert_eq!(flock_holder(locks, (0xfe, 1, 5636444), None), None);
        assert_eq!(
            flock_holder(locks, (0xfe, 1, 77), None),
            None,
            "shared, POSIX"
        );
        // Another device number for the same inode: only with the pid the file names.
        assert_eq!(flock_holder(locks, (0, 0x2b, 77), Some(500)), Some(500));
        assert_eq!(flock_holder(locks, (0, 0x2b, 77), Some(501)), None);
    }

    #[test]
    fn a_holder_not_yet_named_is_named_by_the_kernels_pid() {
        let mut old = Holder::me("failover web");
        old.pid = 7;
        let text = serde_json::to_string(&old).unwrap();
        assert_eq!(
            name_holder(&text, Some(42)),
            "pid 42 (it has not named itself yet)"
        );
        assert!(name_holder(&text, Some(7)).starts_with("pid 7 ("));
        assert_eq!(
            name_holder("holder not yet named", Some(9)),
            "pid 9 (holder not yet named)"
        );
    }
}
