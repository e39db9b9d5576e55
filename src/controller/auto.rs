//! Failover by quorum (`[auto]` in the plan; issue 17, item 4): the HA controllers, one per
//! site, each check the primary's speaker API and publish what they see in etcd; when a
//! majority of the controllers not at the primary have seen it down for `after_secs`, the
//! leader starts an unplanned failover, and announces at the recovery site only after the
//! primary's leases have run out.
//!
//! Contract:
//! - [`watch`]: every `interval_ms`, one call to the primary's speaker API (its peers) and one
//!   attempt of each `[[auto.check]]` (the primary's VMs), each bounded by the interval; the
//!   primary is down when any fails. The result goes to etcd (`seen/<site>`) with the time the
//!   current state began (`since_ms`) and the time of the check (`at_ms`). A controller at
//!   the primary does not vote (it cannot tell "the primary is down" from "I am cut off
//!   with it").
//! - [`decide`] is pure: the voters are the plan's sites other than the primary; a view counts
//!   when it is fresh (checked within three intervals plus a second) and says "down since"
//!   at least `after_secs` ago; a majority of the voters (more than half) decides.
//! - [`fail_over`] runs at the leader only: the plan lock, then the unplanned run, whose
//!   `run_started` record names every view (who saw what, since when). The leader's keeper
//!   stops renewing the primary then ([`Renewals::fence`]), and the run announces at the
//!   recovery site only after the primary's leases have run out at the latest: the last
//!   renewal that may have reached the primary (this leader's, or, an older leader's, one
//!   timeout after this leadership began) plus its `lease_secs` and the plan's margin. The
//!   steps before the announce (the preflight, the best-effort withdraw at the primary) run
//!   during that wait, each call to the primary bounded by `interval_ms` (the bound the
//!   controllers judged it down by). Since the deciding controller leads, every older
//!   leader's leadership (and so its renewals) had ended before the decision.
//! - A controller that resumes an auto run (its starter died) knows nothing of the starter's
//!   renewals: it waits the conservative [`fence_wait`] counted from the run's start.
//!
//! - One auto run per outage: after an auto run that did not move the subnets (rolled back),
//!   the next needs every deciding view to have gone down after that run started.
//!
//! Never does: fail back, or decide with the primary's own controller's view, or decide
//! while a run of the plan is unfinished or the recovery site already holds the subnets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::executor::{End, Executor};
use super::journal::{now_ms, Direction, Mode};
use super::lock::Holder;
use super::plan::{Auto, Plan};
use super::renewals::Renewals;
use super::sites::{ApiSites, Probes, Sites, SystemProbes};
use super::store::etcd::EtcdStore;
use super::store::Store;
use super::{fencing, leader};

/// What the controller at `site` last saw of the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub site: String,
    pub up: bool,
    /// When the current state (up or down) was first seen, ms since the Unix epoch.
    pub since_ms: u64,
    /// When it was last checked.
    pub at_ms: u64,
    /// The check's error when down.
    pub detail: String,
}

/// A majority saw the primary down long enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub voters: usize,
    pub down: Vec<Seen>,
}

impl Decision {
    /// For the journal and history: who saw what, since when.
    pub fn describe(&self, plan: &Plan) -> String {
        let views: Vec<String> = self
            .down
            .iter()
            .map(|s| {
                format!(
                    "{} saw {} down since {} ({})",
                    s.site,
                    plan.primary().name,
                    super::runs::utc(s.since_ms),
                    s.detail
                )
            })
            .collect();
        format!(
            "{AUTO_DOING} {} by quorum ({} of {} controllers): {}",
            plan.name,
            self.down.len(),
            self.voters,
            views.join("; ")
        )
    }
}

/// Whether `views` make a quorum for failing over from the primary at `now_ms`.
pub fn decide(plan: &Plan, auto: &Auto, views: &[Seen], now_ms: u64) -> Option<Decision> {
    let primary = &plan.primary().name;
    let voters: Vec<&str> = plan
        .sites
        .iter()
        .map(|s| s.name.as_str())
        .filter(|s| s != primary)
        .collect();
    let fresh = 3 * auto.interval_ms + 1000;
    let after = u64::from(auto.after_secs) * 1000;
    let mut down: Vec<Seen> = views
        .iter()
        .filter(|v| voters.contains(&v.site.as_str()))
        .filter(|v| !v.up && now_ms.saturating_sub(v.at_ms) <= fresh)
        .filter(|v| now_ms.saturating_sub(v.since_ms) >= after)
        .cloned()
        .collect();
    down.sort_by(|a, b| a.site.cmp(&b.site));
    down.dedup_by(|a, b| a.site == b.site);
    (down.len() * 2 > voters.len()).then_some(Decision {
        voters: voters.len(),
        down,
    })
}

/// How long the run waits before its first step: the primary's lease, one renewal that may
/// have been in flight when the keeper stopped (its timeout, a third of the lease up to
/// 3 s), and the plan's margin.
pub fn fence_wait(plan: &Plan, auto: &Auto) -> Duration {
    let lease = Duration::from_secs(u64::from(plan.primary().lease_secs.unwrap_or(0)));
    lease + (lease / 3).min(Duration::from_secs(3)) + Duration::from_millis(auto.margin_ms)
}

/// Check the primary every interval and publish the result as `site`'s view, until `stop`.
pub fn watch(
    plan: &Plan,
    auto: &Auto,
    site: &str,
    etcd: &EtcdStore,
    stop: &AtomicBool,
    say: &(dyn Fn(String) + Sync),
) {
    let every = Duration::from_millis(auto.interval_ms);
    let sites = match ApiSites::new(plan, every) {
        Ok(s) => s,
        Err(e) => return say(format!("auto: {e}")),
    };
    let primary = plan.primary().name.clone();
    let mut state: Option<(bool, u64)> = None;
    let mut published_err = None;
    while !stop.load(Ordering::Relaxed) {
        let started = std::time::Instant::now();
        let result = sites
            .peers(&primary)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                auto.checks.iter().try_for_each(|c| {
                    let t = every.min(Duration::from_millis(c.timeout_ms));
                    SystemProbes
                        .probe(&c.probe(), t, &[])
                        .map_err(|e| format!("check {}: {e}", c.name))
                })
            });
        let now = now_ms();
        let up = result.is_ok();
        let since = match state {
            Some((was, since)) if was == up => since,
            _ => {
                say(format!(
                    "auto: {primary} is {}{}",
                    if up { "up" } else { "DOWN" },
                    result
                        .as_ref()
                        .err()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
                now
            }
        };
        state = Some((up, since));
        let seen = Seen {
            site: site.to_owned(),
            up,
            since_ms: since,
            at_ms: now,
            detail: result.err().unwrap_or_default(),
        };
        let json = serde_json::to_string(&seen).unwrap_or_default();
        match etcd.put_seen(&plan.name, site, json) {
            Ok(()) => published_err = None,
            Err(e) => {
                let e = e.to_string();
                if published_err.as_ref() != Some(&e) {
                    say(format!("auto: {e}"));
                    published_err = Some(e);
                }
            }
        }
        if let Some(left) = every.checked_sub(started.elapsed()) {
            std::thread::sleep(left);
        }
    }
}

/// The controllers' views as etcd holds them (unreadable ones skipped: they do not vote).
pub fn views(etcd: &EtcdStore, plan: &str) -> Result<Vec<Seen>, String> {
    Ok(etcd
        .seen(plan)
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|v| serde_json::from_slice(v).ok())
        .collect())
}

/// At the leader: a decision when the primary holds the subnets, no run is unfinished and a
/// quorum saw the primary down.
pub fn due(plan: &Plan, store: &Store, etcd: &EtcdStore) -> Result<Option<Decision>, String> {
    let Some(auto) = &plan.auto else {
        return Ok(None);
    };
    let listing = store.runs(Some(&plan.name))?;
    if listing.runs.iter().any(|r| !r.finished()) || !listing.unreadable.is_empty() {
        return Ok(None);
    }
    let active = listing
        .runs
        .iter()
        .rev()
        .find_map(|r| r.active.clone())
        .unwrap_or_else(|| plan.primary().name.clone());
    if active != plan.primary().name {
        return Ok(None);
    }
    // One run per outage: after an auto run that did not move the subnets, the next one
    // needs views that went down after it started (or an operator).
    let last_auto = listing
        .runs
        .iter()
        .filter(|r| r.by.doing.starts_with(AUTO_DOING))
        .map(|r| r.started_ms)
        .max();
    Ok(decide(plan, auto, &views(etcd, &plan.name)?, now_ms())
        .filter(|d| d.down.iter().all(|v| Some(v.since_ms) > last_auto)))
}

/// How an auto run's holder names itself (`by.doing` of its `run_started`).
const AUTO_DOING: &str = "auto failover";

/// The unplanned failover `decision` asked for, run by the leader, whose keeper's renewals
/// are `renewals`.
pub fn fail_over(
    plan: &Plan,
    store: &Store,
    decision: &Decision,
    renewals: &Renewals,
    say: &(dyn Fn(String) + Sync),
) -> Result<End, String> {
    let Some(auto) = &plan.auto else {
        return Err("the plan has no [auto]".into());
    };
    let primary = plan.primary();
    let me = Holder::me(&decision.describe(plan));
    let lock = leader::claim_new_run(store, &plan.name, &me)?;
    // The live sites answer in milliseconds; the primary was found down by calls bounded by
    // the interval, and each call to it (preflight, withdraw) costs at most that again.
    let at_primary = Duration::from_millis(auto.interval_ms).min(Duration::from_secs(1));
    let sites =
        ApiSites::new(plan, Duration::from_secs(1))?.with_timeout_at(&primary.name, at_primary);
    let (sites, me) = fencing::under_lock(sites, &plan.name, &lock, me)?;
    let create = |run_id: &str| store.create_journal(&plan.name, run_id, &lock);
    let progress = Box::new(|p| say(leader::progress_line(&p)));
    let ex = Executor::start_in(
        create,
        plan.clone(),
        Direction::Failover,
        Mode::Unplanned,
        me,
        &sites,
        &SystemProbes,
        progress,
    )
    .map_err(|e| e.to_string())?;
    // The run exists: the keeper leaves the primary alone from here.
    let lease = Duration::from_secs(u64::from(primary.lease_secs.unwrap_or(0)));
    let run_out = renewals.fence(&primary.name, lease);
    let until_ms = run_out + auto.margin_ms;
    let now = now_ms();
    let left = Duration::from_millis(until_ms.saturating_sub(now));
    say(format!(
        "{}; run {}: announcing at {} in {} ms: {}'s leases run out by {} ({} ms from now) at the latest, margin {} ms",
        decision.describe(plan),
        ex.run_id,
        plan.recovery().name,
        left.as_millis(),
        primary.name,
        super::runs::utc(run_out),
        run_out as i64 - now as i64,
        auto.margin_ms
    ));
    let why = format!(
        "{}'s leases run out by {}",
        primary.name,
        super::runs::utc(run_out)
    );
    let mut ex = ex.hold_announce_until(std::time::Instant::now() + left, why);
    let end = ex.drive().map_err(|e| e.to_string());
    renewals.release(&primary.name);
    end
}

/// What is left of an auto run's wait when another controller resumes it (its start by the
/// starter's clock): the resumer waits it too.
pub fn wait_left(plan: &Plan, run: &super::runs::RunSummary) -> Option<Duration> {
    let auto = plan.auto.as_ref()?;
    if run.mode != Mode::Unplanned || !run.by.doing.starts_with(AUTO_DOING) {
        return None;
    }
    let until = run.started_ms + fence_wait(plan, auto).as_millis() as u64;
    until
        .checked_sub(now_ms())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let text = super::super::plan::tests::PLAN.replace(
            "next_hop = \"192.0.2.10\"",
            "next_hop = \"192.0.2.10\"\nlease_secs = 9",
        );
        Plan::parse(&format!(
            "{text}[[site]]\nname = \"w\"\napi = \"/run/w.sock\"\n[auto]\nafter_secs = 3\n"
        ))
        .unwrap()
    }

    fn seen(site: &str, up: bool, since_ms: u64, at_ms: u64) -> Seen {
        Seen {
            site: site.into(),
            up,
            since_ms,
            at_ms,
            detail: "no connection".into(),
        }
    }

    #[test]
    fn a_majority_of_the_other_sites_down_for_after_secs_decides() {
        let p = plan();
        let a = p.auto.clone().unwrap();
        let now = 100_000;
        let both = [
            seen("dc2", false, 96_000, 99_900),
            seen("w", false, 97_000, 99_800),
        ];
        let d = decide(&p, &a, &both, now).unwrap();
        assert_eq!((d.voters, d.down.len()), (2, 2));
        assert!(
            d.describe(&p).contains("dc2 saw dc1 down since"),
            "{}",
            d.describe(&p)
        );
        // One of two is no majority; the primary's own view does not vote.
        let one = [
            seen("dc2", false, 96_000, 99_900),
            seen("dc1", false, 90_000, 99_900),
        ];
        assert!(decide(&p, &a, &one, now).is_none());
        // Not long enough, stale, or up.
        let short = [
            seen("dc2", false, 96_000, 99_900),
            seen("w", false, 98_000, 99_800),
        ];
        assert!(decide(&p, &a, &short, now).is_none());
        let stale = [
            seen("dc2", false, 96_000, 99_900),
            seen("w", false, 90_000, 95_000),
        ];
        assert!(decide(&p, &a, &stale, now).is_none());
        let up = [
            seen("dc2", false, 96_000, 99_900),
            seen("w", true, 90_000, 99_900),
        ];
        assert!(decide(&p, &a, &up, now).is_none());
    }

    #[test]
    fn the_wait_covers_the_lease_a_renewal_in_flight_and_the_margin() {
        let p = plan();
        assert_eq!(
            fence_wait(&p, p.auto.as_ref().unwrap()),
            Duration::from_millis(13_000)
        );
    }
}
