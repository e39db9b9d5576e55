//! The runs kept in a state directory, for `status`, `resume`, `abort` and `history`.
//!
//! Every run is one journal file `runs/<run_id>.jsonl`; nothing else is needed to tell what
//! happened, and nothing is ever deleted here (the audit trail).
//! Never does: write a journal (see [`super::executor`]).

use std::path::{Path, PathBuf};

use super::executor::runs_dir;
use super::journal::{replay, Direction, Entry, Mode, Outcome, Phase, Record};
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
}

impl RunSummary {
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Finished(_))
    }

    /// The run for `--json` output: everything history shows.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "run_id": self.run_id,
            "plan": self.plan,
            "direction": self.direction,
            "mode": self.mode,
            "by": self.by,
            "started": utc(self.started_ms),
            "started_ms": self.started_ms,
            "last_ms": self.last_ms,
            "state": self.state(),
            "finished": self.finished(),
            "active": self.active,
            "warning": self.unfenced(),
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

    pub fn state(&self) -> String {
        match self.phase {
            Phase::Finished(Outcome::Completed) => "completed".into(),
            Phase::Finished(Outcome::RolledBack) => "rolled back".into(),
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
                Record::RunFinished { active, .. } => s.active = Some(active.clone()),
                _ => {}
            }
        }
        Some(s)
    }
}

/// Every run in `state_dir`, oldest first. Unreadable journals are reported, not skipped.
pub fn list(state_dir: &Path) -> Result<Vec<RunSummary>, String> {
    let dir = runs_dir(state_dir);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    let mut runs = Vec::new();
    for p in paths {
        let (entries, phase, _, _) = replay(&p).map_err(|e| e.to_string())?;
        if let Some(s) = RunSummary::from_entries(&p, &entries, phase) {
            runs.push(s);
        }
    }
    runs.sort_by_key(|r| r.started_ms);
    Ok(runs)
}

/// The unfinished runs, of one plan when `plan` is given.
pub fn unfinished(state_dir: &Path, plan: Option<&str>) -> Result<Vec<RunSummary>, String> {
    Ok(list(state_dir)?
        .into_iter()
        .filter(|r| !r.finished() && plan.is_none_or(|p| r.plan == p))
        .collect())
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
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_825_338_173), "2026-11-28T00:22:18Z");
    }
}
