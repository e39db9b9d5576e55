//! examples/plan/lab.toml, for real: the example plan of the FRR lab, run by `ferry failover`
//! and `ferry failback` in a lab of this test's own (the example's instance name `lab`
//! replaced by this test's, and `ferry` by the binary under test; nothing else changed).
//!
//! Proves that the plan a user is told to try passes `plan check` against the lab's live
//! speakers, moves the subnet to the recovery site (the plan's own verification waits for the
//! third site's router to route it there, and this test reads that route itself), and moves
//! it back. Skipped when not root or FRR is missing, unless FIT_REQUIRE=1.

mod support;

use std::path::Path;
use std::process::Command;

use support::lab::LabUp;
use support::{ferry_cli, CliOut, FERRY};

fn ferry(args: &[&str]) -> CliOut {
    ferry_cli(args, None)
}

/// The third site's route to the subnet: its `via` address.
fn third_site_via(instance: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", &format!("fl-{instance}-r3"), "-4", "route", "show"])
        .arg("198.51.100.0/24")
        .output()
        .expect("ip route");
    let route = String::from_utf8_lossy(&out.stdout).into_owned();
    route
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .unwrap_or("none")
        .to_owned()
}

#[test]
fn the_lab_example_plan_fails_over_and_back() {
    if !testkit::root::lab_can_run() {
        return;
    }
    let lab = LabUp::new("ex");
    let instance = lab.instance.clone();
    let dir = &lab.dir;

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plan/lab.toml");
    let mut plan = std::fs::read_to_string(example).unwrap();
    for (from, to) in [
        (
            "/run/ferry-lab/lab/".to_owned(),
            format!("/run/ferry-lab/{instance}/"),
        ),
        ("fl-lab-".to_owned(), format!("fl-{instance}-")),
        ("setsid ferry ".to_owned(), format!("setsid {FERRY} ")),
    ] {
        assert!(plan.contains(&from), "the example no longer has {from:?}");
        plan = plan.replace(&from, &to);
    }
    let plan_path = dir.path().join("lab.toml");
    std::fs::write(&plan_path, plan).unwrap();
    let plan_arg = plan_path.to_str().unwrap();
    let state = lab.state();
    let state_arg = state.as_str();

    lab.up(&[]);
    // r3 reaches the subnet through r1 (primary, 192.0.2.1) or r2 (recovery, 192.0.2.5).
    assert_eq!(third_site_via(&instance), "192.0.2.1");

    let out = ferry(&["plan", "check", plan_arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ready for failover"), "{out:?}");

    let run = |cmd: &str| ferry(&[cmd, "--yes", "--plan", plan_arg, "--state-dir", state_arg]);
    let out = run("failover");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(third_site_via(&instance), "192.0.2.5", "{out:?}");

    let out = run("failback");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(third_site_via(&instance), "192.0.2.1", "{out:?}");
}
