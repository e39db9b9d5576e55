//! HA controllers on a shared store: taking a plan for a run through the store, and the loop
//! of `ferry controller run`, in which exactly one controller of a plan (the leader) keeps
//! the leases and finishes the runs that a dead controller or operator left unfinished.
//!
//! Contract:
//! - [`claim_new_run`] takes the plan's lock in the store, then, under it, refuses while a run
//!   of the plan is unfinished or damaged (as [`super::claim::new_run`] does for the state
//!   directory). Without the store (etcd without a quorum, or not answering), nothing starts:
//!   the error names the endpoints.
//! - [`claim_unfinished`] takes the lock only when a run of the plan is unfinished; while a
//!   live controller or operator runs it (the lock is held), it is left alone.
//! - [`lead`]: campaign for the plan's leadership (etcd: a key created only if absent, on a
//!   lease); while leading, renew the plan's leases every [`super::keeper::renew_interval`]
//!   (a renewal is only sent while the etcd lease is valid: after that, another controller
//!   may lead, and fencing wins over availability; while etcd cannot be read but the lease
//!   is still valid, the sites and token of the last read are renewed, so an etcd blip
//!   shorter than the TTL costs no lease) and resume any unfinished run
//!   whose lock is free (its holder died: its lease ran out), as `ferry failover resume`
//!   does. Leadership lost: stop renewing, campaign again.
//! - Every speaker call carries the plan's fence ([`super::fencing`]): a resumed run the
//!   revision of the lock it took, the keeper at least the revision of its leadership.
//!
//! - With `[auto]` in the plan: a leader whose quorum of controllers saw the primary down
//!   starts the unplanned failover ([`super::auto`]); every controller not at the primary
//!   publishes its view.
//!
//! Never does: start a run by itself other than `[auto]`'s, or renew a lease once its
//! leadership may have passed to another controller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::executor::{End, Executor, Progress};
use super::journal::Mode;
use super::lock::Holder;
use super::renewals::Renewals;
use super::runs::{Listing, RunSummary};
use super::sites::{ApiSites, SystemProbes};
use super::store::etcd::{EtcdError, EtcdStore, Held};
use super::store::{PlanLock, Store};
use super::{auto, fencing, keeper, Plan};

/// Take `plan`'s lock for a new run: refused while a run of it is unfinished or damaged.
pub fn claim_new_run(store: &Store, plan: &str, me: &Holder) -> Result<PlanLock, String> {
    let lock = store.lock(plan, me)?;
    let listing = store.runs(Some(plan))?;
    if let Some(u) = listing.unreadable.first() {
        return Err(format!(
            "cannot read the run {u} in {}: it may hold an unfinished run",
            store.describe()
        ));
    }
    if let Some(r) = listing.runs.iter().find(|r| !r.finished()) {
        return Err(format!(
            "plan {plan} has an unfinished run {} ({}): resume or abort it first (`ferry failover resume --store ...`)",
            r.run_id,
            r.state()
        ));
    }
    Ok(lock)
}

/// The plan's unfinished run with its lock taken; `None` when there is none, or when its lock
/// is held (someone runs it).
pub fn claim_unfinished(
    store: &Store,
    plan: &str,
    me: &Holder,
) -> Result<Option<(PlanLock, RunSummary)>, String> {
    let listing = store.runs(Some(plan))?;
    if !listing.runs.iter().any(|r| !r.finished()) {
        return Ok(None);
    }
    let lock = match store {
        Store::Etcd(e) => match e.lock(plan, me) {
            Ok(h) => PlanLock::Etcd(Box::new(h)),
            Err(EtcdError::Held { .. }) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        },
        Store::Dir(_) => store.lock(plan, me)?,
    };
    // Read again under the lock: the holder may have finished it meanwhile.
    let listing = store.runs(Some(plan))?;
    Ok(listing
        .runs
        .into_iter()
        .find(|r| !r.finished())
        .map(|r| (lock, r)))
}

/// Resume `run` under `lock`: the run's plan from its journal, its sites' clients, drive to
/// the end. `say` gets one line per step.
pub fn resume(
    store: &Store,
    lock: &PlanLock,
    run: &RunSummary,
    me: Holder,
    say: &(dyn Fn(String) + Sync),
) -> Result<End, String> {
    let plan = Plan::parse(&run.plan_text).map_err(|e| format!("the run's plan: {e}"))?;
    let timeout = match run.mode {
        Mode::Planned | Mode::Test => Duration::from_secs(10),
        Mode::Unplanned => Duration::from_secs(3),
    };
    let (sites, me) = fencing::under_lock(ApiSites::new(&plan, timeout)?, &plan.name, lock, me)?;
    // An auto failover's wait for the primary's leases, where its starter left it.
    if let Some(left) = auto::wait_left(&plan, run) {
        say(format!(
            "run {}: waiting {} ms more for {}'s leases to run out",
            run.run_id,
            left.as_millis(),
            plan.primary().name
        ));
        std::thread::sleep(left);
    }
    let journal = store.open_journal(run, lock).map_err(|e| e.to_string())?;
    let progress = Box::new(move |p: Progress| say(progress_line(&p)));
    let mut ex = Executor::of_journal(journal, &sites, &SystemProbes, progress)
        .map_err(|e| e.to_string())?;
    ex.resume(me).map_err(|e| e.to_string())
}

pub(super) fn progress_line(p: &Progress) -> String {
    match p {
        Progress::Started { step, name, undo } => {
            format!(
                "step {} {}{name} started",
                step + 1,
                if *undo { "undo " } else { "" }
            )
        }
        Progress::Finished {
            step,
            name,
            elapsed,
            result,
            ..
        } => format!(
            "step {} {name}: {} ({} ms)",
            step + 1,
            match result {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("FAILED: {e}"),
            },
            elapsed.as_millis()
        ),
        Progress::RollingBack { reason } => format!("rolling back: {reason}"),
        Progress::Note(n) => n.clone(),
    }
}

/// How often a follower tries for the leadership, and a leader looks for runs to resume.
const POLL: Duration = Duration::from_millis(200);

/// `ferry controller run`: lead `plan`'s controllers through `store` until `stop`.
pub fn lead(
    plan: &Plan,
    site: Option<&str>,
    store: &Store,
    etcd: &EtcdStore,
    say: &(dyn Fn(String) + Sync),
    stop: &AtomicBool,
) -> Result<(), String> {
    let watching = AtomicBool::new(false);
    std::thread::scope(|s| {
        // `[auto]`: every controller not at the primary publishes what it sees of it.
        if let (Some(a), Some(site)) = (&plan.auto, site) {
            if site != plan.primary().name {
                let watching = &watching;
                s.spawn(move || auto::watch(plan, a, site, etcd, watching, say));
            }
        }
        let r = campaign(plan, store, etcd, say, stop);
        watching.store(true, Ordering::Relaxed);
        r
    })
}

fn campaign(
    plan: &Plan,
    store: &Store,
    etcd: &EtcdStore,
    say: &(dyn Fn(String) + Sync),
    stop: &AtomicBool,
) -> Result<(), String> {
    let me = Holder::me(&format!("controller of plan {}", plan.name));
    let mut last_wait: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let leader = match etcd.lead(&plan.name, &me) {
            Ok(h) => h,
            Err(e) => {
                let line = match &e {
                    EtcdError::Held { holder, .. } => format!("following: {holder} leads"),
                    e => e.to_string(),
                };
                if last_wait.as_ref() != Some(&line) {
                    say(line.clone());
                    last_wait = Some(line);
                }
                std::thread::sleep(POLL);
                continue;
            }
        };
        last_wait = None;
        say(format!(
            "leading plan {} (token {}, {})",
            plan.name,
            leader.token(),
            etcd.describe()
        ));
        serve(plan, store, etcd, &leader, &me, say, stop);
        let why = if stop.load(Ordering::Relaxed) {
            "stopping"
        } else {
            "the etcd lease ran out"
        };
        say(format!("no longer leading plan {}: {why}", plan.name));
    }
    Ok(())
}

/// While `leader` is valid: the keeper in a thread of its own, and runs to resume here.
fn serve(
    plan: &Plan,
    store: &Store,
    etcd: &EtcdStore,
    leader: &Held,
    me: &Holder,
    say: &(dyn Fn(String) + Sync),
    stop: &AtomicBool,
) {
    let leading = || leader.valid() && !stop.load(Ordering::Relaxed);
    let done = AtomicBool::new(false);
    let renewals = Renewals::new(super::journal::now_ms(), keeper_timeout(plan));
    let renewals = &renewals;
    std::thread::scope(|s| {
        s.spawn(|| {
            keep(
                plan,
                store,
                etcd,
                leader,
                &|| leading() && !done.load(Ordering::Relaxed),
                renewals,
                say,
            )
        });
        while leading() {
            match claim_unfinished(store, &plan.name, me) {
                Ok(Some((lock, run))) => {
                    say(format!("taking over run {} ({})", run.run_id, run.state()));
                    match resume(store, &lock, &run, me.clone(), say) {
                        Ok(end) => say(format!("run {}: {end:?}", run.run_id)),
                        Err(e) => say(format!("run {}: {e}", run.run_id)),
                    }
                }
                Ok(None) => match auto::due(plan, store, etcd) {
                    Ok(Some(d)) => match auto::fail_over(plan, store, &d, renewals, say) {
                        Ok(end) => say(format!("auto failover: {end:?}")),
                        Err(e) => say(format!("auto failover: {e}")),
                    },
                    Ok(None) => {}
                    Err(e) => say(format!("auto: {e}")),
                },
                Err(e) => say(e),
            }
            std::thread::sleep(POLL);
        }
        done.store(true, Ordering::Relaxed);
    });
}

/// The keeper's renewal timeout for `plan` ([`keeper::renew_timeout`]).
fn keeper_timeout(plan: &Plan) -> Duration {
    keeper::renew_interval(plan).map_or(Duration::from_secs(3), keeper::renew_timeout)
}

/// The keeper's rounds while `leading()`; a round starts only while it holds. Every renewal
/// carries the plan's fence at [`fencing::keeper_token`] (from `leader`'s token up), and goes
/// through `renewals`.
fn keep(
    plan: &Plan,
    store: &Store,
    etcd: &EtcdStore,
    leader: &Held,
    leading: &dyn Fn() -> bool,
    renewals: &Renewals,
    say: &(dyn Fn(String) + Sync),
) {
    let Some(every) = keeper::renew_interval(plan) else {
        return;
    };
    let timeout = keeper_timeout(plan);
    let mut fenced: Option<(u64, ApiSites)> = None;
    let mut known: Option<(Listing, Option<u64>)> = None;
    let mut last = String::new();
    let say_changed = |last: &mut String, line: String| {
        if *last != line {
            say(line.clone());
            *last = line;
        }
    };
    let pace = |started: Instant| {
        while leading() && started.elapsed() < every {
            std::thread::sleep(POLL.min(every));
        }
    };
    while leading() {
        let started = Instant::now();
        // etcd unreadable while the leadership is still valid (a blip, or this site cut
        // off): renew what the last read said, until the leadership's lease runs out.
        let read = store
            .runs(Some(&plan.name))
            .and_then(|l| Ok((l, etcd.lock_token(&plan.name).map_err(|e| e.to_string())?)));
        let (stale, view) = match read {
            Ok(r) => (None, &*known.insert(r)),
            Err(e) => match &known {
                Some(k) => (Some(e), k),
                // Which token to offer, or which site to renew, is unknown: renew nothing.
                None => {
                    say_changed(&mut last, format!("keeper: {e}"));
                    pace(started);
                    continue;
                }
            },
        };
        let token = fencing::keeper_token(leader.token(), view.1, &view.0.runs);
        if fenced.as_ref().map(|f| f.0) != Some(token) {
            fenced = match fencing::fence(&plan.name, token)
                .and_then(|f| Ok((token, ApiSites::new(plan, timeout)?.with_fence(f))))
            {
                Ok(f) => Some(f),
                Err(e) => return say(format!("keeper: {e}")),
            };
        }
        let Some((_, sites)) = &fenced else { return };
        let guarded = Guarded {
            sites,
            leading,
            renewals,
        };
        let t = keeper::tick_with(plan, Ok(view.0.clone()), &guarded);
        let mut line = format!("keeper (token {token}): {:?} {:?}", t.targets, t.renewals);
        if let Some(e) = stale {
            line.push_str(&format!(" (from the last read of etcd: {e})"));
        }
        say_changed(&mut last, line);
        pace(started);
    }
}

/// Renewals only while leading, checked before each one (a round may outlast the lease),
/// and not to a site an auto failover is fencing; each one recorded in `renewals`.
struct Guarded<'a> {
    sites: &'a ApiSites,
    leading: &'a dyn Fn() -> bool,
    renewals: &'a Renewals,
}

impl keeper::Renew for Guarded<'_> {
    fn renew_leases(
        &self,
        site: &str,
        prefixes: &[ipnet::IpNet],
    ) -> Result<crate::api::types::LeaseReport, super::sites::SiteError> {
        if !(self.leading)() {
            return Err(super::sites::SiteError::NotLeading);
        }
        if !self.renewals.begin(site) {
            return Err(super::sites::SiteError::Fencing);
        }
        let r = self.sites.renew_leases(site, prefixes);
        let took_nothing = matches!(&r, Err(e) if e.is_unreachable());
        self.renewals.end(site, !took_nothing);
        r
    }
}
