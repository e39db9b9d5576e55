//! [`RouteStore`]: the desired routes, persisted in `state_dir/routes.json` (a snapshot) plus
//! `state_dir/routes.journal` (the changes since the snapshot).
//!
//! Contract:
//! - [`RouteStore::apply`] applies a whole batch or none of it, and returns `Ok` only after the
//!   new state is durable. It is [`RouteStore::prepare`] (check the batch and compute what it
//!   changes, touching nothing) then [`RouteStore::commit`] (write, then change the memory), so
//!   a caller can hand the change on while it is being written, and undo that if the write
//!   fails. A change is one JSON line appended to `routes.journal` and
//!   fdatasynced, so its cost is O(changed routes), not O(table). The first change writes a
//!   snapshot instead, and [`RouteStore::compact_if_due`] (called after a change was handed
//!   on) writes a new one once the journal outgrew the snapshot (and [`MIN_COMPACT`] octets):
//!   a temporary file in the same directory, fsynced, renamed over `routes.json`, the
//!   directory fsynced ([`crate::durable::replace()`]), then the journal removed. A caller
//!   that acknowledges on `Ok` therefore never acknowledges a state a crash could lose. On `Err`
//!   the in-memory state is unchanged.
//! - A batch that changes nothing (re-announce of an identical route, withdraw of a prefix never
//!   announced) is not a change: no write, no new generation, empty [`Applied`].
//! - [`RouteStore::load`]: a missing file is an empty store; an unreadable or corrupt file is an
//!   error naming the file and the JSON error's line and column, never a silently empty store
//!   (which would withdraw every route at start-up). A leftover temporary file from a crash
//!   mid-write is ignored (and removed): the rename had not happened, so `routes.json` holds the
//!   last acknowledged state. Journal lines then apply in generation order; lines at or below the
//!   snapshot's generation are skipped (a crash between the snapshot's rename and the
//!   journal's removal), a gap or a corrupt complete line is an error naming the journal and
//!   the line, and a last line without its newline is ignored (its append never returned, so
//!   it was never acknowledged): the torn-tail rule of [`crate::durable::lines`]. A journal
//!   found at load is compacted into the snapshot; when that write fails (a full disk) the
//!   store still loads, and its next change writes a snapshot.
//! - A write that fails (ENOSPC, EFBIG, EIO, half way or not) fails its change and leaves files
//!   that load to the last acknowledged state: a partial snapshot is removed, the journal is cut
//!   back to its last complete line ([`crate::durable::append_line`]) and, opened with
//!   O_APPEND, takes the next line right there. A later change succeeds once the disk has room
//!   again. [`RouteStore::write_failures`] counts the failures.
//! - The files are created mode 0600 (the daemon creates the directory 0700).
//! - `generation` increases by one on every persisted change, and is stored in the file.
//!
//! File format (`version` is the format, `generation` the change counter), one route a line;
//! a route (here and in the journal) is the API's JSON form without the fields that hold
//! their default (`{"prefix": "198.51.100.0/24"}` is a plain route), read back by the same
//! deserializer as the API's, so files with every field written load too:
//! ```json
//! {"version": 1, "generation": 7, "routes": [
//!   {"prefix":"198.51.100.0/24","med":5}
//! ]}
//! ```
//!
//! Never does: talk to peers, or lock the directory against a second speaker (the daemon does).

use ipnet::IpNet;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::prefix_text::PrefixText;
use super::route::{check_prefix, Form, Route, RouteError};
use super::sorted_walk::{most_of, take_if_next, walk_beats_search};
use super::stamp::Stamp;
use crate::durable;

/// The file inside the state directory.
pub const ROUTES_FILE: &str = "routes.json";
/// The changes since `routes.json`, one JSON object per line:
/// `{"generation": 8, "announce": [ROUTE...]}` or `{"generation": 9, "withdraw": ["PREFIX"...]}`.
pub const JOURNAL_FILE: &str = "routes.journal";
/// The journal is compacted into the snapshot once it is larger than the snapshot and this.
pub const MIN_COMPACT: u64 = 64 * 1024;
/// The temporary file the next state is written to before the rename
/// ([`durable::temp_path`] of [`ROUTES_FILE`]).
pub const ROUTES_TMP_FILE: &str = "routes.json.tmp";
/// The file format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One request: announce (add or replace) or withdraw a set of prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Shared from the API's parse on (see [`crate::api::AnnounceRequest`]): never copied.
    Announce(Vec<Arc<Route>>),
    Withdraw(Vec<IpNet>),
}

/// What a batch actually changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Routes that are new or differ from what was stored, in prefix order; shared with the
    /// table once committed and with the drivers' [`super::DesiredLog`], never copied.
    pub announced: Vec<Arc<Route>>,
    /// Prefixes that were stored and are now gone, in prefix order.
    pub withdrawn: Vec<IpNet>,
    /// The generation after the batch (unchanged when nothing changed).
    pub generation: u64,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.announced.is_empty() && self.withdrawn.is_empty()
    }

    /// Every prefix the batch changes: the announced ones, then the withdrawn ones.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        let announced = self.announced.iter().map(|r| r.prefix);
        announced.chain(self.withdrawn.iter().copied())
    }
}

/// A [`RouteStore::commit`] that could not write: why, and the batch (nothing of it applied).
#[derive(Debug)]
pub struct CommitFailed {
    pub error: StoreError,
    pub applied: Applied,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    version: u32,
    generation: u64,
    routes: Vec<Route>,
    /// When and by whom the routes were last changed, grouped by change (absent in files
    /// written before the stamps were kept: those routes have none).
    #[serde(default)]
    changes: Vec<StampGroup>,
}

/// The routes of one change in the snapshot: `{"at_ms": .., "by": "..", "prefixes": [..]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StampGroup {
    at_ms: u64,
    by: String,
    prefixes: Vec<IpNet>,
}

/// One line of `routes.journal`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalEntry {
    generation: u64,
    /// When (Unix ms) and by whom (absent in lines written before they were recorded).
    #[serde(default)]
    at_ms: Option<u64>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    announce: Vec<Route>,
    #[serde(default)]
    withdraw: Vec<IpNet>,
}

/// A journal line as written: [`JournalEntry`] with borrowed routes in their stored form.
#[derive(Serialize)]
struct JournalOut<'a> {
    generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    announce: Vec<Stored<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    withdraw: Vec<StoredPrefix>,
}

/// Insert (or replace) the entries of `batch`, sorted by prefix without duplicates. A batch
/// that is large next to the table is merged in one linear pass (`BTreeMap::append` builds
/// from both sorted sequences) instead of one tree search per entry.
fn insert_sorted<V>(
    table: &mut BTreeMap<IpNet, V>,
    batch: impl ExactSizeIterator<Item = (IpNet, V)>,
) {
    if walk_beats_search(batch.len(), table.len()) {
        let mut batch: BTreeMap<IpNet, V> = batch.collect();
        table.append(&mut batch);
    } else {
        table.extend(batch);
    }
}

/// Remove `prefixes`, sorted; a large batch is removed in one linear pass over the table
/// (both in prefix order) instead of one tree search per prefix.
fn remove_sorted<'p, V>(
    table: &mut BTreeMap<IpNet, V>,
    prefixes: impl ExactSizeIterator<Item = &'p IpNet>,
) {
    if table.is_empty() {
        return;
    }
    if most_of(prefixes.len(), table.len()) {
        // What stays is built anew from the sorted walk (full nodes), instead of removing
        // entry by entry, each removal shifting and rebalancing nodes: that was a quarter of
        // a 100,000-prefix withdraw's CPU.
        let mut gone = prefixes.peekable();
        *table = std::mem::take(table)
            .into_iter()
            .filter(|(p, _)| !take_if_next(&mut gone, p))
            .collect();
    } else if walk_beats_search(prefixes.len(), table.len()) {
        let mut gone = prefixes.peekable();
        table.retain(|p, _| !take_if_next(&mut gone, p));
    } else {
        for p in prefixes {
            table.remove(p);
        }
    }
}

/// The stored route of each of `prefixes` (sorted, no duplicates), in their order. A batch
/// that is large next to the table walks the table once beside it instead of searching the
/// tree per prefix.
fn stored_matches<'a, 'p>(
    table: &'a BTreeMap<IpNet, Arc<Route>>,
    prefixes: impl ExactSizeIterator<Item = &'p IpNet>,
) -> Vec<Option<&'a Route>> {
    if walk_beats_search(prefixes.len(), table.len()) {
        let mut stored = table.iter().peekable();
        prefixes
            .map(|p| {
                while stored.next_if(|(k, _)| *k < p).is_some() {}
                stored.next_if(|(k, _)| *k == p).map(|(_, r)| &**r)
            })
            .collect()
    } else {
        prefixes.map(|p| table.get(p).map(|r| &**r)).collect()
    }
}

/// A prefix as the files store it (the same text as `Display`, built faster).
struct StoredPrefix(IpNet);

impl Serialize for StoredPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(PrefixText::prefix(&self.0).as_str())
    }
}

/// A route as the files store it: the API's JSON form (read back by `Route`'s
/// `Deserialize`) without the fields that hold their default, so a table of plain routes is
/// ~40 octets a route instead of ~200 (the snapshot of 100,000 routes is written and fsynced
/// before the change is acknowledged, so its size is latency).
struct Stored<'a>(&'a Route);

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.0.write_fields(&mut m, Form::Compact)?;
        m.end()
    }
}

#[derive(Debug)]
pub struct RouteStore {
    dir: PathBuf,
    /// Shared (`Arc`) with the drivers' [`super::DesiredLog`]: one copy of each route.
    routes: BTreeMap<IpNet, Arc<Route>>,
    /// When and by whom each route was last changed, where known (changes recorded without a
    /// stamp, and files written before stamps were kept, leave a route without one). Ordered
    /// like `routes`, so a batch (in prefix order) is stamped by the same sorted merge and walk
    /// as the table: hashing 100,000 prefixes one by one was a sixth of a bulk change's CPU.
    stamps: BTreeMap<IpNet, Arc<Stamp>>,
    generation: u64,
    /// `routes.json` exists and holds `snapshot_bytes` octets.
    snapshot: Option<u64>,
    /// The open journal (O_APPEND) and its length; `None`: no journal (the next append
    /// creates it).
    journal: Option<(File, u64)>,
    /// Writes that failed (appends, snapshots, compactions), for the metrics.
    write_failures: u64,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The routes after `applied`, in prefix order, without copying the table: `routes` and
/// `applied.announced` (both in prefix order) merged, `applied.withdrawn` left out.
fn merged<'a>(routes: &'a BTreeMap<IpNet, Arc<Route>>, applied: &'a Applied) -> Vec<&'a Route> {
    let gone = |p: &IpNet| applied.withdrawn.binary_search(p).is_ok();
    let mut out: Vec<&Route> = Vec::with_capacity(routes.len() + applied.announced.len());
    let mut new = applied.announced.iter().peekable();
    for (p, r) in routes {
        while let Some(n) = new.next_if(|n| n.prefix < *p) {
            out.push(n);
        }
        match new.next_if(|n| n.prefix == *p) {
            Some(n) => out.push(n),
            None if !gone(p) => out.push(r),
            None => {}
        }
    }
    out.extend(new.map(|n| &**n));
    out
}

impl RouteStore {
    /// Read `dir/routes.json`; a missing file is an empty store at generation 0. The
    /// directory must exist (the daemon creates it, so a typo in `state_dir` is loud).
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let path = dir.join(ROUTES_FILE);
        fs::metadata(&dir).map_err(io_err("open state directory", &dir))?;
        // A temporary snapshot from a crash mid-write never became the state: drop it.
        let _ = fs::remove_file(durable::temp_path(&path));
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut s = Self {
                    dir,
                    routes: BTreeMap::new(),
                    stamps: BTreeMap::new(),
                    generation: 0,
                    snapshot: None,
                    journal: None,
                    write_failures: 0,
                };
                s.replay_journal()?;
                return Ok(s);
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
            if routes.insert(prefix, Arc::new(r)).is_some() {
                return Err(StoreError::DuplicateInFile { path, prefix });
            }
        }
        let mut stamps = BTreeMap::new();
        for g in file.changes {
            let stamp = Arc::new(Stamp {
                at_ms: g.at_ms,
                by: g.by,
            });
            for p in g.prefixes.into_iter().filter(|p| routes.contains_key(p)) {
                stamps.insert(p, stamp.clone());
            }
        }
        let mut s = Self {
            dir,
            routes,
            stamps,
            generation: file.generation,
            snapshot: Some(text.len() as u64),
            journal: None,
            write_failures: 0,
        };
        s.replay_journal()?;
        Ok(s)
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// Apply the journal's complete lines after the snapshot, then compact it away.
    fn replay_journal(&mut self) -> Result<(), StoreError> {
        let path = self.journal_path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        // Only newline-terminated lines were ever acknowledged: the reader drops a torn tail.
        for read in durable::json_lines::<JournalEntry>(&text) {
            let corrupt = |line: usize, column: usize, message: String| StoreError::Corrupt {
                path: path.clone(),
                line,
                column,
                message,
            };
            let (entry, line) = match read {
                Ok(r) => (r.value, r.line),
                Err(bad) => {
                    return Err(corrupt(bad.line, bad.error.column(), bad.error.to_string()))
                }
            };
            if entry.generation <= self.generation {
                continue; // already in the snapshot
            }
            if entry.generation != self.generation + 1 {
                return Err(corrupt(
                    line,
                    1,
                    format!(
                        "generation {} follows generation {}: changes are missing",
                        entry.generation, self.generation
                    ),
                ));
            }
            let stamp = match (entry.at_ms, entry.by) {
                (Some(at_ms), Some(by)) => Some(Arc::new(Stamp { at_ms, by })),
                _ => None,
            };
            for r in entry.announce {
                match &stamp {
                    Some(s) => self.stamps.insert(r.prefix, s.clone()),
                    None => self.stamps.remove(&r.prefix),
                };
                self.routes.insert(r.prefix, Arc::new(r));
            }
            for p in entry.withdraw {
                self.stamps.remove(&p);
                self.routes.remove(&p);
            }
            self.generation = entry.generation;
        }
        // A full disk must not keep the speaker from starting with the routes it
        // acknowledged: they are all in the files just read. Without a fresh snapshot the
        // next change writes one (and only then drops the journal), so nothing is appended
        // to a journal that may end in a torn line.
        if let Err(e) = self.compact() {
            self.write_failures += 1;
            tracing::warn!(error = %e, "cannot compact the route journal at start; the next change writes a snapshot");
            self.snapshot = None;
            self.journal = None;
        }
        Ok(())
    }

    /// Compact the journal into a new snapshot if it outgrew the snapshot (and
    /// [`MIN_COMPACT`]); returns whether it did. The caller runs this after it handed the
    /// change on, so the change that crosses the limit does not wait for the snapshot. On
    /// `Err` the journal stays and the state is as durable as before.
    pub fn compact_if_due(&mut self) -> Result<bool, StoreError> {
        let due = self.compaction_due();
        if due {
            self.compact().inspect_err(|_| self.write_failures += 1)?;
        }
        Ok(due)
    }

    /// How many writes of the state failed since the store was loaded (each answered with an
    /// error, or, for compactions, retried later).
    pub fn write_failures(&self) -> u64 {
        self.write_failures
    }

    /// The journal outgrew the snapshot (and [`MIN_COMPACT`]).
    pub fn compaction_due(&self) -> bool {
        let journal_len = self.journal.as_ref().map_or(0, |(_, l)| *l);
        self.snapshot
            .is_some_and(|snap| journal_len > snap.max(MIN_COMPACT))
    }

    /// Write the snapshot of the current state and drop the journal.
    fn compact(&mut self) -> Result<(), StoreError> {
        let all: Vec<&Route> = self.routes.values().map(|r| &**r).collect();
        let len = self.persist(&all, self.generation, |p| self.stamps.get(p).map(|s| &**s))?;
        drop(all);
        self.snapshot = Some(len);
        self.journal = None;
        let path = self.journal_path();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
        durable::sync_dir(&self.dir).map_err(io_err("fsync directory", &self.dir))
    }

    /// Append one change to the journal durably; on failure the journal is cut back to its
    /// last complete line (or dropped, so that the next change writes a snapshot).
    ///
    /// The journal is opened with O_APPEND: after a write that failed half way (ENOSPC, EFBIG,
    /// EIO) and the cut back, the file offset of a plain descriptor would stay past the end,
    /// and the next append would leave a run of NUL octets before its line, a corrupt line
    /// that stops the next start. With O_APPEND every write lands at the end as it is now.
    fn append(&mut self, entry: &JournalOut<'_>) -> Result<(), StoreError> {
        let path = self.journal_path();
        let mut line = serde_json::to_vec(entry).map_err(|e| StoreError::Io {
            action: "serialize a change for",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        if self.journal.is_none() {
            // std refuses `append(true)` with `truncate(true)`; the flag does the same. A
            // leftover journal here holds only changes the snapshot has.
            let f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .custom_flags(nix::libc::O_APPEND)
                .mode(0o600)
                .open(&path)
                .map_err(io_err("create", &path))?;
            // The new file's directory entry must be durable before anything in it counts.
            durable::sync_dir(&self.dir).map_err(io_err("fsync directory", &self.dir))?;
            self.journal = Some((f, 0));
        }
        let Some((f, len)) = self.journal.as_mut() else {
            return Ok(());
        };
        match durable::append_line(f, *len, &line) {
            Ok(()) => {
                *len += line.len() as u64;
                Ok(())
            }
            Err(failed) => {
                if failed.cut_back.is_err() {
                    self.journal = None;
                    self.snapshot = None;
                }
                Err(io_err("append to", &path)(failed.source))
            }
        }
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
    pub fn routes(&self) -> &BTreeMap<IpNet, Arc<Route>> {
        &self.routes
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Route> {
        self.routes.get(prefix).map(|r| &**r)
    }

    /// The stored route of `prefix` itself, to share rather than copy.
    pub fn get_shared(&self, prefix: &IpNet) -> Option<&Arc<Route>> {
        self.routes.get(prefix)
    }

    /// When and by whom the route of `prefix` was last changed, if recorded.
    pub fn stamp(&self, prefix: &IpNet) -> Option<&Stamp> {
        self.stamps.get(prefix).map(|s| &**s)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Apply one batch; see the module contract for atomicity and durability.
    pub fn apply(&mut self, change: Change) -> Result<Applied, StoreError> {
        self.apply_by(change, None)
    }

    /// [`RouteStore::apply`], recording `stamp` with the change.
    pub fn apply_by(
        &mut self,
        change: Change,
        stamp: Option<Stamp>,
    ) -> Result<Applied, StoreError> {
        let applied = self.prepare(change)?;
        self.commit_by(applied.clone(), stamp)
            .map_err(|f| f.error)?;
        Ok(applied)
    }

    /// What `change` would change, checked, with the generation it would get; nothing is
    /// written and nothing changes until [`RouteStore::commit`]. An `Err` is bad input.
    pub fn prepare(&self, change: Change) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        // Every item is checked before anything changes; sorting first finds duplicates
        // next to each other and leaves `applied` in prefix order.
        match change {
            Change::Announce(mut routes) => {
                for r in &routes {
                    r.validate()?;
                }
                routes.sort_unstable_by_key(|r| r.prefix);
                if let Some(w) = routes.windows(2).find(|w| w[0].prefix == w[1].prefix) {
                    return Err(StoreError::DuplicateInBatch {
                        prefix: w[0].prefix,
                    });
                }
                let stored = stored_matches(&self.routes, routes.iter().map(|r| &r.prefix));
                applied.announced = routes
                    .into_iter()
                    .zip(stored)
                    .filter(|(r, old)| *old != Some(&**r))
                    .map(|(r, _)| r)
                    .collect();
            }
            Change::Withdraw(mut prefixes) => {
                for p in &prefixes {
                    check_prefix(*p)?;
                }
                prefixes.sort_unstable();
                if let Some(w) = prefixes.windows(2).find(|w| w[0] == w[1]) {
                    return Err(StoreError::DuplicateInBatch { prefix: w[0] });
                }
                let stored = stored_matches(&self.routes, prefixes.iter());
                // In place: no second list of 100,000 prefixes beside the first.
                let mut was_stored = stored.iter().map(Option::is_some);
                prefixes.retain(|_| was_stored.next().unwrap_or(false));
                applied.withdrawn = prefixes;
            }
        }
        applied.generation = self.generation + u64::from(!applied.is_empty());
        Ok(applied)
    }

    /// Make a batch from [`RouteStore::prepare`] (with nothing committed since) durable, then
    /// the in-memory state (the routes move into the table); on `Err` neither changed and the
    /// batch comes back. An empty batch is no change.
    pub fn commit(&mut self, applied: Applied) -> Result<(), Box<CommitFailed>> {
        self.commit_by(applied, None)
    }

    /// [`RouteStore::commit`], recording `stamp` (when and by whom) with the change: in the
    /// journal line or the snapshot, and as the changed routes' [`RouteStore::stamp`]. Without
    /// one the announced routes have no stamp.
    pub fn commit_by(
        &mut self,
        applied: Applied,
        stamp: Option<Stamp>,
    ) -> Result<(), Box<CommitFailed>> {
        if applied.is_empty() {
            return Ok(());
        }
        let generation = self.generation + 1;
        debug_assert_eq!(
            applied.generation, generation,
            "prepared against another state"
        );
        if self.snapshot.is_none() {
            let next = merged(&self.routes, &applied);
            let is_new = |p: &IpNet| {
                applied
                    .announced
                    .binary_search_by_key(p, |r| r.prefix)
                    .is_ok()
            };
            let stamp_of = |p: &IpNet| {
                if is_new(p) {
                    stamp.as_ref()
                } else {
                    self.stamps.get(p).map(|s| &**s)
                }
            };
            let len = match self.persist(&next, generation, stamp_of) {
                Ok(len) => len,
                Err(e) => {
                    drop(next);
                    self.write_failures += 1;
                    return Err(Box::new(CommitFailed { error: e, applied }));
                }
            };
            drop(next);
            self.restamp(&applied, stamp);
            insert_sorted(
                &mut self.routes,
                applied.announced.into_iter().map(|r| (r.prefix, r)),
            );
            remove_sorted(&mut self.routes, applied.withdrawn.iter());
            self.generation = generation;
            self.snapshot = Some(len);
            // The snapshot holds every journaled change: drop the journal (a leftover one is
            // skipped at load by its generations).
            self.journal = None;
            let _ = fs::remove_file(self.journal_path());
        } else {
            let written = self.append(&JournalOut {
                generation,
                at_ms: stamp.as_ref().map(|s| s.at_ms),
                by: stamp.as_ref().map(|s| s.by.as_str()),
                announce: applied.announced.iter().map(|r| Stored(r)).collect(),
                withdraw: applied
                    .withdrawn
                    .iter()
                    .copied()
                    .map(StoredPrefix)
                    .collect(),
            });
            if let Err(error) = written {
                self.write_failures += 1;
                return Err(Box::new(CommitFailed { error, applied }));
            }
            self.restamp(&applied, stamp);
            insert_sorted(
                &mut self.routes,
                applied.announced.into_iter().map(|r| (r.prefix, r)),
            );
            remove_sorted(&mut self.routes, applied.withdrawn.iter());
            self.generation = generation;
        }
        Ok(())
    }

    /// The changed routes' stamps after `applied` (in prefix order) was made durable.
    fn restamp(&mut self, applied: &Applied, stamp: Option<Stamp>) {
        let announced = applied.announced.iter();
        match stamp.map(Arc::new) {
            Some(s) => insert_sorted(
                &mut self.stamps,
                announced.map(|r| (r.prefix, Arc::clone(&s))),
            ),
            None => remove_sorted(&mut self.stamps, announced.map(|r| &r.prefix)),
        }
        remove_sorted(&mut self.stamps, applied.withdrawn.iter());
    }

    /// Write `routes` durably ([`durable::replace()`]: temp file, fsync, rename, fsync the
    /// directory). Returns the snapshot's size.
    /// One route a line, in the stored form (see [`Stored`]), then the routes' stamps
    /// (`stamp_of`) grouped by change, oldest first.
    fn persist<'a>(
        &self,
        routes: &[&Route],
        generation: u64,
        stamp_of: impl Fn(&IpNet) -> Option<&'a Stamp>,
    ) -> Result<u64, StoreError> {
        let mut text = Vec::with_capacity(64 + routes.len() * 48);
        let _ = write!(
            text,
            "{{\"version\": {FORMAT_VERSION}, \"generation\": {generation}, \"routes\": ["
        );
        for (i, r) in routes.iter().enumerate() {
            text.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            serde_json::to_writer(&mut text, &Stored(r)).map_err(|e| StoreError::Io {
                action: "serialize routes for",
                path: self.path(),
                source: io::Error::other(e),
            })?;
        }
        text.extend_from_slice(b"\n]");
        // Grouped by the stamp's place in memory (one per change, shared by its routes), so a
        // large table costs a pointer hash per route, not a string hash.
        let mut groups: HashMap<*const Stamp, (&Stamp, Vec<StoredPrefix>)> = HashMap::new();
        for r in routes {
            if let Some(s) = stamp_of(&r.prefix) {
                groups
                    .entry(std::ptr::from_ref(s))
                    .or_insert_with(|| (s, Vec::new()))
                    .1
                    .push(StoredPrefix(r.prefix));
            }
        }
        if !groups.is_empty() {
            let mut groups: Vec<_> = groups.into_values().collect();
            groups.sort_unstable_by(|a, b| (a.0.at_ms, &a.0.by).cmp(&(b.0.at_ms, &b.0.by)));
            text.extend_from_slice(b", \"changes\": [");
            for (i, (stamp, prefixes)) in groups.iter().enumerate() {
                text.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
                #[derive(Serialize)]
                struct GroupOut<'g> {
                    at_ms: u64,
                    by: &'g str,
                    prefixes: &'g [StoredPrefix],
                }
                serde_json::to_writer(
                    &mut text,
                    &GroupOut {
                        at_ms: stamp.at_ms,
                        by: &stamp.by,
                        prefixes,
                    },
                )
                .map_err(|e| StoreError::Io {
                    action: "serialize routes for",
                    path: self.path(),
                    source: io::Error::other(e),
                })?;
            }
            text.extend_from_slice(b"\n]");
        }
        text.extend_from_slice(b"}\n");
        // A failed write removes its partial snapshot, which on a full disk would hold the
        // space the journal needs.
        durable::replace(&self.path(), &text, 0o600).map_err(|e| StoreError::Io {
            action: e.step.action(),
            path: e.path,
            source: e.source,
        })?;
        Ok(text.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fs::TinyFs;

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    fn announce_of(routes: Vec<Route>) -> Change {
        Change::Announce(routes.into_iter().map(Arc::new).collect())
    }

    #[test]
    fn missing_file_is_empty_and_changes_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.generation(), 0);
        let mut r = route("198.51.100.0/24");
        r.attrs.med = Some(5);
        let a = s
            .apply(announce_of(vec![r.clone(), route("2001:db8:1::/48")]))
            .unwrap();
        assert_eq!(a.generation, 1);
        assert_eq!(a.announced.len(), 2);
        assert!(!dir.path().join(ROUTES_TMP_FILE).exists());
        assert_eq!(
            durable::temp_path(&s.path()),
            dir.path().join(ROUTES_TMP_FILE)
        );
        let s2 = RouteStore::load(dir.path()).unwrap();
        assert_eq!(s2.generation(), 1);
        assert_eq!(s2.routes(), s.routes());
        assert_eq!(s2.get(&r.prefix), Some(&r));
    }

    /// The stored form leaves default fields out: every field set and every field at its
    /// default both come back equal, from the snapshot and from the journal, and a snapshot
    /// written over an existing table holds the merge (kept, replaced, added, withdrawn).
    #[test]
    fn the_stored_form_round_trips_every_field_through_snapshot_and_journal() {
        let full: Route = serde_json::from_str(
            r#"{"prefix": "203.0.113.0/24", "next_hop": "192.0.2.1", "origin": "incomplete",
                "communities": ["65000:1", "65000:2"], "large_communities": ["4200000000:1:2"],
                "med": 7, "local_pref": 200, "prepend": 2, "lease_secs": 30}"#,
        )
        .unwrap();
        let mut egp = route("2001:db8:2::/48");
        egp.attrs.origin = crate::wire::Origin::Egp;
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        let plain = [route("198.51.100.0/24"), route("2001:db8:1::/48")];
        s.apply(announce_of(vec![
            plain[1].clone(),
            full.clone(),
            plain[0].clone(),
        ]))
        .unwrap();
        let text = fs::read_to_string(s.path()).unwrap();
        assert!(text.contains(r#"{"prefix":"198.51.100.0/24"}"#), "{text}");
        assert_eq!(RouteStore::load(dir.path()).unwrap().routes(), s.routes());
        // Journal: a new route with a non-default origin, a replaced one, a withdrawn one.
        let mut full2 = full.clone();
        full2.attrs.med = None;
        s.apply(announce_of(vec![egp.clone(), full2.clone()]))
            .unwrap();
        s.apply(Change::Withdraw(vec![plain[1].prefix])).unwrap();
        let want: Vec<Route> = vec![plain[0].clone(), full2.clone(), egp.clone()];
        let got: Vec<Route> = s.routes().values().map(|r| Route::clone(r)).collect();
        assert_eq!(got, want);
        let mut s2 = RouteStore::load(dir.path()).unwrap();
        assert_eq!(s2.routes(), s.routes());
        assert_eq!(s2.generation(), 3);
        // A snapshot over an existing table (after a failed append the next change writes
        // one): the merge of kept, replaced, added and withdrawn routes.
        s2.snapshot = None;
        s2.apply(announce_of(vec![full.clone(), route("192.0.2.0/24")]))
            .unwrap();
        s2.apply(Change::Withdraw(vec![egp.prefix])).unwrap();
        let s3 = RouteStore::load(dir.path()).unwrap();
        let got: Vec<Route> = s3.routes().values().map(|r| Route::clone(r)).collect();
        assert_eq!(got, vec![route("192.0.2.0/24"), plain[0].clone(), full]);
        assert_eq!(s3.routes(), s2.routes());
    }

    /// Each change's stamp (when, by whom) is written with it, in the journal and in the
    /// snapshot, and comes back with the routes it changed; a change without one leaves its
    /// routes without, and a withdrawal takes the stamp with the route.
    #[test]
    fn stamps_survive_journal_snapshot_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        let by = |who: &str, at_ms| Stamp {
            at_ms,
            by: who.into(),
        };
        let (a, b, c) = (
            route("198.51.100.0/24"),
            route("203.0.113.0/24"),
            route("2001:db8:1::/48"),
        );
        // Snapshot, then journal lines.
        s.apply_by(
            announce_of(vec![a.clone(), b.clone()]),
            Some(by("uid 1 (x)", 1000)),
        )
        .unwrap();
        s.apply_by(
            announce_of(vec![c.clone()]),
            Some(by("tcp 192.0.2.9:1", 2000)),
        )
        .unwrap();
        let mut b2 = b.clone();
        b2.attrs.med = Some(9);
        s.apply(announce_of(vec![b2.clone()])).unwrap();
        let journal = fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert!(
            journal.contains(r#"{"generation":2,"at_ms":2000,"by":"tcp 192.0.2.9:1","announce""#),
            "{journal}"
        );
        let check = |s: &RouteStore| {
            assert_eq!(s.stamp(&a.prefix), Some(&by("uid 1 (x)", 1000)));
            assert_eq!(s.stamp(&b.prefix), None, "changed without a stamp");
            assert_eq!(s.stamp(&c.prefix), Some(&by("tcp 192.0.2.9:1", 2000)));
        };
        check(&s);
        // Load replays the journal, then compacts it into a snapshot: both keep the stamps.
        let s2 = RouteStore::load(dir.path()).unwrap();
        check(&s2);
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        let text = fs::read_to_string(s2.path()).unwrap();
        assert!(text.contains(r#""changes": ["#), "{text}");
        let mut s3 = RouteStore::load(dir.path()).unwrap();
        check(&s3);
        s3.apply_by(Change::Withdraw(vec![a.prefix]), Some(by("uid 2", 3000)))
            .unwrap();
        s3.apply_by(announce_of(vec![a.clone()]), None).unwrap();
        assert_eq!(s3.stamp(&a.prefix), None);
        assert_eq!(RouteStore::load(dir.path()).unwrap().stamp(&a.prefix), None);
    }

    /// Files written before stamps were kept (no `changes`, journal lines without `at_ms` and
    /// `by`) load as before, their routes without stamps.
    #[test]
    fn files_without_stamps_still_load() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(ROUTES_FILE),
            "{\"version\": 1, \"generation\": 1, \"routes\": [\n  {\"prefix\":\"198.51.100.0/24\"}\n]}\n",
        )
        .unwrap();
        fs::write(
            dir.path().join(JOURNAL_FILE),
            "{\"generation\":2,\"announce\":[{\"prefix\":\"203.0.113.0/24\"}]}\n",
        )
        .unwrap();
        let s = RouteStore::load(dir.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.generation(), 2);
        assert!(s.routes().keys().all(|p| s.stamp(p).is_none()));
    }

    #[test]
    fn changes_after_the_first_go_to_the_journal_and_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        s.apply(announce_of(vec![route("198.51.100.0/24")]))
            .unwrap();
        let snapshot = fs::read(s.path()).unwrap();
        let journal = dir.path().join(JOURNAL_FILE);
        assert!(!journal.exists(), "the first change writes the snapshot");
        for i in 0..20u8 {
            let p = format!("2001:db8:{i}::/48");
            s.apply(announce_of(vec![route(&p)])).unwrap();
        }
        s.apply(Change::Withdraw(vec!["198.51.100.0/24".parse().unwrap()]))
            .unwrap();
        assert_eq!(
            fs::read(s.path()).unwrap(),
            snapshot,
            "snapshot not rewritten"
        );
        // The state is the site's routing intent: for the speaker's user only.
        for f in [s.path(), journal.clone()] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&f).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}: {mode:o}", f.display());
        }
        let lines = fs::read_to_string(&journal).unwrap();
        assert_eq!(lines.lines().count(), 21);
        assert!(lines
            .lines()
            .last()
            .unwrap()
            .starts_with("{\"generation\":22,\"withdraw\""));
        let again = RouteStore::load(dir.path()).unwrap();
        assert_eq!(again.routes(), s.routes());
        assert_eq!(again.generation(), 22);
        // Loading compacted the journal into the snapshot.
        assert!(!journal.exists());
        assert_eq!(RouteStore::load(dir.path()).unwrap().routes(), s.routes());
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_corrupt_or_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        s.apply(announce_of(vec![route("198.51.100.0/24")]))
            .unwrap();
        s.apply(announce_of(vec![route("203.0.113.0/24")])).unwrap();
        let journal = dir.path().join(JOURNAL_FILE);
        let good = fs::read_to_string(&journal).unwrap();
        // A crash mid-append: the torn line was never acknowledged.
        fs::write(&journal, format!("{good}{{\"generation\":3,\"withd")).unwrap();
        let loaded = RouteStore::load(dir.path()).unwrap();
        assert_eq!(loaded.generation(), 2);
        assert_eq!(loaded.len(), 2);
        // A complete line that does not parse is corruption, named by file and line.
        fs::write(&journal, "{\"generation\":3,\"withdraw\":[\"x\"]}\n").unwrap();
        let e = RouteStore::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("routes.journal is corrupt at line 1"), "{e}");
        // A gap in the generations too.
        fs::write(
            &journal,
            "{\"generation\":9,\"withdraw\":[\"198.51.100.0/24\"]}\n",
        )
        .unwrap();
        let e = RouteStore::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("generation 9 follows generation 2"), "{e}");
        // Lines the snapshot already holds (crash before the journal was removed) are skipped.
        fs::write(
            &journal,
            "{\"generation\":1,\"withdraw\":[\"198.51.100.0/24\"]}\n",
        )
        .unwrap();
        assert_eq!(RouteStore::load(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn a_journal_larger_than_the_snapshot_is_compacted_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        s.apply(announce_of(vec![route("198.51.100.0/24")]))
            .unwrap();
        let journal = dir.path().join(JOURNAL_FILE);
        let p: IpNet = "203.0.113.0/24".parse().unwrap();
        let mut compacted = false;
        for i in 0..2_000u32 {
            let change = if i % 2 == 0 {
                announce_of(vec![route("203.0.113.0/24")])
            } else {
                Change::Withdraw(vec![p])
            };
            s.apply(change).unwrap();
            let len = fs::metadata(&journal).map_or(0, |m| m.len());
            if s.compact_if_due().unwrap() {
                assert!(!journal.exists());
                compacted = true;
                continue;
            }
            assert!(len <= MIN_COMPACT + 200, "{len}");
        }
        assert!(compacted);
        assert_eq!(RouteStore::load(dir.path()).unwrap().routes(), s.routes());
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
        s.apply(announce_of(vec![route("198.51.100.0/24")]))
            .unwrap();
        let again = s
            .apply(announce_of(vec![route("198.51.100.0/24")]))
            .unwrap();
        assert!(again.is_empty());
        assert_eq!(s.generation(), 1);
        // Changing an attribute is a change.
        let mut r = route("198.51.100.0/24");
        r.prepend = 1;
        let changed = s.apply(announce_of(vec![r.clone()])).unwrap();
        assert_eq!(changed.announced, vec![Arc::new(r)]);
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
            .apply(announce_of(vec![
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
            .apply(announce_of(vec![route("198.51.100.0/24"), bad]))
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
        s.apply(announce_of(vec![route("198.51.100.0/24")]))
            .unwrap();
        // A crash mid-write leaves a partial temp file and the old routes.json.
        fs::write(dir.path().join(ROUTES_TMP_FILE), b"{\"version\":1,\"gener").unwrap();
        let s2 = RouteStore::load(dir.path()).unwrap();
        assert_eq!(s2.generation(), 1);
        assert_eq!(s2.routes(), s.routes());
        // Loading dropped the leftover.
        let mut s2 = s2;
        s2.apply(announce_of(vec![route("203.0.113.0/24")]))
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

    /// Small and large batches (one search per route, or one merge pass) leave the same table
    /// as a plain map would, in memory and after a reload.
    #[test]
    fn batches_of_every_size_match_a_plain_map() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RouteStore::load(dir.path()).unwrap();
        let mut model: BTreeMap<IpNet, Arc<Route>> = BTreeMap::new();
        let net = |i: u32| -> IpNet { format!("2001:db8:{:x}::/48", i).parse().unwrap() };
        // (first, count, step, announce): big and small batches over a table of up to 400.
        let ops = [
            (0, 400, 1, true),
            (5, 1, 1, false),
            (7, 3, 2, true),
            (0, 200, 2, false),
            (1, 30, 7, true),
            (3, 2, 1, false),
            (0, 400, 1, false),
            (10, 1, 1, true),
        ];
        for (first, count, step, announce) in ops {
            let prefixes: Vec<IpNet> = (0..count).map(|i| net(first + i * step)).collect();
            if announce {
                let routes: Vec<Route> = prefixes
                    .iter()
                    .map(|p| {
                        let mut r = Route::new(*p).unwrap();
                        r.attrs.med = Some(first);
                        r
                    })
                    .collect();
                for r in &routes {
                    model.insert(r.prefix, Arc::new(r.clone()));
                }
                s.apply(announce_of(routes)).unwrap();
            } else {
                for p in &prefixes {
                    model.remove(p);
                }
                s.apply(Change::Withdraw(prefixes)).unwrap();
            }
            assert_eq!(s.routes(), &model);
        }
        assert_eq!(RouteStore::load(dir.path()).unwrap().routes(), &model);
    }

    /// A route whose journal line is ~1 KiB, so that a full page leaves room for part of it.
    fn long_route(i: u32) -> Route {
        let mut r = route(&format!("2001:db8:{i:x}::/48"));
        r.attrs.communities = (0..100)
            .map(|c| crate::wire::Community::new(65000, c))
            .collect();
        r
    }

    /// ENOSPC half way through a journal line: the change fails, the journal is cut back to
    /// its last complete line, and once space is back the next line lands right after it (not
    /// after a run of NUL octets where the failed write's offset had moved): every change that
    /// returned `Ok`, and none other, loads again.
    #[test]
    fn an_append_that_fails_half_way_leaves_a_journal_the_next_append_and_load_can_use() {
        let Some(fs) = TinyFs::mount("256k") else {
            return;
        };
        let mut s = RouteStore::load(fs.path()).unwrap();
        s.apply(announce_of(vec![route("198.51.100.0/24")]))
            .unwrap();
        s.apply(announce_of(vec![long_route(0)])).unwrap();
        let journal = fs.path().join(JOURNAL_FILE);
        let filler = fs.fill();
        let mut acked = vec![route("198.51.100.0/24").prefix, long_route(0).prefix];
        let mut i = 1;
        let (good_len, err) = loop {
            let len = fs::metadata(&journal).unwrap().len();
            match s.apply(announce_of(vec![long_route(i)])) {
                Ok(_) => acked.push(long_route(i).prefix),
                Err(e) => break (len, e),
            }
            i += 1;
            assert!(i < 100, "the tmpfs never filled");
        };
        assert!(err.to_string().contains("append to"), "{err}");
        assert_ne!(
            good_len % 4096,
            0,
            "the failed line had room for a part of it"
        );
        assert_eq!(fs::metadata(&journal).unwrap().len(), good_len, "cut back");
        assert_eq!(s.write_failures(), 1);
        let refused = long_route(i).prefix;
        assert!(s.get(&refused).is_none());

        fs::remove_file(filler).unwrap();
        let next = long_route(i + 1);
        s.apply(announce_of(vec![next.clone()])).unwrap();
        acked.push(next.prefix);
        let text = fs::read(&journal).unwrap();
        assert!(!text.contains(&0), "NUL octets in the journal");
        drop(s);
        let loaded = RouteStore::load(fs.path()).unwrap();
        let got: Vec<IpNet> = loaded.routes().keys().copied().collect();
        acked.sort();
        assert_eq!(got, acked);
    }

    /// A full disk at start: the journal cannot be compacted, but the store loads every
    /// acknowledged route (a speaker that cannot start withdraws them all), leaves no partial
    /// snapshot behind, refuses changes until space is back, then writes a snapshot.
    #[test]
    fn a_full_disk_at_load_still_loads_and_the_next_change_writes_a_snapshot() {
        let Some(fs) = TinyFs::mount("256k") else {
            return;
        };
        let mut s = RouteStore::load(fs.path()).unwrap();
        for i in 0..3 {
            s.apply(announce_of(vec![long_route(i)])).unwrap();
        }
        let want = s.routes().clone();
        drop(s);
        let filler = fs.fill();
        let mut s = RouteStore::load(fs.path()).unwrap();
        assert_eq!(s.routes(), &want);
        assert_eq!(s.write_failures(), 1, "the compaction failed");
        assert!(
            !fs.path().join(ROUTES_TMP_FILE).exists(),
            "partial snapshot left"
        );
        let e = s.apply(announce_of(vec![long_route(9)])).unwrap_err();
        assert!(e.to_string().contains(ROUTES_TMP_FILE), "{e}");
        assert!(
            !fs.path().join(ROUTES_TMP_FILE).exists(),
            "partial snapshot left"
        );
        assert_eq!(RouteStore::load(fs.path()).unwrap().routes(), &want);

        fs::remove_file(filler).unwrap();
        s.apply(announce_of(vec![long_route(9)])).unwrap();
        assert!(
            !fs.path().join(JOURNAL_FILE).exists(),
            "a snapshot, not an append"
        );
        let loaded = RouteStore::load(fs.path()).unwrap();
        assert_eq!(loaded.routes(), s.routes());
        assert_eq!(loaded.len(), 4);
    }
}
