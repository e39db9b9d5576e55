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
//! - Each renewal round ([`tick`]) reads only the journals of its own plan
//!   ([`super::runs::of_plan`]): a journal of another plan that cannot be read costs nothing
//!   here. One of its own plan that cannot be read makes the active site unknown, and renewing
//!   a guess could keep a fenced site alive, so that round renews nothing and says which file.
//!
//! Never does: announce or withdraw (a renewal only extends leases the speaker already holds).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::journal::{Direction, Mode};
use super::runs::{self, RunSummary};
use super::sites::{ApiSites, SiteError};
use super::Plan;
use crate::api::types::LeaseReport;

/// Lease renewal at a site: the speaker API in production, a fake in unit tests.
pub trait Renew {
    fn renew_leases(&self, site: &str, prefixes: &[IpNet]) -> Result<LeaseReport, SiteError>;
}

impl Renew for ApiSites {
    fn renew_leases(&self, site: &str, prefixes: &[IpNet]) -> Result<LeaseReport, SiteError> {
        ApiSites::renew_leases(self, site, prefixes)
    }
}

/// What one renewal round did.
#[derive(Debug)]
pub struct Tick {
    /// The sites to renew, or why they are unknown (then nothing was renewed).
    pub targets: Result<Vec<String>, String>,
    /// Per site renewed at, in plan order.
    pub renewals: Vec<(String, Renewal)>,
}

/// How a renewal at one site went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// The site answered but holds no leased route of the plan (nothing to renew there).
    NoLease,
    Failed(String),
}

impl Tick {
    /// Every renewal that was due was asked for and answered.
    pub fn ok(&self) -> bool {
        self.targets.is_ok()
            && self
                .renewals
                .iter()
                .all(|(_, r)| !matches!(r, Renewal::Failed(_)))
    }
}

/// The keeper loop: a renewal round ([`tick`]) every [`renew_interval`] against the plan's
/// speakers, forever, or once with `once` (then the result says whether every renewal that
/// was due was answered). `say` gets a line each time something changes (the sites renewed,
/// a site's outcome, an unreadable journal), not every round. A failed renewal is retried at
/// the next round; the loop never gives up, since stopping would fence the active site.
/// Errors: the plan has no leases to keep, or its sites' API settings are wrong.
pub fn run(
    plan: &Plan,
    state_dir: &Path,
    once: bool,
    say: &mut dyn FnMut(String),
) -> Result<bool, String> {
    run_fenced(plan, state_dir, once, None, say)
}

/// [`run`], every renewal carrying `fence` when given (see [`ApiSites::with_fence`]): a
/// speaker that holds a higher token refuses the renewal, and the keeper reports it as a
/// failed renewal like any other.
pub fn run_fenced(
    plan: &Plan,
    state_dir: &Path,
    once: bool,
    fence: Option<crate::api::Fence>,
    say: &mut dyn FnMut(String),
) -> Result<bool, String> {
    let Some(every) = renew_interval(plan) else {
        return Err(format!(
            "plan {}: no [[site]] has lease_secs, so there are no leases to keep",
            plan.name
        ));
    };
    let mut sites = ApiSites::new(plan, renew_timeout(every))?;
    if let Some(fence) = fence {
        sites = sites.with_fence(fence);
    }
    let mut last_targets: Option<Vec<String>> = None;
    let mut last_error: Option<String> = None;
    let mut last_renewal: BTreeMap<String, Renewal> = BTreeMap::new();
    loop {
        let started = Instant::now();
        let t = tick(plan, state_dir, &sites);
        let ok = t.ok();
        let targets = match &t.targets {
            Ok(targets) => {
                last_error = None;
                targets.clone()
            }
            Err(e) => {
                // Loud: this plan's leases run out unless someone repairs the journal.
                if last_error.as_ref() != Some(e) {
                    say(format!("ERROR: {e}"));
                    last_error = Some(e.clone());
                }
                Vec::new()
            }
        };
        if last_targets.as_ref() != Some(&targets) {
            say(format!(
                "plan {}: renewing leases every {} ms at {}",
                plan.name,
                every.as_millis(),
                if targets.is_empty() {
                    "no site".to_string()
                } else {
                    targets.join(", ")
                }
            ));
            last_targets = Some(targets);
        }
        for (site, renewal) in t.renewals {
            if last_renewal.get(&site) != Some(&renewal) {
                say(match &renewal {
                    Renewal::Renewed => format!("site {site}: leases renewed"),
                    Renewal::NoLease => {
                        format!("site {site} holds no leased route of plan {}", plan.name)
                    }
                    Renewal::Failed(e) => e.clone(),
                });
                last_renewal.insert(site, renewal);
            }
        }
        if once {
            return Ok(ok);
        }
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
}

/// One renewal round for `plan`: read its runs in `state_dir`, renew at [`sites_to_renew`].
pub fn tick(plan: &Plan, state_dir: &Path, sites: &dyn Renew) -> Tick {
    tick_with(plan, runs::of_plan(state_dir, &plan.name), sites)
}

/// [`tick`] with the plan's runs as read from any store ([`super::store`]).
pub fn tick_with(plan: &Plan, runs: Result<runs::Listing, String>, sites: &dyn Renew) -> Tick {
    let targets = match runs {
        Ok(l) if l.unreadable.is_empty() => Ok(sites_to_renew(plan, &l.runs)),
        Ok(l) => {
            let files: Vec<String> = l.unreadable.iter().map(|u| u.to_string()).collect();
            Err(format!(
                "plan {}: cannot read its run journal {}; which site holds the subnets is unknown, so no lease of plan {} is renewed until {} closes the run",
                plan.name,
                files.join("; "),
                plan.name,
                super::repair::command(&plan.name)
            ))
        }
        Err(e) => Err(format!("plan {}: cannot read the runs: {e}", plan.name)),
    };
    let prefixes: Vec<_> = plan
        .all_prefixes()
        .into_iter()
        .chain(plan.all_hosts())
        .collect();
    let renewals = targets
        .iter()
        .flatten()
        .map(|site| {
            let r = match sites.renew_leases(site, &prefixes) {
                Ok(r) if !r.leases.iter().any(|l| prefixes.contains(&l.prefix)) => Renewal::NoLease,
                Ok(_) => Renewal::Renewed,
                Err(e) => Renewal::Failed(e.to_string()),
            };
            (site.clone(), r)
        })
        .collect();
    Tick { targets, renewals }
}

/// The sites whose leases of the plan's subnets are to be renewed now, in plan order, given
/// the runs of the state directory (any order, any plan).
pub fn sites_to_renew(plan: &Plan, runs: &[RunSummary]) -> Vec<String> {
    let mut ours: Vec<&RunSummary> = runs.iter().filter(|r| r.plan == plan.name).collect();
    ours.sort_by_key(|r| r.started_ms);
    let mut wanted: Vec<&str> = Vec::new();
    let active = ours
        .iter()
        .rev()
        .find(|r| r.finished() && r.mode != Mode::Test)
        .and_then(|r| r.active.as_deref())
        .unwrap_or(&plan.primary().name);
    wanted.push(active);
    // The test site holds its routes from a test failover's start until a cleanup-test ends.
    let test = plan.test_site().map(|t| t.name.as_str());
    let last_test = ours.iter().rev().find(|r| r.mode == Mode::Test);
    if let (Some(t), Some(run)) = (test, last_test) {
        let cleaned = run.direction == Direction::Failback
            && run.phase == super::journal::Phase::Finished(super::Outcome::Completed);
        if !cleaned {
            wanted.push(t);
        }
    }
    let mut fenced: Vec<&str> = Vec::new();
    for run in ours
        .iter()
        .filter(|r| !r.finished() && r.mode != Mode::Test)
    {
        let (from, to) = match run.direction {
            Direction::Failover => (&plan.primary().name, &plan.recovery().name),
            Direction::Failback => (&plan.recovery().name, &plan.primary().name),
        };
        wanted.push(to);
        match run.mode {
            Mode::Planned | Mode::Test => wanted.push(from),
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

/// One renewal's timeout at the renewal interval `every`: at most the interval (a request
/// must not outlast the round, or one dead site would delay the others'), at most 3 s.
pub fn renew_timeout(every: Duration) -> Duration {
    every.min(Duration::from_secs(3))
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
            damaged: None,
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

    /// Records the sites it was asked to renew at; every site holds the plan's leases.
    #[derive(Default)]
    struct FakeRenew(std::cell::RefCell<Vec<String>>);

    impl Renew for FakeRenew {
        fn renew_leases(&self, site: &str, prefixes: &[IpNet]) -> Result<LeaseReport, SiteError> {
            self.0.borrow_mut().push(site.to_owned());
            Ok(LeaseReport {
                leases: prefixes
                    .iter()
                    .map(|p| crate::api::types::LeaseInfo {
                        prefix: *p,
                        lease_secs: 30,
                        expires_in_ms: 30_000,
                    })
                    .collect(),
                ..LeaseReport::default()
            })
        }
    }

    /// A finished failover of `plan` to dc2 in `state/runs/`.
    fn finished_failover(state: &Path, plan: &str, ms: u64) {
        use crate::controller::journal::{Journal, Record};
        let dir = state.join("runs");
        std::fs::create_dir_all(&dir).unwrap();
        let mut j = Journal::create(&dir.join(format!("{ms}-{plan}-failover.jsonl"))).unwrap();
        j.append(Record::RunStarted {
            run_id: format!("{ms}-{plan}-failover"),
            plan: plan.into(),
            direction: Direction::Failover,
            mode: Mode::Planned,
            steps: Vec::new(),
            by: Holder::me("test"),
            plan_text: self::plan(Some(30), Some(30)).text,
        })
        .unwrap();
        j.append(Record::RunFinished {
            outcome: Outcome::Completed,
            active: "dc2".into(),
        })
        .unwrap();
    }

    #[test]
    fn a_corrupt_journal_of_another_plan_costs_this_plan_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(Some(30), Some(30));
        finished_failover(dir.path(), "web", 1);
        std::fs::write(dir.path().join("runs/2-db-failover.jsonl"), "not json\n").unwrap();
        let fake = FakeRenew::default();
        let t = tick(&p, dir.path(), &fake);
        assert_eq!(t.targets, Ok(vec!["dc2".to_string()]));
        assert_eq!(t.renewals, [("dc2".to_string(), Renewal::Renewed)]);
        assert!(t.ok());
        assert_eq!(*fake.0.borrow(), ["dc2"]);
    }

    #[test]
    fn a_corrupt_journal_of_this_plan_renews_nothing_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(Some(30), Some(30));
        finished_failover(dir.path(), "web", 1);
        std::fs::write(dir.path().join("runs/3-web-failback.jsonl"), "not json\n").unwrap();
        let fake = FakeRenew::default();
        let t = tick(&p, dir.path(), &fake);
        let e = t.targets.as_ref().unwrap_err();
        assert!(
            e.contains("3-web-failback.jsonl")
                && e.contains("line 1")
                && e.contains("ferry failover repair --plan-name web --active SITE"),
            "{e}"
        );
        assert!(!t.ok());
        assert!(fake.0.borrow().is_empty());
    }

    /// A completed planned failover to dc2 whose journal later got a line twice: while it is
    /// damaged the keeper renews both sites (the active one is unknown); `repair --active dc2`
    /// closes it, keeps the damaged file beside it, and from then on only dc2 is renewed (not
    /// dc1, which moving the file out of runs/ by hand used to give: production withdrawn).
    #[test]
    fn a_repaired_run_renews_the_site_the_operator_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(Some(30), Some(30));
        finished_failover(dir.path(), "web", 1);
        let journal = dir.path().join("runs/1-web-failover.jsonl");
        let text = std::fs::read_to_string(&journal).unwrap();
        let last = text.lines().last().unwrap().to_owned();
        std::fs::write(&journal, format!("{text}{last}\n")).unwrap();
        let renewed = |dir: &Path| {
            let fake = FakeRenew::default();
            let t = tick(&p, dir, &fake);
            assert!(t.ok(), "{t:?}");
            fake.0.take()
        };
        assert_eq!(renewed(dir.path()), ["dc1", "dc2"], "damaged: both");

        let me = Holder::me("repair web");
        let lock = crate::controller::lock::Lock::acquire(dir.path(), "web", &me).unwrap();
        let e = crate::controller::repair::repair(dir.path(), "web", "dc9", &me, &lock)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--active dc9") && e.contains("dc1, dc2"), "{e}");
        let done = crate::controller::repair::repair(dir.path(), "web", "dc2", &me, &lock).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].kept, 2);
        let evidence = dir.path().join("runs/1-web-failover.jsonl.damaged");
        assert_eq!(done[0].evidence, evidence);
        assert_eq!(
            std::fs::read_to_string(&evidence).unwrap(),
            format!("{text}{last}\n")
        );
        assert_eq!(renewed(dir.path()), ["dc2"], "repaired: the named site");

        let l = runs::of_plan(dir.path(), "web").unwrap();
        assert!(l.warnings().is_empty(), "{:?}", l.warnings());
        assert_eq!(
            l.runs[0].state(),
            "repaired (the operator named the active site)"
        );
        assert!(
            crate::controller::repair::repair(dir.path(), "web", "dc2", &me, &lock)
                .unwrap()
                .is_empty(),
            "nothing left to repair"
        );
    }

    /// A journal of this plan that cannot be read at all (no legal `run_started`) is closed
    /// too, with a start made from its file name.
    #[test]
    fn an_unreadable_journal_is_repaired_from_its_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(Some(30), Some(30));
        finished_failover(dir.path(), "web", 1);
        std::fs::write(dir.path().join("runs/3-web-failback.jsonl"), "not json\n").unwrap();
        let me = Holder::me("repair web");
        let lock = crate::controller::lock::Lock::acquire(dir.path(), "web", &me).unwrap();
        let done = crate::controller::repair::repair(dir.path(), "web", "dc1", &me, &lock).unwrap();
        assert_eq!(done.len(), 1);
        assert!(done[0].damage.contains("line 1"), "{:?}", done[0]);
        let fake = FakeRenew::default();
        let t = tick(&p, dir.path(), &fake);
        assert_eq!(t.targets, Ok(vec!["dc1".to_string()]));
        let l = runs::of_plan(dir.path(), "web").unwrap();
        assert_eq!(l.runs.len(), 2);
        assert_eq!(l.runs[1].direction, Direction::Failback);
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
