//! Taking a plan before a controller changes anything: the state directory made private, the
//! plan's lock taken ([`super::lock`]), and, for a new run, no unfinished or damaged run of the
//! plan in the way.
//!
//! Contract:
//! - [`plan`] makes `state_dir` private ([`super::statedir::prepare`]) and takes the plan's
//!   lock; what it could not make private is returned as warnings, not refused.
//! - [`new_run`] does the same, then, under the lock, refuses while a run of the plan is
//!   unfinished (resume or abort it first) or a journal of the plan is damaged (repair it
//!   first). Read under the lock, so a controller that finished meanwhile is seen.
//!
//! Never does: start, resume or close a run (that is [`super::executor`] and
//! [`super::repair`]).

use std::path::Path;

use super::lock::{Holder, Lock};
use super::{repair, runs, statedir};

/// The plan is ours until this drops.
pub struct Claim {
    pub lock: Lock,
    /// Who holds it (recorded in the lock file and the journal).
    pub holder: Holder,
    /// What could not be made private, and unreadable files of other runs, for the operator.
    pub warnings: Vec<String>,
}

/// Why the plan could not be taken; `warnings` are to be shown before `error`.
#[derive(Debug)]
pub struct Refused {
    pub error: String,
    pub warnings: Vec<String>,
}

impl Refused {
    fn new(error: impl ToString) -> Self {
        Self {
            error: error.to_string(),
            warnings: Vec::new(),
        }
    }
}

/// Make `state_dir` private and take `plan`'s lock (refused, naming the holder, while another
/// controller has it).
pub fn plan(state_dir: &Path, plan: &str, me: &Holder) -> Result<Claim, Refused> {
    let warnings = statedir::prepare(state_dir).map_err(Refused::new)?;
    match Lock::acquire(state_dir, plan, me) {
        Ok(lock) => Ok(Claim {
            lock,
            holder: me.clone(),
            warnings,
        }),
        Err(e) => Err(Refused {
            error: e.to_string(),
            warnings,
        }),
    }
}

/// [`plan`], then refuse if the plan has an unfinished or damaged run: the error says what to
/// do first.
///
/// `cleanup`: the run is a `cleanup-test`; any other new run is refused while a test failover
/// of the plan is not cleaned up (its copies would answer in the test network beside the
/// real recovery, and the history would not say which state the test site is in).
pub fn new_run(
    state_dir: &Path,
    plan_name: &str,
    me: &Holder,
    cleanup: bool,
) -> Result<Claim, Refused> {
    let claim = plan(state_dir, plan_name, me)?;
    let refuse = |error: String, mut more: Vec<String>| {
        let mut warnings = claim.warnings.clone();
        warnings.append(&mut more);
        Err(Refused { error, warnings })
    };
    let unfinished = match runs::unfinished(state_dir, Some(plan_name)) {
        Ok(u) => u,
        Err(e) => return refuse(e, Vec::new()),
    };
    if unfinished.iter().any(|r| r.damaged.is_some()) {
        let listing = runs::of_plan(state_dir, plan_name)
            .map(|l| l.warnings())
            .unwrap_or_default();
        return refuse(
            format!(
                "plan {plan_name} has a damaged run journal; close it with {} first",
                repair::command(plan_name)
            ),
            listing,
        );
    }
    if let Some(r) = unfinished.first() {
        return refuse(
            format!(
                "run {} of plan {plan_name} is unfinished ({}); `ferry failover resume` or `ferry failover abort` first",
                r.run_id,
                r.state()
            ),
            Vec::new(),
        );
    }
    if !cleanup {
        let listing = match runs::of_plan(state_dir, plan_name) {
            Ok(l) => l,
            Err(e) => return refuse(e, Vec::new()),
        };
        if let Some(id) = runs::test_not_cleaned(&listing.runs, plan_name) {
            return refuse(
                format!(
                    "test failover {id} of plan {plan_name} is not cleaned up; `ferry failover cleanup-test --plan PLAN` first"
                ),
                Vec::new(),
            );
        }
    }
    Ok(claim)
}

/// What [`unfinished_run`] found.
pub enum TakeOver {
    /// No unfinished run to take over.
    NoRun,
    /// The run was unfinished when looked at, but finished before the lock was ours.
    FinishedMeanwhile {
        run_id: String,
        /// What could not be made private, for the operator.
        warnings: Vec<String>,
    },
    /// The run, read again under its plan's lock, which `claim` holds.
    Run {
        claim: Claim,
        run: Box<runs::RunSummary>,
    },
}

/// Why a run cannot be taken over.
#[derive(Debug)]
pub enum TakeOverRefused {
    /// Unfinished runs of several plans and none chosen (a usage error).
    SeveralPlans(Vec<String>),
    /// The lock, the state directory or the journal said no.
    Refused(Refused),
}

/// Take the one unfinished run (of `plan`, when given) to resume or abort it: its plan's
/// lock taken by a holder doing `doing`, the run read again under the lock (another controller
/// may have finished it meanwhile), and refused if its journal is damaged (only
/// `ferry failover repair` may close it).
pub fn unfinished_run(
    state_dir: &Path,
    plan: Option<&str>,
    doing: &str,
) -> Result<TakeOver, TakeOverRefused> {
    let refused = |e: String| TakeOverRefused::Refused(Refused::new(e));
    let open = runs::unfinished(state_dir, plan).map_err(refused)?;
    let r = match open.as_slice() {
        [] => return Ok(TakeOver::NoRun),
        [r] => r,
        many => {
            return Err(TakeOverRefused::SeveralPlans(
                many.iter().map(|r| r.plan.clone()).collect(),
            ))
        }
    };
    let me = Holder::me(&format!("{doing} {}", r.plan));
    let claim = self::plan(state_dir, &r.plan, &me).map_err(TakeOverRefused::Refused)?;
    let now = runs::unfinished(state_dir, Some(&r.plan)).map_err(|e| {
        TakeOverRefused::Refused(Refused {
            error: e,
            warnings: claim.warnings.clone(),
        })
    })?;
    let Some(run) = now.into_iter().find(|x| x.run_id == r.run_id) else {
        return Ok(TakeOver::FinishedMeanwhile {
            run_id: r.run_id.clone(),
            warnings: claim.warnings,
        });
    };
    if let Some(d) = &run.damaged {
        return Err(TakeOverRefused::Refused(Refused {
            error: format!(
                "run {} has a damaged journal ({d}); it cannot be resumed or aborted safely: check which site announces the subnets (`ferry status`), then close the run with {}",
                run.run_id,
                repair::command(&run.plan)
            ),
            warnings: claim.warnings.clone(),
        }));
    }
    Ok(TakeOver::Run {
        claim,
        run: Box::new(run),
    })
}
