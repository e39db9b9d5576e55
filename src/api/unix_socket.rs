//! Binding the API's Unix socket without destroying anything and without a permission window.
//!
//! Contract of [`bind_unix`]:
//! - Only a stale socket is ever removed: a socket at the path whose `connect` is refused
//!   (`ECONNREFUSED`: nobody listens, e.g. a speaker that was SIGKILLed). A socket that accepts
//!   (or whose backlog is full) belongs to a live speaker: error, it is left alone. Anything
//!   else at the path (regular file, directory, symlink, FIFO) is an error naming it and is
//!   left as it was; a symlink is never followed.
//! - The socket is never reachable with a mode wider than 0600, whatever the umask: it is bound
//!   in a fresh 0700 directory beside the target, set to 0600 there, then renamed into place
//!   with `RENAME_NOREPLACE`, so a file that appeared in the meantime is not replaced either.
//!
//! Never: follows symlinks at the path, or removes anything it did not create except a stale
//! socket.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the API socket could not be bound. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another speaker listens on {0}; stop it first or give this one another `api` path")]
    Live(PathBuf),
    #[error("{path} exists and is a {kind}, not a socket; refusing to replace it (move it away or choose another `api` path)")]
    NotASocket { path: PathBuf, kind: &'static str },
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

/// Bind the Unix socket at `path` (mode 0600), replacing only a stale socket of a dead speaker.
pub fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, BindError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir, "cannot create the directory"))?;
    let stale = check_existing(path)?;

    // A private directory: nobody else can reach the socket before it is 0600.
    let tmp = private_dir(dir)?;
    let _cleanup = RemoveDir(tmp.clone());
    let staged = tmp.join("api.sock");
    let listener = std::os::unix::net::UnixListener::bind(&staged)
        .map_err(io_err(path, "cannot bind the socket"))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(&staged, "cannot set the mode"))?;
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
    listener
        .set_nonblocking(true)
        .map_err(io_err(path, "cannot make the socket non-blocking"))?;
    tokio::net::UnixListener::from_std(listener).map_err(io_err(path, "cannot register the socket"))
}

/// A new directory `.ferry-api-PID-N` in `dir`, mode 0700 from its creation (the umask can
/// only narrow that); `mkdir` fails rather than reuse anything already there.
fn private_dir(dir: &Path) -> Result<PathBuf, BindError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for n in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(".ferry-api-{}-{nanos}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_err(dir, "cannot create a temporary directory")(e)),
        }
    }
    Err(io_err(dir, "cannot create a temporary directory")(
        last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()),
    ))
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
            .filter(|n| n.starts_with(".ferry-api-"))
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
        let l = bind_unix(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(5), l.accept()).await;
        assert!(matches!(accepted, Ok(Ok(_))), "new socket does not accept");
        assert!(leftovers(d.path()).is_empty());
    }
}
