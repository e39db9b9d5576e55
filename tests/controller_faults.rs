//! The controller's state directory under faults, with the real `ferry` binary and no speakers
//! (the plan's sites are sockets that do not exist, so a run fails its preflight and rolls
//! back: enough to create a journal and take the plan's lock).
//!
//! Proves: the state directory, `runs/` and `locks/` are created 0700 and the journal and the
//! lock file 0600 even under umask 022; a looser existing directory or journal is tightened
//! and a warning names it with its old mode; a journal with a seq written twice is still shown
//! by `failover status` and `history` (its legal part, with a warning naming the line), while
//! `abort` and a new run refuse it and name `ferry failover repair`, which closes the run with
//! the site the operator names and keeps the damaged file; another plan's journal that cannot be read does not stop a
//! run of this plan.
//! A controller run as a normal user warns about a loose root-owned journal it cannot tighten
//! and runs anyway.
//! Failures injected: a 0755 state directory with a 0644 journal; a duplicated journal line;
//! a journal that is not JSON; a 0644 journal owned by root under a controller run as nobody.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

const PLAN: &str = r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"

[[site]]
name = "dc1"
api = "/nonexistent/ferry-faults-dc1.sock"
next_hop = "192.0.2.10"

[[site]]
name = "dc2"
api = "/nonexistent/ferry-faults-dc2.sock"
next_hop = "192.0.2.20"

[[group]]
name = "web"
subnets = ["198.51.100.0/24"]
"#;

/// `ferry ARGS --state-dir STATE` under umask 022 (what a shell usually has).
fn ferry(state: &Path, args: &[&str]) -> CliOut {
    let out = Command::new("sh")
        .args(["-c", "umask 022; exec \"$@\"", "sh", FERRY])
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    CliOut {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A failover of the plan in `dir` (fails its preflight and rolls back).
fn failover(dir: &Path) -> CliOut {
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let out = ferry(
        &dir.join("state"),
        &["failover", "--yes", "--plan", plan.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("rolled back"), "{out:?}");
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn journals(state: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn state_runs_and_locks_are_private_and_loose_ones_are_tightened_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = failover(dir.path());
    assert!(!out.stderr.contains("warning"), "{out:?}");
    for d in ["", "runs", "locks"] {
        assert_eq!(mode(&state.join(d)), 0o700, "{d:?}");
    }
    let journal = journals(&state).pop().unwrap();
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&state.join("locks/web.lock")), 0o600);

    // A state directory an older ferry (or someone) left open to others.
    for d in ["", "runs"] {
        std::fs::set_permissions(state.join(d), PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&journal, PermissionsExt::from_mode(0o644)).unwrap();
    let out = failover(dir.path());
    for (what, old) in [
        (state.display().to_string(), "0755"),
        (format!("{}", state.join("runs").display()), "0755"),
        (journal.display().to_string(), "0644"),
    ] {
        assert!(
            out.stderr
                .contains(&format!("warning: {what} was mode {old}")),
            "{what}: {}",
            out.stderr
        );
    }
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("runs")), 0o700);
    for j in journals(&state) {
        assert_eq!(mode(&j), 0o600, "{}", j.display());
    }
}

/// A failover of the plan in `dir` whose journal then gets its second line again (what two
/// controllers that both took over a run left behind: a second record with seq 1). Returns
/// the journal and its damaged text.
fn damaged_run(dir: &Path) -> (PathBuf, String) {
    failover(dir);
    let journal = journals(&dir.join("state")).pop().unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    let line2 = text.lines().nth(1).unwrap();
    let damaged = format!("{text}{line2}\n");
    std::fs::write(&journal, &damaged).unwrap();
    (journal, damaged)
}

#[test]
fn a_journal_with_a_seq_written_twice_is_still_shown_with_a_warning_and_refused_for_abort() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (_, damaged) = damaged_run(dir.path());
    let lines = damaged.lines().count() - 1;

    let out = ferry(&state, &["failover", "status"]);
    assert_eq!(out.code, 1, "{out:?}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap_or_else(|| panic!("no row for plan web: {out:?}"));
    assert!(row.contains("damaged journal"), "{row}");
    assert!(
        out.stderr
            .contains(&format!("line {}: seq 1 where {lines} was due", lines + 1))
            && out.stderr.contains("where it was rolled back"),
        "{}",
        out.stderr
    );
    let out = ferry(&state, &["failover", "status", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert!(v[0]["damaged"].as_str().unwrap().contains("seq 1"), "{v:?}");
    let out = ferry(&state, &["failover", "history"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("web"), "{out:?}");

    let out = ferry(&state, &["failover", "abort"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("damaged journal"), "{out:?}");
    let plan = dir.path().join("plan.toml");
    let out = ferry(
        &state,
        &["failover", "--yes", "--plan", plan.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("damaged run journal"), "{out:?}");
    assert_eq!(journals(&state).len(), 1, "no new run started");
}

#[test]
fn another_plans_unreadable_journal_does_not_stop_a_run_of_this_plan() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("runs")).unwrap();
    std::fs::write(state.join("runs/1-db-failover.jsonl"), "not json\n").unwrap();
    failover(dir.path());
    assert_eq!(journals(&state).len(), 2);
    let out = ferry(&state, &["failover", "status", "--plan-name", "web"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Without a plan name, the bad file is named.
    let out = ferry(&state, &["failover", "status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("1-db-failover.jsonl") && out.stdout.contains("rolled back"),
        "{out:?}"
    );
}

/// The way out of a damaged journal is a command, never moving files by hand: `status`,
/// `abort` and a new run name `ferry failover repair` (a new run also prints the damage), and
/// `repair --active SITE` keeps the damaged file as `.damaged`, writes a fresh journal that
/// ends with the site the operator named, and lets the plan run again.
#[test]
fn a_damaged_journal_is_closed_by_repair_and_every_message_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (journal, damaged) = damaged_run(dir.path());
    let command = "ferry failover repair --plan-name web --active SITE";
    let plan = dir.path().join("plan.toml");
    let plan = plan.to_str().unwrap();

    for args in [
        &["failover", "status"][..],
        &["failover", "abort"],
        &["failover", "resume"],
        &["failover", "--yes", "--plan", plan],
    ] {
        let out = ferry(&state, args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(command) && !out.stderr.contains("out of runs/"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("seq 1 where"),
            "{args:?}: {}",
            out.stderr
        );
    }

    let repair = |site: &str| {
        ferry(
            &state,
            &["failover", "repair", "--plan-name", "web", "--active", site],
        )
    };
    let out = repair("dc9");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--active dc9"), "{out:?}");

    let out = repair("dc1");
    assert_eq!(out.code, 0, "{out:?}");
    let evidence = PathBuf::from(format!("{}.damaged", journal.display()));
    assert!(
        out.stdout.contains(&evidence.display().to_string()) && out.stdout.contains("dc1"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&evidence).unwrap(), damaged);
    assert_eq!(mode(&journal), 0o600);

    let out = ferry(&state, &["failover", "status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["active"], "dc1", "{v:?}");
    assert!(
        v[0]["state"].as_str().unwrap().contains("repaired"),
        "{v:?}"
    );

    let out = repair("dc1");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to repair"), "{out:?}");
    // The plan runs again (and, with no speakers, rolls back).
    failover(dir.path());
}

/// A controller run as a normal user whose `runs/` holds a loose journal root created (someone
/// ran `ferry failover` as root once): it cannot tighten that file (EPERM, not its owner), so
/// it warns naming the file, its mode and its owner, and runs the plan anyway. Needs root (to
/// create the root-owned file and to run `ferry` as nobody); skipped otherwise, unless
/// FIT_REQUIRE=1.
#[test]
fn a_loose_journal_of_another_owner_is_named_in_a_warning_and_the_run_goes_on() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        if std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1") {
            panic!("needs root (FIT_REQUIRE=1)");
        }
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    failover(dir.path()); // as root: its journal is root's
    let journal = journals(&state).pop().unwrap();
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();
    let nobody = 65534;
    for d in [&state, &state.join("runs"), &state.join("locks")] {
        std::os::unix::fs::chown(d, Some(nobody), Some(nobody)).unwrap();
    }
    for e in std::fs::read_dir(state.join("locks")).unwrap() {
        std::os::unix::fs::chown(e.unwrap().path(), Some(nobody), Some(nobody)).unwrap();
    }
    let plan = dir.path().join("plan.toml");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", FERRY])
        .args(["failover", "--yes", "--plan"])
        .arg(&plan)
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (code, stdout, stderr) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("rolled back"),
        "the run went on: {stdout}\n{stderr}"
    );
    let name = journal.display().to_string();
    assert!(
        stderr.contains(&format!("{name} is mode 0644"))
            && stderr.contains("owned by uid 0")
            && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert_eq!(mode(&journal), 0o644, "left as it was");
    assert_eq!(journals(&state).len(), 2, "the new run has its journal");
}
