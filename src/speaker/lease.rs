//! [`Leases`]: when each leased route stops being announced unless renewed (fencing).
//!
//! A route announced with `lease_secs` ([`super::Route::lease_secs`]) is withdrawn by the
//! speaker itself when nobody renews its lease in time, so that a site cut off from its
//! controller stops attracting the subnet (docs/design.md, "Failover, step by step": unplanned).
//!
//! Contract:
//! - Deadlines are wall-clock milliseconds since the Unix epoch, persisted in
//!   `state_dir/leases.json` on every change ([`crate::durable::replace()`]: temp file,
//!   fsync, rename, fsync the directory), so a lease keeps running across a speaker restart:
//!   a speaker that comes back within the lease announces the route for the rest of the
//!   lease only; one that comes back after it withdraws the route at start
//!   ([`Leases::expired`]). A leased route without a deadline (a crash between writing
//!   `routes.json` and `leases.json`) counts as expired: the safe side for fencing.
//! - A failed write (a full disk) changes nothing: the old file stays, a partial temporary file
//!   is removed, the caller gets the error naming the file, [`Leases::write_failures`] counts
//!   it. The file is mode 0600.
//! - An announce of a leased route starts (renews) its lease; a renewal moves the deadline to
//!   now + `lease_secs`; an expired route is gone from the desired routes, and renewing it is
//!   an error: the controller must announce it again, knowingly.
//!
//! File format: `{"version": 1, "leases": {"198.51.100.0/24": 1764290000000}}`.
//!
//! Never does: read the clock (callers pass `now_ms`), talk to peers, withdraw routes itself.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Route;
use crate::durable;

pub const LEASES_FILE: &str = "leases.json";
/// [`durable::temp_path`] of [`LEASES_FILE`].
#[cfg(test)]
const LEASES_TMP_FILE: &str = "leases.json.tmp";

/// Milliseconds since the Unix epoch, the clock leases are kept in.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    version: u32,
    leases: BTreeMap<IpNet, u64>,
}

#[derive(Debug)]
pub struct Leases {
    dir: PathBuf,
    until: BTreeMap<IpNet, u64>,
    /// Writes of `leases.json` that failed, for the metrics.
    write_failures: u64,
}

impl Leases {
    /// Read `dir/leases.json`; missing is empty. Errors name the file.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let path = dir.join(LEASES_FILE);
        let until = match fs::read(&path) {
            Ok(text) => {
                let f: FileJson = serde_json::from_slice(&text).map_err(|e| {
                    io::Error::other(format!(
                        "{} is corrupt at line {} column {}: {e}; leased routes are withdrawn if it is moved away",
                        path.display(),
                        e.line(),
                        e.column()
                    ))
                })?;
                f.leases
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        Ok(Self {
            dir: dir.to_owned(),
            until,
            write_failures: 0,
        })
    }

    /// The deadline of `prefix`, if it has one.
    pub fn until(&self, prefix: &IpNet) -> Option<u64> {
        self.until.get(prefix).copied()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.until.values().min().copied()
    }

    /// How many writes of `leases.json` failed since it was loaded.
    pub fn write_failures(&self) -> u64 {
        self.write_failures
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Leased routes of `routes` whose lease ran out (or never started) at `now_ms`.
    pub fn expired<'a>(
        &self,
        routes: impl IntoIterator<Item = &'a Route>,
        now_ms: u64,
    ) -> Vec<IpNet> {
        routes
            .into_iter()
            .filter(|r| r.lease_secs.is_some())
            .filter(|r| self.until.get(&r.prefix).is_none_or(|u| *u <= now_ms))
            .map(|r| r.prefix)
            .collect()
    }

    /// Set each route's lease to now + its `lease_secs`; routes without a lease lose theirs.
    /// Persisted before it returns.
    pub fn renew<'a>(
        &mut self,
        routes: impl IntoIterator<Item = &'a Route>,
        now_ms: u64,
    ) -> io::Result<()> {
        let mut next = self.until.clone();
        for r in routes {
            match r.lease_secs {
                Some(s) => next.insert(r.prefix, now_ms + u64::from(s) * 1000),
                None => next.remove(&r.prefix),
            };
        }
        self.replace(next)
    }

    /// Drop the leases of these prefixes (withdrawn or expired).
    pub fn forget(&mut self, prefixes: &[IpNet]) -> io::Result<()> {
        if !prefixes.iter().any(|p| self.until.contains_key(p)) {
            return Ok(());
        }
        let mut next = self.until.clone();
        for p in prefixes {
            next.remove(p);
        }
        self.replace(next)
    }

    fn replace(&mut self, next: BTreeMap<IpNet, u64>) -> io::Result<()> {
        if next != self.until {
            self.persist(&next)
                .inspect_err(|_| self.write_failures += 1)?;
            self.until = next;
        }
        Ok(())
    }

    /// Write `until` ([`durable::replace()`]); an error before the rename names the temporary
    /// file (removed again, so that it does not hold the space the route journal needs).
    fn persist(&self, until: &BTreeMap<IpNet, u64>) -> io::Result<()> {
        let mut text = serde_json::to_vec(&FileJson {
            version: 1,
            leases: until.clone(),
        })
        .map_err(io::Error::other)?;
        text.push(b'\n');
        let path = self.dir.join(LEASES_FILE);
        durable::replace(&path, &text, 0o600).map_err(|e| match e.step {
            durable::Step::FsyncDir => e.source,
            _ => {
                let tmp = durable::temp_path(&path);
                let source = e.source;
                io::Error::new(source.kind(), format!("{}: {source}", tmp.display()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p: &str, lease: Option<u32>) -> Route {
        let mut r = Route::new(p.parse().unwrap()).unwrap();
        r.lease_secs = lease;
        r
    }

    #[test]
    fn renew_expire_forget_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Leases::load(dir.path()).unwrap();
        let a = route("198.51.100.0/24", Some(10));
        let b = route("203.0.113.0/24", None);
        let c = route("192.0.2.0/24", Some(5));
        // Leased but never started: expired (safe side).
        assert_eq!(l.expired([&a, &b], 0), [a.prefix]);
        l.renew([&a, &b, &c], 1_000).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.until(&a.prefix), Some(11_000));
        assert_eq!(l.next_deadline(), Some(6_000));
        assert!(l.expired([&a, &b, &c], 5_999).is_empty());
        assert_eq!(l.expired([&a, &b, &c], 6_000), [c.prefix]);
        assert_eq!(l.expired([&a, &b, &c], 11_000), [a.prefix, c.prefix]);

        // A restart keeps the deadlines.
        let mut again = Leases::load(dir.path()).unwrap();
        assert_eq!(again.until(&a.prefix), Some(11_000));
        again.forget(&[c.prefix]).unwrap();
        // Re-announced without a lease: the lease goes.
        again
            .renew([&route("198.51.100.0/24", None)], 2_000)
            .unwrap();
        assert!(Leases::load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEASES_FILE), "{\"version\": 1,").unwrap();
        let e = Leases::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("leases.json is corrupt at line 1"), "{e}");
    }

    /// A write that fails changes nothing: the error names the file, the deadlines in memory
    /// and on disk stay, no temporary file is left to hold space, and the next write works
    /// once the cause is gone; the file is private.
    #[test]
    fn a_failed_write_changes_nothing_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut l = Leases::load(dir.path()).unwrap();
        let a = route("198.51.100.0/24", Some(10));
        l.renew([&a], 1_000).unwrap();
        let file = dir.path().join(LEASES_FILE);
        let mode = fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let before = fs::read(&file).unwrap();
        // The rename cannot replace a directory (as root too).
        fs::remove_file(&file).unwrap();
        fs::create_dir(&file).unwrap();
        let e = l.renew([&a], 5_000).unwrap_err().to_string();
        assert!(e.contains(LEASES_TMP_FILE), "{e}");
        assert_eq!(l.until(&a.prefix), Some(11_000));
        assert_eq!(l.write_failures(), 1);
        assert!(
            !dir.path().join(LEASES_TMP_FILE).exists(),
            "temporary file left"
        );
        fs::remove_dir(&file).unwrap();
        l.renew([&a], 5_000).unwrap();
        assert_eq!(
            Leases::load(dir.path()).unwrap().until(&a.prefix),
            Some(15_000)
        );
        assert_ne!(fs::read(&file).unwrap(), before);
    }
}
