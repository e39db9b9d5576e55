//! The controller's state disk in `ferry lab chaos --controller`: a small tmpfs mounted on its
//! state directory, so the `disk-full` fault can take every free page while a move runs and
//! give them back afterwards.
//!
//! Contract: [`StateDisk::mount`] mounts (mode 0700) or fails with the mount's error;
//! [`StateDisk::fill`] writes one filler file until the disk says ENOSPC, [`StateDisk::free`]
//! removes it. On drop the journals (`runs/*.jsonl`) are copied to the `keep` directory, then
//! the tmpfs is unmounted (lazily: a controller still holding a file cannot keep it mounted).
//!
//! Never does: mount anywhere but the directory it is given, or touch another mount.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{proc, LabError, Result};

const FILLER: &str = "filler";

pub struct StateDisk {
    dir: PathBuf,
    keep: PathBuf,
}

impl StateDisk {
    /// Mount a tmpfs of `size` (mount's syntax, e.g. `16m`) on `dir` (created when missing).
    pub fn mount(dir: &Path, size: &str, keep: &Path) -> Result<Self> {
        crate::private_fs::create_dir(dir)
            .map_err(|e| LabError::step(format!("creating {}", dir.display()), e))?;
        proc::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size},mode=700")])
                .arg("ferry-lab-statedisk")
                .arg(dir),
            Duration::from_secs(10),
        )?;
        Ok(Self {
            dir: dir.to_owned(),
            keep: keep.to_owned(),
        })
    }

    /// Take every free page of the disk.
    pub fn fill(&self) -> Result<()> {
        let path = self.dir.join(FILLER);
        let mut f = std::fs::File::create(&path)
            .map_err(|e| LabError::step(format!("creating {}", path.display()), e))?;
        let chunk = vec![0xaa_u8; 64 * 1024];
        // Until ENOSPC; smaller writes take the last partial chunk.
        while f.write(&chunk).is_ok_and(|n| n > 0) {}
        while f.write(&chunk[..512]).is_ok_and(|n| n > 0) {}
        Ok(())
    }

    /// Give the pages back (no filler is fine).
    pub fn free(&self) -> Result<()> {
        let path = self.dir.join(FILLER);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LabError::step(format!("removing {}", path.display()), e)),
        }
    }
}

impl Drop for StateDisk {
    fn drop(&mut self) {
        let runs = self.dir.join("runs");
        if let Ok(rd) = std::fs::read_dir(&runs) {
            let _ = std::fs::create_dir_all(&self.keep);
            for e in rd.flatten() {
                let _ = std::fs::copy(e.path(), self.keep.join(e.file_name()));
            }
        }
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (mount); skipped without it.
    #[test]
    fn fill_takes_every_page_free_gives_them_back_and_drop_keeps_the_journals() {
        let top = tempfile::tempdir().unwrap();
        let (dir, keep) = (top.path().join("state"), top.path().join("kept"));
        let Ok(disk) = StateDisk::mount(&dir, "256k", &keep) else {
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return;
        };
        std::fs::create_dir_all(dir.join("runs")).unwrap();
        std::fs::write(dir.join("runs/1-p-failover.jsonl"), "{}\n").unwrap();
        disk.fill().unwrap();
        let e = std::fs::write(dir.join("more"), [0u8; 8192]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
        disk.free().unwrap();
        std::fs::write(dir.join("more"), [0u8; 8192]).unwrap();
        drop(disk);
        assert_eq!(
            std::fs::read_to_string(keep.join("1-p-failover.jsonl")).unwrap(),
            "{}\n"
        );
        assert!(!dir.join("more").exists(), "unmounted");
    }
}
