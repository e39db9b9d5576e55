//! The executor against fake sites and probes: full runs, rollback, stop for the operator,
//! and a crash injected at every journal record (both just after it is on disk and just
//! before it is written, i.e. after the action it reports) followed by `resume`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::*;
use crate::api::{PeerStatus, ReceivedRoute, SpeakerError};
use crate::controller::hook::HookProcess;
use crate::controller::journal::Crash;
use crate::controller::plan::{Hook, Probe};
use crate::controller::sites::SiteError;
use crate::speaker::Route;

const PLAN: &str = r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"
[drain]
wait_ms = 1000
[[site]]
name = "dc1"
api = "/x/dc1.sock"
next_hop = "192.0.2.10"
origin_as = 65101
[[site]]
name = "dc2"
api = "/x/dc2.sock"
next_hop = "192.0.2.20"
origin_as = 65102
[[site]]
name = "obs"
api = "/x/obs.sock"
[[group]]
name = "web"
subnets = ["198.51.100.0/24"]
[[group]]
name = "db"
subnets = ["203.0.113.0/25", "203.0.113.128/25"]
[[hook]]
name = "pre"
stage = "pre-check"
command = ["true"]
[[hook]]
name = "stop-vm"
stage = "stop-primary"
command = ["true"]
undo = ["start-vm"]
[[hook]]
name = "cutover-web"
stage = "cutover"
group = "web"
command = ["true"]
[[health_check]]
name = "web-up"
group = "web"
command = ["check"]
interval_ms = 100
rise = 2
timeout_ms = 2000
[verify]
observer = "obs"
"#;

#[derive(Default)]
struct FakeSites {
    rib: RefCell<BTreeMap<String, BTreeMap<IpNet, Route>>>,
    /// Prefixes seen announced at dc1 and dc2 at once.
    both: RefCell<BTreeSet<IpNet>>,
    down: RefCell<BTreeSet<String>>,
    refuses_withdraw: RefCell<BTreeSet<String>>,
    hangs_on_withdraw: RefCell<BTreeSet<String>>,
    /// Prefixes the observer never sees (a router filters them).
    filtered: RefCell<BTreeSet<IpNet>>,
}

impl FakeSites {
    fn new(plan: &Plan) -> Self {
        let s = Self::default();
        let routes: BTreeMap<_, _> = plan
            .all_prefixes()
            .into_iter()
            .map(|p| (p, plan.primary().route(p).unwrap()))
            .collect();
        s.rib.borrow_mut().insert("dc1".into(), routes);
        s
    }

    fn announcing(&self, site: &str) -> BTreeSet<IpNet> {
        self.rib
            .borrow()
            .get(site)
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default()
    }

    fn reachable(&self, site: &str) -> Result<(), SiteError> {
        let error = |error| SiteError::Speaker {
            site: site.to_owned(),
            op: None,
            error,
        };
        if self.down.borrow().contains(site) {
            return Err(error(SpeakerError::Unreachable {
                endpoint: format!("/x/{site}.sock"),
                detail: "connection refused".into(),
            }));
        }
        Ok(())
    }

    /// A site that answers but refuses to withdraw (e.g. a wrong token), or takes the
    /// withdrawal and never answers (a hung API).
    fn may_withdraw(&self, site: &str) -> Result<(), SiteError> {
        if self.hangs_on_withdraw.borrow().contains(site) {
            return Err(SiteError::Speaker {
                site: site.to_owned(),
                op: Some("withdraw"),
                error: SpeakerError::NoAnswer {
                    endpoint: format!("/x/{site}.sock"),
                    detail: "within 3 s".into(),
                },
            });
        }
        if self.refuses_withdraw.borrow().contains(site) {
            return Err(SiteError::Speaker {
                site: site.to_owned(),
                op: Some("withdraw"),
                error: SpeakerError::Rejected {
                    status: 401,
                    field: None,
                    message: "missing or wrong bearer token".into(),
                },
            });
        }
        Ok(())
    }
}

impl Sites for FakeSites {
    fn announce(&self, site: &str, routes: &[Route]) -> Result<(), SiteError> {
        self.reachable(site)?;
        let mut rib = self.rib.borrow_mut();
        let t = rib.entry(site.into()).or_default();
        for r in routes {
            t.insert(r.prefix, r.clone());
        }
        let a: BTreeSet<_> = rib
            .get("dc1")
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default();
        let b: BTreeSet<_> = rib
            .get("dc2")
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default();
        self.both.borrow_mut().extend(a.intersection(&b));
        Ok(())
    }
    fn withdraw(&self, site: &str, prefixes: &[IpNet]) -> Result<(), SiteError> {
        self.reachable(site)?;
        self.may_withdraw(site)?;
        if let Some(t) = self.rib.borrow_mut().get_mut(site) {
            for p in prefixes {
                t.remove(p);
            }
        }
        Ok(())
    }
    fn peers(&self, site: &str) -> Result<Vec<PeerStatus>, SiteError> {
        self.reachable(site)?;
        Ok(vec![crate::controller::sites::established_peer()])
    }
    fn announced(&self, site: &str) -> Result<Vec<Route>, SiteError> {
        self.reachable(site)?;
        Ok(self
            .rib
            .borrow()
            .get(site)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default())
    }
    /// The observer sees what dc1 and dc2 announce one eBGP hop behind a router (AS 65003)
    /// that sets itself as next hop.
    fn received(&self, _site: &str, _: Duration) -> Result<Vec<ReceivedRoute>, SiteError> {
        let rib = self.rib.borrow();
        Ok([("dc1", "65003 65001 65101"), ("dc2", "65003 65002 65102")]
            .iter()
            .flat_map(|(s, path)| {
                rib.get(*s)
                    .into_iter()
                    .flat_map(|r| r.values())
                    .map(move |r| (r, path))
            })
            .filter(|(r, _)| !self.filtered.borrow().contains(&r.prefix))
            .map(|(r, path)| ReceivedRoute {
                peer: "127.0.0.9".parse().unwrap(),
                prefix: r.prefix,
                next_hop: Some("192.0.2.25".parse().unwrap()),
                as_path: (*path).into(),
                attrs: r.attrs.clone(),
                stale: false,
            })
            .collect())
    }
}

struct FakeProbes {
    base: Instant,
    clock: Cell<Duration>,
    healthy: Cell<bool>,
    hooks: RefCell<Vec<String>>,
    /// The fake pids of the hooks started, and those `end_orphan` was asked to end.
    spawned: RefCell<Vec<u32>>,
    ended: RefCell<Vec<u32>>,
}

impl FakeProbes {
    fn new(healthy: bool) -> Self {
        Self {
            base: Instant::now(),
            clock: Cell::new(Duration::ZERO),
            healthy: Cell::new(healthy),
            hooks: RefCell::default(),
            spawned: RefCell::default(),
            ended: RefCell::default(),
        }
    }
}

impl Probes for FakeProbes {
    fn hook(
        &self,
        hook: &Hook,
        undo: bool,
        env: &[(String, String)],
        on_spawn: crate::controller::hook::OnSpawn<'_>,
    ) -> Result<(), String> {
        // Every hook reports a process, as a command does.
        let pid = 40_000 + self.spawned.borrow().len() as u32;
        on_spawn(&HookProcess {
            pid,
            pgid: pid,
            boot_id: None,
            start_ticks: None,
        })?;
        self.spawned.borrow_mut().push(pid);
        let dir = &env.iter().find(|(k, _)| k == "FERRY_DIRECTION").unwrap().1;
        self.hooks.borrow_mut().push(format!(
            "{}{} {dir}",
            if undo { "undo " } else { "" },
            hook.name
        ));
        Ok(())
    }
    fn end_orphan(&self, p: &HookProcess) -> Result<Option<String>, String> {
        self.ended.borrow_mut().push(p.pid);
        Ok(Some(format!("ended {}", p.pgid)))
    }
    fn probe(&self, _: &Probe, _: Duration, _: &[(String, String)]) -> Result<(), String> {
        self.sleep(Duration::from_millis(1));
        if self.healthy.get() {
            Ok(())
        } else {
            Err("connection refused".into())
        }
    }
    fn now(&self) -> Instant {
        self.base + self.clock.get()
    }
    fn sleep(&self, d: Duration) {
        self.clock.set(self.clock.get() + d);
    }
}

fn plan(text: &str) -> Plan {
    Plan::parse(text).unwrap()
}

/// A run in `direction` and `mode`, started by holder "test".
fn start_run<'a>(
    dir: &Path,
    plan: Plan,
    direction: Direction,
    mode: Mode,
    sites: &'a FakeSites,
    probes: &'a FakeProbes,
) -> Executor<'a> {
    Executor::start(
        dir,
        plan,
        direction,
        mode,
        Holder::me("test"),
        sites,
        probes,
        Box::new(|_| {}),
    )
    .unwrap()
}

/// A planned run in `direction`.
fn start<'a>(
    dir: &Path,
    plan: Plan,
    direction: Direction,
    sites: &'a FakeSites,
    probes: &'a FakeProbes,
) -> Executor<'a> {
    start_run(dir, plan, direction, Mode::Planned, sites, probes)
}

/// What `pick` takes from each record of the run's journal.
fn records(ex: &Executor<'_>, pick: impl Fn(&Record) -> Option<String>) -> Vec<String> {
    ex.journal
        .entries()
        .iter()
        .filter_map(|e| pick(&e.record))
        .collect()
}

/// The notes of the run's finished steps.
fn notes(ex: &Executor<'_>) -> Vec<String> {
    records(ex, |r| match r {
        Record::StepDone { note: Some(n), .. } => Some(n.clone()),
        _ => None,
    })
}

/// Why the run rolled back; panics when it ended otherwise.
fn rolled_back(end: End) -> String {
    match end {
        End::RolledBack { reason, .. } => reason,
        other => panic!("expected a rollback, got {other:?}"),
    }
}

/// A failover in `mode`.
fn start_in<'a>(
    dir: &Path,
    plan: Plan,
    mode: Mode,
    sites: &'a FakeSites,
    probes: &'a FakeProbes,
) -> Executor<'a> {
    start_run(dir, plan, Direction::Failover, mode, sites, probes)
}

fn only(sites: &FakeSites, plan: &Plan, active: &str) {
    let all: BTreeSet<_> = plan.all_prefixes().into_iter().collect();
    let other = if active == "dc1" { "dc2" } else { "dc1" };
    assert_eq!(sites.announcing(active), all, "{active} announces all");
    assert!(
        sites.announcing(other).is_empty(),
        "{other} announces nothing"
    );
}

#[test]
fn planned_failover_then_failback() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(true);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    let names: Vec<_> = ex.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "preflight",
            "hook pre",
            "drain",
            "hook stop-vm",
            "hook cutover-web",
            "health web-up",
            "withdraw web",
            "announce web",
            "verify web",
            "withdraw db",
            "announce db",
            "verify db"
        ]
    );
    assert_eq!(
        ex.drive().unwrap(),
        End::Completed {
            active: "dc2".into()
        }
    );
    only(&sites, &p, "dc2");
    assert!(
        sites.both.borrow().is_empty(),
        "break-before-make never overlaps"
    );
    // Drained routes carried GRACEFUL_SHUTDOWN before the withdraw; the plan waited 1 s.
    assert!(probes.clock.get() >= Duration::from_millis(1000));
    assert_eq!(ex.journal.phase(), Phase::Finished(Outcome::Completed));

    let mut back = start(dir.path(), p.clone(), Direction::Failback, &sites, &probes);
    assert_eq!(
        back.drive().unwrap(),
        End::Completed {
            active: "dc1".into()
        }
    );
    only(&sites, &p, "dc1");
    assert!(sites
        .announced("dc1")
        .unwrap()
        .iter()
        .all(|r| r.attrs.communities.is_empty()));
    assert_eq!(
        probes.hooks.borrow().clone(),
        [
            "pre failover",
            "stop-vm failover",
            "cutover-web failover",
            "pre failback",
            "stop-vm failback",
            "cutover-web failback"
        ]
    );
}

#[test]
fn failing_health_check_rolls_back_with_the_primary_announcing() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(false);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    match ex.drive().unwrap() {
        End::RolledBack { active, reason } => {
            assert_eq!(active, "dc1");
            assert!(
                reason.contains("health web-up") && reason.contains("connection refused"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    only(&sites, &p, "dc1");
    // No GRACEFUL_SHUTDOWN left behind by the drain; the VM stop was undone.
    assert!(sites
        .announced("dc1")
        .unwrap()
        .iter()
        .all(|r| r.attrs.communities.is_empty()));
    assert!(probes
        .hooks
        .borrow()
        .contains(&"undo stop-vm failover".to_string()));
}

#[test]
fn stop_for_the_operator_then_resume_or_abort() {
    let text = PLAN.replace(
        "order = \"break-before-make\"",
        "order = \"break-before-make\"\non_failure = \"stop\"",
    );
    for abort in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(&text);
        let sites = FakeSites::new(&p);
        let probes = FakeProbes::new(false);
        let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
        assert!(matches!(ex.drive().unwrap(), End::Stopped { .. }));
        let path = ex.journal.path().to_owned();
        drop(ex);
        probes.healthy.set(true);
        let mut ex = Executor::open(&path, &sites, &probes, Box::new(|_| {})).unwrap();
        if abort {
            assert!(matches!(
                ex.abort(Holder::me("t")).unwrap(),
                End::RolledBack { .. }
            ));
            only(&sites, &p, "dc1");
            // The step that failed is compensated too (it may have half happened).
            let failed = ex
                .steps
                .iter()
                .position(|s| s.name == "health web-up")
                .unwrap();
            assert!(ex
                .journal
                .entries()
                .iter()
                .any(|e| matches!(e.record, Record::CompensateStarted { step } if step == failed)));
        } else {
            assert!(matches!(
                ex.resume(Holder::me("t")).unwrap(),
                End::Completed { .. }
            ));
            only(&sites, &p, "dc2");
        }
    }
}

#[test]
fn make_before_break_overlaps_only_inside_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(&PLAN.replace("break-before-make", "make-before-break"));
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(true);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    let names: Vec<_> = ex.steps.iter().map(|s| s.name.clone()).collect();
    assert!(
        names.iter().position(|n| n == "announce web")
            < names.iter().position(|n| n == "withdraw web")
    );
    ex.drive().unwrap();
    only(&sites, &p, "dc2");
    assert_eq!(
        sites.both.borrow().len(),
        3,
        "each prefix overlapped in its window"
    );
}

#[test]
fn unplanned_failover_skips_the_unreachable_primary() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let sites = FakeSites::new(&p);
    sites.down.borrow_mut().insert("dc1".into());
    let probes = FakeProbes::new(true);
    let mut ex = start_in(dir.path(), p.clone(), Mode::Unplanned, &sites, &probes);
    assert!(!ex
        .steps
        .iter()
        .any(|s| s.name == "drain" || s.name == "hook stop-vm"));
    assert_eq!(
        ex.drive().unwrap(),
        End::Completed {
            active: "dc2".into()
        }
    );
    let notes = notes(&ex);
    assert!(
        notes.iter().any(|n| n.contains("skipped (unplanned)")),
        "{notes:?}"
    );
}

#[test]
fn a_run_started_in_the_millisecond_of_another_takes_the_next_free_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(true);
    // The ids of the next 200 ms are taken (as by runs that started and ended in them).
    let runs = runs_dir(dir.path());
    std::fs::create_dir_all(&runs).unwrap();
    let now = crate::controller::journal::now_ms();
    for ms in now..now + 200 {
        std::fs::write(runs.join(format!("{ms}-web-failover.jsonl")), "taken\n").unwrap();
    }
    let ex = start_in(dir.path(), p.clone(), Mode::Planned, &sites, &probes);
    let ms: u64 = ex.run_id.split('-').next().unwrap().parse().unwrap();
    assert!(ms >= now + 200, "{}", ex.run_id);
    let taken = std::fs::read_to_string(runs.join(format!("{now}-web-failover.jsonl"))).unwrap();
    assert_eq!(taken, "taken\n");
}

#[test]
fn a_held_announce_waits_while_the_steps_before_it_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let sites = FakeSites::new(&p);
    sites.down.borrow_mut().insert("dc1".into());
    let probes = FakeProbes::new(true);
    let started: RefCell<Vec<(String, Duration)>> = RefCell::default();
    let ex = Executor::start(
        dir.path(),
        p.clone(),
        Direction::Failover,
        Mode::Unplanned,
        Holder::me("test"),
        &sites,
        &probes,
        Box::new(|pr| {
            if let Progress::Started { name, .. } = pr {
                started.borrow_mut().push((name, probes.clock.get()));
            }
        }),
    )
    .unwrap();
    let until = probes.now() + Duration::from_secs(5);
    let mut ex = ex.hold_announce_until(until, "dc1's leases".into());
    assert_eq!(
        ex.drive().unwrap(),
        End::Completed {
            active: "dc2".into()
        }
    );
    drop(ex);
    let started = started.into_inner();
    let at = |name: &str| {
        started
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("no step {name}: {started:?}"))
    };
    // The preflight and the withdraw at the cut-off primary ran before the hold ended; every
    // announce after it.
    assert!(at("preflight") < Duration::from_secs(5), "{started:?}");
    assert!(at("withdraw web") < Duration::from_secs(5), "{started:?}");
    for (name, t) in &started {
        if name.starts_with("announce") {
            assert!(*t >= Duration::from_secs(5), "{name} at {t:?}: {started:?}");
        }
    }
    assert!(
        started.iter().any(|(n, _)| n == "announce db"),
        "{started:?}"
    );
}

#[test]
fn unplanned_failover_fails_when_the_primary_answers_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let sites = FakeSites::new(&p);
    sites.refuses_withdraw.borrow_mut().insert("dc1".into());
    let probes = FakeProbes::new(true);
    let mut ex = start_in(dir.path(), p.clone(), Mode::Unplanned, &sites, &probes);
    let end = ex.drive().unwrap();
    assert!(!matches!(end, End::Completed { .. }), "{end:?}");
    let failed = records(&ex, |r| match r {
        Record::StepFailed { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(
        failed
            .iter()
            .any(|e| e.contains("withdraw") && e.contains("bearer token")),
        "{failed:?}"
    );
    // The primary is up and still announcing: the recovery site must not announce too.
    assert!(
        sites.announcing("dc2").is_empty(),
        "{:?}",
        sites.announcing("dc2")
    );
    assert!(sites.both.borrow().is_empty());
}

#[test]
fn unplanned_failover_passes_a_primary_that_never_answers_only_when_leases_fence_it() {
    for leased in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let text = if leased {
            PLAN.replace(
                "next_hop = \"192.0.2.10\"",
                "next_hop = \"192.0.2.10\"\nlease_secs = 30",
            )
        } else {
            PLAN.to_owned()
        };
        let p = plan(&text);
        assert_eq!(p.primary().lease_secs.is_some(), leased);
        let sites = FakeSites::new(&p);
        sites.hangs_on_withdraw.borrow_mut().insert("dc1".into());
        let probes = FakeProbes::new(true);
        let mut ex = start_in(dir.path(), p.clone(), Mode::Unplanned, &sites, &probes);
        let end = ex.drive().unwrap();
        if leased {
            assert_eq!(
                end,
                End::Completed {
                    active: "dc2".into()
                }
            );
            let notes = notes(&ex);
            assert!(
                notes
                    .iter()
                    .any(|n| n.contains("skipped (unplanned)") && n.contains("leases (30 s)")),
                "{notes:?}"
            );
        } else {
            assert!(!matches!(end, End::Completed { .. }), "{end:?}");
            assert!(sites.announcing("dc2").is_empty());
        }
    }
}

/// Records of an uninterrupted run of `text` with the given health.
fn full_run_len(text: &str, healthy: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(text);
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(healthy);
    let mut ex = start(dir.path(), p, Direction::Failover, &sites, &probes);
    ex.drive().unwrap();
    ex.journal.entries().len() as u64
}

/// Crash at `crash`, then resume in a new executor: the end state is consistent.
fn crash_and_resume(text: &str, healthy: bool, crash: Crash) {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(text);
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(healthy);
    let path = match crash {
        Crash::Before(0) => {
            let runs = runs_dir(dir.path());
            std::fs::create_dir_all(&runs).unwrap();
            let path = runs.join("r.jsonl");
            Journal::create(&path).unwrap();
            path
        }
        _ => {
            let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
            ex.journal.crash = Some(crash);
            if crash != Crash::After(0) {
                let e = ex.drive().unwrap_err();
                assert!(
                    matches!(e, ExecError::Journal(JournalError::Crashed(_))),
                    "{crash:?}: {e}"
                );
            }
            ex.journal.path().to_owned()
        }
    };
    let ctx = format!("{crash:?} healthy={healthy}");
    let opened = Executor::open(&path, &sites, &probes, Box::new(|_| {}));
    match opened {
        Err(ExecError::Invalid(e)) => {
            assert!(e.contains("no run was started"), "{ctx}: {e}");
            only(&sites, &p, "dc1");
        }
        Err(e) => panic!("{ctx}: {e}"),
        Ok(mut ex) => {
            let end = match ex.journal.phase() {
                // The crash came after the last record: nothing left to do.
                Phase::Finished(_) => ex.drive().unwrap(),
                _ => ex.resume(Holder::me("resume")).unwrap(),
            };
            let active = match (&end, healthy) {
                (End::Completed { active }, true) => active,
                (End::RolledBack { active, .. }, false) => active,
                _ => panic!("{ctx}: {end:?}"),
            };
            only(&sites, &p, active);
            assert!(matches!(ex.journal.phase(), Phase::Finished(_)), "{ctx}");
            if p.order == crate::controller::plan::Order::BreakBeforeMake {
                assert!(sites.both.borrow().is_empty(), "{ctx}: both announced");
            }
            assert!(
                sites
                    .announced(active)
                    .unwrap()
                    .iter()
                    .all(|r| r.attrs.communities.is_empty()),
                "{ctx}: drained routes left behind"
            );
            // The journal on disk replays to the same end.
            let (_, phase, _, _) = crate::controller::journal::replay(&path).unwrap();
            assert_eq!(phase, ex.journal.phase(), "{ctx}");
        }
    }
}

#[test]
fn a_crash_after_every_journal_record_then_resume_is_consistent() {
    for healthy in [true, false] {
        let n = full_run_len(PLAN, healthy);
        assert!(n > 20, "{n}");
        for k in 0..n {
            crash_and_resume(PLAN, healthy, Crash::After(k));
            crash_and_resume(PLAN, healthy, Crash::Before(k));
        }
    }
}

#[test]
fn a_crash_after_every_record_of_a_make_before_break_run_healthy_or_not() {
    let mbb = PLAN.replace("break-before-make", "make-before-break");
    for healthy in [true, false] {
        for k in 0..full_run_len(&mbb, healthy) {
            crash_and_resume(&mbb, healthy, Crash::After(k));
            crash_and_resume(&mbb, healthy, Crash::Before(k));
        }
    }
}

/// The seq of the first record of an uninterrupted healthy failover of `p` that `is` picks.
fn seq_in_a_full_run(p: &Plan, is: impl Fn(&[Step], &Record) -> bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let sites = FakeSites::new(p);
    let probes = FakeProbes::new(true);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    ex.drive().unwrap();
    let seq = ex
        .journal
        .entries()
        .iter()
        .position(|e| is(&ex.steps, &e.record));
    seq.expect("no such record") as u64
}

#[test]
fn abort_of_a_crashed_run_rolls_back_every_started_step() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let seq = seq_in_a_full_run(
        &p,
        |_, r| matches!(r, Record::StepStarted { name, .. } if name == "announce web"),
    );
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(true);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    // Crash just after "announce web" is on record as started (web already withdrawn at dc1).
    ex.journal.crash = Some(Crash::After(seq));
    assert!(ex.drive().is_err());
    let path = ex.journal.path().to_owned();
    drop(ex);
    let mut ex = Executor::open(&path, &sites, &probes, Box::new(|_| {})).unwrap();
    assert!(matches!(
        ex.abort(Holder::me("t")).unwrap(),
        End::RolledBack { .. }
    ));
    only(&sites, &p, "dc1");
    let e = ex.resume(Holder::me("t")).unwrap_err().to_string();
    assert!(e.contains("already finished"), "{e}");
}

#[test]
fn a_route_the_routers_filter_fails_the_preflight_and_nothing_moves() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let sites = FakeSites::new(&p);
    sites
        .filtered
        .borrow_mut()
        .insert("203.0.113.128/25".parse().unwrap());
    let probes = FakeProbes::new(true);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    let reason = rolled_back(ex.drive().unwrap());
    assert!(
        reason.contains("preflight") && reason.contains("does not see 203.0.113.128/25"),
        "{reason}"
    );
    only(&sites, &p, "dc1");
    assert!(probes.hooks.borrow().is_empty(), "no hook ran");
}

#[test]
fn resume_ends_the_hook_the_dead_controller_left_before_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(PLAN);
    let seq = seq_in_a_full_run(
        &p,
        |steps, r| matches!(r, Record::HookSpawned { step, .. } if steps[*step].name == "hook cutover-web"),
    );
    let sites = FakeSites::new(&p);
    let probes = FakeProbes::new(true);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    // Crash just after the cutover hook's process is on record (the hook runs on, orphaned).
    ex.journal.crash = Some(Crash::After(seq));
    assert!(ex.drive().is_err());
    let rec = &ex.journal.entries()[seq as usize].record;
    let Record::HookSpawned {
        step,
        undo,
        process,
    } = rec
    else {
        panic!("{rec:?}");
    };
    assert!(!undo);
    assert_eq!(ex.steps[*step].name, "hook cutover-web");
    let orphan = process.pid;
    let path = ex.journal.path().to_owned();
    drop(ex);
    assert!(probes.ended.borrow().is_empty());
    let notes = RefCell::new(Vec::new());
    let mut ex = Executor::open(
        &path,
        &sites,
        &probes,
        Box::new(|p| {
            if let Progress::Note(n) = p {
                notes.borrow_mut().push(n)
            }
        }),
    )
    .unwrap();
    let hooks_before = probes.spawned.borrow().len();
    assert!(matches!(
        ex.resume(Holder::me("t")).unwrap(),
        End::Completed { .. }
    ));
    // Only the open step's hook, once, and before the step ran again.
    assert_eq!(*probes.ended.borrow(), [orphan]);
    assert!(probes.spawned.borrow().len() > hooks_before);
    drop(ex);
    assert_eq!(*notes.borrow(), [format!("ended {orphan}")]);
}

mod drills;
