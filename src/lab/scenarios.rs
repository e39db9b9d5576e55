//! `ferry lab demo` and `ferry lab test`: a lab brought up for the run, watched while the
//! subnet moves ([`Bench`]), analysed, reported, and taken down again — also when a step fails
//! or the run is interrupted ([`DownGuard`]).
//!
//! Test scenarios, each passing only when the client's probes end up answered by the expected
//! site within the bound: planned failover and failback in both orders (make-before-break,
//! break-before-make), unplanned loss of the primary VM, a speaker restart (SIGKILL, then the
//! routes come back from its state_dir), the same with graceful restart (RFC 4724: the router
//! keeps the route while the speaker restarts, so the client loses nothing) against the same
//! without it (the loss it avoids), graceful shutdown (RFC 8326) against a plain withdraw with
//! both sites serving ([`super::gshut`]), loss of the primary site router (SIGKILL of bgpd),
//! and fencing: a leased announcement nobody renews is withdrawn by the speaker itself.
//! `--only GROUP` runs one group of them ([`GROUPS`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::frr::UPDATES_LOG;
use super::instance::{down, LabInstance};
use super::moves::{analyze, run_move, MoveRun, MoveSpec, Order};
use super::probe::Prober;
use super::report::{self, Report};
use super::topology::Site;
use super::watch::{bgp_changes, EventWatcher, RouteMonitor};
use super::{now_us, proc, LabError, Result};
use crate::api::{blocking, Event};

/// The prober's record file in a run's output directory.
pub const PROBES_FILE: &str = "probes.csv";

/// Takes the instance down when dropped (end of run, error, panic).
pub struct DownGuard(pub String);

impl Drop for DownGuard {
    fn drop(&mut self) {
        if let Err(e) = down(&self.0) {
            eprintln!("ferry lab: removing lab {}: {e}", self.0);
        }
    }
}

/// A progress printer with time since the start of the run.
#[derive(Clone, Copy)]
pub struct Say {
    pub t0: i64,
    pub verbose: bool,
}

impl Say {
    pub fn line(&self, msg: &str) {
        if self.verbose {
            crate::lab::human(format_args!(
                "[{:>8.3} s] {msg}",
                (super::now_us() - self.t0) as f64 / 1e6
            ));
        }
    }
}

/// A lab being watched: prober in the client, a kernel route monitor in every router (the
/// third site's says what it sees), speaker events; at the end, the routers' bgpd logs.
pub struct Bench {
    pub lab: LabInstance,
    prober: Prober,
    monitors: Vec<(String, RouteMonitor)>,
    events: EventWatcher,
    pub runs: Vec<MoveRun>,
    pub dir: PathBuf,
    pub say: Say,
}

impl Bench {
    /// Every session of `site`'s speaker is Established.
    pub fn sessions_up(&self, site: Site) -> bool {
        self.lab.peers(site).is_ok_and(|p| {
            p.iter()
                .all(|p| p.state == crate::api::SessionState::Established)
        })
    }

    /// Wait up to `within` until `site`'s sessions are up and the third site routes via it.
    pub fn wait_serving(&self, site: Site, within: Duration) -> bool {
        proc::poll(within, Duration::from_millis(20), || {
            self.sessions_up(site) && self.lab.route_via(site)
        })
    }

    pub fn start(lab: LabInstance, dir: &Path, say: Say) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LabError::step(format!("creating {}", dir.display()), e))?;
        let t = &lab.topo;
        let prefix = t.prefix.to_string();
        let third = lab.ns(&t.router(Site::Third).name);
        let topo = t.clone();
        let p = prefix.clone();
        let third_monitor = RouteMonitor::start(&third, move |rc| {
            if rc.prefix == p {
                let site = rc.via.and_then(|v| topo.site_of_next_hop(v));
                say.line(&format!(
                    "  third site kernel route: {} {}",
                    if rc.deleted { "deleted" } else { "now via" },
                    site.map_or_else(
                        || rc.via.map_or("-".into(), |v| v.to_string()),
                        |s| s.to_string()
                    )
                ));
            }
        })?;
        let mut monitors = vec![(t.router(Site::Third).name.clone(), third_monitor)];
        for site in [Site::Primary, Site::Recovery] {
            let name = t.router(site).name.clone();
            monitors.push((name.clone(), RouteMonitor::start(&lab.ns(&name), |_| {})?));
        }
        let net = t.prefix;
        let events = EventWatcher::start(
            vec![
                (Site::Primary, lab.speaker_socket(Site::Primary)),
                (Site::Recovery, lab.speaker_socket(Site::Recovery)),
            ],
            move |e| {
                if let Event::RoutesSent {
                    announced,
                    withdrawn,
                    ..
                } = &e.event
                {
                    if announced.contains(&net) {
                        say.line(&format!(
                            "  {} speaker: UPDATE announcing {net} sent",
                            e.site
                        ));
                    } else if withdrawn.contains(&net) {
                        say.line(&format!(
                            "  {} speaker: UPDATE withdrawing {net} sent",
                            e.site
                        ));
                    }
                }
            },
        )?;
        let client = lab.ns(&t.client().map(|c| c.name.clone()).unwrap_or_default());
        let target = std::net::SocketAddr::from((t.vm_address, t.probe_port));
        let prober = Prober::start(
            lab.rt.as_ref(),
            &client,
            target,
            lab.dir.join(PROBES_FILE),
            dir.join(PROBES_FILE),
            move |line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let ["answer", _, _, tag, gap] = f.as_slice() {
                    let gap: u64 = gap.parse().unwrap_or(0);
                    if gap > 0 {
                        say.line(&format!(
                            "  client: answered by {tag} again after {gap} lost probes"
                        ));
                    } else {
                        say.line(&format!("  client: probes answered by {tag}"));
                    }
                }
            },
        )?;
        let active = lab.state.active.unwrap_or(Site::Primary);
        if !prober.wait_for(active.name(), 50, Duration::from_secs(5)) {
            return Err(LabError::step(
                "prober",
                format!("the client's probes are not answered by the {active} VM"),
            ));
        }
        Ok(Self {
            lab,
            prober,
            monitors,
            events,
            runs: Vec::new(),
            dir: dir.to_owned(),
            say,
        })
    }

    pub fn planned(&mut self, name: &str, to: Site, order: Order, bound: Duration) -> Result<bool> {
        let spec = MoveSpec {
            name: name.into(),
            from: to.other(),
            to,
            order,
        };
        let say = self.say;
        let run = run_move(
            &mut self.lab,
            &self.prober,
            &spec,
            bound,
            Duration::from_millis(700),
            &|m| say.line(&m),
        )?;
        let ok = run.converged;
        self.runs.push(run);
        Ok(ok)
    }

    /// The running prober (its live state and `answer` lines).
    pub fn prober(&self) -> &Prober {
        &self.prober
    }

    /// The third site's kernel route changes so far.
    pub fn third_routes(&self) -> Vec<super::watch::RouteChange> {
        self.monitors[0].1.changes()
    }

    /// Wait until the probes are answered by `site` (after an unplanned event).
    pub fn converges_to(&self, site: Site, bound: Duration) -> bool {
        self.prober.wait_for(site.name(), 50, bound)
    }

    /// Stop watching; analyse every move; write report.json and timeline.svg.
    pub fn finish(self) -> Result<Report> {
        let Bench {
            lab,
            prober,
            monitors,
            events,
            runs,
            dir,
            ..
        } = self;
        let probes = prober.finish()?;
        let ev = events.events();
        let kernel: BTreeMap<_, _> = monitors
            .iter()
            .map(|(name, m)| (name.clone(), m.changes()))
            .collect();
        let prefix = lab.topo.prefix.to_string();
        let bgp: BTreeMap<_, _> = lab
            .topo
            .routers
            .iter()
            .map(|r| {
                let log = lab.dir.join(&r.name).join(UPDATES_LOG);
                (r.name.clone(), bgp_changes(&log, &prefix))
            })
            .collect();
        let moves: Vec<_> = runs
            .iter()
            .map(|r| analyze(&lab.topo, r, &probes, &ev, &kernel, &bgp))
            .collect();
        let rep = Report {
            topology: lab.topo.name.clone(),
            instance: lab.instance.clone(),
            probe_interval_ms: 1.0,
            probes_sent: probes.len(),
            probes_lost: probes.iter().filter(|p| p.tag.is_none()).count(),
            summary: report::summarize(&moves),
            moves,
        };
        report::write(&dir, &rep, &probes)?;
        Ok(rep)
    }
}

/// Print the summary lines of a report.
pub fn print_summary(rep: &Report) {
    for m in &rep.moves {
        match (m.loss_ms, &m.parts) {
            (Some(l), Some(p)) => crate::lab::human(format_args!(
                "  {:<28} loss {l:>7.1} ms = cutover {:.2} + ferry {:.2} + routers {:.2} + data plane {:.2}",
                m.name, p.cutover_ms, p.ferry_ms, p.routers_ms, p.dataplane_ms
            )),
            (Some(l), None) => crate::lab::human(format_args!("  {:<28} loss {l:>7.1} ms (parts unknown)", m.name)),
            _ => crate::lab::human(format_args!("  {:<28} no loss window found", m.name)),
        }
    }
    let s = &rep.summary;
    let f = |name: &str, st: &Option<report::Stat>| {
        if let Some(st) = st {
            crate::lab::human(format_args!(
                "  {name:<14} median {:>8.2} ms   max {:>8.2} ms   (n={})",
                st.median, st.max, st.n
            ));
        }
    };
    crate::lab::human(format_args!(
        "over {} moves ({} converged):",
        s.moves, s.converged
    ));
    f("loss window", &s.loss_ms);
    f("  cutover", &s.cutover_ms);
    f("  ferry", &s.ferry_ms);
    if let Some(st) = &s.ferry_ms {
        crate::lab::human(format_args!(
            "    (ferry to the UPDATE's receipt at the site router in {} of {} moves, else to the speaker's event)",
            s.ferry_from_site_router_log, st.n
        ));
    }
    f("  routers", &s.routers_ms);
    f("  data plane", &s.dataplane_ms);
}

/// Neighbor options of a speaker with graceful restart.
const GRACEFUL_RESTART: &str = "graceful_restart = true\nrestart_time = 30\n";

/// How long a killed speaker stays down in the graceful-restart scenarios (well inside the
/// 30 s restart time).
const RESTART_DOWN_FOR: Duration = Duration::from_secs(3);

/// What a SIGKILL and restart of a speaker cost.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartCost {
    /// The client's probes had a gap (lost probes) meanwhile.
    pub probe_gap: bool,
    /// How long the third site's kernel had no route for the subnet, if it lost it.
    pub route_missing_ms: Option<f64>,
}

/// SIGKILL the speaker at `site` (it announces the subnet), start it again `down_for` later
/// with `neighbor_extra` in its neighbor config, wait until the route and the probes are
/// steady, and say what it cost the client and the third site. A restart much faster than a
/// second hides in the routers' update batching either way; a real crash and restart takes
/// seconds.
pub fn speaker_kill_restart(
    bench: &mut Bench,
    site: Site,
    neighbor_extra: &str,
    down_for: Duration,
    bound: Duration,
) -> Result<RestartCost> {
    let name = "speaker kill and restart";
    let gap_mark = bench.prober.live().steady_since;
    let t0 = now_us();
    bench.lab.kill_speaker(site)?;
    std::thread::sleep(down_for);
    bench.lab.start_speaker_with(site, neighbor_extra)?;
    let up = bench.wait_serving(site, bound + Duration::from_secs(10));
    if !up {
        return Err(LabError::step(
            name,
            "the restarted speaker's route did not come back",
        ));
    }
    // Let a withdrawal or a stale sweep show, if one comes.
    std::thread::sleep(Duration::from_secs(2));
    if !bench.converges_to(site, bound) {
        return Err(LabError::step(name, "the client's probes did not recover"));
    }
    let prefix = bench.lab.topo.prefix.to_string();
    let changes: Vec<_> = bench
        .third_routes()
        .into_iter()
        .filter(|c| c.at_us >= t0 && c.prefix == prefix)
        .collect();
    let route_missing_ms = changes.iter().position(|c| c.deleted).map(|i| {
        let back = changes[i..]
            .iter()
            .find(|c| !c.deleted)
            .map_or(now_us(), |c| c.at_us);
        (back - changes[i].at_us) as f64 / 1000.0
    });
    Ok(RestartCost {
        probe_gap: bench.prober.live().steady_since != gap_mark,
        route_missing_ms,
    })
}

/// `ferry lab demo`: up, `moves` alternating planned moves (failover, failback, ...), report, down.
pub fn demo(
    instance: &str,
    topology: Option<PathBuf>,
    out: &Path,
    moves: usize,
    order: Order,
) -> Result<Report> {
    let mut lab = LabInstance::new(instance, topology)?;
    super::instance::preflight(lab.rt.as_ref(), &lab.topo)?;
    let _guard = DownGuard(instance.into());
    let say = Say {
        t0: now_us(),
        verbose: true,
    };
    lab.up(&|m| say.line(m))?;
    let mut bench = Bench::start(lab, out, say)?;
    for i in 0..moves {
        let to = bench.lab.state.active.unwrap_or(Site::Primary).other();
        let name = if to == Site::Recovery {
            "failover"
        } else {
            "failback"
        };
        let name = if moves > 2 {
            format!("{name}-{}", i + 1)
        } else {
            name.to_owned()
        };
        bench.planned(&name, to, order, Duration::from_secs(5))?;
    }
    say.line("analysing");
    let rep = bench.finish()?;
    say.line("taking the lab down");
    Ok(rep)
}

/// One scenario's outcome.
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Outcome {
    /// The outcome of scenario `name`, printed as it is recorded: the run's line
    /// `PASS name[: detail]` or `FAIL name[: detail]`.
    pub fn reported(name: &str, passed: bool, detail: String) -> Self {
        crate::lab::human(format_args!(
            "{} {name}{}",
            if passed { "PASS" } else { "FAIL" },
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        ));
        Self {
            name: name.into(),
            passed,
            detail,
        }
    }
}

/// The groups of `ferry lab test`, in the order they run; `--only GROUP` runs one. Each starts
/// with the primary site active and leaves it so, except `site-loss`, which runs last.
/// `session-reset` needs the speaker with graceful restart, so it runs `graceful-restart` too.
pub const GROUPS: [&str; 7] = [
    "planned",
    "graceful-shutdown",
    "vm-loss",
    "speaker-restart",
    "graceful-restart",
    "session-reset",
    "site-loss",
];

/// Plain and graceful withdraws each in this many repetitions.
const GSHUT_PER_MODE: usize = 5;
/// The graceful wait of those repetitions: r3 moves in about 0.1 s.
const GSHUT_SECS: u32 = 1;

/// `ferry lab test`: every scenario (or the group `only`) on one lab; returns the outcomes
/// and the report.
pub fn test(
    instance: &str,
    out: &Path,
    bound: Duration,
    verbose: bool,
    only: Option<&str>,
) -> Result<(Vec<Outcome>, Report)> {
    if let Some(g) = only.filter(|g| !GROUPS.contains(g)) {
        return Err(LabError::step(
            "--only",
            format!(
                "{g:?} is no scenario group; use one of {}",
                GROUPS.join(", ")
            ),
        ));
    }
    let wants = |group: &str| only.is_none_or(|o| o == group);
    let mut lab = LabInstance::new(instance, None)?;
    super::instance::preflight(lab.rt.as_ref(), &lab.topo)?;
    let _guard = DownGuard(instance.into());
    let say = Say {
        t0: now_us(),
        verbose,
    };
    lab.up(&|m| say.line(m))?;
    let mut bench = Bench::start(lab, out, say)?;
    let mut outcomes = Vec::new();
    let mut record = |name: &str, passed: bool, detail: String| {
        outcomes.push(Outcome::reported(name, passed, detail));
    };
    let planned = [
        (
            "planned-failover-make-before-break",
            Site::Recovery,
            Order::MakeBeforeBreak,
        ),
        (
            "planned-failback-make-before-break",
            Site::Primary,
            Order::MakeBeforeBreak,
        ),
        (
            "planned-failover-break-before-make",
            Site::Recovery,
            Order::BreakBeforeMake,
        ),
        (
            "planned-failback-break-before-make",
            Site::Primary,
            Order::BreakBeforeMake,
        ),
    ];
    for (name, to, order) in planned.into_iter().filter(|_| wants("planned")) {
        let r = bench.planned(name, to, order, bound);
        let ok = matches!(r, Ok(true)) && bench.lab.route_via(to);
        let detail = match r {
            Ok(true) if ok => String::new(),
            Ok(_) => format!(
                "probes not answered by the {to} VM within {} s",
                bound.as_secs_f32()
            ),
            Err(e) => e.to_string(),
        };
        record(name, ok, detail);
    }

    // Graceful shutdown (RFC 8326) against a plain withdraw, with an alternative path.
    // Its probes are counted from the prober's records, after the run.
    const GSHUT: &str = "graceful-shutdown-loses-less";
    let mut gshut_runs = None;
    if wants("graceful-shutdown") {
        match super::gshut::run(&mut bench, GSHUT_PER_MODE, GSHUT_SECS, bound) {
            Ok(runs) => gshut_runs = Some(runs),
            Err(e) => record(GSHUT, false, e.to_string()),
        }
    }

    if wants("vm-loss") {
        // Unplanned loss of the primary VM: it dies first; the failover follows once noticed.
        let name = "unplanned-vm-loss";
        let r = (|| -> Result<bool> {
            bench.lab.stop_responder(Site::Primary)?;
            std::thread::sleep(Duration::from_millis(200));
            bench.lab.start_responder(Site::Recovery)?;
            bench.lab.announce(Site::Recovery)?;
            bench.lab.withdraw(Site::Primary)?;
            bench.lab.state.active = Some(Site::Recovery);
            Ok(bench.converges_to(Site::Recovery, bound))
        })();
        record(
            name,
            matches!(r, Ok(true)),
            r.err().map(|e| e.to_string()).unwrap_or_default(),
        );
        // Back to primary for the next ones.
        let r = bench.planned(
            "failback-after-vm-loss",
            Site::Primary,
            Order::MakeBeforeBreak,
            bound,
        );
        if !matches!(r, Ok(true)) {
            record(
                "failback-after-vm-loss",
                false,
                "did not converge back to primary".into(),
            );
        }
    }

    if wants("speaker-restart") {
        // Speaker restart: SIGKILL, start again; it announces again from its state_dir.
        let name = "speaker-restart";
        let r = (|| -> Result<bool> {
            let sp = bench.lab.topo.speaker(Site::Primary).name.clone();
            let pid = bench
                .lab
                .state
                .process(&sp)
                .map(|p| p.pid)
                .ok_or_else(|| LabError::step(name, "no speaker pid"))?;
            proc::signal(pid, "KILL");
            proc::wait_gone(pid, Duration::from_secs(2));
            // The router notices at once (the kernel closes the dead speaker's connection) and the
            // third site loses the route: the restart has something to repair.
            if !proc::poll(Duration::from_secs(10), Duration::from_millis(10), || {
                !bench.lab.route_via(Site::Primary)
            }) {
                return Err(LabError::step(
                    name,
                    "the third site kept the route of a dead speaker",
                ));
            }
            bench.lab.start_speaker(Site::Primary)?;
            // The API's default timeout: the speaker has just started.
            let kept = blocking::Speaker::unix(bench.lab.speaker_socket(Site::Primary))
                .and_then(|s| s.announced().map_err(|e| e.to_string()))
                .map_err(|e| LabError::step(name, e))?;
            if !kept.iter().any(|r| r.prefix == bench.lab.topo.prefix) {
                return Err(LabError::step(
                    name,
                    "the restarted speaker lost its routes (state_dir)",
                ));
            }
            // Connect retry 1 s, then the session and the route: allow the bound plus 10 s.
            Ok(proc::poll(
                bound + Duration::from_secs(10),
                Duration::from_millis(20),
                || bench.lab.route_via(Site::Primary),
            ) && bench.converges_to(Site::Primary, bound))
        })();
        record(
            name,
            matches!(r, Ok(true)),
            r.err().map(|e| e.to_string()).unwrap_or_default(),
        );
    }

    // Graceful restart: the same SIGKILL and restart costs nothing with GR, and costs probes and
    // the third site's route without it (so this pair can fail either way).
    for (name, gr, want_loss) in [
        ("speaker-restart-without-gr-loses", "", true),
        ("speaker-restart-graceful", GRACEFUL_RESTART, false),
    ]
    .into_iter()
    .filter(|_| wants("graceful-restart") || wants("session-reset"))
    {
        let r = (|| -> Result<RestartCost> {
            if !gr.is_empty() {
                // The running speaker has no GR: one plain restart to start it with GR.
                speaker_kill_restart(&mut bench, Site::Primary, gr, Duration::ZERO, bound)?;
            }
            speaker_kill_restart(&mut bench, Site::Primary, gr, RESTART_DOWN_FOR, bound)
        })();
        let (ok, detail) = match r {
            Ok(c) => {
                let lost = c.probe_gap || c.route_missing_ms.is_some();
                (
                    lost == want_loss,
                    format!(
                        "client probes {}, third site route {}",
                        if c.probe_gap { "lost" } else { "all answered" },
                        c.route_missing_ms
                            .map_or("never lost".into(), |ms| format!("missing {ms:.0} ms"))
                    ),
                )
            }
            Err(e) => (false, e.to_string()),
        };
        record(name, ok, detail);
    }

    // With graceful restart on, a reset keeps the route at the routers, a hard reset (the
    // fencing path) drops it at once.
    for (name, hard, want_loss) in [
        ("reset-graceful-keeps-route", false, false),
        ("reset-hard-drops-route", true, true),
    ]
    .into_iter()
    .filter(|_| wants("session-reset"))
    {
        let (ok, detail) = match peer_reset(&bench, Site::Primary, hard, bound) {
            Ok(missing) => (
                missing.is_some() == want_loss,
                missing.map_or("third site route never lost".into(), |ms| {
                    format!("third site route missing {ms:.0} ms")
                }),
            ),
            Err(e) => (false, e.to_string()),
        };
        record(name, ok, detail);
    }

    if wants("site-loss") {
        // Loss of the primary site router: bgpd killed; recovery takes over.
        let name = "primary-router-loss";
        let r = (|| -> Result<bool> {
            let f = bench.lab.frr(Site::Primary);
            let pid = f
                .daemon_pid("bgpd")
                .ok_or_else(|| LabError::step(name, "no bgpd pid"))?;
            bench.lab.start_responder(Site::Recovery)?;
            bench.lab.stop_responder(Site::Primary)?;
            proc::signal(pid, "KILL");
            bench.lab.announce(Site::Recovery)?;
            bench.lab.state.active = Some(Site::Recovery);
            Ok(bench.converges_to(Site::Recovery, bound))
        })();
        record(
            name,
            matches!(r, Ok(true)),
            r.err().map(|e| e.to_string()).unwrap_or_default(),
        );

        // Fencing: the recovery speaker, cut off from its controller (nobody renews the lease),
        // withdraws a leased announcement by itself; the third site's route goes within lease + 1 s.
        let name = "lease-expiry-withdraws";
        let r = lease_expiry(&bench, Site::Recovery, 2);
        let (ok, detail) = match r {
            Ok((ok, detail)) => (ok, detail),
            Err(e) => (false, e.to_string()),
        };
        record(name, ok, detail);
    }

    let rep = bench.finish()?;
    if let Some(runs) = gshut_runs {
        let (ok, detail) = super::probe::read_records(&out.join(PROBES_FILE))
            .and_then(|probes| {
                let c = super::gshut::Comparison::new(GSHUT_SECS, runs, &probes);
                super::gshut::print(&c);
                super::gshut::write(out, &c)?;
                Ok(c.verdict())
            })
            .unwrap_or_else(|e| (false, e.to_string()));
        record(GSHUT, ok, detail);
    }
    Ok((outcomes, rep))
}

/// Reset the speaker's session at `site` (Cease/Administrative Reset, or with `hard`
/// Cease/Hard Reset), wait until it and the route are back; how long the third site's route was
/// missing, if it was.
fn peer_reset(bench: &Bench, site: Site, hard: bool, bound: Duration) -> Result<Option<f64>> {
    let name = "session reset";
    let peer = bench.lab.topo.speaker(site).peer;
    let speaker = blocking::Speaker::unix(bench.lab.speaker_socket(site))
        .map_err(|e| LabError::step(name, e))?;
    let t0 = now_us();
    speaker
        .reset(peer, hard)
        .map_err(|e| LabError::step(name, e))?;
    // The session comes back after connect-retry (1 s in the lab).
    std::thread::sleep(Duration::from_millis(500));
    let up = bench.wait_serving(site, bound + Duration::from_secs(10));
    if !up {
        return Err(LabError::step(
            name,
            "the session or the route did not come back",
        ));
    }
    std::thread::sleep(Duration::from_secs(1));
    let prefix = bench.lab.topo.prefix.to_string();
    let changes: Vec<_> = bench
        .third_routes()
        .into_iter()
        .filter(|c| c.at_us >= t0 && c.prefix == prefix)
        .collect();
    Ok(changes.iter().position(|c| c.deleted).map(|i| {
        let back = changes[i..]
            .iter()
            .find(|c| !c.deleted)
            .map_or(now_us(), |c| c.at_us);
        (back - changes[i].at_us) as f64 / 1000.0
    }))
}

/// Re-announce the subnet at `site` with a lease of `lease` seconds and never renew it: the
/// third site's route must go within lease + 1 s (the BGP sessions stay up).
fn lease_expiry(bench: &Bench, site: Site, lease: u32) -> Result<(bool, String)> {
    let name = "leased announcement";
    if !bench.lab.route_via(site) {
        return Err(LabError::step(
            name,
            format!("the route is not via the {site} site"),
        ));
    }
    let sp = bench.lab.topo.speaker(site);
    let mut route = crate::speaker::Route::new(bench.lab.topo.prefix)
        .and_then(|r| r.with_next_hop(sp.next_hop))
        .map_err(|e| LabError::step(name, e))?;
    route.lease_secs = Some(lease);
    route.validate().map_err(|e| LabError::step(name, e))?;
    let speaker = blocking::Speaker::unix(bench.lab.speaker_socket(site))
        .map_err(|e| LabError::step(name, e))?;
    let t0 = std::time::Instant::now();
    speaker
        .announce(vec![route])
        .map_err(|e| LabError::step(name, e))?;
    let gone = proc::poll(
        Duration::from_secs(u64::from(lease) + 5),
        Duration::from_millis(10),
        || !bench.lab.route_via(site),
    );
    let took = t0.elapsed();
    let established = bench.sessions_up(site);
    Ok((
        gone && established && took <= Duration::from_secs(u64::from(lease) + 1),
        format!(
            "third site's route gone {:.2} s after a {lease} s lease was granted and not renewed (session {})",
            took.as_secs_f64(),
            if established { "still up" } else { "down" }
        ),
    ))
}
