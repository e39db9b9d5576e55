//! The fencing keeper behind `ferry failover keep`: while it runs, the site that holds a plan's
//! subnets keeps its leases renewed; when the keeper (or its host, or the network to the site)
//! is gone, the leases run out and the site's speaker withdraws the subnets by itself.
//!
//! Contract:
//! - Which sites are renewed is a pure function of the plan and its runs ([`sites_to_renew`]):
//!   the active site of the latest finished run of the plan (the primary when there is none);
//!   while a run is unfinished, also the site it moves to and, for a planned run, the site it
//!   moves from (it serves until its withdraw step). Never the site an unplanned run moves away
//!   from, even while the run is unfinished: renewing an isolated old primary when it comes
//!   back would undo its fencing.
//! - Only sites with `lease_secs` are renewed, and only the plan's subnets (a speaker may hold
//!   other leased routes that are not this controller's business).
//! - The interval is a third of the shortest lease, so two renewals in a row may fail before a
//!   lease runs out ([`renew_interval`]).
//!
//! Never does: announce or withdraw (a renewal only extends leases the speaker already holds).

use std::time::Duration;

use super::journal::{Direction, Mode};
use super::runs::RunSummary;
use super::Plan;

/// The sites whose leases of the plan's subnets are to be renewed now, in plan order, given
/// the runs of the state directory (any order, any plan).
pub fn sites_to_renew(plan: &Plan, runs: &[RunSummary]) -> Vec<String> {
    let mut ours: Vec<&RunSummary> = runs.iter().filter(|r| r.plan == plan.name).collect();
    ours.sort_by_key(|r| r.started_ms);
    let mut wanted: Vec<&str> = Vec::new();
    let active = ours
        .iter()
        .rev()
        .find(|r| r.finished())
        .and_then(|r| r.active.as_deref())
        .unwrap_or(&plan.primary().name);
    wanted.push(active);
    let mut fenced: Vec<&str> = Vec::new();
    for run in ours.iter().filter(|r| !r.finished()) {
        let (from, to) = match run.direction {
            Direction::Failover => (&plan.primary().name, &plan.recovery().name),
            Direction::Failback => (&plan.recovery().name, &plan.primary().name),
        };
        wanted.push(to);
        match run.mode {
            Mode::Planned => wanted.push(from),
            Mode::Unplanned => fenced.push(from),
        }
    }
    plan.sites
        .iter()
        .filter(|s| {
            let name = s.name.as_str();
            s.lease_secs.is_some() && wanted.contains(&name) && !fenced.contains(&name)
        })
        .map(|s| s.name.clone())
        .collect()
}

/// A third of the shortest `lease_secs` of the plan's sites, at least 100 ms; `None` when no
/// site is leased (there is nothing to keep).
pub fn renew_interval(plan: &Plan) -> Option<Duration> {
    plan.sites
        .iter()
        .filter_map(|s| s.lease_secs)
        .min()
        .map(|secs| (Duration::from_secs(u64::from(secs)) / 3).max(Duration::from_millis(100)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::journal::Phase;
    use crate::controller::lock::Holder;
    use crate::controller::Outcome;

    fn plan(lease_dc1: Option<u32>, lease_dc2: Option<u32>) -> Plan {
        let lease = |l: Option<u32>| l.map_or(String::new(), |s| format!("lease_secs = {s}\n"));
        Plan::parse(&format!(
            r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"

[[site]]
name = "dc1"
api = "/run/dc1.sock"
{}
[[site]]
name = "dc2"
api = "/run/dc2.sock"
{}
[[group]]
name = "web"
subnets = ["198.51.100.0/24"]
"#,
            lease(lease_dc1),
            lease(lease_dc2)
        ))
        .unwrap()
    }

    fn run(
        plan: &str,
        started: u64,
        direction: Direction,
        mode: Mode,
        active: Option<&str>,
    ) -> RunSummary {
        RunSummary {
            path: "/dev/null".into(),
            run_id: format!("run-{started}"),
            plan: plan.into(),
            direction,
            mode,
            by: Holder::me("test"),
            started_ms: started,
            last_ms: started,
            phase: match active {
                Some(_) => Phase::Finished(Outcome::Completed),
                None => Phase::Forward {
                    next: 0,
                    open: None,
                },
            },
            active: active.map(String::from),
            steps: Vec::new(),
            step_count: 1,
            takeovers: Vec::new(),
            plan_text: String::new(),
        }
    }

    #[test]
    fn without_runs_the_primary_is_renewed() {
        assert_eq!(sites_to_renew(&plan(Some(30), Some(30)), &[]), ["dc1"]);
    }

    #[test]
    fn the_latest_finished_run_of_this_plan_decides() {
        let p = plan(Some(30), Some(30));
        let runs = [
            run("web", 2, Direction::Failback, Mode::Planned, Some("dc1")),
            run("web", 3, Direction::Failover, Mode::Planned, Some("dc2")),
            run("other", 4, Direction::Failback, Mode::Planned, Some("dc1")),
        ];
        assert_eq!(sites_to_renew(&p, &runs), ["dc2"]);
    }

    #[test]
    fn an_unfinished_planned_run_keeps_both_sites_an_unplanned_one_only_its_target() {
        let p = plan(Some(30), Some(30));
        let planned = [run("web", 5, Direction::Failover, Mode::Planned, None)];
        assert_eq!(sites_to_renew(&p, &planned), ["dc1", "dc2"]);
        // An unplanned move away from a site fences it at once, even before the run finishes.
        let unplanned = run("web", 7, Direction::Failover, Mode::Unplanned, None);
        assert_eq!(sites_to_renew(&p, &[unplanned]), ["dc2"]);
        let finished = run("web", 1, Direction::Failover, Mode::Unplanned, Some("dc2"));
        let unplanned_back = run("web", 6, Direction::Failback, Mode::Unplanned, None);
        assert_eq!(sites_to_renew(&p, &[finished, unplanned_back]), ["dc1"]);
    }

    #[test]
    fn sites_without_a_lease_are_never_renewed() {
        let p = plan(None, Some(30));
        assert!(sites_to_renew(&p, &[]).is_empty());
        let done = [run(
            "web",
            1,
            Direction::Failover,
            Mode::Unplanned,
            Some("dc2"),
        )];
        assert_eq!(sites_to_renew(&p, &done), ["dc2"]);
    }

    #[test]
    fn interval_is_a_third_of_the_shortest_lease() {
        assert_eq!(renew_interval(&plan(None, None)), None);
        assert_eq!(
            renew_interval(&plan(Some(30), Some(3))),
            Some(Duration::from_secs(1))
        );
    }
}
