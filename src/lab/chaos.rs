//! `ferry lab chaos --seed N --minutes M`: failovers and failbacks in the three-site lab while
//! random faults are injected, with the invariants checked after every step.
//!
//! Each step draws, from a generator seeded by `--seed` (the same seed gives the same sequence
//! of faults and moves), one fault and whether a planned move (failover or failback, in either
//! order) follows it:
//! - `speaker-kill`: SIGKILL of one site's speaker, restarted 0-1.5 s later from its
//!   `state_dir`;
//! - `bgpd-kill`: SIGKILL of one site router's bgpd, restarted and configured again;
//! - `link-cut`: the link between one site's router and the third site's taken down for
//!   0.5-3 s, then up again;
//! - `controller-kill` (only with `--controller`): SIGKILL of the controller 0-3 s into the
//!   step's move (every such step moves), then `ferry failover resume` or `abort`, drawn;
//! - `disk-full` (only with `--controller`): the controller's state disk (a tmpfs) filled
//!   either before the step's move (the controller must refuse, nothing moves) or 0-3 s into
//!   it; freed once the controller has exited, then `resume`;
//! - `none`: only the move.
//!
//! With `--controller` the moves are made by the failover controller ([`super::chaos_ctl`]:
//! `ferry failover` / `failback` subprocesses, a plan written for the lab, journals in
//! `OUT/controller/`), and the active site is the one its journal names; without it, by the
//! lab's own calls to the speakers ([`super::moves`]), and the draw of a seed is as before.
//! The controller's plan is break-before-make: there the drawn order only says whether a move
//! follows.
//!
//! After each step (faults healed, the move done) these invariants are checked, and the run
//! stops at the first one violated, naming it, the step, its fault and the seed, and keeps the
//! speakers' and routers' logs in `OUT/logs/`. A fault that cannot be healed (`fault-healed`:
//! a speaker or bgpd that does not start again) or a move whose calls fail (`moved`) is a
//! violation too.
//! 1. `acknowledged`: the active site's speaker holds both of the subnet's routes (IPv4 and
//!    IPv6) it acknowledged, the other site's holds neither: a restarted speaker lost nothing
//!    and resurrected nothing (read back through each speaker's API). With the controller, the
//!    active site is the one its journal says; a journal left unfinished (after resume or
//!    abort) or unreadable violates this too.
//! 2. `routed`: within the recovery bound every BGP session of the lab (routers and speakers)
//!    is Established again and the third site's kernel routes the subnet via the active site.
//! 3. `served`: the client's probes are answered by the active site's VM again.
//! 4. `no-leak`: no namespace of the lab holds more processes than after `up` (the VM
//!    namespaces compared by role: the active site's VM runs the responder), and no process a
//!    plan hook started runs outside the lab (a killed hook's child that resume or abort did
//!    not end).
//!
//! Never does: inject a fault other than `controller-kill` in the middle of a move (the
//! make-before-break window, where both sites announce on purpose, is not checked), check
//! anything while an interrupted controller's run is unfinished, fill a speaker's state disk
//! (covered by the speaker's fault tests), or touch anything outside the lab's own namespaces
//! and processes (and, with the controller, the output directory and the tmpfs it mounts
//! there).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::chaos_ctl::Controller;
use super::instance::LabInstance;
use super::moves::Order;
use super::scenarios::{Bench, DownGuard, Say};
use super::topology::Site;
use super::{netns, now_us, proc, LabError, Result};

/// What one chaos run is asked to do.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub seed: u64,
    /// Steps are started until this much time has passed since the lab came up.
    pub duration: Duration,
    /// How long a planned move may take to converge.
    pub move_bound: Duration,
    /// How long the lab may take to recover from a healed fault (BGP sessions back).
    pub recover_bound: Duration,
    pub out: PathBuf,
    pub verbose: bool,
    /// Moves through the failover controller (`ferry failover`), which may then be killed.
    pub controller: bool,
}

/// The first invariant that did not hold.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub step: usize,
    /// The step's fault and move, as drawn.
    pub fault: String,
    pub invariant: &'static str,
    pub detail: String,
}

impl Violation {
    fn new(invariant: &'static str, detail: String) -> Self {
        Self {
            step: 0,
            fault: String::new(),
            invariant,
            detail,
        }
    }
}

/// What a run did; written to `chaos.json` in the output directory.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub steps: usize,
    pub moves: usize,
    /// Faults injected, per class.
    pub faults: BTreeMap<&'static str, usize>,
    /// `controller-kill`s that found the controller still moving (the others came after it
    /// finished: nothing to resume or abort).
    pub killed_mid_move: usize,
    /// `disk-full`s that met the controller: a move refused on a full disk, or a disk filled
    /// while the controller was moving.
    pub disk_full_met: usize,
    /// Invariant checks that held.
    pub checks_passed: usize,
    pub seconds: f64,
    pub violation: Option<Violation>,
}

/// One drawn fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    SpeakerKill {
        site: Site,
        down_for: Duration,
    },
    BgpdKill {
        site: Site,
    },
    LinkCut {
        site: Site,
        down_for: Duration,
    },
    /// SIGKILL of the controller `after` its move started, then `abort` or resume.
    ControllerKill {
        after: Duration,
        abort: bool,
    },
    /// The controller's state disk filled `after` its move started (`before`: filled before
    /// it starts), freed once the controller has exited, then resume.
    DiskFull {
        before: bool,
        after: Duration,
    },
    None,
}

impl Fault {
    pub fn class(&self) -> &'static str {
        match self {
            Fault::SpeakerKill { .. } => "speaker-kill",
            Fault::BgpdKill { .. } => "bgpd-kill",
            Fault::LinkCut { .. } => "link-cut",
            Fault::ControllerKill { .. } => "controller-kill",
            Fault::DiskFull { .. } => "disk-full",
            Fault::None => "none",
        }
    }
}

/// splitmix64: a small deterministic generator, so a seed replays the same run.
#[derive(Debug, Clone)]
pub struct Draw(u64);

impl Draw {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }

    fn site(&mut self) -> Site {
        if self.below(2) == 0 {
            Site::Primary
        } else {
            Site::Recovery
        }
    }

    /// A fault of the lab's own moves (no controller to kill).
    pub fn fault(&mut self) -> Fault {
        self.fault_among(4)
    }

    /// A fault when the controller makes the moves: `controller-kill` and `disk-full` drawn
    /// too. The other classes keep their numbers, so `fault` of a seed is unchanged.
    pub fn fault_with_controller(&mut self) -> Fault {
        self.fault_among(6)
    }

    fn fault_among(&mut self, classes: u64) -> Fault {
        match self.below(classes) {
            0 => Fault::SpeakerKill {
                site: self.site(),
                down_for: self.millis(0, 1500),
            },
            1 => Fault::BgpdKill { site: self.site() },
            2 => Fault::LinkCut {
                site: self.site(),
                down_for: self.millis(500, 3000),
            },
            4 => Fault::ControllerKill {
                after: self.millis(0, 3000),
                abort: self.below(2) == 0,
            },
            5 => Fault::DiskFull {
                before: self.below(2) == 0,
                after: self.millis(0, 3000),
            },
            _ => Fault::None,
        }
    }

    /// Whether a move follows the fault, and in which order.
    pub fn moves(&mut self) -> Option<Order> {
        match self.below(3) {
            0 => None,
            1 => Some(Order::MakeBeforeBreak),
            _ => Some(Order::BreakBeforeMake),
        }
    }
}

/// Run chaos on a new lab `instance`; the lab is taken down at the end, also on error.
pub fn run(instance: &str, opts: &ChaosOptions) -> Result<ChaosReport> {
    let mut lab = LabInstance::new(instance, None)?;
    super::instance::preflight(lab.rt.as_ref(), &lab.topo)?;
    let _guard = DownGuard(instance.into());
    let say = Say {
        t0: now_us(),
        verbose: opts.verbose,
    };
    lab.up(&|m| say.line(m))?;
    let mut bench = Bench::start(lab, &opts.out, say)?;
    let ctl = match opts.controller {
        true => Some(hand_to_controller(&mut bench, opts)?),
        false => None,
    };
    let baseline = process_counts(&bench.lab);
    let started = Instant::now();
    let mut draw = Draw::new(opts.seed);
    let mut rep = ChaosReport {
        seed: opts.seed,
        steps: 0,
        moves: 0,
        faults: BTreeMap::new(),
        killed_mid_move: 0,
        disk_full_met: 0,
        checks_passed: 0,
        seconds: 0.0,
        violation: None,
    };
    while started.elapsed() < opts.duration {
        rep.steps += 1;
        let step = rep.steps;
        let fault = match ctl {
            Some(_) => draw.fault_with_controller(),
            None => draw.fault(),
        };
        let order = draw.moves();
        say.line(&format!(
            "step {step}: fault {fault:?}, then move {order:?}"
        ));
        if fault != Fault::None {
            *rep.faults.entry(fault.class()).or_default() += 1;
        }
        if let Err(mut v) = one_step(
            &mut bench,
            ctl.as_ref(),
            fault,
            order,
            &baseline,
            opts,
            &mut rep,
        ) {
            v.step = step;
            v.fault = format!("{fault:?}, then move {order:?}");
            rep.violation = Some(v);
            keep_logs(&bench.lab, &opts.out);
            break;
        }
    }
    rep.seconds = started.elapsed().as_secs_f64();
    write(&opts.out, &rep)?;
    // The guard takes the lab down; `down` here would race it.
    drop(bench);
    Ok(rep)
}

/// Inject `fault`, check the lab recovered, then make the move (if any) and check again. A
/// fault that cannot be injected or healed (a speaker or bgpd that does not start again) and a
/// move whose calls fail are violations too: the lab did not take the fault.
fn one_step(
    bench: &mut Bench,
    ctl: Option<&Controller>,
    fault: Fault,
    order: Option<Order>,
    baseline: &BTreeMap<String, usize>,
    opts: &ChaosOptions,
    rep: &mut ChaosReport,
) -> std::result::Result<(), Violation> {
    inject(bench, fault).map_err(|e| Violation::new("fault-healed", e.to_string()))?;
    // Recover first: a move starts from a lab whose sessions are up.
    let active = match ctl {
        Some(c) => journal_active(c)?,
        None => bench.lab.state.active.unwrap_or(Site::Primary),
    };
    check(bench, active, baseline, opts, &mut rep.checks_passed)?;
    // The controller can only be killed (or find its disk full) in a move: those faults
    // always bring one.
    let in_move = matches!(fault, Fault::ControllerKill { .. } | Fault::DiskFull { .. });
    let order = match in_move {
        true => order.or(Some(Order::BreakBeforeMake)),
        false => order,
    };
    let Some(order) = order else {
        return Ok(());
    };
    let to = active.other();
    let now = match ctl {
        None => {
            let name = format!("chaos-{}-{}", rep.steps, to.name());
            bench
                .planned(&name, to, order, opts.move_bound)
                .map_err(|e| Violation::new("moved", e.to_string()))?;
            to
        }
        Some(c) => {
            if controller_move(c, bench.say, fault, to, opts)
                .map_err(|e| Violation::new("moved", e.to_string()))?
            {
                match fault {
                    Fault::DiskFull { .. } => rep.disk_full_met += 1,
                    _ => rep.killed_mid_move += 1,
                }
            }
            let now = journal_active(c)?;
            // Only an interrupted controller's run may end where it started (aborted, rolled
            // back, or stopped before its journal began); a plain move that did not arrive
            // is a failed move.
            if now != to && !in_move {
                return Err(Violation::new(
                    "moved",
                    format!("the controller's journal says {now} is active after a move to {to}"),
                ));
            }
            now
        }
    };
    if now == to {
        rep.moves += 1;
    }
    check(bench, now, baseline, opts, &mut rep.checks_passed)?;
    Ok(())
}

/// Give the active VM's responder to the controller's hooks (see [`Controller::take_over_vm`])
/// and wait until the probes are answered by it again.
fn hand_to_controller(bench: &mut Bench, opts: &ChaosOptions) -> Result<Controller> {
    let ctl = Controller::new(&bench.lab, &opts.out)?;
    ctl.take_over_vm(&mut bench.lab, Site::Primary)?;
    if !bench.converges_to(Site::Primary, Duration::from_secs(10)) {
        return Err(LabError::step(
            "controller's responder",
            "the primary VM started by the plan's hook does not answer the probes",
        ));
    }
    bench.say.line(&format!(
        "moves through the controller: plan {}, state {}",
        ctl.plan.display(),
        ctl.state_dir.display()
    ));
    Ok(ctl)
}

/// The active site as the controller's journal says (an unreadable or unfinished journal is
/// a violation of `acknowledged`: nobody could tell which site should announce).
fn journal_active(c: &Controller) -> std::result::Result<Site, Violation> {
    c.active()
        .map_err(|e| Violation::new("acknowledged", e.to_string()))
}

/// One move by the controller. With `controller-kill` it is SIGKILLed `after` its start, then
/// its run resumed or aborted; with `disk-full` its state disk is filled `after` its start,
/// freed once it has exited, then its run resumed (or, `before`, filled before it starts).
/// Whether the fault met the controller: still moving (one that finished first was not
/// interrupted), or refusing to start on the full disk.
fn controller_move(
    c: &Controller,
    say: Say,
    fault: Fault,
    to: Site,
    opts: &ChaosOptions,
) -> Result<bool> {
    // Two 5 s hooks and a 20 s verification, on a loaded machine.
    let bound = opts.move_bound.max(Duration::from_secs(60));
    let (after, abort) = match fault {
        Fault::ControllerKill { after, abort } => (after, abort),
        Fault::DiskFull { before: true, .. } => {
            c.disk.fill()?;
            let r = c.move_to(to, bound);
            c.disk.free()?;
            let refused = match r {
                Ok(out) => {
                    say.line(&format!(
                        "  controller on a full state disk: {}",
                        last_word(&out)
                    ));
                    false
                }
                Err(e) => {
                    let e = e.to_string();
                    let why = e.lines().find(|l| l.contains("No space")).unwrap_or(&e);
                    say.line(&format!("  controller on a full state disk refused: {why}"));
                    true
                }
            };
            let out = c.finish(false, bound)?;
            say.line(&format!("  controller resume: {}", last_word(&out)));
            return Ok(refused);
        }
        Fault::DiskFull { after, .. } => (after, false),
        _ => {
            let out = c.move_to(to, bound)?;
            say.line(&format!("  controller: {}", last_word(&out)));
            return Ok(false);
        }
    };
    let log = opts.out.join("interrupted-move.log");
    let mut child = c.spawn_move(to, &log)?;
    let wait = |child: &mut std::process::Child, within: Duration| {
        let started = Instant::now();
        loop {
            let done = child
                .try_wait()
                .map_err(|e| LabError::step("waiting for ferry failover", e))?;
            if done.is_some() || started.elapsed() >= within {
                return Ok(done);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let done = wait(&mut child, after)?;
    let interrupted = done.is_none();
    if let Some(status) = done {
        say.line(&format!(
            "  controller finished ({status}) before the fault at {} ms",
            after.as_millis()
        ));
    } else if let Fault::DiskFull { .. } = fault {
        c.disk.fill()?;
        let ended = wait(&mut child, bound);
        let freed = c.disk.free();
        let status = match ended? {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::step(
                    "ferry failover on a full state disk",
                    format!("still running {} s after the disk filled", bound.as_secs()),
                ));
            }
        };
        freed?;
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        say.line(&format!(
            "  state disk filled {} ms into the move: controller {status}: {}",
            after.as_millis(),
            said.lines().last().unwrap_or("")
        ));
    } else {
        let _ = child.kill();
        let _ = child.wait();
        say.line(&format!(
            "  controller SIGKILLed {} ms into the move",
            after.as_millis()
        ));
    }
    let out = c.finish(abort, bound)?;
    say.line(&format!(
        "  controller {}: {}",
        if abort { "abort" } else { "resume" },
        last_word(&out)
    ));
    Ok(interrupted)
}

/// The controller's verdict: its output's line that says how the run ended.
fn last_word(out: &str) -> &str {
    out.lines()
        .find(|l| {
            ["completed in", "rolled back in", "nothing to"]
                .iter()
                .any(|w| l.contains(w))
        })
        .unwrap_or("(no verdict printed)")
}

/// Copy the speakers' logs and the routers' bgpd logs into `out/logs/` before the lab (and its
/// runtime directory) goes: what the first violation left behind is what explains it.
fn keep_logs(lab: &LabInstance, out: &Path) {
    let logs = out.join("logs");
    if std::fs::create_dir_all(&logs).is_err() {
        return;
    }
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for sp in &lab.topo.speakers {
        files.push((
            format!("{}-speaker.log", sp.name),
            lab.dir.join(&sp.name).join("speaker.log"),
        ));
    }
    for r in &lab.topo.routers {
        files.push((
            format!("{}-bgpd.log", r.name),
            lab.dir.join(&r.name).join("bgpd.log"),
        ));
    }
    for (name, from) in files {
        let _ = std::fs::copy(from, logs.join(name));
    }
}

fn inject(bench: &mut Bench, fault: Fault) -> Result<()> {
    match fault {
        Fault::SpeakerKill { site, down_for } => {
            bench.lab.kill_speaker(site)?;
            std::thread::sleep(down_for);
            bench.lab.start_speaker(site)
        }
        Fault::BgpdKill { site } => {
            let frr = bench.lab.frr(site);
            let pid = frr
                .daemon_pid("bgpd")
                .ok_or_else(|| LabError::step("bgpd-kill", format!("no bgpd of {}", frr.name)))?;
            proc::signal(pid, "KILL");
            proc::wait_gone(pid, Duration::from_secs(2));
            frr.start_daemon("bgpd")?;
            frr.load_config()
        }
        Fault::LinkCut { site, down_for } => {
            let (ns, ifname) = link_towards_third(&bench.lab, site)?;
            proc::ip(&["-n", &ns, "link", "set", &ifname, "down"])?;
            std::thread::sleep(down_for);
            proc::ip(&["-n", &ns, "link", "set", &ifname, "up"])?;
            Ok(())
        }
        // Injected in the move, by `controller_move`.
        Fault::ControllerKill { .. } | Fault::DiskFull { .. } | Fault::None => Ok(()),
    }
}

/// The namespace and interface of `site`'s router on its link to the third site's router.
fn link_towards_third(lab: &LabInstance, site: Site) -> Result<(String, String)> {
    let router = lab.topo.router(site).name.clone();
    let third = lab.topo.router(Site::Third).name.clone();
    lab.topo
        .links
        .iter()
        .find_map(|l| match (&l.a, &l.b) {
            (mine, other) | (other, mine) if mine.node == router && other.node == third => {
                Some(mine.ifname.clone())
            }
            _ => None,
        })
        .map(|ifname| (lab.ns(&router), ifname))
        .ok_or_else(|| LabError::step("link-cut", format!("no link {router} - {third}")))
}

/// Every invariant of the module docs, with `active` the site that should serve.
fn check(
    bench: &Bench,
    active: Site,
    baseline: &BTreeMap<String, usize>,
    opts: &ChaosOptions,
    passed: &mut usize,
) -> std::result::Result<(), Violation> {
    let violation = Violation::new;
    let lab = &bench.lab;
    let subnet = [lab.topo.prefix, lab.topo.prefix6];
    for site in [Site::Primary, Site::Recovery] {
        let held: Vec<_> = lab
            .routes(site)
            .map_err(|e| violation("acknowledged", format!("{site} speaker: {e}")))?
            .into_iter()
            .map(|r| r.prefix)
            .collect();
        let want: Vec<_> = if site == active {
            subnet.to_vec()
        } else {
            Vec::new()
        };
        let mut sorted = held.clone();
        sorted.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        if sorted != want_sorted {
            return Err(violation(
                "acknowledged",
                format!("{site} speaker holds {held:?}, acknowledged {want:?}"),
            ));
        }
    }
    *passed += 1;
    if let Err(e) = lab.wait_sessions(opts.recover_bound) {
        return Err(violation("routed", e.to_string()));
    }
    if !bench.wait_serving(active, opts.recover_bound) {
        return Err(violation(
            "routed",
            format!(
                "{active} speaker's sessions up and the third site routing via {active}: not within {} s",
                opts.recover_bound.as_secs()
            ),
        ));
    }
    *passed += 1;
    if !bench.converges_to(active, opts.recover_bound) {
        return Err(violation(
            "served",
            format!(
                "the client's probes not answered by the {active} VM within {} s",
                opts.recover_bound.as_secs()
            ),
        ));
    }
    *passed += 1;
    // The VM's responder moves with the active site: compare each VM namespace with the
    // one that had the same role (active or not) after `up`, when the primary was active.
    let vm_ns = |site: Site| lab.topo.vm(site).map(|h| lab.ns(&h.name));
    let role_of = |ns: &String| {
        [Site::Primary, Site::Recovery]
            .into_iter()
            .find(|s| vm_ns(*s).as_ref() == Some(ns))
            .map(|s| {
                if s == active {
                    Site::Primary
                } else {
                    Site::Recovery
                }
            })
    };
    let orphans = Controller::hook_orphans(&lab.instance);
    if !orphans.is_empty() {
        return Err(violation(
            "no-leak",
            format!("processes {orphans:?} started by a controller's hook still run"),
        ));
    }
    for (ns, n) in &process_counts(lab) {
        let like = role_of(ns).and_then(vm_ns).unwrap_or_else(|| ns.clone());
        let before = baseline.get(&like).copied().unwrap_or(0);
        if *n > before {
            return Err(violation(
                "no-leak",
                format!("namespace {ns} holds {n} processes, {before} after up"),
            ));
        }
    }
    *passed += 1;
    Ok(())
}

/// Processes per namespace of the lab.
fn process_counts(lab: &LabInstance) -> BTreeMap<String, usize> {
    netns::list(&lab.instance)
        .unwrap_or_default()
        .into_iter()
        .map(|ns| {
            let n = netns::pids(&ns).len();
            (ns, n)
        })
        .collect()
}

fn write(dir: &Path, rep: &ChaosReport) -> Result<()> {
    let path = dir.join("chaos.json");
    let text = serde_json::to_string_pretty(rep).unwrap_or_default();
    std::fs::write(&path, text + "\n")
        .map_err(|e| LabError::step(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_faults_and_every_class_is_drawn() {
        let run = |seed| {
            let mut d = Draw::new(seed);
            (0..200).map(|_| (d.fault(), d.moves())).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let classes: std::collections::BTreeSet<_> =
            run(7).iter().map(|(f, _)| f.class()).collect();
        assert_eq!(classes.len(), 4, "{classes:?}");
        assert!(
            !classes.contains("controller-kill"),
            "no controller to kill"
        );
        assert!(
            !classes.contains("disk-full"),
            "no controller's disk to fill"
        );
        for (f, _) in run(7) {
            match f {
                Fault::SpeakerKill { down_for, .. } => {
                    assert!(down_for <= Duration::from_millis(1500))
                }
                Fault::LinkCut { down_for, .. } => {
                    assert!((500..=3000).contains(&(down_for.as_millis() as u64)))
                }
                _ => {}
            }
        }
    }

    #[test]
    fn with_the_controller_every_class_and_both_endings_are_drawn() {
        let run = |seed| {
            let mut d = Draw::new(seed);
            (0..200)
                .map(|_| (d.fault_with_controller(), d.moves()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let classes: std::collections::BTreeSet<_> =
            run(7).iter().map(|(f, _)| f.class()).collect();
        assert_eq!(classes.len(), 6, "{classes:?}");
        let kills: Vec<_> = run(7)
            .into_iter()
            .filter_map(|(f, _)| match f {
                Fault::ControllerKill { after, abort } => Some((after, abort)),
                _ => None,
            })
            .collect();
        assert!(kills.iter().all(|(a, _)| *a <= Duration::from_secs(3)));
        assert!(kills.iter().any(|(_, abort)| *abort), "abort drawn");
        assert!(kills.iter().any(|(_, abort)| !abort), "resume drawn");
        for (f, _) in run(7) {
            if let Fault::DiskFull { after, .. } = f {
                assert!(after <= Duration::from_secs(3));
            }
        }
    }
}
