//! `ferry lab` end to end, as CI runs it (root, FRR installed): the scenario suite passes and
//! prints its summary; graceful shutdown (RFC 8326) loses no probe where a plain withdraw
//! does; `up`/`down` are idempotent; a failed `up` leaves nothing behind; without root the lab
//! refuses with exit 2; `ferry lab chaos` with a short seed finds no violation, also with its
//! moves made by the failover controller, SIGKILLed mid-move or meeting a full state disk. Each test uses
//! its own instance name and takes its instance down in a Drop guard, also when an assertion
//! fails.
//! Skipped (with a message) when not root or FRR is missing, unless FIT_REQUIRE=1.

use std::path::Path;
use std::process::{Command, Output};

mod support;

use support::lab::{assert_chaos_clean, assert_faults_drawn, assert_suite_passed, Down};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(args: &[&str]) -> Output {
    Command::new(FERRY).args(args).output().expect("run ferry")
}

fn namespaces(instance: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("fl-{instance}-")))
        .map(str::to_owned)
        .collect()
}

fn instance(tag: &str) -> String {
    format!("{tag}{}", std::process::id() % 100_000)
}

/// `ferry lab ARGS --instance INST --out OUT`; asserts exit 0 and returns stdout.
fn lab_run_ok(args: &[&str], inst: &str, out: &Path) -> String {
    let mut all = vec!["lab"];
    all.extend(args);
    all.extend(["--instance", inst, "--out", out.to_str().unwrap()]);
    let o = ferry(&all);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "exit {:?}\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// Nothing of the instance is left: no namespace, no runtime directory.
fn assert_left_nothing(inst: &str) {
    assert!(namespaces(inst).is_empty(), "namespaces left behind");
    assert!(!Path::new("/run/ferry-lab").join(inst).exists());
}

/// `ferry lab chaos ARGS` ran without a violation and made at least two moves; its chaos.json.
fn chaos_ok(args: &[&str], inst: &str, out: &Path) -> serde_json::Value {
    let mut all = vec!["chaos"];
    all.extend(args);
    assert_chaos_clean(&lab_run_ok(&all, inst, out), out)
}

#[test]
fn scenario_suite_passes_and_prints_its_summary() {
    if !support::lab_can_run() {
        return;
    }
    let inst = instance("it");
    let _down = Down(inst.clone());
    let out_dir = tempfile::tempdir().unwrap();
    let stdout = lab_run_ok(&["test"], &inst, out_dir.path());
    assert_suite_passed(&stdout, out_dir.path());
    assert_left_nothing(&inst);
}

/// `ferry lab chaos --seed 1` for 40 s: speaker and bgpd SIGKILLs and link cuts between
/// failovers and failbacks (the seed draws all three in its first steps); after every step the
/// acknowledged routes are where the moves put them, the sessions and the third site's route
/// come back, the probes are answered, no process leaks. Fails on any violation, on a run that
/// injected no fault or made no move, and if the lab is left behind.
#[test]
fn chaos_with_a_short_seed_finds_no_violation() {
    if !support::lab_can_run() {
        return;
    }
    let inst = instance("ch");
    let _down = Down(inst.clone());
    let out_dir = tempfile::tempdir().unwrap();
    let rep = chaos_ok(&["--seed", "1", "--minutes", "0.67"], &inst, out_dir.path());
    assert_eq!(rep["seed"], 1);
    assert_faults_drawn(&rep, &["speaker-kill", "bgpd-kill", "link-cut"]);
    assert_left_nothing(&inst);
}

/// `ferry lab chaos --controller --seed 231` for 45 s: every move is a `ferry failover` or
/// `failback` subprocess with a plan written for the lab; seed 231 draws in its first steps a
/// `controller-kill` (SIGKILL 437 ms into a move, inside the stop hook, then resume) and a
/// `disk-full` before a move (the controller must refuse: ENOSPC on its journal), then link
/// cuts, bgpd and speaker kills and disks filled mid-move. After every step the speakers hold
/// the routes of the site the controller's journal names, the sessions, the third site's
/// route and the probes recover, no process leaks (a hook's orphan included). Fails on any
/// violation, on a run in which no fault met the controller, and if the lab (or the state
/// disk's mount) is left behind.
#[test]
fn chaos_through_the_controller_survives_its_sigkill_and_a_full_disk() {
    if !support::lab_can_run() {
        return;
    }
    let inst = instance("cc");
    let _down = Down(inst.clone());
    let out_dir = tempfile::tempdir().unwrap();
    let rep = chaos_ok(
        &["--controller", "--seed", "231", "--minutes", "0.75"],
        &inst,
        out_dir.path(),
    );
    assert!(
        rep["faults"]["controller-kill"].as_u64() >= Some(1),
        "{rep}"
    );
    assert!(rep["killed_mid_move"].as_u64() >= Some(1), "{rep}");
    assert!(rep["faults"]["disk-full"].as_u64() >= Some(1), "{rep}");
    assert!(rep["disk_full_met"].as_u64() >= Some(1), "{rep}");
    // The moves went through the controller: its journals are kept.
    let journals = std::fs::read_dir(out_dir.path().join("journals"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        })
        .count();
    assert!(
        journals as u64 >= rep["moves"].as_u64().unwrap(),
        "{journals} journals: {rep}"
    );
    assert_left_nothing(&inst);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let state = out_dir.path().join("controller");
    assert!(
        !mounts.contains(state.to_str().unwrap()),
        "state disk still mounted"
    );
}

/// RFC 8326 in the lab: `--only graceful-shutdown` takes down the site r3 uses five times with a
/// plain withdraw and five times with `graceful_secs: 1`, alternating, with both sites serving.
/// A plain withdraw (VM stopped, routes withdrawn) loses the client's probes until FRR
/// converges; the graceful one moves r3 to the other site while the old VM still answers, so
/// nothing is lost. Fails if the drain is ignored (graceful loses as much) or if the plain
/// withdraw loses nothing (no difference to show).
#[test]
fn graceful_shutdown_loses_less_than_a_plain_withdraw() {
    if !support::lab_can_run() {
        return;
    }
    let inst = instance("gs");
    let _down = Down(inst.clone());
    let out_dir = tempfile::tempdir().unwrap();
    let stdout = lab_run_ok(
        &["test", "--only", "graceful-shutdown"],
        &inst,
        out_dir.path(),
    );
    assert!(
        stdout.contains("PASS graceful-shutdown-loses-less"),
        "{stdout}"
    );
    let c: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.path().join("graceful-shutdown.json")).unwrap(),
    )
    .unwrap();
    let reps = c["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 10, "{c:#}");
    let lost = |graceful: bool| -> Vec<u64> {
        reps.iter()
            .filter(|r| r["graceful"] == graceful)
            .map(|r| r["lost_probes"].as_u64().unwrap())
            .collect()
    };
    let (plain, graceful) = (lost(false), lost(true));
    // Both modes took down both sites (A B B A).
    for mode in [false, true] {
        let sites: std::collections::BTreeSet<_> = reps
            .iter()
            .filter(|r| r["graceful"] == mode)
            .map(|r| r["site"].as_str().unwrap())
            .collect();
        assert_eq!(sites.len(), 2, "{c:#}");
    }
    assert!(
        graceful.iter().all(|&n| n == 0),
        "graceful lost {graceful:?}"
    );
    // FRR takes tens of ms to move r3 (two bgpd hops): the plain withdraw loses that much.
    assert!(plain.iter().all(|&n| n >= 10), "plain lost only {plain:?}");
    let median = |k: &str| c[k]["median"].as_f64().unwrap();
    assert!(
        median("graceful_loss_ms") < median("plain_loss_ms"),
        "{c:#}"
    );
    // r3 moved before the VM stopped when draining, after it otherwise.
    assert!(median("graceful_route_moved_ms") < 0.0, "{c:#}");
    assert!(median("plain_route_moved_ms") > 0.0, "{c:#}");
    assert_left_nothing(&inst);
}

#[test]
fn up_and_down_are_idempotent_and_leave_nothing() {
    if !support::lab_can_run() {
        return;
    }
    let inst = instance("ud");
    let _down = Down(inst.clone());
    let out = ferry(&["lab", "up", "--instance", &inst]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Again, as a program asks: stdout is one JSON object, the progress went to stderr.
    let out = ferry(&["lab", "up", "--instance", &inst, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lab up --json");
    assert!(
        up["speaker_api"]["primary"]
            .as_str()
            .is_some_and(|p| Path::new(p).exists()),
        "{up}"
    );
    assert_eq!(namespaces(&inst).len(), 8);
    let status = ferry(&["lab", "status", "--instance", &inst]);
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("via 192.0.2.1"));
    let status = ferry(&["lab", "status", "--instance", &inst, "--json"]);
    assert!(status.status.success());
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(st["complete"], true, "{st}");
    assert!(
        st["status"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains("via 192.0.2.1"))),
        "{st}"
    );
    let mut removed = Vec::new();
    for _ in 0..2 {
        let out = ferry(&["lab", "down", "--instance", &inst, "--json"]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("down --json");
        removed.push(v["removed"].as_array().unwrap().len());
    }
    assert!(removed[0] > 0 && removed[1] == 0, "{removed:?}");
    assert!(namespaces(&inst).is_empty());
    assert!(!Path::new("/run/ferry-lab").join(&inst).exists());
}

#[test]
fn failed_up_removes_what_it_created() {
    if !support::lab_can_run() {
        return;
    }
    let inst = instance("fu");
    let _down = Down(inst.clone());
    // A copy of the topology whose r3 config has a command FRR refuses.
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/topologies/three-site");
    for f in ["topology.toml", "r1/frr.conf", "r2/frr.conf", "r3/frr.conf"] {
        let to = dir.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), &to).unwrap();
    }
    let r3 = dir.path().join("r3/frr.conf");
    let text = std::fs::read_to_string(&r3).unwrap();
    std::fs::write(
        &r3,
        text.replace(" bgp log-neighbor-changes", " bgp no-such-command"),
    )
    .unwrap();
    let out = ferry(&[
        "lab",
        "up",
        "--instance",
        &inst,
        "--topology",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("r3"));
    assert!(
        namespaces(&inst).is_empty(),
        "namespaces left after a failed up"
    );
    assert!(!Path::new("/run/ferry-lab").join(&inst).exists());
}

#[test]
fn without_root_the_lab_says_so_with_exit_2() {
    if !support::lab_can_run() {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", FERRY])
        .args(["lab", "up", "--instance", "nr"])
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}
