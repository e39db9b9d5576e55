//! `ferry failover repair`: closes the runs of a plan whose journals are damaged (they go on
//! illegally past a legal part, say a seq written twice) or cannot be read at all, with a
//! record of what the operator confirmed: which site announces the subnets now.
//!
//! Contract:
//! - Runs only under the plan's lock (the caller passes it).
//! - For each damaged or unreadable journal `runs/<run>.jsonl` of the plan, a fresh journal
//!   takes its place: the damaged file's legal part, byte for byte, then a `repaired` record
//!   naming the active site, the operator, the damage and where the damaged file is kept. A
//!   journal without a legal `run_started` gets one made from its file name (no steps, no
//!   plan text), so the run still has a record. The fresh journal passes the same checks as
//!   any other ([`super::journal::Journal`]); the run then counts as finished, with that
//!   active site, for status, new runs and the keeper.
//! - The damaged file is kept, never deleted: hard-linked as `<run>.jsonl.damaged` (`.2`,
//!   `.3`, ... when taken) before the fresh journal, fsynced, is renamed over it and the
//!   directory fsynced ([`crate::durable::rename_into_place`]), so at every moment
//!   `runs/<run>.jsonl` is either the damaged file or the repaired one. A crash in between
//!   leaves `<run>.jsonl.repair`, which nothing reads and the next repair replaces.
//! - `active` must be a site of the plan when the plan's text is known from any of its runs.
//!
//! Never does: talk to the sites (the operator checks them first), or touch a run whose
//! journal is legal.

use std::path::{Path, PathBuf};

use super::journal::{Direction, Journal, JournalError, Mode, Record};
use super::lock::{Holder, Lock};
use super::runs;
use super::Plan;
use crate::durable;

/// What to run to close a damaged run of `plan`.
pub fn command(plan: &str) -> String {
    format!("`ferry failover repair --plan-name {plan} --active SITE`")
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("--active {value}: plan {plan} has no such site (its sites: {sites})")]
    UnknownSite {
        plan: String,
        value: String,
        sites: String,
    },
    #[error("{0}")]
    Runs(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// One run closed by [`repair`].
#[derive(Debug)]
pub struct Repaired {
    pub journal: PathBuf,
    /// Where the damaged file is kept.
    pub evidence: PathBuf,
    /// Records of the legal part, kept.
    pub kept: usize,
    pub damage: String,
}

/// Closes every damaged or unreadable journal of `plan` in `state_dir` with `active` as the
/// site announcing the subnets (see the module docs). Nothing to repair: an empty list.
pub fn repair(
    state_dir: &Path,
    plan: &str,
    active: &str,
    by: &Holder,
    _held: &Lock,
) -> Result<Vec<Repaired>, RepairError> {
    let listing = runs::of_plan(state_dir, plan).map_err(RepairError::Runs)?;
    check_site(plan, active, &listing.runs)?;
    let mut targets: Vec<(PathBuf, String)> = listing
        .runs
        .iter()
        .filter_map(|r| Some((r.path.clone(), r.damaged.clone()?)))
        .collect();
    targets.extend(
        listing
            .unreadable
            .iter()
            .map(|u| (u.path.clone(), u.error.clone())),
    );
    targets.sort();
    targets
        .into_iter()
        .map(|(path, damage)| repair_one(&path, plan, active, by, damage))
        .collect()
}

/// `active` must be a site of the plan as its latest run with a plan text read it.
fn check_site(plan: &str, active: &str, known: &[runs::RunSummary]) -> Result<(), RepairError> {
    let Some(p) = known
        .iter()
        .rev()
        .find_map(|r| Plan::parse(&r.plan_text).ok())
    else {
        return Ok(());
    };
    if p.sites.iter().any(|s| s.name == active) {
        return Ok(());
    }
    Err(RepairError::UnknownSite {
        plan: plan.to_owned(),
        value: active.to_owned(),
        sites: p
            .sites
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn repair_one(
    path: &Path,
    plan: &str,
    active: &str,
    by: &Holder,
    damage: String,
) -> Result<Repaired, RepairError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| RepairError::Io { path: p, source }
    };
    let r = super::journal::replay_prefix(path)?;
    let text = std::fs::read(path).map_err(io(path))?;
    let has_start = matches!(
        r.entries.first().map(|e| &e.record),
        Some(Record::RunStarted { .. })
    );
    let legal = if has_start {
        text.get(..r.good_len as usize).unwrap_or_default()
    } else {
        &[][..]
    };
    let tmp = with_suffix(path, ".repair");
    durable::write_new(&tmp, legal, 0o600).map_err(replace_err)?;
    let mut j = Journal::open(&tmp)?;
    if !has_start {
        j.append(started_from_name(path, plan, by))?;
    }
    let evidence = free_name(path).map_err(io(path))?;
    j.append(Record::Repaired {
        active: active.to_owned(),
        by: by.clone(),
        damage: damage.clone(),
        evidence: evidence.clone(),
    })?;
    drop(j);
    std::fs::hard_link(path, &evidence).map_err(io(&evidence))?;
    durable::rename_into_place(&tmp, path).map_err(replace_err)?;
    Ok(Repaired {
        journal: path.to_owned(),
        evidence,
        kept: if has_start { r.entries.len() } else { 0 },
        damage,
    })
}

/// A `run_started` for a journal that has none: what its file name says, and nothing else.
fn started_from_name(path: &Path, plan: &str, by: &Holder) -> Record {
    let run_id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (direction, test) =
        super::runs::name_says(path).map_or((Direction::Failover, false), |(_, d, t)| (d, t));
    Record::RunStarted {
        direction,
        run_id,
        plan: plan.to_owned(),
        mode: if test { Mode::Test } else { Mode::Planned },
        steps: Vec::new(),
        by: by.clone(),
        plan_text: String::new(),
    }
}

/// A write or rename of the fresh journal that failed, naming the path it failed on.
fn replace_err(e: durable::ReplaceError) -> RepairError {
    RepairError::Io {
        path: e.path,
        source: e.source,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `<path>.damaged`, or `.damaged.N` for the first N from 2 not taken.
fn free_name(path: &Path) -> std::io::Result<PathBuf> {
    for n in 1..1000 {
        let p = match n {
            1 => with_suffix(path, ".damaged"),
            n => with_suffix(path, &format!(".damaged.{n}")),
        };
        if !p.try_exists()? {
            return Ok(p);
        }
    }
    Err(std::io::Error::other("1000 damaged copies of it already"))
}
