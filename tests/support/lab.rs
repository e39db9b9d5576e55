//! The FRR lab of a lab test (`ferry lab up`: three sites in network namespaces): an instance
//! named by the test's prefix and its process id, so parallel test binaries do not collide;
//! taken down on drop (also when an assertion fails) before its directory of plans and state
//! is removed ([`LabUp`]; [`Down`] for a test that runs `lab up` itself). Also: a copy of the
//! built-in topology to edit, vtysh at a lab router, and the parts of a failover plan for the
//! lab that the lab tests share (its head with the two sites, the hooks that stop and start
//! the VM), and the checks of `ferry lab test` and `ferry lab chaos` output that the netns and
//! Docker runtimes' tests share.
//!
//! Never does: start anything in the root namespace, or leave an instance up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{ferry_cli, CliOut, FERRY};

/// A lab instance and the test's directory; `lab down` on drop.
pub struct LabUp {
    pub instance: String,
    /// The test's files (plans, the controller's state, topology copies).
    pub dir: tempfile::TempDir,
}

impl LabUp {
    /// The guard of instance `prefix` + pid; nothing is up yet ([`LabUp::up`]).
    pub fn new(prefix: &str) -> Self {
        LabUp {
            instance: format!("{prefix}{}", std::process::id() % 1_000_000),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `ferry lab up --instance I MORE`, a second time if the first fails: under load (other
    /// labs coming up on two cores) the lab's own waits, such as its 5 s for a VM responder,
    /// are sometimes too short, and a failed `up` removes what it created.
    pub fn up(&self, more: &[&str]) {
        let mut args = vec!["lab", "up", "--instance", &self.instance];
        args.extend(more);
        let first = ferry_cli(&args, None);
        if first.code == 0 {
            return;
        }
        eprintln!("lab up failed once, retrying:\n{first}");
        let again = ferry_cli(&args, None);
        assert_eq!(again.code, 0, "{again}");
    }

    /// The namespace of lab node `node`.
    pub fn ns(&self, node: &str) -> String {
        format!("fl-{}-{node}", self.instance)
    }

    /// The failover controller's state directory for this lab's runs.
    pub fn state(&self) -> String {
        self.dir.path().join("state").display().to_string()
    }

    /// `vtysh -c` each of `commands` at lab router `router`; its stdout. Panics with the output
    /// when vtysh fails.
    pub fn vtysh(&self, router: &str, commands: &[&str]) -> String {
        let mut c = Command::new("vtysh");
        testkit::daemons::frr_daemon::vtysh_args(
            &mut c,
            Path::new(&format!("/run/ferry-lab/{}/{router}", self.instance)),
            commands,
        );
        let out: CliOut = c.stdin(Stdio::null()).output().unwrap().into();
        assert_eq!(out.code, 0, "{commands:?}: {out}");
        out.stdout
    }

    /// A plan's head: its `name`, the primary (sp1) and recovery (sp2) sites with `next_hop`
    /// (and `next_hop6`), break-before-make; `top` is more top-level TOML.
    pub fn plan_head(
        &self,
        name: &str,
        top: &str,
        next_hop: &str,
        next_hop6: Option<&str>,
    ) -> String {
        let i = &self.instance;
        let nh6 = next_hop6
            .map(|n| format!("next_hop6 = \"{n}\"\n"))
            .unwrap_or_default();
        format!(
            r#"name = "{name}"
primary = "primary"
recovery = "recovery"
order = "break-before-make"
{top}
[[site]]
name = "primary"
api = "/run/ferry-lab/{i}/sp1/ferry.sock"
next_hop = "{next_hop}"
{nh6}
[[site]]
name = "recovery"
api = "/run/ferry-lab/{i}/sp2/ferry.sock"
next_hop = "{next_hop}"
{nh6}"#
        )
    }

    /// A plan's `stop-vm` (stop-primary) and `start-vm` (cutover) hooks, each with its undo,
    /// for the VM of the site that `$FERRY_FROM` or `$FERRY_TO` names: `kill(var)` is the
    /// shell that stops it (after [`pick_vm`]`(var)`); starting it starts its responder as the
    /// lab does, tagged with the site's name.
    pub fn vm_hooks(&self, kill: impl Fn(&str) -> String) -> String {
        let i = &self.instance;
        let start = |var: &str| {
            format!(
                "{} ip netns exec fl-{i}-$v setsid {FERRY} lab responder --tag ${var} --port 7007 </dev/null >/dev/null 2>&1 &",
                pick_vm(var)
            )
        };
        format!(
            r#"[[hook]]
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
"#,
            stop = kill("FERRY_FROM"),
            restart = start("FERRY_FROM"),
            start = start("FERRY_TO"),
            unstart = kill("FERRY_TO"),
        )
    }
}

impl Drop for LabUp {
    fn drop(&mut self) {
        down(&self.instance);
    }
}

/// Shell that sets `$v` to the VM node (vm1 or vm2) of the site that `$var` names.
pub fn pick_vm(var: &str) -> String {
    format!("case ${var} in primary) v=vm1;; *) v=vm2;; esac;")
}

/// Takes instance `.0` down on drop, for a test that brings it up (or fails to) itself.
pub struct Down(pub String);

impl Drop for Down {
    fn drop(&mut self) {
        down(&self.0);
    }
}

/// `ferry lab down`, whatever it says: a guard's last word.
fn down(instance: &str) {
    let _ = ferry_cli(&["lab", "down", "--instance", instance], None);
}

/// A copy of the built-in three-site topology in `dir/topology`, its site routers accepting
/// routes inside the subnet down to /`le` (host moves need `le 32`: docs/drills.md), each
/// file's text then passed through `edit(file, text)`.
pub fn copy_topology(dir: &Path, le: u8, edit: impl Fn(&str, String) -> String) -> PathBuf {
    let topo = dir.join("topology");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/topologies/three-site");
    for f in ["topology.toml", "r1/frr.conf", "r2/frr.conf", "r3/frr.conf"] {
        let to = topo.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(src.join(f)).unwrap().replace(
            "FAILOVER-SUBNET seq 10 permit 198.51.100.0/24",
            &format!("FAILOVER-SUBNET seq 10 permit 198.51.100.0/24 le {le}"),
        );
        std::fs::write(to, edit(f, text)).unwrap();
    }
    topo
}

/// `ferry lab test` passed: its last line says at least 7 scenarios passed and none failed,
/// its report has a median loss window and the timeline is drawn.
pub fn assert_suite_passed(stdout: &str, out: &Path) {
    let summary = stdout.lines().last().unwrap_or_default();
    let (passed, failed) = summary
        .split_once(" passed, ")
        .unwrap_or_else(|| panic!("no summary line: {stdout}"));
    assert_eq!(failed, "0 failed", "{stdout}");
    assert!(passed.parse::<u32>().unwrap() >= 7, "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(report["summary"]["loss_ms"]["median"].as_f64().unwrap() > 0.0);
    assert!(out.join("timeline.svg").exists());
}

/// `ferry lab chaos` found no violation and made at least two moves; its `chaos.json`.
pub fn assert_chaos_clean(stdout: &str, out: &Path) -> serde_json::Value {
    assert!(stdout.contains("violations: 0"), "{stdout}");
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("chaos.json")).unwrap()).unwrap();
    assert!(rep["violation"].is_null(), "{rep}");
    assert!(rep["moves"].as_u64().unwrap() >= 2, "{rep}");
    rep
}

/// The chaos run `rep` injected every fault of `classes` at least once.
pub fn assert_faults_drawn(rep: &serde_json::Value, classes: &[&str]) {
    let faults = rep["faults"].as_object().unwrap();
    for class in classes {
        assert!(
            faults.get(*class).and_then(|n| n.as_u64()) >= Some(1),
            "{class}: {rep}"
        );
    }
}
