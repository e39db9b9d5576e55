//! Test-only: a tiny tmpfs, so that writes fail with ENOSPC half way through (root only). The
//! one copy for the library's unit tests (`crate::test_fs`) and the integration tests
//! (`tests/support/mod.rs` includes this file).
//!
//! Unmounted (lazily) when dropped. Without root the tests that need it are skipped, said on
//! stderr; with `FIT_REQUIRE=1` in the environment they fail instead, so that a CI run as root
//! cannot skip them silently.

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct TinyFs {
    dir: PathBuf,
    /// The temporary mount point [`TinyFs::mount`] made; removed after the unmount.
    _temp: Option<tempfile::TempDir>,
}

impl TinyFs {
    /// A tmpfs of `size` (mount's syntax: `64k`, `256k`) on a new temporary directory; `None`
    /// when it cannot be mounted (and `FIT_REQUIRE` is not `1`).
    pub fn mount(size: &str) -> Option<Self> {
        let temp = tempfile::Builder::new()
            .prefix("ferry-tinyfs-")
            .tempdir()
            .expect("temporary directory");
        let mut fs = Self::mount_on(temp.path(), size)?;
        fs._temp = Some(temp);
        Some(fs)
    }

    /// A tmpfs of `size` on `dir` (created when missing), a directory of the test's (a
    /// speaker's state directory, say).
    pub fn mount_on(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=700")])
            .arg("ferry-test-tinyfs")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1") {
                panic!(
                    "cannot mount a tmpfs on {} (needs root; FIT_REQUIRE=1)",
                    dir.display()
                );
            }
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Self {
            dir: dir.to_owned(),
            _temp: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Take every free page; returns the file that holds them (remove it to free them).
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        while f.write(&[0xaa; 4096]).is_ok_and(|n| n > 0) {}
        path
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
