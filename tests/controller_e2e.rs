//! `ferry failover` end to end with real `ferry speaker`s on loopback, each peering with a raw
//! BGP peer that stands for the site's edge router.
//!
//! Proves: a planned failover moves the subnet from the primary speaker to the recovery speaker
//! (each speaker's /v1/routes, and the UPDATEs each raw peer receives: a withdraw at the
//! primary's, an announcement with the recovery's next hop at the recovery's) and `ferry
//! failback` moves it back; a failing health check (`false`) rolls back with the primary still
//! announcing and nothing sent to either peer; a second controller on the same plan is refused
//! with the first one's pid; `kill -9` of the controller inside a hook (a `sleep`) leaves an
//! interrupted run that `ferry failover resume` completes (a dead holder holds no lock, and the
//! hook it left running does not either); while a controller runs, `abort` and `resume` are
//! refused naming it and `status` says "running (pid N)"; two controllers racing for a dead
//! holder's lock file (`FERRY_TEST_LOCK_DELAY_MS` widens the race): exactly one runs;
//! an observer speaker (iBGP with both sites) verifies the move by its received routes, and
//! its loss rolls the move back; a drain re-announces with GRACEFUL_SHUTDOWN and waits, and
//! make-before-break announces at the recovery before withdrawing at the primary; a plan that
//! says `on_failure = "stop"` stops, refuses a new run, and `abort` rolls back (exit 0);
//! usage errors and bad plans exit 2 naming key and line, a dry run changes nothing, on a
//! terminal (`script`) it asks and "n" changes nothing; a hook dies with a `kill -9`ed
//! controller and `resume` ends its background work before running it again; with the
//! primary speaker dead a planned failover fails its preflight and `--unplanned` completes; a
//! primary that answers and refuses (wrong token) fails an unplanned run, and one that never
//! answers (a hung socket) fails it unless leases fence it; the
//! controller's overhead for one subnet with instant hooks, and ten subnets in one group
//! against one, are measured and bounded.
//! The fencing keeper renews the active site's lease while another plan's journal in the same
//! state directory cannot be read, and the site withdraws once the keeper is killed.
//! Failures injected: a health-check command that fails, SIGKILL of the controller process,
//! SIGKILL of the observer speaker and of the primary speaker.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry::wire::iana::attr;
use ferry::wire::AttributeValue;
use ipnet::Ipv4Net;
use support::*;
use testkit::signal::{alive, signal};

const NH1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NH2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

struct Site {
    speaker: Speaker,
    peer: RawPeer,
}

struct Setup {
    dc1: Site,
    dc2: Site,
    dir: tempfile::TempDir,
    subnets: Vec<String>,
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// Two sites, the primary announcing `subnets` (seen by its peer), a plan with `extra` TOML.
fn setup(ips: [u8; 2], subnets: &[String], extra: &str) -> Setup {
    setup_observed(ips, subnets, extra, None)
}

/// The source address of site `last`'s session to the observer.
fn source(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 32, last)
}

/// An observer speaker (iBGP, passive) that both sites' speakers connect to.
fn observer(ips: [u8; 2], last: u8) -> Speaker {
    let ip = Ipv4Addr::new(127, 0, 31, last);
    let neighbors = ips
        .iter()
        .map(|l| NeighborSpec {
            remote_as: LOCAL_ASN,
            ..NeighborSpec::passive(source(*l))
        })
        .collect();
    Speaker::start(SpeakerSpec {
        listen: Some((ip, free_port(ip)).into()),
        neighbors,
        router_id: Some(Ipv4Addr::new(192, 0, 2, 99)),
        ..SpeakerSpec::default()
    })
}

/// As [`setup`]; with an observer, each site's speaker also peers with it and the plan
/// verifies through its received routes, telling the sites apart by next hop (iBGP passes
/// the sites' next hops on unchanged, and both sites are in one AS).
fn setup_observed(ips: [u8; 2], subnets: &[String], extra: &str, obs: Option<&Speaker>) -> Setup {
    let site = |last: u8| {
        let mut peer = RawPeer::listen(Ipv4Addr::new(127, 0, 31, last));
        let mut neighbors = vec![NeighborSpec::active(peer.addr())];
        if let Some(o) = obs {
            neighbors.push(NeighborSpec {
                remote_as: LOCAL_ASN,
                local_address: source(last).into(),
                ..NeighborSpec::active(o.spec.listen.unwrap())
            });
        }
        let speaker = Speaker::start(SpeakerSpec::with(neighbors));
        peer.accept();
        peer.handshake();
        assert!(peer.initial_sync(2).is_empty());
        if let Some(o) = obs {
            o.wait_state(source(last).into(), "Established");
        }
        Site { speaker, peer }
    };
    let mut dc1 = site(ips[0]);
    let dc2 = site(ips[1]);
    let mut args = vec!["announce".to_string()];
    args.extend(subnets.iter().cloned());
    args.extend(["--next-hop".into(), NH1.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dc1.speaker.cli_ok(&args);
    let mut seen = Vec::new();
    while seen.len() < subnets.len() {
        seen.extend(dc1.peer.next_update().update().unwrap().nlri.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_text(
        extra,
        &dc1.speaker.api().display().to_string(),
        &dc2.speaker.api().display().to_string(),
        subnets,
    );
    let plan = match obs {
        Some(o) => format!(
            "{plan}\n[[site]]\nname = \"obs\"\napi = \"{}\"\n\n[verify]\nobserver = \"obs\"\nmatch_next_hop = true\ntimeout_ms = 2000\ninterval_ms = 5\n",
            o.api().display()
        ),
        None => plan,
    };
    std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
    Setup {
        dc1,
        dc2,
        dir,
        subnets: subnets.to_vec(),
    }
}

/// Plan "web": dc1 (primary, next hop NH1) and dc2 at the APIs given, one group of `subnets`,
/// `extra` at the top level.
fn plan_text(extra: &str, dc1_api: &str, dc2_api: &str, subnets: &[String]) -> String {
    let list: Vec<String> = subnets.iter().map(|s| format!("{s:?}")).collect();
    format!(
        r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"
{extra}
[[site]]
name = "dc1"
api = "{dc1_api}"
next_hop = "{NH1}"

[[site]]
name = "dc2"
api = "{dc2_api}"
next_hop = "{NH2}"

[[group]]
name = "web"
subnets = [{}]
"#,
        list.join(", ")
    )
}

impl Setup {
    /// `ferry failover` of the plan, in the background, its output discarded.
    fn spawn_failover(&self) -> std::process::Child {
        Command::new(FERRY)
            .args(["failover", "--yes", "--plan"])
            .arg(self.plan())
            .arg("--state-dir")
            .arg(self.state())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn plan(&self) -> PathBuf {
        self.dir.path().join("plan.toml")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn ferry(&self, args: &[&str]) -> CliOut {
        let plan = self.plan();
        let state = self.state();
        let mut all: Vec<&str> = args.to_vec();
        let sub = ["status", "resume", "abort", "history", "check", "keep"];
        if matches!(args.first(), Some(&"failover" | &"failback"))
            && !args.get(1).is_some_and(|a| sub.contains(a))
        {
            all.extend(["--plan", plan.to_str().unwrap(), "--yes"]);
        }
        all.extend(["--state-dir", state.to_str().unwrap()]);
        ferry_cli(&all, None)
    }

    /// The prefixes a speaker announces, per its /v1/routes.
    fn routes(site: &Site) -> Vec<String> {
        let out = site.speaker.cli_ok(&["routes", "--json"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
        let mut p: Vec<String> = v
            .iter()
            .map(|r| r["prefix"].as_str().unwrap().to_owned())
            .collect();
        p.sort();
        p
    }

    fn assert_active(&self, active: &Site, idle: &Site) {
        let mut want = self.subnets.clone();
        want.sort();
        assert_eq!(Self::routes(active), want);
        assert!(Self::routes(idle).is_empty());
    }
}

/// The peer's next UPDATEs until every subnet was withdrawn.
fn expect_withdrawn(peer: &mut RawPeer, subnets: &[String]) {
    let mut gone = Vec::new();
    while gone.len() < subnets.len() {
        let u = peer.next_update().update().unwrap().clone();
        assert!(u.nlri.is_empty(), "{u:?}");
        gone.extend(u.withdrawn);
    }
    gone.sort();
    let mut want: Vec<Ipv4Net> = subnets.iter().map(|s| net(s)).collect();
    want.sort();
    assert_eq!(gone, want);
}

/// The peer's next UPDATEs until every subnet was announced with next hop `nh`.
fn expect_announced(peer: &mut RawPeer, subnets: &[String], nh: Ipv4Addr) {
    let mut got = Vec::new();
    while got.len() < subnets.len() {
        let u = peer.next_update().update().unwrap().clone();
        assert_eq!(
            u.attribute(attr::NEXT_HOP),
            Some(&AttributeValue::NextHop(nh))
        );
        got.extend(u.nlri);
    }
    assert_eq!(got.len(), subnets.len());
}

fn one() -> Vec<String> {
    vec!["198.51.100.0/24".to_string()]
}

const CHECKS: &str = r#"
[[hook]]
name = "cutover"
stage = "cutover"
command = ["true"]

[[health_check]]
name = "vm-up"
command = ["true"]
interval_ms = 50
timeout_ms = 2000
"#;

#[test]
fn planned_failover_and_failback_move_the_subnet() {
    let mut s = setup([1, 2], &one(), CHECKS);
    let out = ferry_cli(&["plan", "check", s.plan().to_str().unwrap()], None);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ready for failover"), "{out:?}");
    // Each site's role, sessions and how many of the plan's subnets it announces.
    let row = |site: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(site))
            .unwrap_or_else(|| panic!("no {site} row: {out:?}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("dc1")[1], "primary");
    assert_eq!(row("dc1")[3..], ["1/1", "Established", "1/1"]);
    assert_eq!(row("dc2")[3..], ["1/1", "Established", "0/1"]);
    let out = ferry_cli(
        &["plan", "check", "--json", s.plan().to_str().unwrap()],
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(
        (v["speakers"].as_str(), v["subnets"].as_u64()),
        (Some("ready"), Some(1)),
        "{v}"
    );

    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("failover completed"), "{out:?}");
    assert!(out.stdout.contains("health vm-up ... ok"), "{out:?}");
    s.assert_active(&s.dc2, &s.dc1);
    expect_withdrawn(&mut s.dc1.peer, &one());
    expect_announced(&mut s.dc2.peer, &one(), NH2);

    let out = ferry_cli(&["plan", "check", s.plan().to_str().unwrap()], None);
    assert_eq!(
        out.code, 1,
        "after the move the primary no longer announces: {out:?}"
    );

    // The failback as a program reads it: JSON lines only on stdout.
    let out = s.ferry(&["failback", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let events = json_lines(&out.stdout);
    assert_eq!(events[0]["event"], "plan", "{out:?}");
    assert_eq!(
        (events[0]["from"].as_str(), events[0]["to"].as_str()),
        (Some("dc2"), Some("dc1"))
    );
    let steps = events[0]["steps"].as_array().unwrap().len();
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .collect();
    assert_eq!(finished.len(), steps, "{out:?}");
    assert!(finished.iter().all(|e| e["ok"] == true), "{out:?}");
    let end = events.last().unwrap();
    assert_eq!(
        (
            end["event"].as_str(),
            end["outcome"].as_str(),
            end["active"].as_str()
        ),
        (Some("end"), Some("completed"), Some("dc1")),
        "{out:?}"
    );
    assert_eq!(end["run"]["direction"], "failback", "{end}");
    s.assert_active(&s.dc1, &s.dc2);
    expect_withdrawn(&mut s.dc2.peer, &one());
    expect_announced(&mut s.dc1.peer, &one(), NH1);

    let out = s.ferry(&["failover", "history"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.matches("completed").count(), 2, "{out:?}");
    let out = s.ferry(&["failover", "status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("failback") && out.stdout.contains("dc1"),
        "{out:?}"
    );
    let out = s.ferry(&["failover", "history", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs.len(), 2, "{out:?}");
    assert_eq!(runs[0]["direction"], "failover");
    assert_eq!(runs[0]["active"], "dc2");
    assert_eq!(runs[1]["active"], "dc1");
    assert!(runs[0]["by"]["pid"].as_u64().is_some());
    let names: Vec<&str> = runs[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "preflight",
            "hook cutover",
            "health vm-up",
            "withdraw web",
            "announce web"
        ]
    );
}

#[test]
fn failing_health_check_rolls_back_with_the_primary_announcing() {
    let failing = CHECKS
        .replace(
            "command = [\"true\"]\ninterval_ms",
            "command = [\"false\"]\ninterval_ms",
        )
        .replace("timeout_ms = 2000", "timeout_ms = 300");
    let mut s = setup([3, 4], &one(), &failing);
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("rolled back") && out.stdout.contains("health vm-up"),
        "{out:?}"
    );
    s.assert_active(&s.dc1, &s.dc2);
    s.dc1.peer.expect_quiet(Duration::from_millis(300));
    s.dc2.peer.expect_quiet(Duration::from_millis(10));

    // Again with --json: the failed step, the rollback and the outcome as JSON lines.
    let out = s.ferry(&["failover", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let events = json_lines(&out.stdout);
    assert!(
        events.iter().any(|e| e["event"] == "step_finished"
            && e["ok"] == false
            && e["name"].as_str().is_some_and(|n| n.contains("vm-up"))),
        "{out:?}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "rolling_back"),
        "{out:?}"
    );
    let end = events.last().unwrap();
    assert_eq!(
        (
            end["outcome"].as_str(),
            end["active"].as_str(),
            end["exit_code"].as_i64()
        ),
        (Some("rolled_back"), Some("dc1"), Some(1)),
        "{out:?}"
    );
    s.assert_active(&s.dc1, &s.dc2);
}

/// `--json` output: every stdout line one JSON object.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn journal_has(state: &Path, what: &str) -> bool {
    let runs = state.join("runs");
    std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(what)))
}

#[test]
fn kill_9_of_the_controller_mid_run_then_resume_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("slept");
    let pidfile = dir.path().join("hook.pid");
    // The first run of the hook sleeps (the controller is killed then); a rerun passes at once.
    let hook = format!(
        r#"
[[hook]]
name = "cutover"
stage = "cutover"
command = ["sh", "-c", "echo $$ > {}; test -e {} && exit 0; touch {}; exec sleep 30"]
"#,
        pidfile.display(),
        mark.display(),
        mark.display()
    );
    let mut s = setup([5, 6], &one(), &hook);
    let state = s.state();
    let mut child = s.spawn_failover();
    let deadline = Instant::now() + WAIT;
    while !(journal_has(&state, "\"name\":\"hook cutover\"") && mark.exists()) {
        assert!(Instant::now() < deadline, "the hook never started");
        thread::sleep(Duration::from_millis(10));
    }
    // A second controller on the same plan is refused, naming the first; so are abort and
    // resume of the run it is executing, and the journal is left alone.
    let running = format!("pid {}", child.id());
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&running) && out.stderr.contains("failover web"),
        "{out:?}"
    );
    for cmd in ["abort", "resume"] {
        let out = s.ferry(&["failover", cmd]);
        assert_eq!(out.code, 1, "{cmd}: {out:?}");
        assert!(out.stderr.contains(&running), "{cmd}: {out:?}");
    }
    assert!(!journal_has(&state, "rollback_started"));
    assert!(!journal_has(&state, "resumed"));
    let out = s.ferry(&["failover", "status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!("running ({running})")),
        "{out:?}"
    );

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = s.ferry(&["failover", "status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("interrupted"), "{out:?}");
    s.assert_active(&s.dc1, &s.dc2);

    // The hook the dead controller started is still running: it must not hold the plan.
    let hook_pid = std::fs::read_to_string(&pidfile).unwrap();
    let out = s.ferry(&["failover", "resume"]);
    if let Ok(pid) = hook_pid.trim().parse() {
        signal(pid, "KILL");
    }
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stdout.contains("took over") && !out.stderr.contains("took over"),
        "a dead holder holds nothing, there is nothing to take over: {out:?}"
    );
    s.assert_active(&s.dc2, &s.dc1);
    expect_withdrawn(&mut s.dc1.peer, &one());
    expect_announced(&mut s.dc2.peer, &one(), NH2);
    let out = s.ferry(&["failover", "resume"]);
    assert!(out.stdout.contains("nothing to resume"), "{out:?}");
}

/// Issue 15 item 5. Failure injected: SIGKILL of the controller while its cutover hook runs,
/// the hook having put the cutover's work in the background (a grandchild of the
/// controller). Proves: the hook's own process dies with the controller (PDEATHSIG);
/// `resume` ends the grandchild, which the death signal does not reach, before it runs the
/// hook again; the two copies never overlap (the hook appends "start PID" and "end PID").
#[test]
fn a_killed_controllers_hook_dies_with_it_and_resume_never_runs_two_copies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let mark = dir.path().join("first-run-done");
    let script = dir.path().join("cutover.sh");
    // The first run leaves its work (3 s) to a background subshell and waits for it; a
    // rerun does its work (0.5 s) itself.
    std::fs::write(
        &script,
        format!(
            r#"LOG={log}
echo "start $$" >> "$LOG"
if [ -e {mark} ]; then sleep 0.5; echo "end $$" >> "$LOG"; exit 0; fi
touch {mark}
( sleep 3; echo "end $$" >> "$LOG" ) &
echo "sub $!" >> "$LOG"
wait
"#,
            log = log.display(),
            mark = mark.display()
        ),
    )
    .unwrap();
    let hook = format!(
        "\n[[hook]]\nname = \"cutover\"\nstage = \"cutover\"\ncommand = [\"sh\", \"{}\"]\n",
        script.display()
    );
    let s = setup([40, 41], &one(), &hook);
    let state = s.state();
    let mut child = s.spawn_failover();
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let deadline = Instant::now() + WAIT;
    while !lines().iter().any(|l| l.starts_with("sub ")) {
        assert!(Instant::now() < deadline, "the hook never started");
        thread::sleep(Duration::from_millis(10));
    }
    let first = lines();
    let pid_of = |l: &str| -> u32 { l.split_whitespace().nth(1).unwrap().parse().unwrap() };
    let (hook_pid, sub_pid) = (pid_of(&first[0]), pid_of(&first[1]));
    assert!(
        journal_has(&state, "\"record\":\"hook_spawned\""),
        "the hook's process is journaled"
    );
    assert!(journal_has(&state, &format!("\"pgid\":{hook_pid}")));

    child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    child.wait().unwrap();
    while alive(hook_pid) {
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "the hook outlived its controller by 2 s"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let died_ms = killed.elapsed().as_millis();

    let out = s.ferry(&["failover", "resume"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("ended process group {hook_pid}")),
        "{out:?}"
    );
    assert!(!alive(sub_pid), "the grandchild survived resume");
    s.assert_active(&s.dc2, &s.dc1);
    // Past the time the orphan would have finished its work.
    thread::sleep(
        Duration::from_secs(3).saturating_sub(killed.elapsed()) + Duration::from_millis(500),
    );
    let all = lines();
    assert_eq!(all.len(), 4, "{all:?}");
    let second = pid_of(&all[2]);
    assert_ne!(second, hook_pid);
    assert_eq!(
        all[2..],
        [format!("start {second}"), format!("end {second}")],
        "the orphan never finished beside the rerun: {all:?}"
    );
    let ended = out
        .stdout
        .lines()
        .find(|l| l.contains("ended process group"));
    eprintln!(
        "hook died {died_ms} ms after its controller; resume: {}",
        ended.unwrap_or_default()
    );
}

/// The run's own time (first to last journal record) in ms, from `history`.
fn run_ms(s: &Setup) -> u64 {
    let out = s.ferry(&["failover", "history"]);
    let line = out.stdout.lines().last().unwrap().to_owned();
    line.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn controller_overhead_one_subnet_and_ten_in_one_group() {
    let ten: Vec<String> = (0..10)
        .map(|i| format!("198.51.100.{}/28", i * 16))
        .collect();
    let mut figures = Vec::new();
    for (ips, subnets) in [([7, 8], one()), ([9, 10], ten)] {
        let mut best = (u64::MAX, Duration::MAX);
        let mut s = setup(ips, &subnets, CHECKS);
        for round in 0..3 {
            let which = if round % 2 == 0 {
                "failover"
            } else {
                "failback"
            };
            let t = Instant::now();
            let out = s.ferry(&[which]);
            let wall = t.elapsed();
            assert_eq!(out.code, 0, "{out:?}");
            best = (best.0.min(run_ms(&s)), best.1.min(wall));
            if std::env::var("SHOW_RUNS").is_ok() {
                let h = s.ferry(&["failover", "history"]);
                let id = h
                    .stdout
                    .lines()
                    .last()
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned();
                eprintln!(
                    "wall {wall:?}\n{}",
                    s.ferry(&["failover", "history", "--run", &id]).stdout
                );
            }
            let (from, to) = if round % 2 == 0 {
                (&mut s.dc1, &mut s.dc2)
            } else {
                (&mut s.dc2, &mut s.dc1)
            };
            expect_withdrawn(&mut from.peer, &subnets);
            expect_announced(
                &mut to.peer,
                &subnets,
                if round % 2 == 0 { NH2 } else { NH1 },
            );
        }
        figures.push((subnets.len(), best));
    }
    let (one_run, one_wall) = figures[0].1;
    let (ten_run, ten_wall) = figures[1].1;
    eprintln!(
        "controller overhead (best of 3, no waits in the plan): 1 subnet {one_run} ms in the run, {} ms wall; 10 subnets {ten_run} ms in the run, {} ms wall; ratio {:.2} (wall {:.2})",
        one_wall.as_millis(),
        ten_wall.as_millis(),
        ten_run.max(1) as f64 / one_run.max(1) as f64,
        ten_wall.as_secs_f64() / one_wall.as_secs_f64()
    );
    assert!(one_wall < Duration::from_secs(1), "{one_wall:?}");
    assert!(
        ten_wall.as_secs_f64() <= 1.5 * one_wall.as_secs_f64() + 0.05,
        "{ten_wall:?} vs {one_wall:?}"
    );
}

#[test]
fn an_observer_speaker_verifies_the_move_and_its_loss_rolls_back() {
    let mut obs = observer([11, 12], 13);
    let s = setup_observed([11, 12], &one(), CHECKS, Some(&obs));
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("verify web ... ok"), "{out:?}");
    s.assert_active(&s.dc2, &s.dc1);
    // What the observer holds now: the subnet from dc2's session, with dc2's next hop.
    let got = obs.cli_ok(&["routes", "--received", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["peer"], source(12).to_string());
    assert_eq!(v[0]["next_hop"], NH2.to_string());

    let out = s.ferry(&["failback"]);
    assert_eq!(out.code, 0, "{out:?}");
    s.assert_active(&s.dc1, &s.dc2);

    // Without match_next_hop nothing tells the sites apart: refused; the same origin AS at
    // both is allowed with a warning.
    let text = std::fs::read_to_string(s.plan()).unwrap();
    let other = s.dir.path().join("other.toml");
    std::fs::write(&other, text.replace("match_next_hop = true\n", "")).unwrap();
    let out = ferry_cli(
        &["plan", "check", "--offline", other.to_str().unwrap()],
        None,
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("site \"dc1\" gives it nothing to recognise its routes by"),
        "{out:?}"
    );
    let same_as = text
        .replace("match_next_hop = true\n", "")
        .replace("api = ", "origin_as = 65000\napi = ");
    std::fs::write(&other, same_as).unwrap();
    let out = ferry_cli(
        &["plan", "check", "--offline", other.to_str().unwrap()],
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(
            "warning: verify: observer obs cannot tell dc1 (origin AS 65000) from dc2 (origin AS 65000)"
        ),
        "{out:?}"
    );

    // Without the observer nothing can be verified: the move is rolled back.
    obs.kill9();
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("rolled back") && out.stdout.contains("verify web"),
        "{out:?}"
    );
    s.assert_active(&s.dc1, &s.dc2);
}

#[test]
fn usage_errors_exit_2_and_a_dry_run_changes_nothing() {
    let mut s = setup([14, 15], &one(), CHECKS);
    let plan = s.plan();
    let state = s.state();
    let (plan, state) = (plan.to_str().unwrap(), state.to_str().unwrap());
    let out = ferry_cli(&["failover", "--yes", "--state-dir", state], None);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--plan"), "{out:?}");
    // stdin is not a terminal and there is no --yes: refuse rather than guess.
    let out = ferry_cli(&["failover", "--plan", plan, "--state-dir", state], None);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--yes"), "{out:?}");
    // On a terminal it asks; anything but y leaves everything as it was.
    if Path::new("/usr/bin/script").exists() {
        let shown = format!("{FERRY} failover --plan {plan} --state-dir {state}");
        let mut child = Command::new("script")
            .args(["-qec", &shown, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"n\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("proceed with the failover? [y/N]") && text.contains("not confirmed"),
            "{text}"
        );
        assert!(!s.state().join("runs").exists());
    }
    let out = ferry_cli(
        &[
            "failover",
            "--plan",
            plan,
            "--dry-run",
            "--state-dir",
            state,
        ],
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("5. announce web") && out.stdout.contains("preflight passed"),
        "{out:?}"
    );
    s.assert_active(&s.dc1, &s.dc2);
    s.dc1.peer.expect_quiet(Duration::from_millis(100));
    assert!(
        !s.state().join("runs").exists(),
        "a dry run writes no journal"
    );

    let bad = s.dir.path().join("bad.toml");
    let text = std::fs::read_to_string(s.plan()).unwrap();
    std::fs::write(&bad, text.replace("order =", "ordre =")).unwrap();
    for args in [
        vec!["plan", "check", bad.to_str().unwrap()],
        vec![
            "failover",
            "--yes",
            "--plan",
            bad.to_str().unwrap(),
            "--state-dir",
            state,
        ],
    ] {
        let out = ferry_cli(&args, None);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains("ordre") && out.stderr.contains("line 4"),
            "{out:?}"
        );
        assert!(out.stderr.contains("did you mean `order`?"), "{out:?}");
    }
}

#[test]
fn drain_with_graceful_shutdown_then_make_before_break() {
    let extra = format!("overlap_ms = 50\n[drain]\nwait_ms = 100\n{CHECKS}");
    let mut s = setup([16, 17], &one(), &extra);
    let text = std::fs::read_to_string(s.plan()).unwrap();
    std::fs::write(
        s.plan(),
        text.replace("break-before-make", "make-before-break"),
    )
    .unwrap();
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("drain ... ok") && out.stdout.contains("waited 100 ms"),
        "{out:?}"
    );
    // The primary's peer first sees the subnet again with GRACEFUL_SHUTDOWN (RFC 8326) ...
    let drained = s.dc1.peer.next_update();
    let u = drained.update().unwrap();
    assert_eq!(u.nlri, [net("198.51.100.0/24")]);
    assert!(
        u.communities()
            .contains(&ferry::wire::Community::GRACEFUL_SHUTDOWN),
        "{u:?}"
    );
    // ... the recovery announces, and only then (make-before-break) the primary withdraws.
    let announced = s.dc2.peer.next_update();
    assert_eq!(announced.update().unwrap().nlri, [net("198.51.100.0/24")]);
    let withdrawn = s.dc1.peer.next_update();
    assert_eq!(
        withdrawn.update().unwrap().withdrawn,
        [net("198.51.100.0/24")]
    );
    assert!(drained.at + Duration::from_millis(100) <= announced.at);
    assert!(announced.at + Duration::from_millis(50) <= withdrawn.at);
    s.assert_active(&s.dc2, &s.dc1);
}

#[test]
fn stop_for_the_operator_then_abort_rolls_back() {
    let failing = CHECKS
        .replace(
            "command = [\"true\"]\ninterval_ms",
            "command = [\"false\"]\ninterval_ms",
        )
        .replace("timeout_ms = 2000", "timeout_ms = 200");
    let s = setup(
        [18, 19],
        &one(),
        &format!("on_failure = \"stop\"\n{failing}"),
    );
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("stopped for the operator"), "{out:?}");
    let out = s.ferry(&["failover", "status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("stopped"), "{out:?}");
    // A new run of the plan is refused while this one is unfinished.
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("unfinished"), "{out:?}");
    let out = s.ferry(&["failover", "abort"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("rolled back"), "{out:?}");
    s.assert_active(&s.dc1, &s.dc2);
    let out = s.ferry(&["failover", "history"]);
    assert!(out.stdout.contains("rolled back"), "{out:?}");
}

#[test]
fn unplanned_failover_with_the_primary_speaker_dead() {
    let mut s = setup([20, 21], &one(), CHECKS);
    s.dc1.speaker.kill9();
    // Planned, the dead primary fails the preflight and nothing changes.
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("cannot reach the speaker"), "{out:?}");
    // The fix it names is the plan's, not options `ferry failover` does not have.
    assert!(
        out.stdout.contains("`api` of the plan's [[site]] \"dc1\"")
            && !out.stdout.contains("--api"),
        "{out:?}"
    );
    assert!(Setup::routes(&s.dc2).is_empty());
    let t = Instant::now();
    let out = s.ferry(&["failover", "--unplanned"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("skipped (unplanned)"), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(Setup::routes(&s.dc2), one());
    expect_announced(&mut s.dc2.peer, &one(), NH2);
    let out = s.ferry(&["failover", "status"]);
    assert!(out.stdout.contains("may announce again"), "{out:?}");
    // It does: the primary speaker comes back with its persisted routes. The controller
    // refuses to move anything while both sites announce.
    s.dc1.speaker.spawn();
    s.dc1.peer.accept();
    s.dc1.peer.handshake();
    assert_eq!(Setup::routes(&s.dc1), one());
    let out = s.ferry(&["failback"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("dc1 already announces"), "{out:?}");
}

/// An unplanned run skips a losing site only when it does not answer: a primary that answers
/// and refuses (here a wrong bearer token on its TCP API) fails the run and nothing moves.
#[test]
fn unplanned_failover_fails_when_the_primary_answers_and_refuses() {
    let ip = Ipv4Addr::new(127, 0, 31, 42);
    let addr = std::net::SocketAddr::new(ip.into(), free_port(ip));
    let dc1 = Speaker::start(SpeakerSpec {
        api_tcp: Some((addr, "the-primarys-own-token".into())),
        ..SpeakerSpec::default()
    });
    let dc2 = Speaker::start(SpeakerSpec::default());
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-token");
    write_private(&wrong, "not-the-primarys-token\n");
    let plan = dir.path().join("plan.toml");
    let dc1_api = format!("http://{addr}");
    let text = plan_text(
        "",
        &dc1_api,
        &dc2.api().display().to_string(),
        &["198.51.100.0/24".to_string()],
    )
    .replace(
        &format!("api = \"{dc1_api}\""),
        &format!(
            "api = \"{dc1_api}\"\napi_token_file = \"{}\"",
            wrong.display()
        ),
    );
    std::fs::write(&plan, text).unwrap();
    let state = dir.path().join("state");
    let out = ferry_cli(
        &[
            "failover",
            "--unplanned",
            "--yes",
            "--plan",
            plan.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.code, 1, "{out:?}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("bearer token"), "{out:?}");
    assert!(!said.contains("skipped (unplanned)"), "{out:?}");
    assert!(dc2.cli_ok(&["routes", "--json"]).stdout.trim() == "[]");
    drop(dc1);
}

/// A primary whose API takes the request and never answers (a socket nobody serves: a hung
/// speaker) may still have its BGP sessions up: an unplanned run fails on it unless leases
/// fence it, and then passes it over saying so.
#[test]
fn unplanned_failover_passes_a_hung_primary_only_when_its_leases_fence_it() {
    let s = setup([28, 29], &one(), "");
    let hung = s.dir.path().join("hung.sock");
    let _hung = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    let text = std::fs::read_to_string(s.plan()).unwrap().replace(
        &s.dc1.speaker.api().display().to_string(),
        hung.to_str().unwrap(),
    );
    std::fs::write(s.plan(), text).unwrap();
    let out = s.ferry(&["failover", "--unplanned"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("did not answer within 3 s"), "{out:?}");
    assert!(Setup::routes(&s.dc2).is_empty());

    lease_plan(&s, 30);
    let out = s.ferry(&["failover", "--unplanned"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("skipped (unplanned)") && out.stdout.contains("leases (30 s)"),
        "{out:?}"
    );
    assert_eq!(Setup::routes(&s.dc2), one());
}

/// The plan's sites in leased mode (`lease_secs` in both [[site]] tables).
fn lease_plan(s: &Setup, secs: u32) {
    let text = std::fs::read_to_string(s.plan()).unwrap();
    let text = text
        .replace(
            &format!("next_hop = \"{NH1}\""),
            &format!("next_hop = \"{NH1}\"\nlease_secs = {secs}"),
        )
        .replace(
            &format!("next_hop = \"{NH2}\""),
            &format!("next_hop = \"{NH2}\"\nlease_secs = {secs}"),
        );
    std::fs::write(s.plan(), text).unwrap();
}

#[test]
fn keeper_renews_the_active_sites_lease_and_fences_it_when_it_stops() {
    let mut s = setup([24, 25], &one(), CHECKS);
    // Without leases there is nothing to keep: a usage error that names the key.
    let out = s.ferry(&[
        "failover",
        "keep",
        "--once",
        "--plan",
        s.plan().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("lease_secs"), "{}", out.stderr);

    lease_plan(&s, 2);
    let out = s.ferry(&["failover"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Another plan's journal that cannot be read costs this plan's leases nothing.
    std::fs::write(
        s.state().join("runs/1-db-failover.jsonl"),
        "{\"seq\":0,\"at_ms\":1,\"record\":\"step_started\"}\n",
    )
    .unwrap();
    expect_announced(&mut s.dc2.peer, &s.subnets, NH2);
    expect_withdrawn(&mut s.dc1.peer, &s.subnets);
    let plan = s.plan();
    let state = s.state();
    let mut keeper = Command::new(FERRY)
        .args(["failover", "keep", "--plan"])
        .arg(&plan)
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Three lease periods: the recovery site still announces, because the keeper renews it
    // (the lease is 2 s; without renewals it would be gone after 2).
    thread::sleep(Duration::from_secs(6));
    let alive = keeper.try_wait().unwrap().is_none();
    let routes = Setup::routes(&s.dc2);
    keeper.kill().unwrap();
    let killed = Instant::now();
    let out = keeper.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(alive, "the keeper exited: {log}");
    assert_eq!(routes, s.subnets, "the lease was not renewed: {log}");
    assert!(log.contains("renewing leases every 666 ms at dc2"), "{log}");
    // The keeper is gone: the recovery's speaker fences itself within the lease time + 1 s.
    expect_withdrawn(&mut s.dc2.peer, &s.subnets);
    let took = killed.elapsed();
    assert!(Setup::routes(&s.dc2).is_empty());
    assert!(
        took <= Duration::from_secs(3),
        "withdrawn {took:?} after the keeper stopped, lease 2 s"
    );
    eprintln!("lease 2 s: withdrawn {took:?} after the keeper stopped");
}

/// `ferry failover` for `s` as a child process with `env` set, its output piped.
fn spawn_failover(s: &Setup, env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(FERRY);
    cmd.args(["failover", "--yes", "--plan"])
        .arg(s.plan())
        .arg("--state-dir")
        .arg(s.state())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn journals(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[test]
fn two_controllers_racing_on_a_dead_holders_lock_exactly_one_runs() {
    let hook = r#"
[[hook]]
name = "cutover"
stage = "cutover"
command = ["sleep", "0.5"]
"#;
    let s = setup([26, 27], &one(), hook);
    // A lock left by a controller that was killed: its pid is gone.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::create_dir_all(s.state().join("locks")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        s.state().join("locks/web.lock"),
        format!(
            r#"{{"pid":{dead_pid},"host":"{}","user":"root","since_ms":1,"doing":"failover web"}}"#,
            host.trim()
        ),
    )
    .unwrap();
    // The delay (debug builds only) holds each controller just after it looked at the lock,
    // so both look before either acts.
    let env = [("FERRY_TEST_LOCK_DELAY_MS", "300")];
    let a = spawn_failover(&s, &env);
    let b = spawn_failover(&s, &env);
    let (pa, pb) = (a.id(), b.id());
    let outs = [
        (pa, pb, a.wait_with_output().unwrap()),
        (pb, pa, b.wait_with_output().unwrap()),
    ];
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for (_, _, o) in &outs {
        assert!(!text(o).contains("took over"), "{}", text(o));
    }
    let winners: Vec<_> = outs.iter().filter(|(_, _, o)| o.status.success()).collect();
    assert_eq!(
        winners.len(),
        1,
        "{}\n---\n{}",
        text(&outs[0].2),
        text(&outs[1].2)
    );
    let (winner, loser, _) = winners[0];
    let (_, _, lost) = outs.iter().find(|(p, _, _)| p == loser).unwrap();
    assert_eq!(lost.status.code(), Some(1), "{}", text(lost));
    let why = String::from_utf8_lossy(&lost.stderr);
    // The delay holds the winner before it wrote its name: the kernel's pid names it.
    assert!(
        why.contains(&format!("pid {winner}")),
        "the refusal names the holder: {why}"
    );
    assert_eq!(journals(&s.state()).len(), 1, "{:?}", journals(&s.state()));
    s.assert_active(&s.dc2, &s.dc1);
    assert!(
        s.state().join("locks/web.lock").exists(),
        "the lock file is never removed"
    );
}
