//! `ferry controller run` (the long-running HA controller of a plan) and the `ferry failover`
//! commands given `--store etcd://...`: argument handling and output; the work is
//! [`crate::controller::leader`] and [`crate::controller::store`].
//!
//! Exit codes as `ferry failover`'s: 0 completed, 1 failed, refused or the store unavailable,
//! 2 bad usage.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::{Args, Subcommand};

use super::failover::{printer_for, SelectArgs, StateArgs};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::controller::lock::Holder;
use crate::controller::runs::Listing;
use crate::controller::sites::{ApiSites, SystemProbes};
use crate::controller::store::{Store, StoreSpec};
use crate::controller::{fencing, leader};
use crate::controller::{Direction, End, Executor, Mode, Plan};

#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(subcommand)]
    pub command: ControllerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ControllerCommand {
    /// Run as one of a plan's HA controllers (one per site, sharing --store etcd://...), until
    /// killed: the leader keeps the plan's leases and finishes any run a dead controller or
    /// operator left unfinished; the others wait to lead (docs/ha.md).
    Run {
        /// The plan file (TOML).
        #[arg(long)]
        plan: PathBuf,
        /// The plan's [[site]] this controller runs at; needed with [auto] in the plan (its
        /// view of the primary votes for failover by quorum, unless it is the primary).
        #[arg(long)]
        site: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
}

pub fn run(args: ControllerArgs) -> i32 {
    let ControllerCommand::Run { plan, site, state } = args.command;
    let p = match Plan::load(&plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry controller run: {e}");
            return EXIT_USAGE;
        }
    };
    match (&site, &p.auto) {
        (Some(s), _) if p.site(s).is_none() => {
            eprintln!(
                "ferry controller run: --site {s:?}: no [[site]] of that name in plan {}",
                p.name
            );
            return EXIT_USAGE;
        }
        (None, Some(_)) => {
            eprintln!("ferry controller run: plan {} has [auto]: give --site NAME, the [[site]] this controller runs at", p.name);
            return EXIT_USAGE;
        }
        _ => {}
    }
    let spec = match state.with_plan(&p).spec() {
        Ok(s @ StoreSpec::Etcd { .. }) => s,
        Ok(StoreSpec::Dir(_)) => {
            eprintln!("ferry controller run: --store etcd://HOST:PORT,... (or a [store] table in the plan) is required (controllers share their state through etcd)");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("ferry controller run: {e}");
            return EXIT_USAGE;
        }
    };
    let say = |line: String| eprintln!("ferry controller run: {line}");
    // etcd may be down when the controller starts: wait for it, saying so once.
    let mut said = None;
    let store = loop {
        match spec.open() {
            Ok(s) => break s,
            Err(e) => {
                if said.as_ref() != Some(&e) {
                    say(e.clone());
                    said = Some(e);
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    };
    let Store::Etcd(etcd) = &store else {
        return EXIT_USAGE;
    };
    let stop = AtomicBool::new(false);
    match leader::lead(&p, site.as_deref(), &store, etcd, &say, &stop) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            say(e);
            EXIT_FAILED
        }
    }
}

fn open(state: &StateArgs) -> Result<Store, String> {
    state.spec()?.open()
}

/// The runs in the store (`failover status` and `history` with --store).
pub fn listing(state: &StateArgs, plan: Option<&str>) -> Result<Listing, String> {
    open(state)?.runs(plan)
}

/// `ferry failover|failback --store ...`: the plan's lock taken in the store, then the run,
/// every record a transaction guarded by the lock.
pub fn run_in_store(
    state: &StateArgs,
    p: Plan,
    direction: Direction,
    mode: Mode,
    me: Holder,
    cmd: &str,
    json: bool,
) -> i32 {
    let store = match open(state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    let lock = match leader::claim_new_run(&store, &p.name, &me) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    let timeout = match mode {
        Mode::Planned | Mode::Test => std::time::Duration::from_secs(10),
        Mode::Unplanned => std::time::Duration::from_secs(3),
    };
    let sites = match ApiSites::new(&p, timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_USAGE;
        }
    };
    // Every speaker call carries the plan lock's etcd revision (docs/ha.md, "Fencing").
    let (sites, me) = match fencing::under_lock(sites, &p.name, &lock, me) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_USAGE;
        }
    };
    let n = crate::controller::step::build(&p, direction, mode).len();
    let name = p.name.clone();
    let create = |run_id: &str| store.create_journal(&name, run_id, &lock);
    let ex = Executor::start_in(
        create,
        p,
        direction,
        mode,
        me,
        &sites,
        &SystemProbes,
        printer_for(n, json),
    );
    let mut ex = match ex {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    if !json {
        println!("run {} ({})", ex.run_id, ex.journal.path().display());
    }
    report(cmd, false, ex.drive().map_err(|e| e.to_string()))
}

/// `ferry failover resume|abort --store ...`.
pub fn take_over(s: &SelectArgs, abort: bool) -> i32 {
    let cmd = if abort { "abort" } else { "resume" };
    let Some(plan) = s.plan_name.as_deref() else {
        eprintln!("ferry failover {cmd}: with --store, name the plan with --plan-name");
        return EXIT_USAGE;
    };
    let store = match open(&s.state) {
        Ok(st) => st,
        Err(e) => {
            eprintln!("ferry failover {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    let me = Holder::me(&format!("{cmd} {plan}"));
    let (lock, run) = match leader::claim_unfinished(&store, plan, &me) {
        Ok(Some(x)) => x,
        Ok(None) => {
            println!("nothing to {cmd}: no unfinished run of plan {plan} that nobody runs");
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("ferry failover {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    let say = |l: String| println!("{l}");
    let end = if abort {
        abort_run(&store, &lock, &run, me)
    } else {
        leader::resume(&store, &lock, &run, me, &say)
    };
    report(&format!("failover {cmd}"), abort, end)
}

fn abort_run(
    store: &Store,
    lock: &crate::controller::store::PlanLock,
    run: &crate::controller::runs::RunSummary,
    me: Holder,
) -> Result<End, String> {
    let plan = Plan::parse(&run.plan_text).map_err(|e| e.to_string())?;
    let sites = ApiSites::new(&plan, std::time::Duration::from_secs(10))?;
    let (sites, me) = fencing::under_lock(sites, &plan.name, lock, me)?;
    let journal = store.open_journal(run, lock).map_err(|e| e.to_string())?;
    let mut ex = Executor::of_journal(
        journal,
        &sites,
        &SystemProbes,
        printer_for(run.step_count, false),
    )
    .map_err(|e| e.to_string())?;
    ex.abort(me).map_err(|e| e.to_string())
}

fn report(cmd: &str, abort: bool, end: Result<End, String>) -> i32 {
    match end {
        Ok(End::Completed { active }) => {
            println!("{cmd} completed: {active} announces the subnets");
            EXIT_OK
        }
        Ok(End::RolledBack { active, reason }) => {
            println!("{cmd} rolled back: {active} announces the subnets; {reason}");
            if abort {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Ok(End::Stopped { reason }) => {
            println!("{cmd} stopped for the operator: {reason}; `ferry failover resume --store ...` retries, `abort` rolls back");
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("ferry {cmd}: {e}; the journal in the store says where it stopped");
            EXIT_FAILED
        }
    }
}
