//! `ferry lab chaos --controller`: the lab's moves made by the failover controller itself
//! (`ferry failover` / `failback` / `resume` / `abort` as subprocesses), so the controller can
//! be killed in the middle of a move and its journal says which site is active.
//!
//! Contract:
//! - [`Controller::new`] writes one plan for the lab (`OUT/chaos-plan.toml`) and keeps the
//!   controller's state (journals, locks) in `OUT/controller/`, a 16 MiB tmpfs
//!   ([`StateDisk`], for the `disk-full` fault); its journals are copied to `OUT/journals/`
//!   when the controller is dropped. The plan's hooks stop and start
//!   the VMs' responders with the same `--tag` (the site's name) and port as
//!   [`super::LabInstance::start_responder`], so the lab's prober tells the VMs apart as before; its
//!   verification waits for the third site's kernel route via the new site.
//! - Every controller call has a timeout; a call that overruns is killed and reported.
//! - [`Controller::active`] reads the journals (through [`crate::controller::runs`]): the last
//!   finished run's active site, the primary before any run; an unfinished run is an error.
//!
//! Never does: decide anything about the invariants (see [`super::chaos`]), or start a
//! responder outside the plan's hooks once [`Controller::take_over_vm`] has run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::instance::LabInstance;
use super::planfile;
use super::statedisk::StateDisk;
use super::topology::Site;
use super::{proc, LabError, Result};
use crate::controller::runs;

/// The plan's name (its runs' journals carry it).
const PLAN: &str = "chaos";
/// How long the stop hook waits after killing the VM, and the start hook after starting it.
const STOP_SECS: &str = "1";
const START_SECS: &str = "0.5";

/// The environment entry every hook process (and whatever it starts) carries, so a hook's
/// orphan can be told from every other process on the host.
fn mark(instance: &str) -> String {
    format!("FERRY_CHAOS_HOOK={instance}")
}

pub struct Controller {
    exe: PathBuf,
    pub disk: StateDisk,
    pub plan: PathBuf,
    pub state_dir: PathBuf,
    /// The shell command that starts `site`'s VM responder (the plan's start hook).
    start_vm: String,
}

impl Controller {
    /// Write the plan for `lab` into `out` and create the controller's state directory.
    pub fn new(lab: &LabInstance, out: &Path) -> Result<Self> {
        let exe =
            std::env::current_exe().map_err(|e| LabError::step("finding the ferry binary", e))?;
        let state_dir = out.join("controller");
        let disk = StateDisk::mount(&state_dir, "16m", &out.join("journals"))?;
        let t = &lab.topo;
        let (vm1, vm2) = planfile::vm_namespaces(lab)?;
        // `var` names the site (FERRY_FROM or FERRY_TO); picks that site's VM namespace.
        let pick = |var: &str| planfile::pick(var, &vm1, &vm2);
        let kill = |var: &str| format!("{} ip netns pids $v | xargs -r kill -9", pick(var));
        // A VM takes a while to stop and to boot: the hooks wait, so a controller killed in
        // the first seconds of a move dies inside a hook. The stop hook also runs a helper
        // (a 10 s `sleep`) that it ends itself when it finishes: a hook killed with the
        // controller leaves it behind for 10 s, longer than resume or abort take, so the
        // no-leak check sees it unless resume/abort ends the dead hook's process group.
        let stop_hook = format!(
            "{}; sleep 10 & w=$!; sleep {STOP_SECS}; kill $w",
            kill("FERRY_FROM")
        );
        // setsid: the responder is the VM, not a child of the hook (the controller kills its
        // hooks' process group on resume).
        let start = |var: &str| {
            format!(
                "{} ip netns exec $v setsid {} lab responder --tag ${var} --port {} </dev/null >/dev/null 2>&1 &",
                pick(var),
                exe.display(),
                t.probe_port
            )
        };
        let third = t.router(Site::Third).name.clone();
        let via = |site: Site| {
            t.addr_towards(&t.router(site).name, &third)
                .ok_or_else(|| LabError::Topology(format!("no link {site} - {third}")))
        };
        let p = Site::Primary.name();
        let verify = format!(
            "case $FERRY_TO in {p}) nh={};; *) nh={};; esac; ip -n {} -4 route show {} | grep -q \"via $nh \"",
            via(Site::Primary)?,
            via(Site::Recovery)?,
            lab.ns(&third),
            t.prefix
        );
        let rest = format!(
            r#"[[group]]
name = "vm"
subnets = ["{prefix}", "{prefix6}"]

[[hook]]
name = "stop-vm"
stage = "stop-primary"
command = ["env", "{mark}", "sh", "-c", {stop:?}]
undo = ["env", "{mark}", "sh", "-c", {restart:?}]
timeout_ms = 5000

[[hook]]
name = "start-vm"
stage = "cutover"
command = ["env", "{mark}", "sh", "-c", {start:?}]
undo = ["env", "{mark}", "sh", "-c", {unstart:?}]
timeout_ms = 5000

[verify]
command = ["sh", "-c", {verify:?}]
timeout_ms = 20000
interval_ms = 20
"#,
            mark = mark(&lab.instance),
            prefix = t.prefix,
            prefix6 = t.prefix6,
            stop = stop_hook,
            restart = start("FERRY_FROM"),
            start = format!("{} sleep {START_SECS}", start("FERRY_TO")),
            unstart = kill("FERRY_TO"),
        );
        let head = planfile::two_sites(lab, PLAN);
        let plan = planfile::write(out, "chaos-plan.toml", &format!("{head}{rest}"))?;
        let start_vm = start("FERRY_TO");
        Ok(Self {
            exe,
            disk,
            plan,
            state_dir,
            start_vm,
        })
    }

    /// Hand the active VM's responder over from the lab to the plan's hooks: stop the one the
    /// lab started and start it the way the start hook does, so a later `stop-vm` hook (which
    /// kills what runs in the VM's namespace) and the lab agree on who runs it.
    pub fn take_over_vm(&self, lab: &mut LabInstance, site: Site) -> Result<()> {
        lab.stop_responder(site)?;
        proc::run(
            Command::new("sh")
                .args(["-c", &self.start_vm])
                .env("FERRY_TO", site.name()),
            Duration::from_secs(10),
        )?;
        Ok(())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args).arg("--state-dir").arg(&self.state_dir);
        c
    }

    /// `failover` towards the recovery site, `failback` towards the primary.
    fn move_args(&self, to: Site) -> Vec<String> {
        let cmd = if to == Site::Primary {
            "failback"
        } else {
            "failover"
        };
        vec![
            cmd.into(),
            "--yes".into(),
            "--plan".into(),
            self.plan.display().to_string(),
        ]
    }

    /// Move the subnet to `to` and wait for the controller (at most `timeout`); its stdout.
    pub fn move_to(&self, to: Site, timeout: Duration) -> Result<String> {
        let args = self.move_args(to);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        proc::run(&mut self.command(&args), timeout)
    }

    /// Start the move to `to` in the background (to be killed, or to meet a full disk); its
    /// stdout and stderr go to `log`.
    pub fn spawn_move(&self, to: Site, log: &Path) -> Result<Child> {
        let args = self.move_args(to);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let file = std::fs::File::create(log)
            .map_err(|e| LabError::step(format!("creating {}", log.display()), e))?;
        let err = file
            .try_clone()
            .map_err(|e| LabError::step(format!("opening {}", log.display()), e))?;
        self.command(&args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| LabError::step("starting ferry failover", e))
    }

    /// `ferry failover resume` (or `abort`) of the plan's unfinished run; its stdout.
    pub fn finish(&self, abort: bool, timeout: Duration) -> Result<String> {
        let cmd = if abort { "abort" } else { "resume" };
        proc::run(
            &mut self.command(&["failover", cmd, "--plan-name", PLAN]),
            timeout,
        )
    }

    /// Processes a hook of this lab started that still run outside the lab's namespaces (a
    /// hook or its `sleep` left by a killed controller and not ended by resume or abort).
    /// The VMs' responders carry the mark too, but live in the VMs' namespaces.
    pub fn hook_orphans(instance: &str) -> Vec<u32> {
        let mark = mark(instance);
        let inside: std::collections::BTreeSet<u32> = super::netns::list(instance)
            .unwrap_or_default()
            .iter()
            .flat_map(|ns| super::netns::pids(ns))
            .collect();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| !inside.contains(pid))
            .filter(|pid| {
                // A zombie has an empty environment: it runs nothing.
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()))
            })
            .collect()
    }

    /// The site the journals say announces the subnet.
    pub fn active(&self) -> Result<Site> {
        let listing = runs::of_plan(&self.state_dir, PLAN)
            .map_err(|e| LabError::step("reading the controller's journals", e))?;
        if let Some(u) = listing.unreadable.first() {
            return Err(LabError::step("reading the controller's journals", u));
        }
        let Some(last) = listing.runs.last() else {
            return Ok(Site::Primary);
        };
        if !last.finished() {
            return Err(LabError::step(
                "the controller's journal",
                format!("run {} is {}", last.run_id, last.state()),
            ));
        }
        match last.active.as_deref() {
            Some(a) if a == Site::Primary.name() => Ok(Site::Primary),
            Some(a) if a == Site::Recovery.name() => Ok(Site::Recovery),
            other => Err(LabError::step(
                "the controller's journal",
                format!("run {} names active site {other:?}", last.run_id),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_carrying_the_hook_mark_outside_the_lab_is_an_orphan() {
        let instance = format!("co{}", std::process::id() % 100_000);
        assert!(Controller::hook_orphans(&instance).is_empty());
        let (k, v) = mark(&instance)
            .split_once('=')
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .unwrap();
        let mut child = Command::new("sleep").arg("30").env(k, v).spawn().unwrap();
        let found = Controller::hook_orphans(&instance);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
        assert!(Controller::hook_orphans(&instance).is_empty());
    }
}
