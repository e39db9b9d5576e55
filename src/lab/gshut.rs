//! The `graceful-shutdown` scenario of `ferry lab test`: a planned withdraw with graceful
//! shutdown (RFC 8326, `ferry withdraw --graceful N`) against a plain withdraw, where the third
//! site has another path.
//!
//! Set-up: both VMs answer and both speakers announce the subnet, so r3 holds two equally long
//! paths (via r1 and via r2) and uses the older one. The routers de-prefer a route carrying
//! GRACEFUL_SHUTDOWN (RFC 8326 §4: LOCAL_PREF 0, in the lab's route-maps and built into FRR 8.4
//! for eBGP routes).
//!
//! One repetition takes down the site r3 currently uses, the same way in both modes: the VM at
//! that site stops (SIGKILL of its responder) just before its speaker withdraws the subnet.
//! - plain: stop the VM, `POST /v1/withdraw` at once;
//! - graceful: `POST /v1/withdraw` with `graceful_secs: N` (the speaker re-announces with
//!   65535:0, waits N s, withdraws); the VM stops N s after the call, just before the
//!   withdrawal.
//!
//! Measured per repetition: the client's probes lost until the other site answers (one probe
//! per millisecond, so lost probes are the loss window in ms at 1 ms resolution), counted from
//! the prober's record file after the run (a probe answered late or out of order is not lost),
//! and when r3's kernel route moved to the other site relative to the VM's stop (negative:
//! before it). Then
//! the VM and the announcement come back, r3 stays on the other site (older path) and the next
//! repetition takes that one down. Modes alternate A B B A so each is measured at both sites.
//!
//! Never: touches a router's config, or leaves the lab in another state than it found it in
//! (the site that was active answers, only its speaker announces) unless a step fails.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::probe::Probe;
use super::report::{stat, Stat};
use super::scenarios::Bench;
use super::topology::Site;
use super::{now_us, proc, LabError, Result};
use crate::api::WithdrawRequest;

/// The prober's interval (`ferry lab probe` default).
const PROBE_INTERVAL_MS: f64 = 1.0;

/// One repetition as run; its probes are counted after the run ([`Comparison::new`]).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub index: usize,
    /// The site taken down (r3's path before).
    pub site: Site,
    pub graceful: bool,
    /// When the repetition started, the VM stopped, and the site came back (once the probes
    /// were answered by the other site); µs since the epoch.
    pub start_us: i64,
    pub stop_us: i64,
    pub end_us: i64,
    /// r3's kernel route via the other site, in ms after the VM stopped (negative: before).
    pub route_moved_ms: Option<f64>,
    /// The probes were answered by the other site, steadily, within the bound.
    pub converged: bool,
}

/// One repetition with its probes counted.
#[derive(Debug, Clone, Serialize)]
pub struct Rep {
    #[serde(flatten)]
    pub run: Run,
    /// Probes sent from the start of the repetition until the site came back.
    pub probes: usize,
    /// Of those, never answered.
    pub lost_probes: u64,
    /// `lost_probes` times the probe interval.
    pub loss_ms: f64,
    /// Of those, answered by the other site (the traffic did move).
    pub answered_by_other: usize,
}

/// All repetitions and the statistics per mode.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub graceful_secs: u32,
    pub probe_interval_ms: f64,
    pub reps: Vec<Rep>,
    pub plain_loss_ms: Option<Stat>,
    pub graceful_loss_ms: Option<Stat>,
    pub plain_route_moved_ms: Option<Stat>,
    pub graceful_route_moved_ms: Option<Stat>,
}

impl Comparison {
    /// Count each run's probes in the prober's records.
    pub fn new(graceful_secs: u32, runs: Vec<Run>, probes: &[Probe]) -> Self {
        let reps: Vec<Rep> = runs
            .into_iter()
            .map(|run| {
                let mine: Vec<&Probe> = probes
                    .iter()
                    .filter(|p| p.sent_us >= run.start_us && p.sent_us < run.end_us)
                    .collect();
                let lost = mine.iter().filter(|p| p.tag.is_none()).count() as u64;
                let other = run.site.other().name();
                Rep {
                    probes: mine.len(),
                    lost_probes: lost,
                    loss_ms: lost as f64 * PROBE_INTERVAL_MS,
                    answered_by_other: mine
                        .iter()
                        .filter(|p| p.tag.as_deref() == Some(other))
                        .count(),
                    run,
                }
            })
            .collect();
        let pick = |graceful: bool, f: &dyn Fn(&Rep) -> Option<f64>| {
            stat(
                reps.iter()
                    .filter(|r| r.run.graceful == graceful)
                    .filter_map(f)
                    .collect(),
            )
        };
        Self {
            graceful_secs,
            probe_interval_ms: PROBE_INTERVAL_MS,
            plain_loss_ms: pick(false, &|r| Some(r.loss_ms)),
            graceful_loss_ms: pick(true, &|r| Some(r.loss_ms)),
            plain_route_moved_ms: pick(false, &|r| r.run.route_moved_ms),
            graceful_route_moved_ms: pick(true, &|r| r.run.route_moved_ms),
            reps,
        }
    }

    /// Pass when every repetition moved the traffic to the other site, no graceful repetition
    /// lost a probe and r3's route moved in each before the VM stopped, and every plain
    /// repetition lost probes. So it fails either way: a drain the routers ignore loses what
    /// the plain withdraw loses; a lab whose plain withdraw loses nothing shows no gain.
    pub fn verdict(&self) -> (bool, String) {
        let (plain, graceful): (Vec<&Rep>, Vec<&Rep>) =
            self.reps.iter().partition(|r| !r.run.graceful);
        let all_moved = !self.reps.is_empty()
            && self
                .reps
                .iter()
                .all(|r| r.run.converged && r.answered_by_other > 0);
        let graceful_clean = !graceful.is_empty()
            && graceful
                .iter()
                .all(|r| r.lost_probes == 0 && r.run.route_moved_ms.is_some_and(|ms| ms < 0.0));
        let plain_loses = !plain.is_empty() && plain.iter().all(|r| r.lost_probes > 0);
        let fmt = |s: &Option<Stat>| {
            s.as_ref().map_or("-".into(), |s| {
                format!("median {:.0} ms, max {:.0} ms (n={})", s.median, s.max, s.n)
            })
        };
        let mut detail = format!(
            "loss plain {}; graceful ({} s) {}",
            fmt(&self.plain_loss_ms),
            self.graceful_secs,
            fmt(&self.graceful_loss_ms)
        );
        if !all_moved {
            detail.push_str("; some repetition did not move the probes to the other site");
        }
        if !graceful_clean {
            detail.push_str(
                "; a graceful withdraw lost probes or r3 did not move before the VM stopped",
            );
        }
        if !plain_loses {
            detail.push_str("; a plain withdraw lost nothing (no loss to compare with)");
        }
        (all_moved && graceful_clean && plain_loses, detail)
    }
}

/// Run `per_mode` plain and `per_mode` graceful repetitions (alternating A B B A), starting
/// from and returning to the state where only the active site announces. Count the probes
/// with [`Comparison::new`] once the prober has written its records.
pub fn run(
    bench: &mut Bench,
    per_mode: usize,
    graceful_secs: u32,
    bound: Duration,
) -> Result<Vec<Run>> {
    let name = "graceful shutdown";
    let say = bench.say;
    let active = bench.lab.state.active.unwrap_or(Site::Primary);
    if !bench.lab.route_via(active) {
        return Err(LabError::step(
            name,
            format!("the third site's route is not via the active {active} site"),
        ));
    }
    // Both sites serve and announce: r3 gets a second, newer path and stays on `active`.
    let standby = active.other();
    bench.lab.start_responder(standby)?;
    bench.lab.announce(standby)?;
    wait_two_paths(bench, bound)?;
    say.line(&format!(
        "{name}: both sites announce; r3 routes via {active}"
    ));
    let mut runs = Vec::new();
    for index in 0..2 * per_mode {
        let graceful = matches!(index % 4, 1 | 2);
        let run = repetition(bench, index, graceful, graceful_secs, bound)?;
        say.line(&format!(
            "  {} withdraw at {}: r3 moved {}",
            if graceful { "graceful" } else { "plain" },
            run.site,
            run.route_moved_ms.map_or("-".into(), |ms| format!(
                "{:.0} ms {} the VM stopped",
                ms.abs(),
                if ms < 0.0 { "before" } else { "after" }
            ))
        ));
        let converged = run.converged;
        runs.push(run);
        if !converged {
            break;
        }
    }
    // Back to one announcing site: the one r3 uses now stays; the other goes.
    let serving = [Site::Primary, Site::Recovery]
        .into_iter()
        .find(|s| bench.lab.route_via(*s))
        .ok_or_else(|| LabError::step(name, "the third site has no route at the end"))?;
    bench.lab.withdraw(serving.other())?;
    bench.lab.stop_responder(serving.other())?;
    bench.lab.state.active = Some(serving);
    bench.lab.state.save()?;
    Ok(runs)
}

/// Take down the site r3 routes via (plain or graceful), wait for the other site to answer,
/// then bring the site back (VM, announcement) and wait until r3 holds both paths again.
fn repetition(
    bench: &mut Bench,
    index: usize,
    graceful: bool,
    graceful_secs: u32,
    bound: Duration,
) -> Result<Run> {
    let name = "graceful shutdown repetition";
    let site = [Site::Primary, Site::Recovery]
        .into_iter()
        .find(|s| bench.lab.route_via(*s))
        .ok_or_else(|| LabError::step(name, "the third site has no route"))?;
    let other = site.other();
    if !bench.prober().wait_for(site.name(), 50, bound) {
        return Err(LabError::step(
            name,
            format!("the probes are not answered by the {site} VM (r3's path)"),
        ));
    }
    let start_us = now_us();
    let stop_us = if graceful {
        let client = crate::api::blocking::Speaker::unix(bench.lab.speaker_socket(site))
            .map_err(|e| LabError::step(name, e))?
            .with_timeout(Duration::from_secs(u64::from(graceful_secs) + 10));
        let req = WithdrawRequest {
            prefixes: vec![bench.lab.topo.prefix, bench.lab.topo.prefix6],
            all: false,
            graceful_secs: Some(graceful_secs),
            dry_run: false,
        };
        let called = Instant::now();
        let call = std::thread::spawn(move || client.change(req));
        // The VM goes when the drain ends, just before the speaker withdraws.
        let due = called + Duration::from_secs(u64::from(graceful_secs));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let stop_us = now_us();
        bench.lab.stop_responder(site)?;
        call.join()
            .map_err(|_| LabError::step(name, "the graceful withdraw call panicked"))?
            .map_err(|e| LabError::step(format!("graceful withdraw at the {site} speaker"), e))?;
        stop_us
    } else {
        let stop_us = now_us();
        bench.lab.stop_responder(site)?;
        bench.lab.withdraw(site)?;
        stop_us
    };
    let converged = bench.prober().wait_for(other.name(), 50, bound);
    let end_us = now_us();
    let third = bench.lab.topo.router(Site::Third).name.clone();
    let nh_other = bench
        .lab
        .topo
        .addr_towards(&bench.lab.topo.router(other).name, &third);
    let prefix = bench.lab.topo.prefix.to_string();
    let route_moved_ms = bench
        .third_routes()
        .into_iter()
        .find(|c| c.at_us >= start_us && c.prefix == prefix && !c.deleted && c.via == nh_other)
        .map(|c| (c.at_us - stop_us) as f64 / 1000.0);
    // Bring the site back; r3 keeps the other (now older) path.
    bench.lab.start_responder(site)?;
    bench.lab.announce(site)?;
    wait_two_paths(bench, bound)?;
    bench.lab.state.active = Some(other);
    Ok(Run {
        index,
        site,
        graceful,
        start_us,
        stop_us,
        end_us,
        route_moved_ms,
        converged,
    })
}

/// Wait until r3 holds the subnet from both site routers, each with its own speaker's route
/// (AS path `router speaker`) and without GRACEFUL_SHUTDOWN: the state every repetition starts
/// from.
fn wait_two_paths(bench: &Bench, bound: Duration) -> Result<()> {
    let t = &bench.lab.topo;
    let want: Vec<String> = [Site::Primary, Site::Recovery]
        .iter()
        .map(|s| format!("{} {}", t.router(*s).asn, t.speaker(*s).asn))
        .collect();
    let cmd = format!("show bgp ipv4 unicast {} json", t.prefix);
    let r3 = bench.lab.frr(Site::Third);
    let mut last = String::new();
    let ok = proc::poll(bound, Duration::from_millis(50), || {
        let Ok(out) = r3.vtysh(&[&cmd]) else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let paths = v["paths"].as_array().cloned().unwrap_or_default();
        let clean: Vec<String> = paths
            .iter()
            .filter(|p| {
                !p["community"]["string"]
                    .as_str()
                    .is_some_and(|c| c.contains("graceful-shutdown"))
            })
            .filter_map(|p| p["aspath"]["string"].as_str().map(str::to_owned))
            .collect();
        last = format!("{clean:?}");
        want.iter().all(|w| clean.contains(w))
    });
    if ok {
        Ok(())
    } else {
        Err(LabError::step(
            "graceful shutdown",
            format!(
                "r3 did not get both sites' paths {want:?} within {} s (last seen: {last})",
                bound.as_secs_f32()
            ),
        ))
    }
}

/// Write the comparison as `graceful-shutdown.json` in `dir`.
pub fn write(dir: &std::path::Path, c: &Comparison) -> Result<()> {
    let path = dir.join("graceful-shutdown.json");
    let json =
        serde_json::to_string_pretty(c).map_err(|e| LabError::step("graceful shutdown", e))?;
    std::fs::write(&path, json)
        .map_err(|e| LabError::step(format!("writing {}", path.display()), e))
}

/// Print one line per mode.
pub fn print(c: &Comparison) {
    for (label, loss, moved) in [
        ("plain withdraw", &c.plain_loss_ms, &c.plain_route_moved_ms),
        (
            "graceful withdraw",
            &c.graceful_loss_ms,
            &c.graceful_route_moved_ms,
        ),
    ] {
        if let Some(l) = loss {
            crate::lab::human(format_args!(
                "  {label:<18} loss median {:>6.1} ms  max {:>6.1} ms  (n={}); r3 moved median {} ms from the VM's stop",
                l.median,
                l.max,
                l.n,
                moved.as_ref().map_or("-".into(), |m| format!("{:+.0}", m.median))
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes 1 ms apart from `t0` ms: `None` lost, else the answering site.
    fn probes(t0: i64, tags: &[Option<&str>]) -> Vec<Probe> {
        tags.iter()
            .enumerate()
            .map(|(i, t)| Probe {
                seq: i as u64,
                sent_us: (t0 + i as i64) * 1000,
                recv_us: t.map(|_| (t0 + i as i64) * 1000 + 300),
                tag: t.map(str::to_owned),
            })
            .collect()
    }

    fn run(index: usize, site: Site, graceful: bool, t0: i64, moved: f64) -> Run {
        Run {
            index,
            site,
            graceful,
            start_us: t0 * 1000,
            stop_us: t0 * 1000 + 100,
            end_us: (t0 + 10) * 1000,
            route_moved_ms: Some(moved),
            converged: true,
        }
    }

    const P: Option<&str> = Some("primary");
    const R: Option<&str> = Some("recovery");

    #[test]
    fn lost_probes_are_counted_per_repetition_and_the_verdict_needs_both_sides() {
        let mut all = probes(0, &[P, P, None, None, None, R, R, R, R, R]);
        all.extend(probes(10, &[R, R, P, P, P, P, P, P, P, P]));
        let runs = || {
            vec![
                run(0, Site::Primary, false, 0, 3.0),
                run(1, Site::Recovery, true, 10, -800.0),
            ]
        };
        let c = Comparison::new(1, runs(), &all);
        assert_eq!(c.reps[0].lost_probes, 3);
        assert_eq!(c.reps[0].answered_by_other, 5);
        assert_eq!(c.reps[1].lost_probes, 0);
        assert_eq!(c.plain_loss_ms.as_ref().map(|s| s.median), Some(3.0));
        assert!(c.verdict().0, "{}", c.verdict().1);

        // A drain that loses a probe fails.
        let mut lossy = all.clone();
        lossy[13].tag = None;
        let c = Comparison::new(1, runs(), &lossy);
        assert_eq!(c.reps[1].lost_probes, 1);
        assert!(!c.verdict().0);

        // A plain withdraw that loses nothing leaves nothing to compare: fails too.
        let clean: Vec<Probe> = probes(0, &[P, P, R, R, R, R, R, R, R, R])
            .into_iter()
            .chain(probes(10, &[R, R, P, P, P, P, P, P, P, P]))
            .collect();
        let c = Comparison::new(1, runs(), &clean);
        assert!(!c.verdict().0);
        assert!(c.verdict().1.contains("plain withdraw lost nothing"));

        // r3 moving only after the VM stopped is not a drain, even without loss.
        let mut late = runs();
        late[1].route_moved_ms = Some(2.0);
        assert!(!Comparison::new(1, late, &all).verdict().0);
    }
}
