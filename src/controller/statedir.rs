//! The controller's state directory and what it keeps private: `runs/` (the journals, which
//! carry the plan's text with hook environments and HTTP bodies) and `locks/`.
//!
//! Contract:
//! - [`private_dir`] creates a directory (and missing parents) with mode 0700; journals and lock
//!   files are created 0600 by their own modules.
//! - [`prepare`] makes the state directory, `runs/` and `locks/` exist at 0700. An existing one
//!   that its group or others may use, and any file in `runs/` or `locks/` they may read, is
//!   tightened (0700, 0600) and a warning names it with its old mode. Tightening rather than
//!   refusing: a refusal would stop `abort` in the middle of a failover over a mode, while
//!   tightening ends the exposure at once and says so. One that cannot be tightened (EPERM:
//!   another owner's, say root's while the controller runs as a user) is left as it is, and
//!   the warning names it with its mode and owner.
//!
//! Never does: change the owner, or follow a symlink out of the state directory when tightening
//! files (symlinks in `runs/` or `locks/` are left alone and named in a warning).

use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("state directory {path}: {source}")]
pub struct StateDirError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> StateDirError + '_ {
    move |source| StateDirError {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and its missing parents) with mode 0700; an existing `dir` is left as it is.
pub fn private_dir(dir: &Path) -> Result<(), StateDirError> {
    crate::private_fs::create_dir(dir).map_err(err(dir))
}

/// Makes `state_dir`, `runs/` and `locks/` private (see the module docs); the warnings say
/// what was tightened.
pub fn prepare(state_dir: &Path) -> Result<Vec<String>, StateDirError> {
    let mut warnings = Vec::new();
    for dir in [
        state_dir.to_owned(),
        state_dir.join("runs"),
        state_dir.join("locks"),
    ] {
        private_dir(&dir)?;
        tighten(&dir, 0o700, &mut warnings)?;
    }
    for dir in [state_dir.join("runs"), state_dir.join("locks")] {
        for e in std::fs::read_dir(&dir).map_err(err(&dir))? {
            let path = e.map_err(err(&dir))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(err(&path))?;
            if meta.file_type().is_symlink() {
                warnings.push(format!(
                    "{} is a symlink; ferry does not follow it to tighten its mode",
                    path.display()
                ));
            } else if meta.is_file() {
                tighten(&path, 0o600, &mut warnings)?;
            }
        }
    }
    Ok(warnings)
}

fn tighten(path: &Path, mode: u32, warnings: &mut Vec<String>) -> Result<(), StateDirError> {
    let meta = std::fs::metadata(path).map_err(err(path))?;
    let Some(old) = crate::private_fs::exposed_mode(&meta) else {
        return Ok(());
    };
    match std::fs::set_permissions(path, Permissions::from_mode(mode)) {
        Ok(()) => warnings.push(format!(
            "{} was mode {old:04o}, readable beyond its owner; set to {mode:04o}",
            path.display()
        )),
        // Not ours to change (created by root, say, while this controller runs as a user):
        // refusing would stop `abort` mid-failover over a mode; say who can fix it instead.
        Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => warnings.push(format!(
            "{} is mode {old:04o}, readable beyond its owner, and owned by uid {}, not by this controller's user, so it cannot be tightened: as its owner or root, chmod {mode:o} it",
            path.display(),
            meta.uid(),
        )),
        Err(e) => return Err(err(path)(e)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_directories_are_0700_and_loose_ones_are_tightened_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        assert!(prepare(&state).unwrap().is_empty());
        for d in ["", "runs", "locks"] {
            assert_eq!(mode(&state.join(d)), 0o700, "{d}");
        }
        assert_eq!(mode(&dir.path().join("a")), 0o700, "missing parents too");

        let journal = state.join("runs/1-web-failover.jsonl");
        std::fs::write(&journal, "{}\n").unwrap();
        std::fs::set_permissions(&journal, Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(state.join("runs"), Permissions::from_mode(0o755)).unwrap();
        let w = prepare(&state).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("runs was mode 0755"), "{w:?}");
        assert!(w[1].contains("1-web-failover.jsonl was mode 0644"), "{w:?}");
        assert_eq!(mode(&state.join("runs")), 0o700);
        assert_eq!(mode(&journal), 0o600);
        assert!(
            prepare(&state).unwrap().is_empty(),
            "nothing left to tighten"
        );
    }
}
