//! `ferry failover` in the FRR lab (three sites in network namespaces, real `ferry speaker`s):
//! the plan's hooks stop and start the lab's VM responders, its verification waits for the
//! third site's kernel route via the new site, and a client in the third site probes the VM.
//!
//! Proves, in one lab instance, one after the other: `plan check` passes; a planned failover
//! of 198.51.100.0/24 and 2001:db8:100::/64 makes the client's probes answered by the recovery
//! VM and `failback` by the primary one again; a failing health check (`false`) rolls back
//! (the VM stop undone) and the primary keeps serving; `kill -9` of the controller inside a
//! hook and `ferry failover resume` complete the move; an unplanned failover with the primary
//! speaker killed completes and the recovery VM answers. Prints the controller's overhead
//! (run time minus the verification's wait for the routers).
//! Failures injected: a failing health-check command, SIGKILL of the controller, SIGKILL of
//! the primary speaker. Skipped when not root or FRR is missing, unless FIT_REQUIRE=1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let frr = Path::new("/usr/lib/frr/bgpd").exists();
    if !(root && frr) {
        if std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1") {
            panic!("cannot run the lab: needs root and FRR (FIT_REQUIRE=1)");
        }
        eprintln!("skipped: needs root and FRR (apt-get install frr)");
    }
    root && frr
}

fn ferry(args: &[&str]) -> Output {
    Command::new(FERRY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The lab instance, taken down on drop (also when an assertion fails).
struct LabUp {
    instance: String,
    dir: tempfile::TempDir,
}

impl Drop for LabUp {
    fn drop(&mut self) {
        let _ = ferry(&["lab", "down", "--instance", &self.instance]);
    }
}

impl LabUp {
    fn state(&self) -> String {
        self.dir.path().join("state").display().to_string()
    }

    /// A plan for this lab; `health` is the health-check command, `extra` more TOML.
    fn plan(&self, name: &str, health: &str, extra: &str) -> PathBuf {
        let i = &self.instance;
        let vm = |var: &str| format!("case ${var} in primary) v=vm1;; *) v=vm2;; esac;");
        let kill = |var: &str| format!("{} ip netns pids fl-{i}-$v | xargs -r kill -9", vm(var));
        let start = |var: &str| {
            format!(
                "{} ip netns exec fl-{i}-$v setsid {FERRY} lab responder --tag ${var} --port 7007 </dev/null >/dev/null 2>&1 &",
                vm(var)
            )
        };
        let text = format!(
            r#"name = "{name}"
primary = "primary"
recovery = "recovery"
order = "break-before-make"

[[site]]
name = "primary"
api = "/run/ferry-lab/{i}/sp1/ferry.sock"
next_hop = "198.51.100.10"
next_hop6 = "2001:db8:100::10"

[[site]]
name = "recovery"
api = "/run/ferry-lab/{i}/sp2/ferry.sock"
next_hop = "198.51.100.10"
next_hop6 = "2001:db8:100::10"

[[group]]
name = "vm"
subnets = ["198.51.100.0/24", "2001:db8:100::/64"]

[[hook]]
name = "stop-vm"
stage = "stop-primary"
command = ["sh", "-c", {stop:?}]
undo = ["sh", "-c", {restart:?}]
timeout_ms = 5000

[[hook]]
name = "start-vm"
stage = "cutover"
command = ["sh", "-c", {start:?}]
undo = ["sh", "-c", {unstart:?}]
timeout_ms = 5000
{extra}
[[health_check]]
name = "vm"
command = ["sh", "-c", {health:?}]
interval_ms = 20
timeout_ms = 500

[verify]
command = ["sh", "-c", {verify:?}]
timeout_ms = 20000
interval_ms = 10
"#,
            stop = kill("FERRY_FROM"),
            restart = start("FERRY_FROM"),
            start = start("FERRY_TO"),
            unstart = kill("FERRY_TO"),
            verify = format!(
                "case $FERRY_TO in primary) nh=192.0.2.1;; *) nh=192.0.2.5;; esac; ip -n fl-{i}-r3 -4 route show 198.51.100.0/24 | grep -q \"via $nh \""
            ),
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, cmd: &str, plan: &Path, more: &[&str]) -> Output {
        let mut args = vec![cmd, "--yes", "--plan", plan.to_str().unwrap()];
        let state = self.state();
        args.extend(["--state-dir", &state]);
        args.extend(more);
        ferry(&args)
    }

    /// The tag of the VM answering the client's probes, once 100 probes in a row were answered.
    fn answering(&self) -> String {
        let out = self.dir.path().join("probes.csv");
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("fl-{}-client", self.instance),
                FERRY,
            ])
            .args(["lab", "probe", "--target", "198.51.100.10:7007", "--out"])
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut tag = String::from("-");
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["tick", sent, answered, t] = f.as_slice() {
                let (s, a): (u64, u64) = (sent.parse().unwrap(), answered.parse().unwrap());
                if s >= 200 && a + 5 >= s && *t != "-" {
                    tag = (*t).to_owned();
                    break;
                }
            }
            if Instant::now() > deadline {
                break;
            }
        }
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
        tag
    }
}

fn ms_after(out: &str, marker: &str) -> u64 {
    let at = out
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {out}"));
    out[at + marker.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no number after {marker:?} in {out}")) as u64
}

#[test]
fn failover_failback_rollback_resume_and_unplanned_in_the_lab() {
    if !can_run() {
        return;
    }
    let lab = LabUp {
        instance: format!("cf{}", std::process::id() % 1_000_000),
        dir: tempfile::tempdir().unwrap(),
    };
    let up = ferry(&["lab", "up", "--instance", &lab.instance]);
    assert!(up.status.success(), "{}", text(&up));
    let i = lab.instance.clone();
    let healthy = format!(
        "case $FERRY_TO in primary) v=vm1;; *) v=vm2;; esac; test -n \"$(ip netns pids fl-{i}-$v)\""
    );
    let plan = lab.plan("lab", &healthy, "");
    let out = ferry(&["plan", "check", plan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.answering(), "primary");

    // Planned failover, then failback.
    let out = lab.run("failover", &plan, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let total = ms_after(&so, "failover completed in");
    let verify = ms_after(&so, "verify vm ... ok (");
    eprintln!(
        "lab failover: {total} ms in all, {verify} ms waiting for the third site's route, controller overhead {} ms",
        total - verify
    );
    assert!(total - verify < 1000, "{so}");
    assert_eq!(lab.answering(), "recovery");
    let out = lab.run("failback", &plan, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.answering(), "primary");

    // A failing health check rolls back: the primary VM is started again and keeps serving.
    let failing = lab.plan("failing", "false", "");
    let out = lab.run("failover", &failing, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rolled back"),
        "{}",
        text(&out)
    );
    assert_eq!(lab.answering(), "primary");

    // kill -9 of the controller inside a hook, then resume.
    let mark = lab.dir.path().join("slept");
    let pidfile = lab.dir.path().join("slow.pid");
    let slow = format!(
        "\n[[hook]]\nname = \"slow\"\nstage = \"cutover\"\ncommand = [\"sh\", \"-c\", \"echo $$ > {p}; test -e {m} || {{ touch {m}; exec sleep 30; }}\"]\n",
        m = mark.display(),
        p = pidfile.display()
    );
    let slow_plan = lab.plan("slow", &healthy, &slow);
    let mut child = Command::new(FERRY)
        .args(["failover", "--yes", "--plan", slow_plan.to_str().unwrap()])
        .args(["--state-dir", &lab.state()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the slow hook never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    }
    let out = ferry(&["failover", "resume", "--state-dir", &lab.state()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.answering(), "recovery");
    let out = lab.run("failback", &slow_plan, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.answering(), "primary");

    // Unplanned: the primary speaker is gone; r1 drops its route when the hold timer expires.
    let pids = Command::new("ip")
        .args(["netns", "pids", &format!("fl-{i}-sp1")])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    let out = lab.run("failover", &plan, &["--unplanned"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("skipped (unplanned)"),
        "{}",
        text(&out)
    );
    assert_eq!(lab.answering(), "recovery");
}
