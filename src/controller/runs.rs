//! The runs kept in a state directory, for `status`, `resume`, `abort` and `history`.
//!
//! Every run is one journal file `runs/<run_id>.jsonl` (`<ms>-<plan>-<direction>`); nothing
//! else is needed to tell what happened, and nothing is ever deleted here (the audit trail).
//!
//! Contract:
//! - One bad journal costs only its own run: [`list`] and [`of_plan`] return every run they
//!   could read plus the journals they could not ([`Listing::unreadable`]), never an error for
//!   the whole directory because of one file.
//! - A journal that stops being legal part way (say, a seq written twice) is still a run: its
//!   legal prefix with [`RunSummary::damaged`] saying where and why. It counts as unfinished
//!   (resume and abort refuse it, new runs of its plan wait), so someone looks at it; the
//!   warnings name the way out, `ferry failover repair` ([`super::repair`]).
//! - [`of_plan`] reads only the journals whose file name names that plan, so the keeper and
//!   the controller of one plan never stop on another plan's journal.
//!
//! Never does: write a journal (see [`super::executor`]).

use std::path::{Path, PathBuf};

use super::executor::runs_dir;
use super::journal::{replay_prefix, Direction, Entry, Mode, Outcome, Phase, Record};
use super::lock::Holder;

/// One step of a run as history shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepTiming {
    pub step: usize,
    pub name: String,
    pub undo: bool,
    pub ms: Option<u64>,
    pub result: String,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub path: PathBuf,
    pub run_id: String,
    pub plan: String,
    pub direction: Direction,
    pub mode: Mode,
    pub by: Holder,
    pub started_ms: u64,
    pub last_ms: u64,
    pub phase: Phase,
    /// The site announcing the subnets, once finished.
    pub active: Option<String>,
    pub steps: Vec<StepTiming>,
    pub step_count: usize,
    pub takeovers: Vec<Holder>,
    /// The plan as the run read it.
    pub plan_text: String,
    /// The journal goes on past its legal part: where and why (the run is shown as far as it
    /// is legal).
    pub damaged: Option<String>,
}

impl RunSummary {
    pub fn finished(&self) -> bool {
        self.damaged.is_none() && matches!(self.phase, Phase::Finished(_))
    }

    /// The run for `--json` output: everything history shows.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "run_id": self.run_id,
            "plan": self.plan,
            "direction": self.direction,
            "mode": self.mode,
            "kind": self.kind(),
            "test": self.mode == Mode::Test,
            "by": self.by,
            "started": utc(self.started_ms),
            "started_ms": self.started_ms,
            "last_ms": self.last_ms,
            "state": self.state(),
            "finished": self.finished(),
            "active": self.active,
            "warning": self.unfenced(),
            "damaged": self.damaged,
            "steps": self.steps,
            "taken_over_by": self.takeovers,
            "journal": self.path,
        })
    }

    /// An unplanned run that could not withdraw at the site it moved away from: that speaker
    /// keeps its desired routes across restarts, so when it comes back it announces again
    /// unless someone withdraws there (or it runs in leased mode).
    pub fn unfenced(&self) -> Option<String> {
        if self.mode != Mode::Unplanned || self.phase != Phase::Finished(Outcome::Completed) {
            return None;
        }
        let skipped = self
            .steps
            .iter()
            .any(|s| !s.undo && s.name.starts_with("withdraw ") && s.result.contains("skipped"));
        skipped.then(|| {
            "the old site was unreachable and may announce again when it returns; withdraw there (`ferry withdraw`) before it does, or give its [[site]] lease_secs so it fences itself".to_string()
        })
    }

    /// What the run did, as history and status show it: "failover", "failback",
    /// "test failover" or "cleanup-test".
    pub fn kind(&self) -> &'static str {
        match (self.direction, self.mode) {
            (Direction::Failover, Mode::Test) => "test failover",
            (Direction::Failback, Mode::Test) => "cleanup-test",
            (Direction::Failover, _) => "failover",
            (Direction::Failback, _) => "failback",
        }
    }

    pub fn state(&self) -> String {
        if self.damaged.is_some() {
            return "damaged journal (see the warning)".into();
        }
        match self.phase {
            Phase::Finished(Outcome::Completed) => "completed".into(),
            Phase::Finished(Outcome::RolledBack) => "rolled back".into(),
            Phase::Finished(Outcome::Repaired) => {
                "repaired (the operator named the active site)".into()
            }
            Phase::Stopped { .. } => "stopped (resume or abort)".into(),
            Phase::Empty => "empty".into(),
            _ => "interrupted (resume or abort)".into(),
        }
    }

    fn from_entries(path: &Path, entries: &[Entry], phase: Phase) -> Option<Self> {
        let first = entries.first()?;
        let Record::RunStarted {
            run_id,
            plan,
            direction,
            mode,
            steps: names,
            by,
            plan_text,
        } = &first.record
        else {
            return None;
        };
        let mut s = Self {
            path: path.to_owned(),
            run_id: run_id.clone(),
            plan: plan.clone(),
            direction: *direction,
            mode: *mode,
            by: by.clone(),
            started_ms: first.at_ms,
            last_ms: entries.last().map_or(first.at_ms, |e| e.at_ms),
            phase,
            active: None,
            steps: Vec::new(),
            step_count: names.len(),
            takeovers: Vec::new(),
            plan_text: plan_text.clone(),
            damaged: None,
        };
        let name = |i: usize| names.get(i).cloned().unwrap_or_default();
        for e in entries {
            let row = |step: usize, undo, ms, result: &str| StepTiming {
                step,
                name: name(step),
                undo,
                ms,
                result: result.to_owned(),
            };
            match &e.record {
                Record::StepDone { step, ms, note } => s.steps.push(row(
                    *step,
                    false,
                    Some(*ms),
                    &note.clone().map_or("ok".into(), |n| format!("ok: {n}")),
                )),
                Record::StepFailed { step, ms, error } => {
                    s.steps
                        .push(row(*step, false, Some(*ms), &format!("FAILED: {error}")))
                }
                Record::CompensateDone { step, ms } => {
                    s.steps.push(row(*step, true, Some(*ms), "undone"))
                }
                Record::CompensateFailed { step, ms, error } => s.steps.push(row(
                    *step,
                    true,
                    Some(*ms),
                    &format!("UNDO FAILED: {error}"),
                )),
                Record::Resumed { by } => s.takeovers.push(by.clone()),
                Record::RunFinished { active, .. } | Record::Repaired { active, .. } => {
                    s.active = Some(active.clone())
                }
                _ => {}
            }
        }
        Some(s)
    }
}

/// A journal that could not be read at all.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

/// The runs that could be read, oldest first, and the journals that could not.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub runs: Vec<RunSummary>,
    pub unreadable: Vec<Unreadable>,
}

impl Listing {
    /// One warning per unreadable or damaged journal, with what to do.
    pub fn warnings(&self) -> Vec<String> {
        let bad = self.unreadable.iter().map(|u| {
            let plan = plan_of_file(&u.path).unwrap_or("PLAN");
            format!(
                "cannot read the run journal {u}; its run is not shown: check which site announces the subnets (`ferry status`), then close the run with {}",
                super::repair::command(plan)
            )
        });
        let damaged = self.runs.iter().filter_map(|r| {
            r.damaged.as_ref().map(|d| {
                format!(
                    "run {} of plan {} has a damaged journal ({d}); shown as far as it is legal, {}. Resume and abort refuse it: check which site announces the subnets (`ferry status`), then close the run with {} (the damaged file is kept beside it)",
                    r.run_id,
                    r.plan,
                    r.state_of_prefix(),
                    super::repair::command(&r.plan)
                )
            })
        });
        bad.chain(damaged).collect()
    }
}

impl RunSummary {
    /// The state of the legal prefix of a damaged journal.
    fn state_of_prefix(&self) -> String {
        let whole = Self {
            damaged: None,
            ..self.clone()
        };
        format!("where it was {}", whole.state())
    }
}

/// Every run in `state_dir`.
pub fn list(state_dir: &Path) -> Result<Listing, String> {
    read(state_dir, None)
}

/// The runs of `plan` only: the journals whose file name names it.
pub fn of_plan(state_dir: &Path, plan: &str) -> Result<Listing, String> {
    read(state_dir, Some(plan))
}

/// The end of a run's id (and journal file name) for its direction and mode. A plan name
/// never holds a `+`, so a test run's name cannot be read as another plan's real run.
pub fn run_suffix(direction: Direction, mode: Mode) -> &'static str {
    match (direction, mode) {
        (Direction::Failover, Mode::Test) => "-test+failover",
        (Direction::Failback, Mode::Test) => "-test+cleanup",
        (Direction::Failover, _) => "-failover",
        (Direction::Failback, _) => "-failback",
    }
}

/// The plan, direction and whether a test run, as a journal's file name
/// (`<ms>-<plan><suffix>.jsonl`, [`run_suffix`]) or stem says them.
pub fn name_says(path: &Path) -> Option<(&str, Direction, bool)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".jsonl").unwrap_or(name);
    let (ms, rest) = stem.split_once('-')?;
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    [
        (Direction::Failover, Mode::Test),
        (Direction::Failback, Mode::Test),
        (Direction::Failover, Mode::Planned),
        (Direction::Failback, Mode::Planned),
    ]
    .into_iter()
    .find_map(|(d, m)| {
        rest.strip_suffix(run_suffix(d, m))
            .map(|plan| (plan, d, m == Mode::Test))
    })
}

/// The plan a journal's file name names (`<ms>-<plan><suffix>.jsonl`).
pub fn plan_of_file(path: &Path) -> Option<&str> {
    if !path.file_name()?.to_str()?.ends_with(".jsonl") {
        return None;
    }
    name_says(path).map(|(plan, _, _)| plan)
}

/// The test failover of `plan` not yet cleaned up, if any: the last test run of the plan when
/// it is a test failover that completed (its routes are at the test site until
/// `cleanup-test` completes).
pub fn test_not_cleaned(runs: &[RunSummary], plan: &str) -> Option<String> {
    let last = runs
        .iter()
        .filter(|r| r.plan == plan && r.mode == Mode::Test)
        .max_by_key(|r| r.started_ms)?;
    (last.direction == Direction::Failover && last.phase == Phase::Finished(Outcome::Completed))
        .then(|| last.run_id.clone())
}

fn read(state_dir: &Path, plan: Option<&str>) -> Result<Listing, String> {
    let dir = runs_dir(state_dir);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter(|p| plan.is_none_or(|plan| plan_of_file(p) == Some(plan)))
        .collect();
    paths.sort();
    let mut out = Listing::default();
    for p in paths {
        let r = match replay_prefix(&p) {
            Ok(r) => r,
            Err(e) => {
                out.unreadable.push(Unreadable {
                    path: p,
                    error: e.to_string(),
                });
                continue;
            }
        };
        match RunSummary::from_entries(&p, &r.entries, r.phase) {
            Some(mut s) => {
                s.damaged = r.damage.map(|e| e.to_string());
                if plan.is_none_or(|plan| s.plan == plan) {
                    out.runs.push(s);
                }
            }
            // Created, then the controller died before its first record: nothing was done.
            None if r.entries.is_empty() && r.damage.is_none() => {}
            None => out.unreadable.push(Unreadable {
                path: p,
                error: r
                    .damage
                    .map_or("it does not start with run_started".into(), |e| {
                        e.to_string()
                    }),
            }),
        }
    }
    out.runs.sort_by_key(|r| r.started_ms);
    Ok(out)
}

/// A run from records read out of a store other than the state directory (etcd), checked
/// as a file's replay is: the legal prefix, with [`RunSummary::damaged`] saying where it
/// stops. `None` when the first record is not `run_started`.
pub fn summarize(label: &Path, entries: Vec<Entry>) -> Option<RunSummary> {
    let mut phase = Phase::Empty;
    let mut steps = 0;
    let mut damage = None;
    let mut legal = 0;
    for (i, e) in entries.iter().enumerate() {
        if let Record::RunStarted { steps: s, .. } = &e.record {
            steps = s.len();
        }
        match phase.next(steps, &e.record) {
            Some(p) if e.seq == i as u64 => {
                phase = p;
                legal = i + 1;
            }
            _ => {
                damage = Some(format!(
                    "record {} (seq {}) is not legal in phase {phase:?}",
                    i + 1,
                    e.seq
                ));
                break;
            }
        }
    }
    let mut s = RunSummary::from_entries(label, &entries[..legal], phase)?;
    s.damaged = damage;
    Some(s)
}

/// The unfinished runs, of one plan when `plan` is given. A journal that cannot be read may
/// hold an unfinished run, so it is an error here (naming the file).
pub fn unfinished(state_dir: &Path, plan: Option<&str>) -> Result<Vec<RunSummary>, String> {
    let l = match plan {
        Some(p) => of_plan(state_dir, p)?,
        None => list(state_dir)?,
    };
    if let Some(u) = l.unreadable.first() {
        return Err(format!(
            "cannot read the run journal {u}: it may hold an unfinished run; check which site announces the subnets (`ferry status`), then close it with {}",
            super::repair::command(plan.or(plan_of_file(&u.path)).unwrap_or("PLAN"))
        ));
    }
    Ok(l.runs.into_iter().filter(|r| !r.finished()).collect())
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), for history and status.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to civil date (H. Hinnant's algorithm), for dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_read_from_the_file_name() {
        let p = |s: &str| plan_of_file(Path::new(s)).map(str::to_owned);
        assert_eq!(p("runs/1796-web-failover.jsonl").as_deref(), Some("web"));
        assert_eq!(
            p("1796-a-failover-failback.jsonl").as_deref(),
            Some("a-failover")
        );
        assert_eq!(p("1796-web.jsonl"), None);
        assert_eq!(p("x-web-failover.jsonl"), None);
        assert_eq!(p("1796-web-failover.json"), None);
        // A test run of "web" is never a real run of a plan "web-test", nor the other way.
        let says = |s: &str| name_says(Path::new(s)).map(|(p, d, t)| (p.to_owned(), d, t));
        assert_eq!(
            says("1796-web-test+failover.jsonl"),
            Some(("web".into(), Direction::Failover, true))
        );
        assert_eq!(
            says("1796-web-test-failover.jsonl"),
            Some(("web-test".into(), Direction::Failover, false))
        );
        assert_eq!(
            says("1796-web-test+cleanup"),
            Some(("web".into(), Direction::Failback, true))
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_825_338_173), "2026-11-28T00:22:18Z");
    }
}
