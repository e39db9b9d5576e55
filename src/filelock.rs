//! [`FileLock`]: an exclusive lock on a file that the kernel releases when its holder dies.
//!
//! Contract:
//! - [`FileLock::try_acquire`] opens (creating, mode 0600) the file and takes `flock(LOCK_EX |
//!   LOCK_NB)` on it. Exactly one open file description holds it at a time, in this process or
//!   any other; a holder killed with SIGKILL, or one whose host loses power, holds nothing any
//!   more: there is no stale lock to take over and no race between two processes that both find
//!   one stale.
//! - The holder may write what it is doing into the file ([`FileLock::describe`]); a refused
//!   caller reads it back in [`LockError::Held`] to name the holder.
//! - A symbolic link at the path is never followed (`O_NOFOLLOW`): the open fails.
//! - The file is never removed, by the holder or by anyone else: removing a lock file while
//!   another process waits on it would let a third take a second lock on a new inode.
//! - The lock is released when the [`FileLock`] is dropped (or its process ends).
//!
//! Never does: wait for a lock (callers decide whether to retry), or lock over NFS (flock is
//! local to one host's kernel; the state directory of a speaker or a controller is local).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another open file description holds the lock; `holder` is what it wrote (may be empty
    /// if it has not written yet).
    #[error("{path} is locked by another process ({holder})")]
    Held { path: PathBuf, holder: String },
    #[error("lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive, kernel-released lock on one file. See the module docs.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    file: Flock<File>,
}

impl FileLock {
    /// Takes the lock on `path` or fails at once with [`LockError::Held`].
    pub fn try_acquire(path: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // A symlink planted at the path would make the holder truncate its target.
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Self {
                path: path.to_owned(),
                file,
            }),
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                Err(LockError::Held {
                    path: path.to_owned(),
                    holder: if holder.is_empty() {
                        "holder not yet named".into()
                    } else {
                        holder.to_owned()
                    },
                })
            }
            Err((_, e)) => Err(io(e.into())),
        }
    }

    /// Replaces the text that names the holder (for the refusals of others).
    pub fn describe(&mut self, text: &str) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: self.path.clone(),
            source,
        };
        let f: &mut File = &mut self.file;
        f.set_len(0).map_err(io)?;
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_and_named_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let mut a = FileLock::try_acquire(&path).unwrap();
        a.describe("pid 1 (test)").unwrap();
        match FileLock::try_acquire(&path) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, "pid 1 (test)"),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(a);
        assert!(path.exists(), "the lock file is never removed");
        let b = FileLock::try_acquire(&path).unwrap();
        let text = std::fs::read_to_string(b.path()).unwrap();
        assert_eq!(
            text, "pid 1 (test)",
            "the last holder's name stays until replaced"
        );
    }

    #[test]
    fn a_killed_holder_holds_nothing() {
        // A child process takes the lock through flock(1)'s equivalent and is SIGKILLed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.lock");
        let mut child = std::process::Command::new("flock")
            .arg("-x")
            .arg(&path)
            .args(["sleep", "30"])
            .spawn()
            .expect("flock(1) from util-linux");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match FileLock::try_acquire(&path) {
                Err(LockError::Held { .. }) => break,
                Ok(l) => drop(l),
                Err(e) => panic!("{e}"),
            }
            assert!(std::time::Instant::now() < deadline, "child never locked");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // flock(1) holds the lock in itself and passes the fd to sleep: kill both.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &child.id().to_string()])
            .status();
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while FileLock::try_acquire(&path).is_err() {
            assert!(std::time::Instant::now() < deadline, "lock not released");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
