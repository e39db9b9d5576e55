//! Files and directories only their owner may use: the one place that says what "open to
//! group or others" is and how a private directory is made, for the speaker (its state
//! directory, a config or token file holding a secret) and the controller (its state
//! directory, `runs/`, `locks/`).
//!
//! Contract:
//! - [`exposed_mode`] is `Some(mode)` exactly when a group or other permission bit is set.
//! - [`create_dir`] creates a directory and its missing parents with mode 0700 (whatever the
//!   umask); an existing directory is left as it is (callers check it with [`exposed_mode`]
//!   and decide: warn, tighten or refuse).
//!
//! Never does: change a mode or an owner (the callers decide what to do about an exposed file).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode bits that let the group or others in.
const NOT_OWNER: u32 = 0o077;

/// The permission bits (`0o7777`) of a file that others than its owner may use; `None` when
/// only its owner may.
pub fn exposed_mode(meta: &std::fs::Metadata) -> Option<u32> {
    let mode = meta.permissions().mode() & 0o7777;
    (mode & NOT_OWNER != 0).then_some(mode)
}

/// Creates `dir` and its missing parents with mode 0700; an existing `dir` is left as it is.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    #[test]
    fn group_or_other_bits_are_exposed_and_new_directories_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir(&d).unwrap();
        for p in [&d, &dir.path().join("a")] {
            let meta = std::fs::metadata(p).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, 0o700, "{}", p.display());
            assert_eq!(exposed_mode(&meta), None);
        }
        create_dir(&d).unwrap();
        let f = d.join("f");
        std::fs::write(&f, "").unwrap();
        for (mode, exposed) in [(0o600, None), (0o640, Some(0o640)), (0o604, Some(0o604))] {
            std::fs::set_permissions(&f, Permissions::from_mode(mode)).unwrap();
            assert_eq!(exposed_mode(&std::fs::metadata(&f).unwrap()), exposed);
        }
    }
}
