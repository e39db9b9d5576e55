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
//! (run time minus the verification's wait for the routers) and, with the site routers
//! accepting /28s of the subnet (a copy of the topology, `--topology`), the overhead of one
//! subnet against ten in one group with hooks that take no time.
//! Failures injected: a failing health-check command, SIGKILL of the controller, SIGKILL of
//! the primary speaker.
//!
//! A second lab instance has an observer speaker at the third site behind r3 (next-hop-self)
//! and proves that `[verify] observer` tells the sites apart by origin AS or community and is
//! not fooled by a filter or by r3's own route (see its test's doc).
//! Skipped when not root or FRR is missing, unless FIT_REQUIRE=1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::lab::{pick_vm, LabUp};
use support::{ferry_cli, CliOut, FERRY};

fn ferry(args: &[&str]) -> CliOut {
    ferry_cli(args, None)
}

/// A lab instance named `prefix` and the pid, up on [`copy_topology`]'s copy, once the other
/// labs are down.
fn start_lab(prefix: &str, observer: bool) -> LabUp {
    let lab = LabUp::new(prefix);
    let topo = copy_topology(lab.dir.path(), observer);
    wait_for_other_labs();
    lab.up(&["--topology", topo.to_str().unwrap()]);
    lab
}

/// This test's operations on its lab.
impl LabUp {
    /// A health check that passes when the VM of the site gaining the subnets runs.
    fn healthy(&self) -> String {
        format!(
            "{} test -n \"$(ip netns pids fl-{}-$v)\"",
            pick_vm("FERRY_TO"),
            self.instance
        )
    }

    /// A plan for this lab; `health` is the health-check command, `extra` more TOML.
    fn plan(&self, name: &str, health: &str, extra: &str) -> PathBuf {
        let i = &self.instance;
        let hooks = self.vm_hooks(|var| {
            format!(
                "{} ip netns pids fl-{i}-$v | xargs -r kill -9",
                pick_vm(var)
            )
        });
        let head = self.plan_head(name, "", "198.51.100.10", Some("2001:db8:100::10"));
        let text = format!(
            r#"{head}
[[group]]
name = "vm"
subnets = ["198.51.100.0/24", "2001:db8:100::/64"]

{hooks}{extra}
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
            verify = format!(
                "case $FERRY_TO in primary) nh=192.0.2.1;; *) nh=192.0.2.5;; esac; ip -n fl-{i}-r3 -4 route show 198.51.100.0/24 | grep -q \"via $nh \""
            ),
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// As [`LabUp::plan`], verified by the observer at the third site (sp3) instead of a
    /// command, the sites told apart by origin AS (their speakers' ASes).
    fn observed_plan(&self, name: &str, health: &str, extra: &str) -> PathBuf {
        let path = self.plan(name, health, extra);
        let text = std::fs::read_to_string(&path).unwrap();
        let (head, _) = text.split_once("\n[verify]\n").unwrap();
        let head = head
            .replace(
                "name = \"primary\"\napi",
                "name = \"primary\"\norigin_as = 65101\napi",
            )
            .replace(
                "name = \"recovery\"\napi",
                "name = \"recovery\"\norigin_as = 65102\napi",
            );
        let text = format!(
            "{head}\n[[site]]\nname = \"sp3\"\napi = \"/run/ferry-lab/{}/sp3/ferry.sock\"\n\n[verify]\nobserver = \"sp3\"\ntimeout_ms = 10000\ninterval_ms = 20\n",
            self.instance
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, cmd: &str, plan: &Path, more: &[&str]) -> CliOut {
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

/// Let the other lab tests (tests/lab.rs) finish first: several labs coming up at once on a
/// small machine make the lab's own waits time out. Waits until no `fl-*` namespace exists
/// (or 120 s have passed, e.g. a lab someone left up).
fn wait_for_other_labs() {
    let others = || {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("fl-"))
    };
    std::thread::sleep(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet = 0;
    while quiet < 3 && Instant::now() < deadline {
        quiet = if others() { 0 } else { quiet + 1 };
        std::thread::sleep(Duration::from_millis(200));
    }
    if quiet < 3 {
        eprintln!("other labs still up after 120 s; going ahead");
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

/// A copy of the built-in topology in `dir`, its site routers accepting /28s of the subnet
/// from the speakers; with `observer`, also a `ferry speaker` at the third site (sp3, AS 65103)
/// peering eBGP with r3, which sends it every route with itself as next hop (next-hop-self)
/// and takes nothing from it.
fn copy_topology(dir: &Path, observer: bool) -> PathBuf {
    support::lab::copy_topology(dir, 28, |f, mut text| {
        if observer && f == "topology.toml" {
            text.push_str(OBSERVER_NODE);
        }
        if observer && f == "r3/frr.conf" {
            text = text
                .replacen("router bgp 65003\n", &format!("{OBSERVER_POLICY}router bgp 65003\n"), 1)
                .replacen(
                    " neighbor 192.0.2.5 timers connect 2\n",
                    " neighbor 192.0.2.5 timers connect 2\n neighbor 192.0.2.26 remote-as 65103\n neighbor 192.0.2.26 description sp3 (observer)\n neighbor 192.0.2.26 timers 3 9\n neighbor 192.0.2.26 timers connect 2\n",
                    1,
                )
                .replace(
                    "  neighbor 192.0.2.5 route-map PERMIT-ALL out\n",
                    "  neighbor 192.0.2.5 route-map PERMIT-ALL out\n  neighbor 192.0.2.26 activate\n  neighbor 192.0.2.26 next-hop-self\n  neighbor 192.0.2.26 route-map DENY-ALL in\n  neighbor 192.0.2.26 route-map TO-OBSERVER out\n",
                );
            assert_eq!(
                text.matches("192.0.2.26 next-hop-self").count(),
                2,
                "{text}"
            );
        }
        text
    })
}

/// The observer speaker at the third site and its link to r3.
const OBSERVER_NODE: &str = r#"
[[speaker]]
name = "sp3"
site = "third"
asn = 65103
router_id = "192.0.2.26"
peer = "192.0.2.25"
peer_as = 65003
next_hop = "192.0.2.26"
next_hop6 = "2001:db8:0:13::2"

[[link]]
a = { node = "r3", ifname = "eth-sp", addrs = ["192.0.2.25/30", "2001:db8:0:13::1/64"] }
b = { node = "sp3", ifname = "eth0", addrs = ["192.0.2.26/30", "2001:db8:0:13::2/64"] }
"#;

/// r3's policy toward the observer. TO-OBSERVER passes everything until the test adds a
/// clause that drops paths originated by the recovery speaker (AS 65102).
const OBSERVER_POLICY: &str = "bgp as-path access-list FROM-RECOVERY seq 5 permit _65102$
route-map TO-OBSERVER permit 10
exit
route-map DENY-ALL deny 10
exit
!
";

#[test]
fn failover_failback_rollback_resume_overhead_and_unplanned_in_the_lab() {
    if !support::lab_can_run() {
        return;
    }
    let lab = start_lab("cf", false);
    let i = lab.instance.clone();
    let healthy = lab.healthy();
    let plan = lab.plan("lab", &healthy, "");
    let out = ferry(&["plan", "check", plan.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(lab.answering(), "primary");

    // Planned failover, then failback.
    let out = lab.run("failover", &plan, &[]);
    assert_eq!(out.code, 0, "{out}");
    let so = out.stdout;
    let total = ms_after(&so, "failover completed in");
    let verify = ms_after(&so, "verify vm ... ok (");
    eprintln!(
        "lab failover: {total} ms in all, {verify} ms waiting for the third site's route, controller overhead {} ms",
        total - verify
    );
    assert!(total - verify < 1000, "{so}");
    assert_eq!(lab.answering(), "recovery");
    let out = lab.run("failback", &plan, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(lab.answering(), "primary");

    // A failing health check rolls back: the primary VM is started again and keeps serving.
    let failing = lab.plan("failing", "false", "");
    let out = lab.run("failover", &failing, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("rolled back"), "{}", out);
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
    if let Some(pid) = testkit::signal::read_pid(&pidfile) {
        testkit::signal::signal(pid, "KILL");
    }
    let out = ferry(&["failover", "resume", "--state-dir", &lab.state()]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(lab.answering(), "recovery");
    let out = lab.run("failback", &slow_plan, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(lab.answering(), "primary");

    measure(&lab);

    // Unplanned: the primary speaker is gone; r1 drops its route when the hold timer expires.
    let pids = Command::new("ip")
        .args(["netns", "pids", &format!("fl-{i}-sp1")])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse() {
            testkit::signal::signal(pid, "KILL");
        }
    }
    let out = lab.run("failover", &plan, &["--unplanned"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("skipped (unplanned)"), "{}", out);
    assert_eq!(lab.answering(), "recovery");
}

/// The observer (sp3) one eBGP hop behind r3, which applies next-hop-self toward it: the
/// sites are told apart by origin AS.
///
/// Proves, in one lab instance: `plan check` passes without a warning; a failover and a
/// failback are verified though every path the observer holds has r3 as next hop; with r3
/// filtering the recovery's paths toward the observer (an as-path clause added to its
/// policy), verification fails naming the observer and what it sees, and the run rolls back
/// with the primary VM answering; with r3 originating the subnet itself (a static route and
/// `network`, added by a cutover hook and removed by its undo) verification is not fooled by
/// r3's own path; a verify command that fails once and then hangs is cut at the step's
/// deadline, and the failure reports the time it really took; with the sites told apart by
/// `verify_community` alone, r3 stripping communities toward the observer fails the preflight
/// (showing the path without them), and once it passes them on a failover and a failback are
/// verified.
/// Failures injected: r3's policy and its own route, changed with vtysh; a hanging command.
#[test]
fn an_observer_behind_next_hop_self_proves_the_move_by_origin_as_or_community_in_the_lab() {
    if !support::lab_can_run() {
        return;
    }
    let lab = start_lab("co", true);
    let i = lab.instance.clone();
    let healthy = lab.healthy();
    let plan = lab.observed_plan("obs", &healthy, "");
    let out = ferry(&["plan", "check", plan.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.to_string().contains("warning"), "{out}");

    // What the observer holds: the subnet from the primary's speaker, r3 as next hop.
    let sp3 = format!("/run/ferry-lab/{i}/sp3/ferry.sock");
    let out = ferry(&["routes", "--received", "--json", "--api", &sp3]);
    assert_eq!(out.code, 0, "{out}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let subnet = v
        .iter()
        .find(|r| r["prefix"] == "198.51.100.0/24")
        .unwrap_or_else(|| panic!("{v:?}"));
    assert_eq!(subnet["next_hop"], "192.0.2.25", "{v:?}");
    assert_eq!(subnet["as_path"], "65003 65001 65101", "{v:?}");

    let out = lab.run("failover", &plan, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("verify vm ... ok"), "{}", out);
    assert_eq!(lab.answering(), "recovery");
    let out = lab.run("failback", &plan, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(lab.answering(), "primary");

    // r3 drops the recovery's paths toward the observer.
    let filter = |on: bool| {
        let clause = "route-map TO-OBSERVER deny 5";
        let no = format!("no {clause}");
        let mut cmds = vec!["configure terminal"];
        if on {
            cmds.extend([clause, "match as-path FROM-RECOVERY"]);
        } else {
            cmds.push(&no);
        }
        cmds.extend(["end", "clear bgp * soft out"]);
        lab.vtysh("r3", &cmds);
    };
    filter(true);
    let out = lab.run("failover", &plan, &[]);
    let all = out.to_string();
    assert_eq!(out.code, 1, "{all}");
    assert!(
        all.contains("rolled back")
            && all.contains(
                "observer sp3 has no path for 198.51.100.0/24 from recovery (origin AS 65102); it sees "
            ),
        "{all}"
    );
    eprintln!("lab, r3 filtering the recovery's paths toward the observer:\n{all}");
    assert_eq!(lab.answering(), "primary");
    filter(false);

    // r3 holds a route of its own for the subnet, from a cutover hook (undone on rollback).
    let r3 = |cmds: &[&str]| {
        let mut v = vec![
            "vtysh".to_string(),
            "--vty_socket".into(),
            format!("/run/ferry-lab/{i}/r3"),
        ];
        for c in cmds {
            v.extend(["-c".to_string(), (*c).to_string()]);
        }
        let quoted: Vec<String> = v.iter().map(|a| format!("{a:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let own = format!(
        "\n[[hook]]\nname = \"r3-own-route\"\nstage = \"cutover\"\ncommand = {}\nundo = {}\n",
        r3(&[
            "configure terminal",
            "ip route 198.51.100.0/24 blackhole",
            "router bgp 65003",
            "address-family ipv4 unicast",
            "network 198.51.100.0/24",
        ]),
        r3(&[
            "configure terminal",
            "router bgp 65003",
            "address-family ipv4 unicast",
            "no network 198.51.100.0/24",
            "exit-address-family",
            "exit",
            "no ip route 198.51.100.0/24 blackhole",
        ]),
    );
    let own_plan = lab.observed_plan("own", &healthy, &own);
    let out = lab.run("failover", &own_plan, &[]);
    let all = out.to_string();
    assert_eq!(out.code, 1, "{all}");
    assert!(
        all.contains("rolled back")
            && all.contains("observer sp3 has no path for 198.51.100.0/24 from recovery")
            && all.contains("it sees [as path 65003, next hop 192.0.2.25"),
        "{all}"
    );
    eprintln!("lab, r3 originating the subnet itself:\n{all}");
    assert_eq!(lab.answering(), "primary");

    // A verify command that fails after a second, then hangs: cut at the 2 s deadline.
    let mark = lab.dir.path().join("verified-once");
    let hangs = lab.plan("hangs", &healthy, "");
    let text_of = std::fs::read_to_string(&hangs).unwrap();
    let (head, _) = text_of.split_once("\n[verify]\n").unwrap();
    let cmd = format!(
        "test -e {m} && exec sleep 30; touch {m}; sleep 1; exit 1",
        m = mark.display()
    );
    std::fs::write(
        &hangs,
        format!("{head}\n[verify]\ncommand = [\"sh\", \"-c\", {cmd:?}]\ntimeout_ms = 2000\ninterval_ms = 10\n"),
    )
    .unwrap();
    let t0 = Instant::now();
    let out = lab.run("failover", &hangs, &[]);
    let all = out.to_string();
    assert_eq!(out.code, 1, "{all}");
    let took = ms_after(&all, "not verified after");
    eprintln!(
        "lab: a hanging verify command with timeout_ms = 2000 failed the step after {took} ms (whole run {} ms)",
        t0.elapsed().as_millis()
    );
    assert!((2000..2500).contains(&took), "{all}");
    assert!(all.contains("rolled back"), "{all}");
    assert_eq!(lab.answering(), "primary");

    // Told apart by verify_community alone: the primary first re-announces with its own.
    for (prefix, nh) in [
        ("198.51.100.0/24", "198.51.100.10"),
        ("2001:db8:100::/64", "2001:db8:100::10"),
    ] {
        let api = format!("/run/ferry-lab/{i}/sp1/ferry.sock");
        let out = ferry(&[
            "announce",
            prefix,
            "--next-hop",
            nh,
            "--community",
            "65101:1",
            "--api",
            &api,
        ]);
        assert_eq!(out.code, 0, "{out}");
    }
    let tagged = lab.observed_plan("tagged", &healthy, "");
    let t = std::fs::read_to_string(&tagged)
        .unwrap()
        .replace("origin_as = 65101", "verify_community = \"65101:1\"")
        .replace("origin_as = 65102", "verify_community = \"65102:1\"");
    std::fs::write(&tagged, t).unwrap();
    let communities = |want: &[&str]| observer_communities(&sp3, want);
    communities(&["65101:1"]);
    // r3 strips communities toward the observer: the preflight fails, showing the path as it
    // arrives.
    let strip = |on: bool| {
        let set = if on {
            "set community none"
        } else {
            "no set community none"
        };
        lab.vtysh(
            "r3",
            &[
                "configure terminal",
                "route-map TO-OBSERVER permit 10",
                set,
                "end",
                "clear bgp * soft out",
            ],
        );
    };
    strip(true);
    communities(&[]);
    let out = ferry(&["plan", "check", tagged.to_str().unwrap()]);
    let all = out.to_string();
    assert_eq!(out.code, 1, "{all}");
    assert!(
        all.contains("observer sp3 does not see 198.51.100.0/24 from primary (community 65101:1)")
            && all.contains(
                "it sees [as path 65003 65001 65101, next hop 192.0.2.25, from peer 192.0.2.25]"
            ),
        "{all}"
    );
    eprintln!("lab, r3 stripping communities toward the observer:\n{all}");
    strip(false);
    communities(&["65101:1"]);
    let out = ferry(&["plan", "check", tagged.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    let out = lab.run("failover", &tagged, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(lab.answering(), "recovery");
    communities(&["65102:1"]);
    let out = lab.run("failback", &tagged, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(lab.answering(), "primary");
}

/// Wait (10 s at most) until the observer's path for 198.51.100.0/24 carries exactly `want`.
fn observer_communities(api: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ferry(&["routes", "--received", "--json", "--api", api]);
        assert_eq!(out.code, 0, "{out}");
        let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
        let got: Option<Vec<String>> = v
            .iter()
            .find(|r| r["prefix"] == "198.51.100.0/24")
            .and_then(|r| r["communities"].as_array())
            .map(|c| {
                c.iter()
                    .filter_map(|c| c.as_str().map(String::from))
                    .collect()
            });
        if got.as_deref().is_some_and(|g| g == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "want {want:?}, observer holds {v:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ten /28s of the subnet's first 160 addresses; the VM (198.51.100.10) is in the first.
fn slices(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("198.51.100.{}/28", i * 16))
        .collect()
}

/// Controller overhead of one subnet against ten in one group, hooks that take no time.
fn measure(lab: &LabUp) {
    let i = lab.instance.clone();
    let sp = |n: u8| format!("/run/ferry-lab/{i}/sp{n}/ferry.sock");
    let mut figures = Vec::new();
    for n in [1, 10] {
        let subnets = slices(n);
        let mut args = vec!["announce".to_string()];
        args.extend(subnets.iter().cloned());
        args.extend([
            "--next-hop".into(),
            "198.51.100.10".into(),
            "--api".into(),
            sp(1),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ferry(&args);
        assert_eq!(out.code, 0, "{out}");
        let list: Vec<String> = subnets.iter().map(|s| format!("{s:?}")).collect();
        let plan = lab.dir.path().join(format!("n{n}.toml"));
        std::fs::write(
            &plan,
            format!(
                r#"name = "n{n}"
primary = "primary"
recovery = "recovery"
order = "break-before-make"
[[site]]
name = "primary"
api = "{}"
next_hop = "198.51.100.10"
[[site]]
name = "recovery"
api = "{}"
next_hop = "198.51.100.10"
[[group]]
name = "vms"
subnets = [{}]
[[hook]]
name = "cutover"
stage = "cutover"
command = ["true"]
[[health_check]]
name = "vm"
command = ["true"]
[verify]
command = ["sh", "-c", {verify:?}]
timeout_ms = 20000
interval_ms = 5
"#,
                sp(1),
                sp(2),
                list.join(", "),
                verify = format!(
                    "case $FERRY_TO in primary) nh=192.0.2.1;; *) nh=192.0.2.5;; esac; test $(ip -n fl-{i}-r3 -4 route show | grep -c \"^198.51.100.[0-9]*/28 .*via $nh \") -eq {n}"
                ),
            ),
        )
        .unwrap();
        // Wait until the third site has every slice via the primary (the plan check passes
        // at once; the routers take a moment).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = Command::new("ip")
                .args(["-n", &format!("fl-{i}-r3"), "-4", "route", "show"])
                .output()
                .unwrap();
            let routes = String::from_utf8_lossy(&r.stdout).into_owned();
            if subnets.iter().all(|s| {
                routes
                    .lines()
                    .any(|l| l.starts_with(&format!("{s} ")) && l.contains("via 192.0.2.1 "))
            }) {
                break;
            }
            assert!(Instant::now() < deadline, "{routes}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut best = u64::MAX;
        for round in 0..4 {
            let cmd = if round % 2 == 0 {
                "failover"
            } else {
                "failback"
            };
            let out = lab.run(cmd, &plan, &[]);
            assert_eq!(out.code, 0, "{out}");
            let so = out.stdout;
            let total = ms_after(&so, &format!("{cmd} completed in"));
            let verify = ms_after(&so, "verify vms ... ok (");
            eprintln!("lab, {n} subnet(s), {cmd}: {total} ms, of which {verify} ms waiting for the routers");
            best = best.min(total.saturating_sub(verify));
        }
        figures.push(best);
        let mut args = vec!["withdraw".to_string()];
        args.extend(subnets.iter().cloned());
        args.extend(["--api".into(), sp(1)]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(ferry(&args).code, 0);
    }
    eprintln!(
        "lab controller overhead (best of 4, run minus the routers' convergence): 1 subnet {} ms, 10 subnets in one group {} ms, ratio {:.2}",
        figures[0],
        figures[1],
        figures[1] as f64 / figures[0].max(1) as f64
    );
    assert!(figures[0] < 1000 && figures[1] < 1000, "{figures:?}");
    // Ten subnets in one group move in one call each way, not ten: their overhead stays far
    // from 10x one subnet's. Alone it is about 1.1x (19 against 21 ms); with the rest of the
    // suite running beside it a full run measured 27 against 84 ms, so the bound is loose.
    assert!(figures[1] <= figures[0] * 5 + 50, "{figures:?}");
}
