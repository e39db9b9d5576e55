//! Binding the API's Unix socket without destroying anything and without a permission window.
//!
//! Contract of [`bind_unix`]:
//! - One speaker owns an `api` path at a time: before it looks at the path it takes an
//!   exclusive `flock` on `<api>.lock` beside it (created 0600, never removed, see
//!   [`crate::filelock`]) and holds it in the returned [`ApiSocket`] for its whole life. Two
//!   speakers (with different state dirs) that both find a stale socket can so never both remove
//!   and replace it, the later one deleting the earlier one's live socket; the second fails with
//!   [`BindError::InUse`] naming the path and the holder's pid.
//! - Only a stale socket is ever removed: a socket at the path whose `connect` is refused
//!   (`ECONNREFUSED`: nobody listens, e.g. a speaker that was SIGKILLed). A socket that accepts
//!   (or whose backlog is full) belongs to a live process: error, it is left alone. Anything
//!   else at the path (regular file, directory, symlink, FIFO) is an error naming it and is
//!   left as it was; a symlink is never followed.
//! - The socket is never reachable with a mode wider than 0600, whatever the umask: it is bound
//!   in a fresh 0700 directory beside the target (`dir/.f<n>/s`, kept short: see below), set to
//!   0600 there, then renamed into place with `RENAME_NOREPLACE`, so a file that appeared in the
//!   meantime is not replaced either.
//! - A path longer than [`MAX_PATH`] octets (`sun_path` holds 108 including its NUL, unix(7))
//!   is refused with [`BindError::PathTooLong`] naming it, its length and the limit; the staging
//!   path is the directory plus `/.f<n>/s` (6 to 8 octets), so it fits whenever the real path
//!   does and the socket's file name has 7 octets or more; otherwise the error says that only
//!   the staging path does not fit ([`BindError::StagingTooLong`]).
//! - With a group ([`bind_unix_for`], the config's `api_group`) the socket is mode 0660 and
//!   owned by that group instead, set the same way before it is placed.
//! - Dropping the [`ApiSocket`] removes the socket only if the path still holds the very socket
//!   this speaker bound (same device and inode), then releases the lock.
//!
//! Never: follows symlinks at the path, or removes anything it did not create except a stale
//! socket, or removes the lock file.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::filelock::{FileLock, LockError};

/// Longest socket path in octets: `sun_path` is 108 octets and must hold the terminating NUL
/// (unix(7)).
pub const MAX_PATH: usize = 107;

/// Most staging directories tried (`.f0` .. `.f999`): each is created with `mkdir`, which fails
/// on one left behind by a process killed while binding.
const STAGING_TRIES: u32 = 1000;

/// Why the API socket could not be bound. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another speaker listens on {0}; stop it first or give this one another `api` path")]
    Live(PathBuf),
    #[error("another speaker uses the api path {path} ({holder}; lock {lock}); stop it first or give this one another `api` path")]
    InUse {
        path: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("{path} exists and is a {kind}, not a socket; refusing to replace it (move it away or choose another `api` path)")]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("the api path {path} is {len} octets long; a Unix socket path holds at most {max} (108 with its NUL, unix(7)): choose a shorter `api` path")]
    PathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("the api path {path} fits, but its staging path {staging} ({len} octets, at most {max}) does not: give the socket a file name of 7 or more octets or a shorter directory")]
    StagingTooLong {
        path: PathBuf,
        staging: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        path: path.to_owned(),
        what,
        source,
    }
}

/// The bound socket's ownership: the `<api>.lock` flock and the identity of the socket file.
/// Dropping it removes the socket if it is still this one, then releases the lock.
#[derive(Debug)]
pub struct ApiSocket {
    path: PathBuf,
    /// (device, inode) of the socket this speaker bound; a rename keeps both.
    ident: (u64, u64),
    // Dropped after `drop` ran: the socket goes before another speaker may take the path.
    _lock: FileLock,
}

impl ApiSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.ident => {
                let _ = std::fs::remove_file(&self.path);
            }
            Ok(_) => {
                tracing::warn!(socket = %self.path.display(), "the API socket path holds another file than the socket this speaker bound; left alone")
            }
            Err(_) => {}
        }
    }
}

/// The lock file of the socket at `path`: `<path>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Bind the Unix socket at `path` (mode 0600), replacing only a stale socket of a dead speaker;
/// the [`ApiSocket`] must be kept for as long as the listener serves.
pub fn bind_unix(path: &Path) -> Result<(tokio::net::UnixListener, ApiSocket), BindError> {
    bind_unix_for(path, None)
}

/// [`bind_unix`]; with `group` the socket is mode 0660 and owned by that group (set in the
/// private staging directory, so it is never reachable with other rights).
pub fn bind_unix_for(
    path: &Path,
    group: Option<nix::unistd::Gid>,
) -> Result<(tokio::net::UnixListener, ApiSocket), BindError> {
    let (listener, owned) = bind_std(path, group)?;
    listener
        .set_nonblocking(true)
        .map_err(io_err(path, "cannot make the socket non-blocking"))?;
    let listener = tokio::net::UnixListener::from_std(listener)
        .map_err(io_err(path, "cannot register the socket"))?;
    Ok((listener, owned))
}

fn bind_std(
    path: &Path,
    group: Option<nix::unistd::Gid>,
) -> Result<(std::os::unix::net::UnixListener, ApiSocket), BindError> {
    use std::os::unix::fs::MetadataExt;
    let len = path.as_os_str().len();
    if len > MAX_PATH {
        return Err(BindError::PathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_PATH,
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir, "cannot create the directory"))?;
    // Before anything is probed or removed: whoever holds this owns the path.
    let lock_file = lock_path(path);
    let mut lock = match FileLock::try_acquire(&lock_file) {
        Ok(l) => l,
        Err(LockError::Held { holder, .. }) => {
            return Err(BindError::InUse {
                path: path.to_owned(),
                lock: lock_file,
                holder,
            })
        }
        Err(LockError::Io { source, .. }) => {
            return Err(io_err(&lock_file, "cannot take the lock")(source))
        }
    };
    // The refusal of a second speaker names this one.
    if let Err(LockError::Io { source, .. }) = lock.describe(&format!("pid {}", std::process::id()))
    {
        return Err(io_err(&lock_file, "cannot write the lock")(source));
    }
    let stale = check_existing(path)?;

    // A private directory: nobody else can reach the socket before it is 0600.
    let tmp = private_dir(path, dir)?;
    let _cleanup = RemoveDir(tmp.clone());
    let staged = tmp.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&staged)
        .map_err(io_err(&staged, "cannot bind the staging socket"))?;
    let mode = match group {
        Some(gid) => {
            nix::unistd::chown(&staged, None, Some(gid)).map_err(|e| {
                io_err(&staged, "cannot give the socket to speaker.api_group")(e.into())
            })?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(&staged, "cannot set the mode"))?;
    let meta = std::fs::symlink_metadata(&staged).map_err(io_err(&staged, "cannot inspect"))?;
    if stale {
        match std::fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(socket = %path.display(), "replaced the stale API socket of a speaker that is gone")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, "cannot remove the stale socket")(e)),
        }
    }
    place(&staged, path)?;
    Ok((
        listener,
        ApiSocket {
            path: path.to_owned(),
            ident: (meta.dev(), meta.ino()),
            _lock: lock,
        },
    ))
}

/// A new directory `.f<n>` in `dir`, mode 0700 from its creation (the umask can only narrow
/// that); `mkdir` fails rather than reuse anything already there. The name is short because
/// the socket is bound inside it: see the module docs.
fn private_dir(path: &Path, dir: &Path) -> Result<PathBuf, BindError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for n in 0..STAGING_TRIES {
        let tmp = dir.join(format!(".f{n}"));
        let staging = tmp.join("s");
        let len = staging.as_os_str().len();
        if len > MAX_PATH {
            return Err(BindError::StagingTooLong {
                path: path.to_owned(),
                staging,
                len,
                max: MAX_PATH,
            });
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_err(dir, "cannot create a staging directory")(e)),
        }
    }
    Err(io_err(
        dir,
        "cannot create a staging directory (.f0 to .f999 all exist: remove those left by killed speakers)",
    )(last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into())))
}

/// Rename without replacing: whatever appeared at `path` since the check wins.
fn place(staged: &Path, path: &Path) -> Result<(), BindError> {
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, staged, None, path, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EEXIST) => match check_existing(path)? {
            // Appeared and is stale: a race with a dying speaker; the caller may retry.
            true => Err(io_err(path, "a stale socket appeared while binding")(
                io::ErrorKind::AlreadyExists.into(),
            )),
            false => Err(BindError::Live(path.to_owned())),
        },
        Err(e) => Err(io_err(path, "cannot move the socket into place")(e.into())),
    }
}

/// What is at `path`: nothing (false), a stale socket (true), or an error for anything that
/// must be kept.
fn check_existing(path: &Path) -> Result<bool, BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path, "cannot inspect")(e)),
    };
    let ft = meta.file_type();
    if !ft.is_socket() {
        let kind = if ft.is_symlink() {
            "symbolic link"
        } else if ft.is_dir() {
            "directory"
        } else if ft.is_file() {
            "regular file"
        } else if ft.is_fifo() {
            "FIFO"
        } else {
            "special file"
        };
        return Err(BindError::NotASocket {
            path: path.to_owned(),
            kind,
        });
    }
    match probe(path) {
        Probe::Listening => Err(BindError::Live(path.to_owned())),
        Probe::Refused => Ok(true),
        Probe::Gone => Ok(false),
        Probe::Failed(e) => Err(io_err(path, "cannot tell whether a speaker listens there")(
            e,
        )),
    }
}

enum Probe {
    Listening,
    Refused,
    Gone,
    Failed(io::Error),
}

/// Connect without blocking: a full backlog (`EAGAIN`) means a live listener too, and must not
/// make the probe hang.
fn probe(path: &Path) -> Probe {
    use nix::errno::Errno;
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let addr = match UnixAddr::new(path) {
        Ok(a) => a,
        Err(e) => return Probe::Failed(e.into()),
    };
    let fd = match socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    ) {
        Ok(fd) => fd,
        Err(e) => return Probe::Failed(e.into()),
    };
    use std::os::fd::AsRawFd;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => Probe::Listening,
        Err(Errno::ECONNREFUSED) => Probe::Refused,
        Err(Errno::ENOENT) => Probe::Gone,
        Err(e) => Probe::Failed(e.into()),
    }
}

/// Removes the staging directory (and anything left in it) on every path out.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("ferry-unit-bind-")
            .tempdir()
            .expect("temp dir")
    }

    fn leftovers(d: &Path) -> Vec<String> {
        std::fs::read_dir(d)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.strip_prefix(".f")
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_regular_file_is_kept_with_its_content() {
        let d = dir();
        let p = d.path().join("api.sock");
        std::fs::write(&p, "precious\n").unwrap();
        let e = bind_unix(&p).unwrap_err();
        assert!(
            matches!(
                e,
                BindError::NotASocket {
                    kind: "regular file",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious\n");
        assert!(leftovers(d.path()).is_empty());
    }

    #[tokio::test]
    async fn a_symlink_or_directory_is_not_followed_or_removed() {
        let d = dir();
        let target = d.path().join("target");
        std::fs::write(&target, "x").unwrap();
        let p = d.path().join("api.sock");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = bind_unix(&p).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x");

        let q = d.path().join("sockdir");
        std::fs::create_dir(&q).unwrap();
        let e = bind_unix(&q).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        assert!(q.is_dir());
    }

    #[tokio::test]
    async fn a_live_socket_is_not_taken_over() {
        let d = dir();
        let p = d.path().join("api.sock");
        let live = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let e = bind_unix(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "another speaker listens on {}; stop it first or give this one another `api` path",
                p.display()
            )
        );
        // Still the first listener's: a client reaches it.
        let _c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        live.set_nonblocking(true).unwrap();
        assert!(live.accept().is_ok(), "the live listener lost its socket");
        assert!(leftovers(d.path()).is_empty());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_the_new_one_is_0600() {
        let d = dir();
        let p = d.path().join("api.sock");
        drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
        assert!(
            std::fs::symlink_metadata(&p).is_ok(),
            "stale socket left behind"
        );
        let (l, _owned) = bind_unix(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(5), l.accept()).await;
        assert!(matches!(accepted, Ok(Ok(_))), "new socket does not accept");
        assert!(leftovers(d.path()).is_empty());
    }

    /// A directory of exactly `len` octets under `d`.
    fn dir_of_len(d: &Path, len: usize) -> PathBuf {
        let base = d.as_os_str().len();
        assert!(len > base + 1, "temp dir {} too long", d.display());
        let p = d.join("x".repeat(len - base - 1));
        std::fs::create_dir(&p).unwrap();
        assert_eq!(p.as_os_str().len(), len);
        p
    }

    #[tokio::test]
    async fn an_81_octet_path_binds_and_a_120_octet_one_is_refused_naming_it_and_the_limit() {
        let d = dir();
        let p = dir_of_len(d.path(), 72).join("api.sock");
        assert_eq!(p.as_os_str().len(), 81);
        let (l, _owned) = bind_unix(&p).unwrap_or_else(|e| panic!("81 octets: {e}"));
        let _c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(5), l.accept()).await;
        assert!(
            matches!(accepted, Ok(Ok(_))),
            "bound socket does not accept"
        );

        let q = dir_of_len(d.path(), 111).join("api.sock");
        assert_eq!(q.as_os_str().len(), 120);
        let e = bind_unix(&q).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "the api path {} is 120 octets long; a Unix socket path holds at most 107 \
                 (108 with its NUL, unix(7)): choose a shorter `api` path",
                q.display()
            )
        );
        assert!(!q.exists() && !lock_path(&q).exists(), "nothing created");
    }

    #[tokio::test]
    async fn a_path_that_fits_with_a_staging_path_that_does_not_says_so() {
        let d = dir();
        let base = dir_of_len(d.path(), 102);
        let p = base.join("ab");
        assert_eq!(p.as_os_str().len(), 105);
        let e = bind_unix(&p).unwrap_err();
        assert!(
            matches!(e, BindError::StagingTooLong { len: 108, .. }),
            "{e}"
        );
        let e = e.to_string();
        assert!(e.contains(&format!("{}/.f0/s", base.display())), "{e}");
        assert!(e.contains("at most 107"), "{e}");
        assert!(leftovers(&base).is_empty());
    }

    #[test]
    fn racing_binds_on_one_stale_path_leave_exactly_one_reachable_owner() {
        use std::sync::{Arc, Barrier};
        const THREADS: usize = 8;
        for round in 0..40 {
            let d = dir();
            let p = d.path().join("api.sock");
            // What a SIGKILLed speaker leaves: a socket nobody listens on.
            drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
            let start = Arc::new(Barrier::new(THREADS));
            let results: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (p, start) = (p.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        bind_std(&p, None)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().expect("binding thread panicked"))
                .collect();
            let mut winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(
                winners.len(),
                1,
                "round {round}: {} speakers own {}",
                winners.len(),
                p.display()
            );
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                let text = e.to_string();
                assert!(
                    text.starts_with(&format!(
                        "another speaker uses the api path {} (",
                        p.display()
                    )) || matches!(e, BindError::Live(_)),
                    "round {round}: {text}"
                );
            }
            let (listener, _owned) = winners.remove(0);
            let _c = std::os::unix::net::UnixStream::connect(&p)
                .unwrap_or_else(|e| panic!("round {round}: the winner is unreachable: {e}"));
            listener.set_nonblocking(true).unwrap();
            assert!(
                listener.accept().is_ok(),
                "round {round}: the path leads to another socket than the winner's"
            );
            assert!(leftovers(d.path()).is_empty());
        }
    }

    #[tokio::test]
    async fn dropping_removes_only_its_own_socket_and_keeps_the_lock_file() {
        let d = dir();
        let p = d.path().join("api.sock");
        let (_l, owned) = bind_unix(&p).unwrap();
        drop(owned);
        assert!(std::fs::symlink_metadata(&p).is_err(), "own socket left");
        assert!(lock_path(&p).exists(), "the lock file is never removed");

        let (_l, owned) = bind_unix(&p).unwrap();
        // Someone else's file took the path meanwhile: it stays.
        let other = d.path().join("other");
        std::fs::write(&other, "theirs\n").unwrap();
        std::fs::rename(&other, &p).unwrap();
        drop(owned);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "theirs\n");
    }

    #[tokio::test]
    async fn a_symlink_at_the_lock_path_is_not_followed() {
        let d = dir();
        let p = d.path().join("api.sock");
        let target = d.path().join("precious");
        std::fs::write(&target, "keep\n").unwrap();
        std::os::unix::fs::symlink(&target, lock_path(&p)).unwrap();
        let e = bind_unix(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: cannot take the lock",
                lock_path(&p).display()
            )),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        assert!(std::fs::symlink_metadata(&p).is_err(), "no socket bound");
    }
}
