//! Test-only: a tiny tmpfs, so that writes fail with ENOSPC half way through (root only).
//!
//! Mounted on a fresh temporary directory and unmounted (lazily) when dropped. Without root the
//! tests that need it are skipped, said on stderr; with `FIT_REQUIRE=1` in the environment
//! they fail instead (as `tests/support/mod.rs`'s `TinyFs` does), so a CI run as root cannot
//! skip them silently.

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct TinyFs(tempfile::TempDir);

impl TinyFs {
    /// A tmpfs of `size` (mount's syntax: `64k`, `256k`) on a new temporary directory; `None`
    /// when it cannot be mounted (and `FIT_REQUIRE` is not `1`).
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-tinyfs-")
            .tempdir()
            .expect("temporary directory");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=700")])
            .arg("ferry-unit-tinyfs")
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1") {
                panic!(
                    "cannot mount a tmpfs on {} (needs root; FIT_REQUIRE=1)",
                    dir.path().display()
                );
            }
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Self(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Take every free page; returns the file that holds them (remove it to free them).
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        while f.write(&[0xaa; 4096]).is_ok_and(|n| n > 0) {}
        path
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}
