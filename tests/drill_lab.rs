//! DR drills and host moves in the FRR lab (`ferry lab up`: three sites in network namespaces,
//! real `ferry speaker`s, the client probing the VM every millisecond).
//!
//! The lab's topology is copied with the site routers' prefix list for the subnet widened to
//! `le 32` (what docs/drills.md tells operators to configure for host moves). Added beside the
//! lab, in namespaces of this test's own: the recovery site's **test network**, a router r4
//! (FRR, AS 65004) peered only with a test speaker (`ferry speaker`, AS 65100), the plan's
//! `test_site`.
//!
//! Proves, in one lab instance, one after the other:
//! 1. `ferry failover --test` while the client probes the VM: zero probes lost at the third
//!    site, the subnet in r4's RIB, and no path from the test speaker's AS at r1, r2 or r3;
//!    `cleanup-test` empties r4.
//! 2. A whole-subnet failover and failback (break-before-make, the VM stopped and started by
//!    hooks), then a host move of VM 198.51.100.10 by /32 while a second VM address at the
//!    primary, 198.51.100.11, keeps answering there without a lost probe: .10 is answered by
//!    the recovery VM after the move and by the primary's after the failback. Prints both loss
//!    windows (same run) for docs/benchmarks.md; asserts the host move's is no more than 2 ms
//!    above the whole subnet's, or within 20% of it on a loaded machine.
//!
//! Failures injected: none beyond the moves (the VM's responder killed by the stop hook).
//! Skipped when not root or FRR is missing, unless FIT_REQUIRE=1.

mod support;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::{lab_can_run, NeighborSpec, Speaker, SpeakerSpec, FERRY, LOCAL_ASN};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Peer};

const R4_AS: u32 = 65004;

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
    fn start() -> Self {
        let lab = LabUp {
            instance: format!("dr{}", std::process::id() % 1_000_000),
            dir: tempfile::tempdir().unwrap(),
        };
        let topo = lab.copy_topology();
        let args = [
            "lab",
            "up",
            "--instance",
            &lab.instance,
            "--topology",
            topo.to_str().unwrap(),
        ];
        // Under load the lab's own wait for a VM responder is sometimes too short; a failed
        // `up` removes what it created.
        let first = ferry(&args);
        if !first.status.success() {
            eprintln!("lab up failed once, retrying:\n{}", text(&first));
            let again = ferry(&args);
            assert!(again.status.success(), "{}", text(&again));
        }
        lab
    }

    /// The built-in topology with the site routers accepting host routes of the subnet.
    fn copy_topology(&self) -> PathBuf {
        let topo = self.dir.path().join("topology");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/topologies/three-site");
        for f in ["topology.toml", "r1/frr.conf", "r2/frr.conf", "r3/frr.conf"] {
            let to = topo.join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            let text = std::fs::read_to_string(src.join(f)).unwrap().replace(
                "FAILOVER-SUBNET seq 10 permit 198.51.100.0/24",
                "FAILOVER-SUBNET seq 10 permit 198.51.100.0/24 le 32",
            );
            std::fs::write(to, text).unwrap();
        }
        topo
    }

    fn ns(&self, node: &str) -> String {
        format!("fl-{}-{node}", self.instance)
    }

    fn state(&self) -> String {
        self.dir.path().join("state").display().to_string()
    }

    fn run(&self, args: &[&str], plan: &Path) -> Output {
        let mut all = args.to_vec();
        let state = self.state();
        all.extend([
            "--yes",
            "--plan",
            plan.to_str().unwrap(),
            "--state-dir",
            &state,
        ]);
        ferry(&all)
    }

    /// `vtysh -c ...` at a lab router.
    fn vtysh(&self, router: &str, cmd: &str) -> String {
        let mut c = Command::new("vtysh");
        testkit::daemons::frr_daemon::vtysh_args(
            &mut c,
            Path::new(&format!("/run/ferry-lab/{}/{router}", self.instance)),
            &[cmd],
        );
        let out = c.stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A plan for this lab. `group` is the [[group]]'s body; `keep` a pid at the primary VM
    /// the stop hook spares (the second VM address's responder); `verify` the verification
    /// command; `extra` more top-level TOML.
    fn plan(&self, name: &str, group: &str, keep: u32, verify: &str, extra: &str) -> PathBuf {
        let i = &self.instance;
        let vm = |var: &str| format!("case ${var} in primary) v=vm1;; *) v=vm2;; esac;");
        let kill = |var: &str| {
            format!(
                "{} for p in $(ip netns pids fl-{i}-$v); do [ $p = {keep} ] || kill -9 $p; done",
                vm(var)
            )
        };
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
{extra}
[[site]]
name = "primary"
api = "/run/ferry-lab/{i}/sp1/ferry.sock"
next_hop = "198.51.100.10"

[[site]]
name = "recovery"
api = "/run/ferry-lab/{i}/sp2/ferry.sock"
next_hop = "198.51.100.10"

[[group]]
name = "vm"
{group}

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

[verify]
command = ["sh", "-c", {verify:?}]
timeout_ms = 20000
interval_ms = 10
"#,
            stop = kill("FERRY_FROM"),
            restart = start("FERRY_FROM"),
            start = start("FERRY_TO"),
            unstart = kill("FERRY_TO"),
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `ferry lab probe` at the client, to `target`, until [`Prober::finish`].
struct Prober {
    child: Child,
    out: PathBuf,
}

/// One probe: when sent (µs) and which site answered, if any.
struct Probe {
    sent_us: i64,
    tag: Option<String>,
}

impl Prober {
    fn start(lab: &LabUp, target: &str, file: &str) -> Self {
        let out = lab.dir.path().join(file);
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns("client"), FERRY])
            .args(["lab", "probe", "--target", target, "--out"])
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Prober { child, out }
    }

    /// Stop (close its stdin), wait for its file, and read it.
    fn finish(mut self) -> Vec<Probe> {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).unwrap();
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some(Probe {
                    sent_us: f.get(1)?.parse().ok()?,
                    tag: f.get(3).filter(|t| !t.is_empty()).map(|t| t.to_string()),
                })
            })
            .collect()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Probes not answered, except the last 200 ms' (answers still on their way at the stop).
fn lost(probes: &[Probe]) -> usize {
    let end = probes.last().map_or(0, |p| p.sent_us) - 200_000;
    probes
        .iter()
        .filter(|p| p.sent_us < end && p.tag.is_none())
        .count()
}

/// The loss window of a move from `from` to `to`: from the last probe answered by `from` to
/// the first answered by `to` after it (ms).
fn window_ms(probes: &[Probe], from: &str, to: &str) -> f64 {
    let first_to = probes
        .iter()
        .position(|p| p.tag.as_deref() == Some(to))
        .expect("answered by the new site");
    let last_from = probes[..first_to]
        .iter()
        .rposition(|p| p.tag.as_deref() == Some(from))
        .expect("answered by the old site first");
    (probes[first_to].sent_us - probes[last_from].sent_us) as f64 / 1000.0
}

/// The tags of the answers in the last 100 probes.
fn last_tags(probes: &[Probe]) -> Vec<String> {
    let n = probes.len().saturating_sub(300);
    let mut t: Vec<String> = probes[n..n + 100.min(probes.len() - n)]
        .iter()
        .filter_map(|p| p.tag.clone())
        .collect();
    t.dedup();
    t
}

#[test]
fn test_failover_stays_in_the_test_network_and_a_host_move_moves_one_vm_in_the_lab() {
    if !lab_can_run() {
        return;
    }
    // Our own namespaces (test network) go last: declared first, dropped last.
    let tk = testkit::Lab::new("drilllab");
    let lab = LabUp::start();

    // ---- 1. test failover ----
    let spns = tk.netns("sp2t");
    let r4ns = tk.netns("r4");
    tk.veth(&spns, &["192.0.2.201/30"], &r4ns, &["192.0.2.202/30"]);
    let r4 = Frr::start(
        &tk,
        &r4ns,
        &FrrConfig::new(R4_AS, "192.0.2.202").peer(Peer::new("192.0.2.201", LOCAL_ASN).passive()),
    );
    let test_speaker = Speaker::start(SpeakerSpec {
        neighbors: vec![NeighborSpec {
            remote_as: R4_AS,
            port: None,
            local_address: Ipv4Addr::new(192, 0, 2, 201).into(),
            ..NeighborSpec::active((Ipv4Addr::new(192, 0, 2, 202), 179).into())
        }],
        router_id: Some(Ipv4Addr::new(192, 0, 2, 201)),
        wrapper: ["ip", "netns", "exec", spns.name()]
            .map(String::from)
            .to_vec(),
        ..SpeakerSpec::default()
    });
    r4.wait_established("192.0.2.201", Duration::from_secs(20));
    let i = lab.instance.clone();
    let whole_verify = format!(
        "case $FERRY_TO in primary) nh=192.0.2.1;; *) nh=192.0.2.5;; esac; ip -n fl-{i}-r3 -4 route show 198.51.100.0/24 | grep -q \"via $nh \""
    );
    // In a test run the verification gets FERRY_TEST=1: production must still route via r1.
    let drill_verify = format!(
        "if [ \"$FERRY_TEST\" = 1 ]; then ip -n fl-{i}-r3 -4 route show 198.51.100.0/24 | grep -q \"via 192.0.2.1 \"; exit $?; fi; {whole_verify}"
    );
    let drill = lab.plan(
        "drill",
        "subnets = [\"198.51.100.0/24\"]",
        0,
        &drill_verify,
        &format!(
            "test_site = \"lab-test\"\n[[site]]\nname = \"lab-test\"\napi = \"{}\"\n",
            test_speaker.api().display()
        ),
    );
    let probes = Prober::start(&lab, "198.51.100.10:7007", "test.csv");
    let out = lab.run(&["failover", "--test"], &drill);
    assert!(out.status.success(), "{}", text(&out));
    let at_r4 = r4.wait_route("198.51.100.0/24", Duration::from_secs(20));
    assert_eq!(at_r4.as_path, vec![LOCAL_ASN]);
    std::thread::sleep(Duration::from_millis(500));
    let probes = probes.finish();
    assert!(probes.len() > 500, "{} probes", probes.len());
    assert_eq!(
        lost(&probes),
        0,
        "probes lost at the third site during the test"
    );
    assert_eq!(last_tags(&probes), ["primary"]);
    for r in ["r1", "r2", "r3"] {
        let table = lab.vtysh(r, "show bgp ipv4 unicast 198.51.100.0/24");
        assert!(
            !table.contains(&LOCAL_ASN.to_string()),
            "{r} has a path from the test speaker:\n{table}"
        );
    }
    let out = lab.run(&["failover", "cleanup-test"], &drill);
    assert!(out.status.success(), "{}", text(&out));
    r4.wait_no_route("198.51.100.0/24", Duration::from_secs(20));

    // ---- 2. a whole-subnet move, then a host move, same run ----
    // The second VM address at the primary, answering on its own port.
    let vm1 = lab.ns("vm1");
    let ok = Command::new("ip")
        .args(["-n", &vm1, "addr", "add", "198.51.100.11/24", "dev", "eth0"])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut second = Command::new("ip")
        .args(["netns", "exec", &vm1, FERRY])
        .args(["lab", "responder", "--tag", "primary", "--port", "7008"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let keep = second.id();
    let whole = lab.plan(
        "whole",
        "subnets = [\"198.51.100.0/24\"]",
        keep,
        &whole_verify,
        "",
    );
    let host_verify = format!(
        "case $FERRY_TO in primary) ! ip -n fl-{i}-r3 -4 route show 198.51.100.10/32 | grep -q . ;; *) ip -n fl-{i}-r3 -4 route show 198.51.100.10/32 | grep -q \"via 192.0.2.5 \";; esac"
    );
    let host = lab.plan(
        "host",
        "hosts = [\"198.51.100.10/32\"]",
        keep,
        &host_verify,
        "",
    );

    let mut windows = Vec::new();
    for (plan, what) in [(&whole, "whole subnet"), (&host, "host route")] {
        let moved = Prober::start(&lab, "198.51.100.10:7007", "moved.csv");
        let stays = Prober::start(&lab, "198.51.100.11:7008", "stays.csv");
        let out = lab.run(&["failover"], plan);
        assert!(out.status.success(), "{what}: {}", text(&out));
        std::thread::sleep(Duration::from_millis(800));
        let (moved, stays) = (moved.finish(), stays.finish());
        assert_eq!(
            last_tags(&moved),
            ["recovery"],
            "{what}: .10 after the move"
        );
        if what == "host route" {
            assert_eq!(lost(&stays), 0, ".11 lost probes while .10 moved by /32");
            assert_eq!(last_tags(&stays), ["primary"], ".11 stays at the primary");
        }
        let w = window_ms(&moved, "primary", "recovery");
        let back = Prober::start(&lab, "198.51.100.10:7007", "back.csv");
        let out = lab.run(&["failback"], plan);
        assert!(out.status.success(), "{what} failback: {}", text(&out));
        std::thread::sleep(Duration::from_millis(800));
        let back = back.finish();
        assert_eq!(
            last_tags(&back),
            ["primary"],
            "{what}: .10 after the failback"
        );
        let wb = window_ms(&back, "recovery", "primary");
        println!("loss window, {what}: failover {w:.1} ms, failback {wb:.1} ms");
        windows.push((w, wb));
    }
    let _ = std::io::stdout().flush();
    let (whole_w, host_w) = (windows[0].0, windows[1].0);
    assert!(
        host_w <= whole_w + 2.0 || host_w <= whole_w * 1.2,
        "host move {host_w:.1} ms against whole subnet {whole_w:.1} ms"
    );
    let _ = second.kill();
    let _ = second.wait();
    drop(test_speaker);
}
