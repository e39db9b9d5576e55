//! Runs a plan's steps against the journal: start, drive, resume, abort.
//!
//! Contract:
//! - Every action is preceded by its start record and followed by its end record, both on disk
//!   (fsync) before the next action; what to do next is derived from the journal's [`Phase`]
//!   only, so [`Executor::resume`] after a crash at any point continues exactly where the
//!   journal says: an open step is applied again (steps are idempotent), an open compensation
//!   is run again.
//! - On a failed step: roll back (compensate the failed step and every done step, last first)
//!   or, when the plan says `on_failure = "stop"`, record `stopped` and return; `resume` then
//!   retries the step and `abort` rolls back.
//! - Both sites announce a subnet only between the announce and the withdraw of a
//!   make-before-break plan: break-before-make withdraws first, and rollback runs in reverse,
//!   so it keeps the same property.
//! - A run ends with `run_finished` naming the site that announces the subnets.
//! - A hook command's process is journaled before it is waited for; `resume` and `abort`
//!   first end whatever is left of the hooks of the action the dead controller had open
//!   (their process groups), and refuse to go on while any of it survives, so a hook never
//!   runs beside its own orphan.
//!
//! - [`Executor::hold_announce_until`]: no forward announce step starts before that instant
//!   (an `[auto]` failover waits there for the primary's leases; the steps before it, the
//!   preflight and the best-effort withdraw at the cut-off primary, run meanwhile).
//!
//! Never does: take the lock (the caller holds it for the executor's lifetime); talk to a
//! speaker except through [`Sites`].

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::dns::{Dns, SystemDns};
use super::hook::HookProcess;
use super::journal::{Direction, Journal, JournalError, Mode, Outcome, Phase, Record};
use super::lock::Holder;
use super::plan::{OnFailure, Plan};
use super::sites::{Probes, Sites};
use super::step::{self, Ctx, Step};

/// What the caller is shown while a run goes on.
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        step: usize,
        name: String,
        undo: bool,
    },
    Finished {
        step: usize,
        name: String,
        undo: bool,
        elapsed: Duration,
        result: Result<Option<String>, String>,
    },
    RollingBack {
        reason: String,
    },
    /// Something done outside the steps, worth a line (a dead controller's hook ended).
    Note(String),
}

/// How `drive` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Completed {
        active: String,
    },
    RolledBack {
        active: String,
        reason: String,
    },
    /// Waiting for the operator: `resume` or `abort`.
    Stopped {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Invalid(String),
}

pub struct Executor<'a> {
    pub plan: Plan,
    pub run_id: String,
    pub direction: Direction,
    pub mode: Mode,
    pub steps: Vec<Step>,
    pub journal: Journal,
    sites: &'a dyn Sites,
    probes: &'a dyn Probes,
    /// [`SystemDns`] unless [`Executor::with_dns`] says otherwise (unit tests).
    dns: &'a dyn Dns,
    progress: Box<dyn FnMut(Progress) + 'a>,
    /// [`Executor::hold_announce_until`].
    hold_announce: Option<(Instant, String)>,
}

/// Where the runs' journals live under a state directory.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

impl<'a> Executor<'a> {
    /// Create the run's journal under `state_dir/runs/` and record its start. Nothing has been
    /// done when this returns.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        state_dir: &Path,
        plan: Plan,
        direction: Direction,
        mode: Mode,
        by: Holder,
        sites: &'a dyn Sites,
        probes: &'a dyn Probes,
        progress: Box<dyn FnMut(Progress) + 'a>,
    ) -> Result<Self, ExecError> {
        let dir = runs_dir(state_dir);
        super::statedir::private_dir(&dir).map_err(|e| ExecError::Invalid(e.to_string()))?;
        let create = |run_id: &str| Journal::create(&dir.join(format!("{run_id}.jsonl")));
        Self::start_in(create, plan, direction, mode, by, sites, probes, progress)
    }

    /// [`Executor::start`] with the journal made by `create` from the new run's id (a store
    /// other than the state directory, [`super::store`]).
    #[allow(clippy::too_many_arguments)]
    pub fn start_in(
        mut create: impl FnMut(&str) -> Result<Journal, JournalError>,
        plan: Plan,
        direction: Direction,
        mode: Mode,
        by: Holder,
        sites: &'a dyn Sites,
        probes: &'a dyn Probes,
        progress: Box<dyn FnMut(Progress) + 'a>,
    ) -> Result<Self, ExecError> {
        step::check_test(&plan, mode).map_err(ExecError::Invalid)?;
        // The run's id is its start in ms: two runs started within one millisecond (a run
        // that ended at once, then the next) take the next free one.
        let first_ms = super::journal::now_ms();
        let mut ms = first_ms;
        let (run_id, journal) = loop {
            let run_id = format!(
                "{ms}-{}{}",
                plan.name,
                super::runs::run_suffix(direction, mode)
            );
            match create(&run_id) {
                Err(JournalError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists
                        && ms < first_ms + 1000 => {}
                Ok(j) if !j.entries().is_empty() && ms < first_ms + 1000 => {}
                Ok(j) if !j.entries().is_empty() => {
                    return Err(ExecError::Invalid(format!("run {run_id} exists already")))
                }
                r => break (run_id, r?),
            }
            ms += 1;
        };
        let steps = step::build(&plan, direction, mode);
        let mut ex = Self {
            plan,
            run_id,
            direction,
            mode,
            steps,
            journal,
            sites,
            probes,
            dns: &SystemDns,
            progress,
            hold_announce: None,
        };
        let names = ex.steps.iter().map(|s| s.name.clone()).collect();
        ex.journal.append(Record::RunStarted {
            run_id: ex.run_id.clone(),
            plan: ex.plan.name.clone(),
            direction,
            mode,
            steps: names,
            by,
            plan_text: ex.plan.text.clone(),
        })?;
        Ok(ex)
    }

    /// Take over the run in `path` (after a crash, or a stop for the operator). The plan comes
    /// from the journal, not from the file it was once read from.
    pub fn open(
        path: &Path,
        sites: &'a dyn Sites,
        probes: &'a dyn Probes,
        progress: Box<dyn FnMut(Progress) + 'a>,
    ) -> Result<Self, ExecError> {
        Self::of_journal(Journal::open(path)?, sites, probes, progress)
    }

    /// Take over the run `journal` holds (read from any store).
    pub fn of_journal(
        journal: Journal,
        sites: &'a dyn Sites,
        probes: &'a dyn Probes,
        progress: Box<dyn FnMut(Progress) + 'a>,
    ) -> Result<Self, ExecError> {
        let path = journal.path().to_owned();
        let Some(Record::RunStarted {
            run_id,
            direction,
            mode,
            steps: names,
            plan_text,
            ..
        }) = journal.entries().first().map(|e| e.record.clone())
        else {
            return Err(ExecError::Invalid(format!(
                "{}: no run was started (nothing was done)",
                path.display()
            )));
        };
        let plan = Plan::parse(&plan_text)
            .map_err(|e| ExecError::Invalid(format!("the plan in {}: {e}", path.display())))?;
        // The mode comes from the journal: a test run is taken over as a test run. Its file
        // name and run id say test or real too (`runs::run_suffix`); a record that disagrees
        // with them was altered, and no run is resumed on a guess of which one is right.
        for (what, said) in [
            ("file name", super::runs::name_says(&path)),
            ("run id", super::runs::name_says(Path::new(&run_id))),
        ] {
            if let Some((_, d, test)) = said {
                if test != (mode == Mode::Test) || d != direction {
                    return Err(ExecError::Invalid(format!(
                        "{}: its {what} says a {} {}, its first record a {} {}: refusing to resume or abort a run whose kind is in doubt",
                        path.display(),
                        if test { "test" } else { "real" },
                        direction_name(d),
                        if mode == Mode::Test { "test" } else { "real" },
                        direction_name(direction),
                    )));
                }
            }
        }
        step::check_test(&plan, mode)
            .map_err(|e| ExecError::Invalid(format!("{}: {e}", path.display())))?;
        let steps = step::build(&plan, direction, mode);
        let built: Vec<&String> = steps.iter().map(|s| &s.name).collect();
        if built != names.iter().collect::<Vec<_>>() {
            return Err(ExecError::Invalid(format!(
                "{}: this version of ferry builds other steps for the journal's plan",
                path.display()
            )));
        }
        Ok(Self {
            plan,
            run_id,
            direction,
            mode,
            steps,
            journal,
            sites,
            probes,
            dns: &SystemDns,
            progress,
            hold_announce: None,
        })
    }

    /// Reach the DNS servers of `[[dns]]` entries through `dns` (a fake in unit tests).
    pub fn with_dns(mut self, dns: &'a dyn Dns) -> Self {
        self.dns = dns;
        self
    }

    /// Start no forward announce step before `until` (by [`Probes::now`]); `why` is shown
    /// when a step waits.
    pub fn hold_announce_until(mut self, until: Instant, why: String) -> Self {
        self.hold_announce = Some((until, why));
        self
    }

    /// Wait out [`Executor::hold_announce_until`] before step `i` when it announces.
    fn hold_before(&mut self, i: usize) {
        let Some((until, why)) = &self.hold_announce else {
            return;
        };
        if !matches!(self.steps[i].kind, step::StepKind::Announce { .. }) {
            return;
        }
        let left = until.saturating_duration_since(self.probes.now());
        if !left.is_zero() {
            (self.progress)(Progress::Note(format!(
                "{}: holding {} for {} ms ({why})",
                self.run_id,
                self.steps[i].name,
                left.as_millis()
            )));
            self.probes.sleep(left);
        }
    }

    /// What the steps of this run see: its plan, direction, mode, sites and probes.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            plan: &self.plan,
            direction: self.direction,
            mode: self.mode,
            sites: self.sites,
            probes: self.probes,
            dns: self.dns,
            spawned: &|_| Ok(()),
        }
    }

    /// The site announcing the subnets after a rollback and after completion. A test run
    /// moves nothing in production: the primary either way.
    fn ends(&self) -> (String, String) {
        if self.mode == Mode::Test {
            let p = self.plan.primary().name.clone();
            return (p.clone(), p);
        }
        let cx = self.ctx();
        (cx.from().name.clone(), cx.to().name.clone())
    }

    /// Continue a taken-over run: record who took it, then drive it to its end.
    pub fn resume(&mut self, by: Holder) -> Result<End, ExecError> {
        self.takeover(by)?;
        match self.journal.phase() {
            Phase::Stopped {
                step,
                rolling_back: false,
            } => {
                self.journal.append(Record::Retried { step })?;
            }
            Phase::Stopped {
                rolling_back: true, ..
            } => {
                self.journal.append(Record::RollbackStarted {
                    reason: "resumed by the operator after a failed compensation".into(),
                })?;
            }
            _ => {}
        }
        self.drive()
    }

    /// Roll back a run that has not finished.
    pub fn abort(&mut self, by: Holder) -> Result<End, ExecError> {
        self.takeover(by)?;
        match self.journal.phase() {
            Phase::Forward { .. } | Phase::Failed { .. } | Phase::Stopped { .. } => {
                self.journal.append(Record::RollbackStarted {
                    reason: "aborted by the operator".into(),
                })?;
            }
            _ => {}
        }
        self.drive()
    }

    fn takeover(&mut self, by: Holder) -> Result<(), ExecError> {
        match self.journal.phase() {
            Phase::Finished(o) => Err(ExecError::Invalid(format!(
                "run {} already finished ({o:?}); to move back run `ferry failback`",
                self.run_id
            ))),
            _ => {
                self.journal.append(Record::Resumed { by })?;
                self.end_orphans()
            }
        }
    }

    /// The hook processes of the step or compensation that was open when the last
    /// controller stopped: those recorded after the last end record.
    fn orphans(&self) -> Vec<HookProcess> {
        let entries = self.journal.entries();
        let since = entries
            .iter()
            .rposition(|e| {
                matches!(
                    e.record,
                    Record::StepDone { .. }
                        | Record::StepFailed { .. }
                        | Record::CompensateDone { .. }
                        | Record::CompensateFailed { .. }
                )
            })
            .map_or(0, |i| i + 1);
        entries[since..]
            .iter()
            .filter_map(|e| match &e.record {
                Record::HookSpawned { process, .. } => Some(process.clone()),
                _ => None,
            })
            .collect()
    }

    /// End what is left of them before anything runs again (the step would run beside it).
    fn end_orphans(&mut self) -> Result<(), ExecError> {
        for p in self.orphans() {
            match self.probes.end_orphan(&p) {
                Ok(None) => {}
                Ok(Some(what)) => {
                    tracing::warn!(run = %self.run_id, pgid = p.pgid, "{what}");
                    (self.progress)(Progress::Note(what));
                }
                Err(e) => return Err(ExecError::Invalid(format!("run {}: {e}", self.run_id))),
            }
        }
        Ok(())
    }

    /// Run until the journal says finished or stopped.
    pub fn drive(&mut self) -> Result<End, ExecError> {
        let n = self.steps.len();
        let (from, to) = self.ends();
        loop {
            match self.journal.phase() {
                Phase::Empty => return Err(ExecError::Invalid("journal has no run".into())),
                Phase::Finished(outcome) => return Ok(self.end(outcome)),
                Phase::Forward { next, open: None } if next == n => {
                    self.journal.append(Record::RunFinished {
                        outcome: Outcome::Completed,
                        active: to.clone(),
                    })?;
                }
                Phase::Forward { next, open } => {
                    let i = open.unwrap_or(next);
                    if open.is_none() {
                        self.hold_before(i);
                        self.journal.append(Record::StepStarted {
                            step: i,
                            name: self.steps[i].name.clone(),
                        })?;
                    }
                    let (ms, r) = self.run(i, false)?;
                    match r {
                        Ok(note) => self
                            .journal
                            .append(Record::StepDone { step: i, ms, note })?,
                        Err(error) => {
                            self.journal
                                .append(Record::StepFailed { step: i, ms, error })?
                        }
                    };
                }
                Phase::Failed { step } => {
                    let reason = self.failure(step);
                    if self.plan.on_failure == OnFailure::Stop {
                        self.journal.append(Record::Stopped { reason })?;
                    } else {
                        (self.progress)(Progress::RollingBack {
                            reason: reason.clone(),
                        });
                        self.journal.append(Record::RollbackStarted { reason })?;
                    }
                }
                Phase::Stopped { .. } => {
                    return Ok(End::Stopped {
                        reason: self.last_error(),
                    })
                }
                Phase::Rollback {
                    remaining: 0,
                    open: None,
                } => {
                    self.journal.append(Record::RunFinished {
                        outcome: Outcome::RolledBack,
                        active: from.clone(),
                    })?;
                }
                Phase::Rollback { remaining, open } => {
                    let i = open.unwrap_or(remaining - 1);
                    if open.is_none() {
                        self.journal.append(Record::CompensateStarted { step: i })?;
                    }
                    let (ms, r) = self.run(i, true)?;
                    match r {
                        Ok(_) => self
                            .journal
                            .append(Record::CompensateDone { step: i, ms })?,
                        Err(error) => {
                            self.journal
                                .append(Record::CompensateFailed { step: i, ms, error })?
                        }
                    };
                }
            }
        }
    }

    /// Apply (or compensate) step `i`. The outer error: the journal could not record a hook's
    /// process (the hook was killed); the run stops there as at any journal failure.
    fn run(
        &mut self,
        i: usize,
        undo: bool,
    ) -> Result<(u64, Result<Option<String>, String>), ExecError> {
        let name = self.steps[i].name.clone();
        (self.progress)(Progress::Started {
            step: i,
            name: name.clone(),
            undo,
        });
        let t = Instant::now();
        // The journal is written from inside the step (the hook's process, before it is
        // waited for), while the step borrows the plan: split the borrows.
        let journal = RefCell::new(&mut self.journal);
        let failed = RefCell::new(None);
        let spawned = |p: &HookProcess| {
            let r = journal
                .borrow_mut()
                .append(Record::HookSpawned {
                    step: i,
                    undo,
                    process: p.clone(),
                })
                .map(|_| ());
            r.map_err(|e| {
                let text = e.to_string();
                *failed.borrow_mut() = Some(e);
                text
            })
        };
        let cx = Ctx {
            plan: &self.plan,
            direction: self.direction,
            mode: self.mode,
            sites: self.sites,
            probes: self.probes,
            dns: self.dns,
            spawned: &spawned,
        };
        let r = if undo {
            self.steps[i].compensate(&cx)
        } else {
            self.steps[i].apply(&cx)
        };
        if let Some(e) = failed.into_inner() {
            return Err(e.into());
        }
        let elapsed = t.elapsed();
        (self.progress)(Progress::Finished {
            step: i,
            name,
            undo,
            elapsed,
            result: r.clone(),
        });
        Ok((elapsed.as_millis() as u64, r))
    }

    fn failure(&self, step: usize) -> String {
        format!(
            "step {} ({}) failed: {}",
            step + 1,
            self.steps[step].name,
            self.last_error()
        )
    }

    /// The last failure recorded, as text.
    fn last_error(&self) -> String {
        self.journal
            .entries()
            .iter()
            .rev()
            .find_map(|e| match &e.record {
                Record::StepFailed { step, error, .. }
                | Record::CompensateFailed { step, error, .. } => {
                    Some(format!("{}: {error}", self.steps[*step].name))
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    fn end(&self, outcome: Outcome) -> End {
        let active = self
            .journal
            .entries()
            .iter()
            .rev()
            .find_map(|e| match &e.record {
                Record::RunFinished { active, .. } | Record::Repaired { active, .. } => {
                    Some(active.clone())
                }
                _ => None,
            })
            .unwrap_or_default();
        match outcome {
            Outcome::Completed | Outcome::Repaired => End::Completed { active },
            Outcome::RolledBack => End::RolledBack {
                active,
                reason: self
                    .journal
                    .entries()
                    .iter()
                    .find_map(|e| match &e.record {
                        Record::RollbackStarted { reason } => Some(reason.clone()),
                        _ => None,
                    })
                    .unwrap_or_default(),
            },
        }
    }
}

/// A direction as run ids and messages spell it.
fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Failover => "failover",
        Direction::Failback => "failback",
    }
}

#[cfg(test)]
mod tests;
