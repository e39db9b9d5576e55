//! Test failovers (`Mode::Test`) and host moves against the fake sites: where the routes go,
//! which hooks run, what a crash and resume of a test run does, and what refuses a new run
//! while a test is not cleaned up.

use super::*;
use crate::controller::runs;

/// PLAN with a test site (peered only with the test network: the fake observer never sees
/// it), a test cutover hook with an undo and a test health check.
fn drill_plan() -> String {
    PLAN.replace(
        "[[site]]\nname = \"obs\"",
        "[[site]]\nname = \"lab\"\napi = \"/x/lab.sock\"\nnext_hop = \"192.0.2.30\"\norigin_as = 65104\n[[site]]\nname = \"obs\"",
    )
    .replace("recovery = \"dc2\"", "recovery = \"dc2\"\ntest_site = \"lab\"")
        + r#"[[hook]]
name = "clone-vms"
stage = "cutover"
test = true
command = ["clone"]
undo = ["drop-clones"]
[[hook]]
name = "tell-team"
stage = "post-check"
test = true
command = ["mail"]
[[health_check]]
name = "clone-up"
test = true
command = ["check"]
"#
}

fn test_run<'a>(
    dir: &Path,
    p: &Plan,
    direction: Direction,
    sites: &'a FakeSites,
    probes: &'a FakeProbes,
) -> Executor<'a> {
    start_run(dir, p.clone(), direction, Mode::Test, sites, probes)
}

/// A state directory, the plan of `text`, fake sites for it and healthy fake probes.
fn fixture(text: &str) -> (tempfile::TempDir, Plan, FakeSites, FakeProbes) {
    let p = plan(text);
    let sites = FakeSites::new(&p);
    (
        tempfile::tempdir().unwrap(),
        p,
        sites,
        FakeProbes::new(true),
    )
}

/// How a run ends that completed with `active` as the active site.
fn completed(active: &str) -> End {
    End::Completed {
        active: active.into(),
    }
}

fn all(p: &Plan) -> BTreeSet<IpNet> {
    p.all_prefixes().into_iter().collect()
}

#[test]
fn a_test_failover_announces_at_the_test_site_only_and_cleanup_ends_it() {
    let (dir, p, sites, probes) = fixture(&drill_plan());
    let mut ex = test_run(dir.path(), &p, Direction::Failover, &sites, &probes);
    assert!(ex.run_id.ends_with("-web-test+failover"), "{}", ex.run_id);
    let names: Vec<_> = ex.steps.iter().map(|s| s.name.as_str()).collect();
    // No drain, no stop-primary, no withdrawal; only the test hooks and checks.
    assert_eq!(
        names,
        [
            "preflight",
            "hook clone-vms",
            "health clone-up",
            "announce web",
            "verify web",
            "announce db",
            "verify db",
            "hook tell-team"
        ]
    );
    // A test moves nothing in production: the primary stays the active site.
    assert_eq!(ex.drive().unwrap(), completed("dc1"));
    assert_eq!(
        sites.announcing("dc1"),
        all(&p),
        "the primary keeps announcing"
    );
    assert_eq!(sites.announcing("lab"), all(&p));
    assert!(
        sites.announcing("dc2").is_empty(),
        "production recovery untouched"
    );
    assert_eq!(
        probes.hooks.borrow().clone(),
        ["clone-vms failover", "tell-team failover"]
    );
    let summary = runs::list(dir.path()).unwrap().runs.pop().unwrap();
    assert_eq!(
        (summary.kind(), summary.mode),
        ("test failover", Mode::Test)
    );
    assert_eq!(
        runs::test_not_cleaned(&[summary], "web"),
        Some(ex.run_id.clone())
    );

    let mut clean = test_run(dir.path(), &p, Direction::Failback, &sites, &probes);
    let names: Vec<_> = clean.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["withdraw web", "withdraw db", "undo hook clone-vms"]
    );
    assert_eq!(clean.drive().unwrap(), completed("dc1"));
    assert!(sites.announcing("lab").is_empty());
    assert_eq!(sites.announcing("dc1"), all(&p));
    assert_eq!(
        probes.hooks.borrow().last().map(String::as_str),
        Some("undo clone-vms failback")
    );
    let listed = runs::list(dir.path()).unwrap().runs;
    assert_eq!(listed.last().unwrap().kind(), "cleanup-test");
    assert_eq!(runs::test_not_cleaned(&listed, "web"), None);
}

#[test]
fn a_real_run_never_runs_test_hooks_and_a_plan_without_test_site_refuses_a_test() {
    let (dir, p, sites, probes) = fixture(&drill_plan());
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    ex.drive().unwrap();
    assert!(probes.hooks.borrow().iter().all(|h| !h.contains("clone")));
    assert!(sites.announcing("lab").is_empty());

    let none = plan(PLAN);
    let e = Executor::start(
        dir.path(),
        none,
        Direction::Failover,
        Mode::Test,
        Holder::me("t"),
        &sites,
        &probes,
        Box::new(|_| {}),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("has no test_site"), "{e}");
}

/// A test run that crashes after any journal record and is resumed finishes as a test run:
/// the recovery site never announces, the primary never stops.
#[test]
fn a_crashed_test_run_resumes_as_a_test_run_never_a_real_one() {
    let text = drill_plan();
    let full = {
        let (dir, p, sites, probes) = fixture(&text);
        let mut ex = test_run(dir.path(), &p, Direction::Failover, &sites, &probes);
        ex.drive().unwrap();
        ex.journal.entries().len() as u64
    };
    for healthy in [true, false] {
        for k in 1..full {
            for crash in [Crash::After(k), Crash::Before(k)] {
                let dir = tempfile::tempdir().unwrap();
                let p = plan(&text);
                let sites = FakeSites::new(&p);
                let probes = FakeProbes::new(healthy);
                let mut ex = test_run(dir.path(), &p, Direction::Failover, &sites, &probes);
                ex.journal.crash = Some(crash);
                let _ = ex.drive();
                let path = ex.journal.path().to_owned();
                drop(ex);
                let mut ex = Executor::open(&path, &sites, &probes, Box::new(|_| {})).unwrap();
                assert_eq!(ex.mode, Mode::Test, "{crash:?}");
                let end = match ex.journal.phase() {
                    Phase::Finished(_) => ex.drive().unwrap(),
                    _ => ex.resume(Holder::me("resume")).unwrap(),
                };
                let ctx = format!("{crash:?} healthy={healthy}: {end:?}");
                assert!(
                    matches!(&end, End::Completed { active } | End::RolledBack { active, .. } if active == "dc1"),
                    "{ctx}"
                );
                assert!(sites.announcing("dc2").is_empty(), "{ctx}");
                assert_eq!(sites.announcing("dc1"), all(&p), "{ctx}");
                let expect_lab = if healthy { all(&p) } else { BTreeSet::new() };
                assert_eq!(sites.announcing("lab"), expect_lab, "{ctx}");
                assert!(
                    probes.hooks.borrow().iter().all(|h| !h.contains("stop-vm")),
                    "{ctx}"
                );
            }
        }
    }
}

/// A test run's journal cannot be taken over as a real run: not under a real run's file name,
/// and not with its first record altered to say a real run.
#[test]
fn an_interrupted_test_runs_journal_is_never_resumed_as_a_real_run() {
    let (dir, p, sites, probes) = fixture(&drill_plan());
    let mut ex = test_run(dir.path(), &p, Direction::Failover, &sites, &probes);
    ex.journal.crash = Some(Crash::After(2));
    let _ = ex.drive();
    let path = ex.journal.path().to_owned();
    drop(ex);
    let text = std::fs::read_to_string(&path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with("-test+failover.jsonl"), "{name}");

    // Under a real run's name.
    let renamed = path.with_file_name(name.replace("-test+failover", "-failover"));
    std::fs::write(&renamed, &text).unwrap();
    let e = Executor::open(&renamed, &sites, &probes, Box::new(|_| {}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("file name says a real failover, its first record a test failover"),
        "{e}"
    );
    std::fs::remove_file(&renamed).unwrap();

    // Its first record saying a real (planned) run, the rest unchanged.
    let first = text.lines().next().unwrap();
    assert!(first.contains("\"mode\":\"test\""), "{first}");
    let altered = text.replacen("\"mode\":\"test\"", "\"mode\":\"planned\"", 1);
    std::fs::write(&path, altered).unwrap();
    let e = Executor::open(&path, &sites, &probes, Box::new(|_| {}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("file name says a test failover, its first record a real failover"),
        "{e}"
    );
    assert!(sites.announcing("dc2").is_empty());

    // Unaltered, it resumes as what it is.
    std::fs::write(&path, &text).unwrap();
    let mut ex = Executor::open(&path, &sites, &probes, Box::new(|_| {})).unwrap();
    assert_eq!(ex.mode, Mode::Test);
    ex.resume(Holder::me("resume")).unwrap();
    assert!(sites.announcing("dc2").is_empty());
    assert_eq!(sites.announcing("lab"), all(&p));
}

#[test]
fn a_failed_cleanup_does_not_announce_the_test_routes_again() {
    let (dir, p, sites, probes) = fixture(&drill_plan());
    test_run(dir.path(), &p, Direction::Failover, &sites, &probes)
        .drive()
        .unwrap();
    // The test site refuses: the cleanup fails, and its rollback announces nothing again.
    sites.refuses_withdraw.borrow_mut().insert("lab".into());
    let mut clean = test_run(dir.path(), &p, Direction::Failback, &sites, &probes);
    assert!(matches!(clean.drive().unwrap(), End::RolledBack { .. }));
    assert_eq!(sites.announcing("lab"), all(&p));
    sites.refuses_withdraw.borrow_mut().clear();
    let mut again = test_run(dir.path(), &p, Direction::Failback, &sites, &probes);
    assert!(matches!(again.drive().unwrap(), End::Completed { .. }));
    assert!(sites.announcing("lab").is_empty());
}

/// web moves whole; group vm moves one VM by host route out of 198.51.100.128/25, which the
/// primary announces outside the plan and keeps.
fn host_plan() -> String {
    PLAN.replace(
        "subnets = [\"198.51.100.0/24\"]",
        "subnets = [\"198.51.100.0/25\"]\n[[group]]\nname = \"vm\"\nhosts = [\"198.51.100.200/32\"]",
    )
}

fn covering(sites: &FakeSites, p: &Plan) {
    let net: IpNet = "198.51.100.128/25".parse().unwrap();
    sites
        .rib
        .borrow_mut()
        .get_mut("dc1")
        .unwrap()
        .insert(net, p.primary().route(net).unwrap());
}

#[test]
fn a_host_move_announces_the_host_route_at_recovery_and_failback_withdraws_it() {
    let (dir, p, sites, probes) = fixture(&host_plan());
    covering(&sites, &p);
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    assert!(matches!(ex.drive().unwrap(), End::Completed { .. }));
    let host: IpNet = "198.51.100.200/32".parse().unwrap();
    let cover: IpNet = "198.51.100.128/25".parse().unwrap();
    assert!(sites.announcing("dc2").contains(&host));
    assert!(
        sites.announcing("dc1").contains(&cover),
        "the primary keeps the subnet"
    );
    assert!(!sites.announcing("dc1").contains(&host));
    assert!(notes(&ex)
        .iter()
        .any(|n| n.contains("group vm moves host routes only; dc1 keeps the covering subnet")));

    let mut back = start(dir.path(), p.clone(), Direction::Failback, &sites, &probes);
    assert!(matches!(back.drive().unwrap(), End::Completed { .. }));
    assert!(sites.announcing("dc2").is_empty());
    assert_eq!(
        sites.announcing("dc1"),
        [
            "198.51.100.0/25",
            "198.51.100.128/25",
            "203.0.113.0/25",
            "203.0.113.128/25"
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
    );
}

#[test]
fn a_host_without_a_covering_subnet_at_the_primary_fails_the_preflight() {
    let (dir, p, sites, probes) = fixture(&host_plan());
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    let reason = rolled_back(ex.drive().unwrap());
    assert!(
        reason
            .contains("host 198.51.100.200/32: site dc1 (primary) announces no subnet covering it"),
        "{reason}"
    );
    assert!(sites.announcing("dc2").is_empty());
}

/// A router that filters the /32 on its way to the observer: the move's verification fails
/// and the run rolls back to the primary.
#[test]
fn a_filtered_host_route_fails_verification_and_rolls_back() {
    let (dir, p, sites, probes) = fixture(&host_plan());
    covering(&sites, &p);
    sites
        .filtered
        .borrow_mut()
        .insert("198.51.100.200/32".parse().unwrap());
    let mut ex = start(dir.path(), p.clone(), Direction::Failover, &sites, &probes);
    let reason = rolled_back(ex.drive().unwrap());
    assert!(
        reason.contains("verify vm") && reason.contains("no path for 198.51.100.200/32 from dc2"),
        "{reason}"
    );
    assert!(sites.announcing("dc2").is_empty());
}

#[test]
fn no_new_run_but_cleanup_while_a_test_failover_is_not_cleaned_up() {
    let (dir, p, sites, probes) = fixture(&drill_plan());
    test_run(dir.path(), &p, Direction::Failover, &sites, &probes)
        .drive()
        .unwrap();
    let me = Holder::me("t");
    let e = crate::controller::claim::new_run(dir.path(), "web", &me, false)
        .err()
        .unwrap();
    assert!(
        e.error.contains("test failover") && e.error.contains("cleanup-test"),
        "{}",
        e.error
    );
    let claim = crate::controller::claim::new_run(dir.path(), "web", &me, true).unwrap();
    drop(claim);
    test_run(dir.path(), &p, Direction::Failback, &sites, &probes)
        .drive()
        .unwrap();
    assert!(crate::controller::claim::new_run(dir.path(), "web", &me, false).is_ok());
}

/// `plan check`'s host probe: announced at the primary for the check, seen (or not) by the
/// observer, withdrawn either way.
#[test]
fn the_host_probe_finds_a_router_that_filters_host_routes_and_leaves_nothing_behind() {
    let p = plan(&host_plan());
    let host: IpNet = "198.51.100.200/32".parse().unwrap();
    for filtered in [false, true] {
        let sites = FakeSites::new(&p);
        covering(&sites, &p);
        if filtered {
            sites.filtered.borrow_mut().insert(host);
        }
        let probes = FakeProbes::new(true);
        let cx = Ctx {
            plan: &p,
            direction: Direction::Failover,
            mode: Mode::Planned,
            sites: &sites,
            probes: &probes,
            dns: &crate::controller::dns::SystemDns,
            spawned: &|_| Ok(()),
        };
        let r = step::host_probe(&cx);
        match (filtered, r) {
            (false, Ok(Some(n))) => assert!(n.contains("sees 1 host routes"), "{n}"),
            (true, Err(e)) => assert!(
                e.contains("does not see host route 198.51.100.200/32") && e.contains("le 32"),
                "{e}"
            ),
            (f, r) => panic!("filtered={f}: {r:?}"),
        }
        assert!(!sites.announcing("dc1").contains(&host), "withdrawn after");
        assert!(sites.announcing("dc2").is_empty());
    }
}
