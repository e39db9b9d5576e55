//! The run journal: an append-only JSON-lines file, one record per step start and end, each
//! fsync'd before the action it announces (or after the one it reports) goes on.
//!
//! Contract:
//! - Every record passes [`Phase::next`], the ONE `match` of legal transitions, both when it is
//!   appended and when a file is replayed; a record that does not fit is refused, so a journal
//!   on disk is always a legal prefix of a run.
//! - Replay works from any prefix. A last line without its newline is a torn write (the
//!   controller died inside `write`; the torn-tail rule of [`crate::durable::lines`]): it is
//!   dropped and the file truncated before appending, by [`Journal::open`] under the
//!   journal's flock, so it never cuts a whole record another process wrote while the file
//!   was being read. Any other bad line is corruption and names its line.
//! - `seq` counts records from 0; `at_ms` is Unix time in milliseconds. An append writes only
//!   when the file is exactly what this [`Journal`] has read and written (checked under an
//!   exclusive `flock` of the journal): a second process appending to the same run is refused
//!   ([`JournalError::Conflict`]), so no seq is ever written twice.
//! - An append whose write or fsync fails (a full disk half way through the line) cuts the
//!   file back to its last whole record, still under the flock, and returns the I/O error
//!   ([`crate::durable::append_line`]); the same [`Journal`] appends again once the disk has
//!   room.
//! - [`replay_prefix`] reads a damaged journal (say, one with a seq written twice by an older
//!   version) as far as it is legal and says where and why it stops, so `status` and
//!   `history` can still show it; [`replay`] and [`Journal::open`] refuse it.
//! - `repaired` closes a run from any phase after its start: written only by
//!   [`super::repair`], at the end of a fresh copy of a damaged journal's legal part.
//! - A hook's process is recorded (`hook_spawned`) after it starts and before it is waited
//!   for, inside its open step or compensation: after a crash, `resume` and `abort` end what
//!   is left of it before anything runs again. Journals written before that record existed
//!   read as before.
//!
//! Never does: decide what to run (that is [`super::executor`]) or take the lock
//! ([`super::lock`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hook::HookProcess;
use super::lock::Holder;
use crate::durable;

/// Which way a run moves the subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// primary -> recovery
    Failover,
    /// recovery -> primary
    Failback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Planned,
    /// The site losing the subnet may be unreachable: its steps are best effort.
    Unplanned,
    /// A rehearsal (`ferry failover --test`; its direction `failback` is `cleanup-test`): the
    /// plan's `test_site` takes the recovery's place, the primary keeps announcing, only hooks
    /// and checks with `test = true` run. Recorded in the run's first record, so a resumed or
    /// aborted test run stays a test run: no step of a real run is ever built for it.
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    RolledBack,
    /// Closed by `ferry failover repair` after the journal was damaged: the operator checked
    /// the sites and named the active one.
    Repaired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    RunStarted {
        run_id: String,
        plan: String,
        direction: Direction,
        mode: Mode,
        steps: Vec<String>,
        by: Holder,
        /// The plan's TOML: resume needs nothing else.
        plan_text: String,
    },
    StepStarted {
        step: usize,
        name: String,
    },
    StepDone {
        step: usize,
        ms: u64,
        note: Option<String>,
    },
    /// A command of the open step (`undo`: of the open compensation) runs as `process`.
    HookSpawned {
        step: usize,
        #[serde(default)]
        undo: bool,
        process: HookProcess,
    },
    StepFailed {
        step: usize,
        ms: u64,
        error: String,
    },
    /// The plan says stop on failure: the operator decides (`resume` retries, `abort` rolls back).
    Stopped {
        reason: String,
    },
    /// Another process (or the same after a crash) took the run over.
    Resumed {
        by: Holder,
    },
    /// The operator retries the step the run stopped at.
    Retried {
        step: usize,
    },
    RollbackStarted {
        reason: String,
    },
    CompensateStarted {
        step: usize,
    },
    CompensateDone {
        step: usize,
        ms: u64,
    },
    CompensateFailed {
        step: usize,
        ms: u64,
        error: String,
    },
    RunFinished {
        outcome: Outcome,
        /// The site announcing the subnets now.
        active: String,
    },
    /// `ferry failover repair` closed the run: its journal went on illegally past the records
    /// before this one (`damage` says how); the damaged file is kept as `evidence`.
    Repaired {
        /// The site announcing the subnets now, as the operator confirmed it.
        active: String,
        by: Holder,
        damage: String,
        evidence: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub record: Record,
}

/// Where a run is, derived from its records only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Empty,
    /// Steps `0..next` are done; `open` was started and has no end record.
    Forward {
        next: usize,
        open: Option<usize>,
    },
    /// `step` failed; the next record says rollback or stop.
    Failed {
        step: usize,
    },
    /// Waiting for the operator. `rolling_back`: a compensation of `step` failed.
    Stopped {
        step: usize,
        rolling_back: bool,
    },
    /// Steps `0..remaining` still need compensating, last first; `open` is in progress.
    Rollback {
        remaining: usize,
        open: Option<usize>,
    },
    Finished(Outcome),
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {path} line {line}: {detail}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("journal: record {record} is not legal in phase {phase:?}")]
    Illegal { phase: Phase, record: String },
    /// Another process wrote to (or is writing) this run's journal.
    #[error("journal {path}: {detail}; another process writes this run: stop it, then check `ferry failover status`")]
    Conflict { path: PathBuf, detail: String },
    /// Test-only crash injection fired.
    #[error("injected crash at record {0}")]
    Crashed(u64),
}

impl Phase {
    /// The legal transitions, all of them. `steps` is the run's step count.
    pub fn next(self, steps: usize, r: &Record) -> Option<Phase> {
        use Phase::*;
        use Record as R;
        Some(match (self, r) {
            (Empty, R::RunStarted { .. }) => Forward {
                next: 0,
                open: None,
            },
            (Forward { next, open: None }, R::StepStarted { step, .. })
                if *step == next && next < steps =>
            {
                Forward {
                    next,
                    open: Some(next),
                }
            }
            (
                p @ Forward { open: Some(s), .. },
                R::HookSpawned {
                    step, undo: false, ..
                },
            ) if *step == s => p,
            (
                p @ Rollback { open: Some(s), .. },
                R::HookSpawned {
                    step, undo: true, ..
                },
            ) if *step == s => p,
            (Forward { open: Some(s), .. }, R::StepDone { step, .. }) if *step == s => Forward {
                next: s + 1,
                open: None,
            },
            (Forward { open: Some(s), .. }, R::StepFailed { step, .. }) if *step == s => {
                Failed { step: s }
            }
            // Abort of an interrupted run: compensate everything started.
            (Forward { next, open }, R::RollbackStarted { .. }) => Rollback {
                remaining: open.map_or(next, |s| s + 1),
                open: None,
            },
            (
                Forward { next, open: None },
                R::RunFinished {
                    outcome: Outcome::Completed,
                    ..
                },
            ) if next == steps => Finished(Outcome::Completed),
            (Failed { step }, R::RollbackStarted { .. }) => Rollback {
                remaining: step + 1,
                open: None,
            },
            (Failed { step }, R::Stopped { .. }) => Stopped {
                step,
                rolling_back: false,
            },
            (
                Stopped {
                    step,
                    rolling_back: false,
                },
                R::Retried { step: s },
            ) if *s == step => Forward {
                next: step,
                open: None,
            },
            (Stopped { step, .. }, R::RollbackStarted { .. }) => Rollback {
                remaining: step + 1,
                open: None,
            },
            (
                Rollback {
                    remaining,
                    open: None,
                },
                R::CompensateStarted { step },
            ) if *step + 1 == remaining => Rollback {
                remaining,
                open: Some(*step),
            },
            (Rollback { open: Some(s), .. }, R::CompensateDone { step, .. }) if *step == s => {
                Rollback {
                    remaining: s,
                    open: None,
                }
            }
            (Rollback { open: Some(s), .. }, R::CompensateFailed { step, .. }) if *step == s => {
                Stopped {
                    step: s,
                    rolling_back: true,
                }
            }
            (
                Rollback {
                    remaining: 0,
                    open: None,
                },
                R::RunFinished {
                    outcome: Outcome::RolledBack,
                    ..
                },
            ) => Finished(Outcome::RolledBack),
            // The operator closes a damaged run wherever its legal part ended, even after
            // its end (a line duplicated past `run_finished`).
            (p, R::Repaired { .. }) if p != Empty => Finished(Outcome::Repaired),
            // A takeover changes nothing else; it is there for the audit trail.
            (
                p @ (Forward { .. } | Failed { .. } | Rollback { .. } | Stopped { .. }),
                R::Resumed { .. },
            ) => p,
            _ => return None,
        })
    }
}

/// Test-only: make an append fail as if the process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// After record `seq` is on disk.
    After(u64),
    /// Before record `seq` is written (the action it reports has happened).
    Before(u64),
}

/// Where a journal's records go once checked: its file in the state directory, or a store
/// that takes them one at a time ([`RecordSink`]: etcd, [`super::store`]).
enum Sink {
    File {
        file: File,
        /// Bytes of the file this journal has read or written: all of it, unless someone
        /// else wrote.
        len: u64,
    },
    Store(Box<dyn RecordSink>),
}

/// A store of journal records other than the state directory's file.
///
/// Contract: [`RecordSink::write`] stores `entry` as record `entry.seq` only if that seq is
/// free (and whatever else the store requires of the writer still holds, such as its
/// leadership); otherwise it fails with [`JournalError::Conflict`] and stores nothing. It
/// returns once the record is durable in the store.
pub trait RecordSink: Send {
    fn write(&mut self, entry: &Entry, line: &[u8]) -> Result<(), JournalError>;
}

pub struct Journal {
    path: PathBuf,
    sink: Sink,
    entries: Vec<Entry>,
    phase: Phase,
    steps: usize,
    pub crash: Option<Crash>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Journal {
    /// Create a new, empty journal (refuses an existing file).
    pub fn create(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        // 0600: the first record carries the plan, with hook environments and HTTP bodies.
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        if let Some(dir) = path.parent() {
            durable::sync_dir(dir).map_err(io)?;
        }
        Ok(Self {
            path: path.to_owned(),
            sink: Sink::File { file, len: 0 },
            entries: Vec::new(),
            phase: Phase::Empty,
            steps: 0,
            crash: None,
        })
    }

    /// Replay an existing journal, checking every transition; drops a torn last line.
    ///
    /// The replay and the cut happen under the journal's flock, so a record another process
    /// appends meanwhile is either read (it is whole) or not yet begun; only a tail without a
    /// newline (a writer that died inside `write`) is ever cut.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        let guard = lock_briefly(path, &file)?;
        let (entries, phase, steps, good_len) = replay(path)?;
        let on_disk = guard.metadata().map_err(io)?.len();
        if on_disk != good_len {
            // `replay` stops before a last line without its newline and nowhere else; read
            // under the flock, the file cannot have grown since, but check the tail itself
            // rather than trust that.
            let text = std::fs::read(path).map_err(io)?;
            let tail = text.get(good_len as usize..).unwrap_or_default();
            if text.len() as u64 != on_disk || tail.contains(&b'\n') {
                return Err(JournalError::Conflict {
                    path: path.to_owned(),
                    detail: format!(
                        "it changed while it was read ({on_disk} bytes, {good_len} replayed)"
                    ),
                });
            }
            durable::cut_back(&file, good_len).map_err(io)?;
        }
        drop(guard);
        Ok(Self {
            path: path.to_owned(),
            sink: Sink::File {
                file,
                len: good_len,
            },
            entries,
            phase,
            steps,
            crash: None,
        })
    }

    /// A journal kept in a store other than the state directory: `entries` as read from it
    /// (each checked by [`Phase::next`], like a file's replay), new records through `sink`.
    /// `label` names the journal in errors.
    pub fn in_store(
        label: PathBuf,
        entries: Vec<Entry>,
        sink: Box<dyn RecordSink>,
    ) -> Result<Self, JournalError> {
        let mut phase = Phase::Empty;
        let mut steps = 0;
        for (i, e) in entries.iter().enumerate() {
            let corrupt = |detail: String| JournalError::Corrupt {
                path: label.clone(),
                line: i + 1,
                detail,
            };
            if e.seq != i as u64 {
                return Err(corrupt(format!("seq {} where {i} was due", e.seq)));
            }
            if let Record::RunStarted { steps: s, .. } = &e.record {
                steps = s.len();
            }
            phase = phase
                .next(steps, &e.record)
                .ok_or_else(|| corrupt(format!("record not legal in phase {phase:?}")))?;
        }
        Ok(Self {
            path: label,
            sink: Sink::Store(sink),
            entries,
            phase,
            steps,
            crash: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Check the transition, write one line, fsync.
    pub fn append(&mut self, record: Record) -> Result<&Entry, JournalError> {
        let seq = self.entries.len() as u64;
        let steps = match &record {
            Record::RunStarted { steps, .. } => steps.len(),
            _ => self.steps,
        };
        let phase = self
            .phase
            .next(steps, &record)
            .ok_or_else(|| JournalError::Illegal {
                phase: self.phase,
                record: serde_json::to_string(&record).unwrap_or_default(),
            })?;
        if self.crash == Some(Crash::Before(seq)) {
            return Err(JournalError::Crashed(seq));
        }
        let entry = Entry {
            seq,
            at_ms: now_ms(),
            record,
        };
        let mut line = serde_json::to_string(&entry).map_err(|e| JournalError::Corrupt {
            path: self.path.clone(),
            line: seq as usize + 1,
            detail: e.to_string(),
        })?;
        line.push('\n');
        match &mut self.sink {
            Sink::File { file, len } => {
                append_to_file(&self.path, file, len, seq, line.as_bytes())?;
            }
            Sink::Store(sink) => sink.write(&entry, line.as_bytes())?,
        }
        self.phase = phase;
        self.steps = steps;
        self.entries.push(entry);
        if self.crash == Some(Crash::After(seq)) {
            return Err(JournalError::Crashed(seq));
        }
        Ok(self.entries.last().expect("just pushed"))
    }
}

/// Append `line` (record `seq`) to the journal file, which this journal has read or written
/// `len` bytes of; `len` grows by the line once it is on disk.
fn append_to_file(
    path: &Path,
    file: &File,
    len: &mut u64,
    seq: u64,
    line: &[u8],
) -> Result<(), JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_owned(),
        source,
    };
    // The plan lock keeps a second controller away; this keeps its records out even if
    // it got in (a lock removed under it, an older ferry): the flock makes the length
    // check and the write one step for every process that appends. The lock is on this
    // open file description, shared with the clone, and released when the clone drops.
    let guard = nix::fcntl::Flock::lock(
        file.try_clone().map_err(io)?,
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| match e {
        nix::errno::Errno::EWOULDBLOCK => JournalError::Conflict {
            path: path.to_owned(),
            detail: format!("another process is appending to it (seq {seq} was due)"),
        },
        e => JournalError::Io {
            path: path.to_owned(),
            source: e.into(),
        },
    })?;
    let on_disk = guard.metadata().map_err(io)?.len();
    if on_disk != *len {
        return Err(JournalError::Conflict {
            path: path.to_owned(),
            detail: format!(
                "{on_disk} bytes on disk where this run wrote {}: seq {seq} would be written twice",
                *len
            ),
        });
    }
    // Cut back under the flock: the bytes past `*len` are this append's own.
    if let Err(failed) = durable::append_line(file, *len, line) {
        return Err(JournalError::Io {
            path: path.to_owned(),
            source: match failed.cut_back {
                Ok(()) => failed.source,
                Err(cut) => std::io::Error::new(
                    failed.source.kind(),
                    format!(
                        "{}; cutting the partial record back failed too ({cut}): `ferry failover resume` drops it",
                        failed.source
                    ),
                ),
            },
        });
    }
    drop(guard);
    *len += line.len() as u64;
    Ok(())
}

/// The journal's flock on `file`'s open file description (released when the guard drops).
/// An append holds it for one write and fsync, so a holder is waited for up to a second;
/// longer means a writer that is stuck or not ours to wait for: a conflict.
fn lock_briefly(path: &Path, file: &File) -> Result<nix::fcntl::Flock<File>, JournalError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let clone = file.try_clone().map_err(|source| JournalError::Io {
            path: path.to_owned(),
            source,
        })?;
        match nix::fcntl::Flock::lock(clone, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(guard) => return Ok(guard),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(JournalError::Conflict {
                    path: path.to_owned(),
                    detail: "another process has been appending to it for over a second".into(),
                })
            }
            Err((_, e)) => {
                return Err(JournalError::Io {
                    path: path.to_owned(),
                    source: e.into(),
                })
            }
        }
    }
}

/// Entries, phase, step count and the length of the good part of the file.
pub fn replay(path: &Path) -> Result<(Vec<Entry>, Phase, usize, u64), JournalError> {
    let r = replay_prefix(path)?;
    match r.damage {
        Some(e) => Err(e),
        None => Ok((r.entries, r.phase, r.steps, r.good_len)),
    }
}

/// A journal read as far as it is legal.
#[derive(Debug)]
pub struct Replay {
    pub entries: Vec<Entry>,
    pub phase: Phase,
    pub steps: usize,
    /// Bytes up to the end of the last legal record.
    pub good_len: u64,
    /// Why the file does not go on legally past `good_len` (a torn last line is not damage).
    pub damage: Option<JournalError>,
}

/// The longest legal prefix of the journal at `path`; fails only when it cannot be read.
pub fn replay_prefix(path: &Path) -> Result<Replay, JournalError> {
    let text = std::fs::read(path).map_err(|source| JournalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut entries = Vec::new();
    let mut phase = Phase::Empty;
    let mut steps = 0;
    // Up to the end of the last legal record; the reader never yields a torn last write.
    let mut good_len = 0;
    for read in durable::json_lines::<Entry>(&text) {
        let corrupt = |line: usize, detail: String| JournalError::Corrupt {
            path: path.to_owned(),
            line,
            detail,
        };
        let checked = read
            .map_err(|bad| corrupt(bad.line, bad.error.to_string()))
            .and_then(|r| {
                let (entry, line, end) = (r.value, r.line, r.end);
                let corrupt = |detail| corrupt(line, detail);
                if entry.seq != entries.len() as u64 {
                    return Err(corrupt(format!(
                        "seq {} where {} was due (written by two processes?)",
                        entry.seq,
                        entries.len()
                    )));
                }
                let s = match &entry.record {
                    Record::RunStarted { steps: s, .. } => s.len(),
                    _ => steps,
                };
                let next = phase
                    .next(s, &entry.record)
                    .ok_or_else(|| corrupt(format!("record not legal in phase {phase:?}")))?;
                Ok((entry, next, s, end))
            });
        match checked {
            Ok((entry, next, s, end)) => {
                entries.push(entry);
                phase = next;
                steps = s;
                good_len = end;
            }
            Err(e) => {
                return Ok(Replay {
                    entries,
                    phase,
                    steps,
                    good_len,
                    damage: Some(e),
                })
            }
        }
    }
    Ok(Replay {
        entries,
        phase,
        steps,
        good_len,
        damage: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn holder() -> Holder {
        Holder::me("test")
    }

    fn started(n: usize) -> Record {
        Record::RunStarted {
            run_id: "r".into(),
            plan: "p".into(),
            direction: Direction::Failover,
            mode: Mode::Planned,
            steps: (0..n).map(|i| format!("s{i}")).collect(),
            by: holder(),
            plan_text: String::new(),
        }
    }

    #[test]
    fn legal_run_replays_and_illegal_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started(2)).unwrap();
        assert!(j
            .append(Record::StepStarted {
                step: 1,
                name: "s1".into()
            })
            .is_err());
        j.append(Record::StepStarted {
            step: 0,
            name: "s0".into(),
        })
        .unwrap();
        assert!(j
            .append(Record::RunFinished {
                outcome: Outcome::Completed,
                active: "b".into()
            })
            .is_err());
        j.append(Record::StepDone {
            step: 0,
            ms: 1,
            note: None,
        })
        .unwrap();
        j.append(Record::StepStarted {
            step: 1,
            name: "s1".into(),
        })
        .unwrap();
        j.append(Record::StepFailed {
            step: 1,
            ms: 1,
            error: "x".into(),
        })
        .unwrap();
        j.append(Record::RollbackStarted { reason: "x".into() })
            .unwrap();
        assert!(j.append(Record::CompensateStarted { step: 0 }).is_err());
        for s in [1, 0] {
            j.append(Record::CompensateStarted { step: s }).unwrap();
            j.append(Record::CompensateDone { step: s, ms: 0 }).unwrap();
        }
        j.append(Record::RunFinished {
            outcome: Outcome::RolledBack,
            active: "a".into(),
        })
        .unwrap();
        assert_eq!(j.phase(), Phase::Finished(Outcome::RolledBack));
        let (entries, phase, _, _) = replay(&path).unwrap();
        assert_eq!(entries.len(), 11);
        assert_eq!(phase, Phase::Finished(Outcome::RolledBack));
    }

    #[test]
    fn torn_last_line_is_dropped_and_corruption_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started(1)).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":1,\"at_ms\":0,\"rec").unwrap();
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.entries().len(), 1);
        j.append(Record::StepStarted {
            step: 0,
            name: "s0".into(),
        })
        .unwrap();
        assert_eq!(replay(&path).unwrap().0.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("step_started", "step_done")).unwrap();
        let e = Journal::open(&path).err().unwrap().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_second_writer_of_the_same_run_is_refused_and_no_seq_is_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut a = Journal::create(&path).unwrap();
        a.append(started(2)).unwrap();
        // Two controllers that both opened the run (as after a racy takeover).
        let mut b = Journal::open(&path).unwrap();
        let resumed = || Record::Resumed { by: holder() };
        a.append(resumed()).unwrap();
        let e = b.append(resumed()).expect_err("b must be refused");
        assert!(matches!(e, JournalError::Conflict { .. }), "{e}");
        assert!(
            e.to_string().contains("seq 1 would be written twice"),
            "{e}"
        );
        let (entries, _, _, _) = replay(&path).unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1]);
        // The first writer goes on; a reopened journal sees everything.
        a.append(Record::StepStarted {
            step: 0,
            name: "s0".into(),
        })
        .unwrap();
        assert_eq!(Journal::open(&path).unwrap().entries().len(), 3);
    }

    #[test]
    fn an_append_while_another_process_appends_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started(1)).unwrap();
        // Another open file description holding the journal's flock: another writer mid-append.
        let other = nix::fcntl::Flock::lock(
            File::open(&path).unwrap(),
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        )
        .unwrap();
        let e = j
            .append(Record::Resumed { by: holder() })
            .expect_err("refused while another appends");
        assert!(
            e.to_string().contains("another process is appending"),
            "{e}"
        );
        drop(other);
        j.append(Record::Resumed { by: holder() }).unwrap();
        assert_eq!(replay(&path).unwrap().0.len(), 2);
    }

    #[test]
    fn a_journal_with_a_seq_written_twice_replays_its_legal_prefix_and_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started(2)).unwrap();
        j.append(Record::Resumed { by: holder() }).unwrap();
        drop(j);
        let text = std::fs::read_to_string(&path).unwrap();
        let second = text.lines().nth(1).unwrap().to_owned();
        std::fs::write(&path, format!("{text}{second}\n")).unwrap();
        let e = replay(&path).err().unwrap().to_string();
        assert!(
            e.contains("line 3") && e.contains("seq 1 where 2 was due"),
            "{e}"
        );
        assert!(Journal::open(&path).is_err());
        let r = replay_prefix(&path).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(
            r.phase,
            Phase::Forward {
                next: 0,
                open: None
            }
        );
        assert!(r.damage.unwrap().to_string().contains("line 3"));
    }

    /// Invariant: a record whose append returned `Ok` (written and fsync'd) is never lost, even
    /// when another process opens the journal meanwhile (`open` replays, then cuts a torn
    /// tail: it must never cut a whole record written after it read the file). One thread
    /// appends while another opens the journal again and again; every acknowledged record
    /// is in the file at the end, and appends refused while the opener held the journal are
    /// the only ones missing.
    #[test]
    fn open_while_another_writer_appends_never_cuts_an_acknowledged_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut a = Journal::create(&path).unwrap();
        a.append(started(1)).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let opener = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut opened = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match Journal::open(&path) {
                        Ok(_) => opened += 1,
                        Err(JournalError::Conflict { .. }) => {}
                        Err(e) => panic!("open: {e}"),
                    }
                }
                opened
            })
        };
        let mut acked = 1;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while acked < 400 && std::time::Instant::now() < deadline {
            match a.append(Record::Resumed { by: holder() }) {
                Ok(_) => acked += 1,
                Err(JournalError::Conflict { detail, .. })
                    if detail.contains("another process is appending") => {}
                Err(e) => {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = opener.join();
                    panic!("after {acked} records: {e}");
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let opened = opener.join().unwrap();
        assert!(opened > 0, "the opener never got in");
        assert_eq!(replay(&path).unwrap().0.len(), acked);
    }

    /// A record big enough that a full page leaves room for only part of its line.
    fn long_resumed() -> Record {
        let mut by = holder();
        by.doing = "x".repeat(1500);
        Record::Resumed { by }
    }

    /// ENOSPC half way through a line (a 64 KiB tmpfs): the append fails with the I/O error,
    /// the file is cut back to its last whole line, and once space is back the same
    /// [`Journal`] appends again (no "another process" conflict), seq after seq.
    #[test]
    fn an_append_that_fails_half_way_is_cut_back_and_the_next_append_goes_on() {
        let Some(fs) = crate::test_fs::TinyFs::mount("64k") else {
            return;
        };
        let path = fs.path().join("run.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started(1)).unwrap();
        let filler = fs.fill();
        let mut n = 1;
        let (good_len, e) = loop {
            let len = std::fs::metadata(&path).unwrap().len();
            match j.append(long_resumed()) {
                Ok(_) => n += 1,
                Err(e) => break (len, e),
            }
            assert!(n < 100, "the tmpfs never filled");
        };
        assert!(matches!(e, JournalError::Io { .. }), "{e}");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            good_len,
            "cut back"
        );
        assert_eq!(j.entries().len(), n);

        std::fs::remove_file(filler).unwrap();
        j.append(long_resumed()).unwrap();
        j.append(Record::StepStarted {
            step: 0,
            name: "s0".into(),
        })
        .unwrap();
        let (entries, _, _, _) = replay(&path).unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..n as u64 + 2).collect::<Vec<_>>());
        assert!(!std::fs::read(&path).unwrap().contains(&0), "NUL octets");
    }

    #[test]
    fn hook_processes_are_recorded_only_inside_their_open_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started(1)).unwrap();
        let spawned = |step, undo| Record::HookSpawned {
            step,
            undo,
            process: HookProcess {
                pid: 77,
                pgid: 77,
                boot_id: Some("b".into()),
                start_ticks: Some(5),
            },
        };
        assert!(j.append(spawned(0, false)).is_err(), "no step open");
        j.append(Record::StepStarted {
            step: 0,
            name: "s0".into(),
        })
        .unwrap();
        assert!(j.append(spawned(0, true)).is_err(), "not compensating");
        j.append(spawned(0, false)).unwrap();
        j.append(spawned(0, false)).unwrap();
        assert_eq!(
            j.phase(),
            Phase::Forward {
                next: 0,
                open: Some(0)
            }
        );
        j.append(Record::RollbackStarted { reason: "x".into() })
            .unwrap();
        j.append(Record::CompensateStarted { step: 0 }).unwrap();
        j.append(spawned(0, true)).unwrap();
        let (entries, phase, _, _) = replay(&path).unwrap();
        assert_eq!(entries.len(), 7);
        assert_eq!(entries[3].record, spawned(0, false));
        assert_eq!(
            phase,
            Phase::Rollback {
                remaining: 1,
                open: Some(0)
            }
        );
        // The optional fields may be absent (written without /proc).
        let line =
            r#"{"seq":0,"at_ms":0,"record":"hook_spawned","step":0,"process":{"pid":9,"pgid":9}}"#;
        let e: Entry = serde_json::from_str(line).unwrap();
        assert!(matches!(
            e.record,
            Record::HookSpawned {
                undo: false,
                process: HookProcess { boot_id: None, .. },
                ..
            }
        ));
    }
}
