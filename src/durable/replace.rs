//! Replacing a whole file atomically: after a crash at any point the file holds either its old
//! or its new content, never a mix, and once [`replace`] returns `Ok` the new content survives
//! a crash.
//!
//! Contract:
//! - [`replace`] writes `<path>.tmp` ([`temp_path`], same directory, so the rename cannot
//!   cross file systems) with [`write_new`], renames it over `path` and fsyncs the directory
//!   ([`rename_into_place`]). A failure before the rename removes the temporary file (a
//!   partial file on a full disk would hold the space the journals need) and leaves `path`
//!   as it was; a failure of the directory fsync leaves the new content in place, maybe not
//!   yet durable.
//! - [`write_new`] removes a leftover at its path (from a crash mid-write, which never became
//!   the state) and creates the file afresh with `mode` (less the umask): a leftover's owner
//!   and mode never carry over, a link there is never followed.
//! - A [`ReplaceError`] says which [`Step`] failed and on which path: the temporary file, the
//!   target (rename) or the directory (its fsync).
//!
//! Never does: create directories, lock anything, or decide the mode (callers pass 0600 for
//! private state).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The step of a replace that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Write,
    Fsync,
    Rename,
    FsyncDir,
}

impl Step {
    /// What the step does, for "cannot {action} {path}".
    pub fn action(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Write => "write",
            Self::Fsync => "fsync",
            Self::Rename => "rename into place",
            Self::FsyncDir => "fsync directory",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot {} {}: {source}", step.action(), path.display())]
pub struct ReplaceError {
    pub step: Step,
    /// The temporary file (create, write, fsync), the target (rename) or its directory.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(step: Step, path: &Path) -> impl FnOnce(io::Error) -> ReplaceError + '_ {
    move |source| ReplaceError {
        step,
        path: path.to_owned(),
        source,
    }
}

/// Where [`replace`] writes `path`'s next content: `path` with `.tmp` appended.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Makes `text` the content of `path`, atomically and durably; see the module contract.
pub fn replace(path: &Path, text: &[u8], mode: u32) -> Result<(), ReplaceError> {
    let tmp = temp_path(path);
    let written = write_new(&tmp, text, mode).and_then(|()| {
        // Not `rename_into_place`: a failed rename must still remove the temporary file.
        fs::rename(&tmp, path).map_err(at(Step::Rename, path))
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = parent(path);
    sync_dir(dir).map_err(at(Step::FsyncDir, dir))
}

/// Creates `path` afresh (a leftover removed) with `mode`, writes `text` and fsyncs it.
pub fn write_new(path: &Path, text: &[u8], mode: u32) -> Result<(), ReplaceError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(Step::Create, path)(e)),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(at(Step::Create, path))?;
    f.write_all(text).map_err(at(Step::Write, path))?;
    f.sync_all().map_err(at(Step::Fsync, path))
}

/// Renames the fsynced `tmp` over `path` and fsyncs their directory (the rename is durable
/// only once the directory entry is).
pub fn rename_into_place(tmp: &Path, path: &Path) -> Result<(), ReplaceError> {
    fs::rename(tmp, path).map_err(at(Step::Rename, path))?;
    let dir = parent(path);
    sync_dir(dir).map_err(at(Step::FsyncDir, dir))
}

/// Fsyncs the directory `dir`, making the entries created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fs::TinyFs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replace_writes_the_new_content_with_its_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace(&path, b"old\n", 0o600).unwrap();
        // A leftover of a crash mid-write, with another mode: neither carries over.
        fs::write(temp_path(&path), b"partial").unwrap();
        fs::set_permissions(temp_path(&path), fs::Permissions::from_mode(0o644)).unwrap();
        replace(&path, b"new\n", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert!(!temp_path(&path).exists());
        assert_eq!(temp_path(&path), dir.path().join("state.json.tmp"));
    }

    /// A failure anywhere before the rename leaves the old content and no temporary file:
    /// a full disk half way through the write, and a rename that cannot replace (a directory
    /// in the way). The error names the step and the path.
    #[test]
    fn a_failed_replace_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        let e = replace(&blocked, b"x", 0o600).unwrap_err();
        assert_eq!(
            (e.step, e.path.as_path()),
            (Step::Rename, blocked.as_path())
        );
        assert!(e.to_string().starts_with("cannot rename into place"), "{e}");
        assert!(blocked.is_dir() && !temp_path(&blocked).exists());

        let Some(fs) = TinyFs::mount("64k") else {
            return;
        };
        let path = fs.path().join("state.json");
        replace(&path, b"old\n", 0o600).unwrap();
        let filler = fs.fill();
        let e = replace(&path, &[b'n'; 16 * 1024], 0o600).unwrap_err();
        assert_eq!(e.step, Step::Write, "{e}");
        assert_eq!(e.path, temp_path(&path));
        assert_eq!(fs::read(&path).unwrap(), b"old\n");
        assert!(!temp_path(&path).exists(), "partial temporary file left");
        fs::remove_file(filler).unwrap();
        replace(&path, &[b'n'; 16 * 1024], 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), [b'n'; 16 * 1024]);
    }

    #[test]
    fn rename_into_place_moves_a_written_file_over_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join("j.repair"), dir.path().join("j"));
        fs::write(&path, b"damaged").unwrap();
        write_new(&tmp, b"fresh", 0o600).unwrap();
        rename_into_place(&tmp, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"fresh");
        assert!(!tmp.exists());
        let e = rename_into_place(&tmp, &path).unwrap_err();
        assert_eq!(e.step, Step::Rename);
        assert_eq!(parent(Path::new("bare")), Path::new("."));
    }
}
