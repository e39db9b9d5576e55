//! [`RouteStore`]: the desired routes, persisted in `state_dir/routes.json`.
//!
//! Contract:
//! - [`RouteStore::apply`] applies a whole batch or none of it, and returns `Ok` only after the
//!   new state is durable: written to a temporary file in the same directory, fsynced, renamed
//!   over `routes.json`, and the directory fsynced. A caller that acknowledges on `Ok` therefore
//!   never acknowledges a state a crash could lose. On `Err` the in-memory state is unchanged.
//! - A batch that changes nothing (re-announce of an identical route, withdraw of a prefix never
//!   announced) is not a change: no write, no new generation, empty [`Applied`].
//! - [`RouteStore::load`]: a missing file is an empty store; an unreadable or corrupt file is an
//!   error naming the file and the JSON error's line and column, never a silently empty store
//!   (which would withdraw every route at start-up). A leftover temporary file from a crash
//!   mid-write is ignored: the rename had not happened, so `routes.json` holds the last
//!   acknowledged state.
//! - `generation` increases by one on every persisted change, and is stored in the file.
//!
//! File format (`version` is the format, `generation` the change counter):
//! ```json
//! {"version": 1, "generation": 7, "routes": [ {"prefix": "198.51.100.0/24", ...} ]}
//! ```
//!
//! Never does: talk to peers, or lock the directory against a second speaker (the daemon does).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::route::{check_prefix, Route, RouteError};

/// The file inside the state directory.
pub const ROUTES_FILE: &str = "routes.json";
/// The temporary file the next state is written to before the rename.
pub const ROUTES_TMP_FILE: &str = "routes.json.tmp";
/// The file format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One request: announce (add or replace) or withdraw a set of prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Announce(Vec<Route>),
    Withdraw(Vec<IpNet>),
}

/// What a batch actually changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Routes that are new or differ from what was stored, in prefix order.
    pub announced: Vec<Route>,
    /// Routes that were stored and are now gone, in prefix order.
    pub withdrawn: Vec<Route>,
    /// The generation after the batch (unchanged when nothing changed).
    pub generation: u64,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.announced.is_empty() && self.withdrawn.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is corrupt at line {line} column {column}: {message}; fix or move the file away (moving it away withdraws every route on start)", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{} has format version {found}; this ferry reads version {FORMAT_VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{} lists prefix {prefix} twice", path.display())]
    DuplicateInFile { path: PathBuf, prefix: IpNet },
    #[error("prefix {prefix} appears twice in one request; send it once")]
    DuplicateInBatch { prefix: IpNet },
    #[error(transparent)]
    Route(#[from] RouteError),
}

impl StoreError {
    /// The request was wrong (answer 400 / exit 2), as opposed to the disk failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::DuplicateInBatch { .. } | Self::Route(_))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    version: u32,
    generation: u64,
    routes: Vec<Route>,
}

#[derive(Debug)]
pub struct RouteStore {
    dir: PathBuf,
    routes: BTreeMap<IpNet, Route>,
    generation: u64,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl RouteStore {
    /// Read `dir/routes.json`; a missing file is an empty store at generation 0. The
    /// directory must exist (the daemon creates it, so a typo in `state_dir` is loud).
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let path = dir.join(ROUTES_FILE);
        fs::metadata(&dir).map_err(io_err("open state directory", &dir))?;
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    dir,
                    routes: BTreeMap::new(),
                    generation: 0,
                })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let file: FileJson = serde_json::from_slice(&text).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if file.version != FORMAT_VERSION {
            return Err(StoreError::Version {
                path,
                found: file.version,
            });
        }
        let mut routes = BTreeMap::new();
        for r in file.routes {
            let prefix = r.prefix;
            if routes.insert(prefix, r).is_some() {
                return Err(StoreError::DuplicateInFile { path, prefix });
            }
        }
        Ok(Self {
            dir,
            routes,
            generation: file.generation,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(ROUTES_FILE)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The desired routes in prefix order (IPv4 before IPv6).
    pub fn routes(&self) -> &BTreeMap<IpNet, Route> {
        &self.routes
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Route> {
        self.routes.get(prefix)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Apply one batch; see the module contract for atomicity and durability.
    pub fn apply(&mut self, change: Change) -> Result<Applied, StoreError> {
        let mut next = self.routes.clone();
        let mut applied = Applied::default();
        let mut seen = std::collections::BTreeSet::new();
        match change {
            Change::Announce(routes) => {
                for r in routes {
                    r.validate()?;
                    if !seen.insert(r.prefix) {
                        return Err(StoreError::DuplicateInBatch { prefix: r.prefix });
                    }
                    if next.get(&r.prefix) != Some(&r) {
                        next.insert(r.prefix, r.clone());
                        applied.announced.push(r);
                    }
                }
                applied.announced.sort_by_key(|r| r.prefix);
            }
            Change::Withdraw(prefixes) => {
                for p in prefixes {
                    check_prefix(p)?;
                    if !seen.insert(p) {
                        return Err(StoreError::DuplicateInBatch { prefix: p });
                    }
                    if let Some(old) = next.remove(&p) {
                        applied.withdrawn.push(old);
                    }
                }
                applied.withdrawn.sort_by_key(|r| r.prefix);
            }
        }
        if applied.is_empty() {
            applied.generation = self.generation;
            return Ok(applied);
        }
        let generation = self.generation + 1;
        self.persist(&next, generation)?;
        self.routes = next;
        self.generation = generation;
        applied.generation = generation;
        Ok(applied)
    }

    /// Write `routes` durably: temp file, fsync, rename, fsync the directory.
    fn persist(&self, routes: &BTreeMap<IpNet, Route>, generation: u64) -> Result<(), StoreError> {
        let file = FileJson {
            version: FORMAT_VERSION,
            generation,
            routes: routes.values().cloned().collect(),
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Io {
            action: "serialize routes for",
            path: self.path(),
            source: io::Error::other(e),
        })?;
        text.push(b'\n');
        let tmp = self.dir.join(ROUTES_TMP_FILE);
        let path = self.path();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(&text).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))?;
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", &self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    #[test]
    fn missing_file_is_empty_and_changes_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.generation(), 0);
        let mut r = route("198.51.100.0/24");
        r.med = Some(5);
        let a = s
            .apply(Change::Announce(vec![r.clone(), route("2001:db8:1::/48")]))
            .unwrap();
        assert_eq!(a.generation, 1);
        assert_eq!(a.announced.len(), 2);
        assert!(!dir.path().join(ROUTES_TMP_FILE).exists());
        let s2 = RouteStore::load(dir.path()).unwrap();
        assert_eq!(s2.generation(), 1);
        assert_eq!(s2.routes(), s.routes());
        assert_eq!(s2.get(&r.prefix), Some(&r));
    }

    #[test]
    fn no_op_batches_do_not_write_or_bump_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        let a = s
            .apply(Change::Withdraw(vec!["198.51.100.0/24".parse().unwrap()]))
            .unwrap();
        assert!(a.is_empty());
        assert_eq!(a.generation, 0);
        assert!(!s.path().exists());
        s.apply(Change::Announce(vec![route("198.51.100.0/24")]))
            .unwrap();
        let again = s
            .apply(Change::Announce(vec![route("198.51.100.0/24")]))
            .unwrap();
        assert!(again.is_empty());
        assert_eq!(s.generation(), 1);
        // Changing an attribute is a change.
        let mut r = route("198.51.100.0/24");
        r.prepend = 1;
        let changed = s.apply(Change::Announce(vec![r.clone()])).unwrap();
        assert_eq!(changed.announced, vec![r]);
        assert_eq!(changed.generation, 2);
        let w = s
            .apply(Change::Withdraw(vec![
                "198.51.100.0/24".parse().unwrap(),
                "203.0.113.0/24".parse().unwrap(),
            ]))
            .unwrap();
        assert_eq!(w.withdrawn.len(), 1);
        assert_eq!(w.generation, 3);
        assert!(RouteStore::load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_bad_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        let e = s
            .apply(Change::Announce(vec![
                route("198.51.100.0/24"),
                route("203.0.113.0/24"),
                route("198.51.100.0/24"),
            ]))
            .unwrap_err();
        assert!(matches!(e, StoreError::DuplicateInBatch { .. }), "{e}");
        assert!(e.is_bad_input());
        assert!(s.is_empty());
        assert!(!s.path().exists());
        let mut bad = route("203.0.113.0/24");
        bad.prepend = 33;
        let e = s
            .apply(Change::Announce(vec![route("198.51.100.0/24"), bad]))
            .unwrap_err();
        assert!(e.to_string().contains("prepend 33"), "{e}");
        assert!(s.is_empty());
        let e = s
            .apply(Change::Withdraw(vec!["198.51.100.1/24".parse().unwrap()]))
            .unwrap_err();
        assert!(
            e.to_string().contains("did you mean 198.51.100.0/24"),
            "{e}"
        );
    }

    #[test]
    fn crash_before_rename_leaves_the_last_acknowledged_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        s.apply(Change::Announce(vec![route("198.51.100.0/24")]))
            .unwrap();
        // A crash mid-write leaves a partial temp file and the old routes.json.
        fs::write(dir.path().join(ROUTES_TMP_FILE), b"{\"version\":1,\"gener").unwrap();
        let s2 = RouteStore::load(dir.path()).unwrap();
        assert_eq!(s2.generation(), 1);
        assert_eq!(s2.routes(), s.routes());
        // The next write overwrites the leftover.
        let mut s2 = s2;
        s2.apply(Change::Announce(vec![route("203.0.113.0/24")]))
            .unwrap();
        assert!(!dir.path().join(ROUTES_TMP_FILE).exists());
        assert_eq!(RouteStore::load(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn corrupt_file_is_an_error_naming_file_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROUTES_FILE);
        fs::write(
            &path,
            "{\"version\": 1,\n \"generation\": 2,\n \"routes\": [ {\"prefix\": ",
        )
        .unwrap();
        let e = RouteStore::load(dir.path()).unwrap_err();
        match &e {
            StoreError::Corrupt { path: p, line, .. } => {
                assert_eq!(p, &path);
                assert_eq!(*line, 3);
            }
            other => panic!("{other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("routes.json is corrupt at line 3 column"),
            "{msg}"
        );

        // A route that fails validation is corruption too, located the same way.
        fs::write(
            &path,
            r#"{"version":1,"generation":2,"routes":[{"prefix":"198.51.100.1/24"}]}"#,
        )
        .unwrap();
        let msg = RouteStore::load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("line 1 column"), "{msg}");
        assert!(msg.contains("did you mean 198.51.100.0/24"), "{msg}");

        fs::write(&path, r#"{"version":9,"generation":2,"routes":[]}"#).unwrap();
        assert!(matches!(
            RouteStore::load(dir.path()),
            Err(StoreError::Version { found: 9, .. })
        ));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = RouteStore::load(dir.path().join("nope")).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot open state directory"),
            "{e}"
        );
    }
}
