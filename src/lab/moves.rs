//! A move of the subnet from one site to the other, and the analysis of its timing.
//!
//! A planned move: the VM at the new site starts (its responder answers); make-before-break
//! then announces at the new site, stops the old VM (SIGKILL of its responder: the loss window
//! opens) and withdraws at the old site; break-before-make stops the old VM, withdraws at the
//! old site and then announces at the new one. Then the lab waits until the client's probes are
//! answered by the new site, steadily, within the bound.
//!
//! The loss window is split into four consecutive parts on one clock:
//! `cutover` (first unanswered probe -> the decisive API call), `ferry` (that call -> the
//! speaker's UPDATE on the wire, from its `routes_sent` event), `routers` (UPDATE -> the third
//! site's kernel route via the new site, from `ip -ts monitor route`), `dataplane` (kernel
//! route -> first probe answered by the new site). The decisive call is the one whose UPDATE
//! is the last one sent before the third site's route changed. Where the site router's bgpd
//! log has the UPDATE's receipt (`rcvd ...` from the speaker), `ferry` ends there instead and
//! `routers` starts there (`Parts::ferry_source` says which).
//!
//! Per router, the report also has when its BGP table (bgpd log) and kernel route
//! (`ip -ts monitor route`) changed for the subnet: every change during the move and, as the
//! headline, the first one at or after the move's first call (how soon each router reacted).
//! The site routers hold the subnet as a connected route (their VM's LAN), so their kernel
//! route does not change; only the third site's does.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::instance::LabInstance;
use super::probe::{Probe, Prober};
use super::topology::{Site, Topology};
use super::watch::{BgpChange, RouteChange, SpeakerEvent};
use super::{now_us, Result};
use crate::api::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    MakeBeforeBreak,
    BreakBeforeMake,
}

#[derive(Debug, Clone, Serialize)]
pub struct MoveSpec {
    pub name: String,
    pub from: Site,
    pub to: Site,
    pub order: Order,
}

#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub site: Site,
    pub action: &'static str,
    pub at_us: i64,
}

/// What happened during one move, before analysis.
#[derive(Debug, Clone, Serialize)]
pub struct MoveRun {
    pub spec: MoveSpec,
    pub start_us: i64,
    pub cutover_us: i64,
    pub calls: Vec<Call>,
    pub converged: bool,
    pub end_us: i64,
}

/// Run a planned move; `say` gets progress lines.
pub fn run_move(
    lab: &mut LabInstance,
    prober: &Prober,
    spec: &MoveSpec,
    bound: Duration,
    settle: Duration,
    say: &dyn Fn(String),
) -> Result<MoveRun> {
    let start_us = now_us();
    say(format!(
        "{}: {} -> {} ({:?})",
        spec.name, spec.from, spec.to, spec.order
    ));
    lab.start_responder(spec.to)?;
    let mut calls = Vec::new();
    let call = |lab: &LabInstance, site: Site, action: &'static str| -> Result<Call> {
        let at_us = if action == "announce" {
            lab.announce(site)?
        } else {
            lab.withdraw(site)?
        };
        Ok(Call {
            site,
            action,
            at_us,
        })
    };
    // Make-before-break: the new site announces while the old VM still serves; the third site
    // keeps the older, equally long path until the old site withdraws.
    if spec.order == Order::MakeBeforeBreak {
        calls.push(call(lab, spec.to, "announce")?);
    }
    // The speaker's client is made before the VM stops, and the lab's state is written after
    // the calls (below), so the cutover is the VM's stop and nothing of the lab's own.
    lab.speaker(spec.from)?;
    lab.speaker(spec.to)?;
    lab.kill_responder(spec.from);
    let cutover_us = now_us();
    match spec.order {
        Order::MakeBeforeBreak => calls.push(call(lab, spec.from, "withdraw")?),
        Order::BreakBeforeMake => {
            calls.push(call(lab, spec.from, "withdraw")?);
            calls.push(call(lab, spec.to, "announce")?);
        }
    }
    say(format!(
        "  VM moved ({} VM up, {} VM stopped); {} at {}, {} at {}",
        spec.to, spec.from, calls[0].action, calls[0].site, calls[1].action, calls[1].site
    ));
    let converged = prober.wait_for(spec.to.name(), 50, bound);
    if converged {
        say(format!("  converged: probes answered by {}", spec.to));
    } else {
        say(format!(
            "  NOT converged within {} s: probes not answered by {}",
            bound.as_secs_f32(),
            spec.to
        ));
    }
    lab.state.active = Some(spec.to);
    lab.state.save()?;
    // Let every router settle (the old site learns the new path) before the next move.
    std::thread::sleep(settle);
    Ok(MoveRun {
        spec: spec.clone(),
        start_us,
        cutover_us,
        calls,
        converged,
        end_us: now_us(),
    })
}

/// The timings of one move; times in µs since the epoch, parts in ms.
#[derive(Debug, Clone, Serialize)]
pub struct MoveTiming {
    pub name: String,
    pub from: Site,
    pub to: Site,
    pub order: Order,
    pub converged: bool,
    pub start_us: i64,
    pub end_us: i64,
    pub calls: Vec<CallTiming>,
    pub loss_start_us: Option<i64>,
    pub loss_end_us: Option<i64>,
    pub lost_probes: u64,
    pub loss_ms: Option<f64>,
    pub decisive_call: Option<usize>,
    pub third_site_route_us: Option<i64>,
    pub parts: Option<Parts>,
    /// Per router (r1, r2, r3): when its BGP table and kernel route changed for the subnet.
    pub routers: BTreeMap<String, RouterTiming>,
}

/// When one router's BGP table and kernel route changed during a move; `*_us` since the epoch,
/// `*_ms` since the move's start.
#[derive(Debug, Clone, Serialize)]
pub struct RouterTiming {
    pub site: Site,
    /// The first BGP table change at or after the move's first call.
    pub bgp_us: Option<i64>,
    pub bgp_ms: Option<f64>,
    pub bgp_change: Option<String>,
    /// The first kernel route change at or after the move's first call.
    pub kernel_us: Option<i64>,
    pub kernel_ms: Option<f64>,
    pub kernel_change: Option<String>,
    /// Every change during the move.
    pub bgp_changes: Vec<Change>,
    pub kernel_changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub at_us: i64,
    pub ms: f64,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallTiming {
    pub site: Site,
    pub action: &'static str,
    pub call_us: i64,
    /// The speaker's `routes_sent` for the IPv4 subnet after this call.
    pub update_us: Option<i64>,
    pub ferry_ms: Option<f64>,
    /// The site router's bgpd logged the UPDATE from the speaker (its table changed).
    pub received_us: Option<i64>,
    /// Call -> UPDATE received at the site router.
    pub ferry_received_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Parts {
    pub cutover_ms: f64,
    pub ferry_ms: f64,
    pub routers_ms: f64,
    pub dataplane_ms: f64,
    /// Where `ferry` ends and `routers` starts: `site-router-log` (the site router's bgpd
    /// logged the UPDATE's receipt) or `speaker-event` (the speaker's `routes_sent`, as the
    /// lab received it).
    pub ferry_source: &'static str,
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// Answers needed in a row from the new site for the loss window to be over.
const STEADY: usize = 20;

pub fn analyze(
    topo: &Topology,
    run: &MoveRun,
    probes: &[Probe],
    events: &[SpeakerEvent],
    kernel: &BTreeMap<String, Vec<RouteChange>>,
    bgp: &BTreeMap<String, Vec<BgpChange>>,
) -> MoveTiming {
    let third_name = &topo.router(Site::Third).name;
    let third_routes: &[RouteChange] = kernel.get(third_name).map_or(&[], |v| v);
    let (from, to) = (run.spec.from.name(), run.spec.to.name());
    let window: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.sent_us >= run.start_us && p.sent_us <= run.end_us)
        .collect();
    let first_bad = window
        .iter()
        .position(|p| p.tag.as_deref() != Some(from) && p.sent_us >= run.cutover_us - 2_000);
    let end = first_bad.and_then(|i| {
        (i..window.len()).find(|&j| {
            window[j..]
                .iter()
                .take(STEADY)
                .all(|p| p.tag.as_deref() == Some(to))
        })
    });
    let loss_start_us = first_bad.map(|i| window[i].sent_us);
    let loss_end_us = end.map(|j| window[j].sent_us);
    let lost_probes = match (first_bad, end) {
        (Some(i), Some(j)) => window[i..j].iter().filter(|p| p.tag.is_none()).count() as u64,
        (Some(i), None) => window[i..].iter().filter(|p| p.tag.is_none()).count() as u64,
        _ => 0,
    };
    let prefix = topo.prefix;
    let sent_for = |e: &SpeakerEvent| match &e.event {
        Event::RoutesSent {
            announced,
            withdrawn,
            ..
        } => announced.contains(&prefix) || withdrawn.contains(&prefix),
        _ => false,
    };
    let calls: Vec<CallTiming> = run
        .calls
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let next_call = run
                .calls
                .get(k + 1)
                .filter(|n| n.site == c.site)
                .map(|n| n.at_us);
            let update_us = events
                .iter()
                .filter(|e| e.site == c.site && e.at_us >= c.at_us && sent_for(e))
                .filter(|e| next_call.is_none_or(|n| e.at_us < n))
                .map(|e| e.at_us)
                .min();
            let router = &topo.router(c.site).name;
            let speaker = topo
                .addr_towards(&topo.speaker(c.site).name, router)
                .map(|a| a.to_string());
            let received_us = bgp.get(router).and_then(|changes| {
                changes
                    .iter()
                    .filter(|b| Some(&b.peer) == speaker.as_ref() && b.change == c.action)
                    .filter(|b| b.at_us >= c.at_us && next_call.is_none_or(|n| b.at_us < n))
                    .map(|b| b.at_us)
                    .min()
            });
            CallTiming {
                site: c.site,
                action: c.action,
                call_us: c.at_us,
                update_us,
                ferry_ms: update_us.map(|u| ms(u - c.at_us)),
                received_us,
                ferry_received_ms: received_us.map(|r| ms(r - c.at_us)),
            }
        })
        .collect();
    let via = topo.addr_towards(&topo.router(run.spec.to).name, third_name);
    let third_site_route_us = third_routes
        .iter()
        .filter(|r| r.at_us >= run.cutover_us && r.at_us <= run.end_us)
        .find(|r| !r.deleted && r.prefix == prefix.to_string() && r.via.is_some() && r.via == via)
        .map(|r| r.at_us);
    let decisive_call = third_site_route_us.and_then(|t| {
        calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.update_us.is_some_and(|u| u <= t))
            .max_by_key(|(_, c)| c.update_us)
            .map(|(i, _)| i)
    });
    let parts = match (
        loss_start_us,
        loss_end_us,
        third_site_route_us,
        decisive_call,
    ) {
        (Some(s), Some(e), Some(r), Some(i)) => {
            let c = &calls[i];
            let sent = match c.received_us.filter(|&x| x <= r) {
                Some(x) => Some((x, "site-router-log")),
                None => c.update_us.map(|u| (u, "speaker-event")),
            };
            sent.map(|(u, ferry_source)| Parts {
                cutover_ms: ms(c.call_us - s),
                ferry_ms: ms(u - c.call_us),
                routers_ms: ms(r - u),
                dataplane_ms: ms(e - r),
                ferry_source,
            })
        }
        _ => None,
    };
    let since = calls.first().map_or(run.cutover_us, |c| c.call_us);
    let during = |t: i64| t >= run.start_us && t <= run.end_us;
    let rel = |t: i64| ms(t - run.start_us);
    // Site routers only: a transit router's timing is not part of a move's analysis.
    let routers = topo
        .routers
        .iter()
        .filter_map(|rt| Some((rt, rt.site?)))
        .map(|(rt, site)| {
            let bgp_changes: Vec<Change> = bgp
                .get(&rt.name)
                .into_iter()
                .flatten()
                .filter(|b| during(b.at_us))
                .map(|b| Change {
                    at_us: b.at_us,
                    ms: rel(b.at_us),
                    what: format!("{} from {}", b.change, b.peer),
                })
                .collect();
            let kernel_changes: Vec<Change> = kernel
                .get(&rt.name)
                .into_iter()
                .flatten()
                .filter(|k| during(k.at_us) && k.prefix == prefix.to_string())
                .map(|k| Change {
                    at_us: k.at_us,
                    ms: rel(k.at_us),
                    what: match (k.deleted, k.via) {
                        (true, _) => "deleted".into(),
                        (false, Some(v)) => format!("via {v}"),
                        (false, None) => "local".into(),
                    },
                })
                .collect();
            let bgp_first = bgp_changes.iter().find(|c| c.at_us >= since);
            let kernel_first = kernel_changes.iter().find(|c| c.at_us >= since);
            (
                rt.name.clone(),
                RouterTiming {
                    site,
                    bgp_us: bgp_first.map(|c| c.at_us),
                    bgp_ms: bgp_first.map(|c| c.ms),
                    bgp_change: bgp_first.map(|c| c.what.clone()),
                    kernel_us: kernel_first.map(|c| c.at_us),
                    kernel_ms: kernel_first.map(|c| c.ms),
                    kernel_change: kernel_first.map(|c| c.what.clone()),
                    bgp_changes,
                    kernel_changes,
                },
            )
        })
        .collect();
    MoveTiming {
        name: run.spec.name.clone(),
        from: run.spec.from,
        to: run.spec.to,
        order: run.spec.order,
        converged: run.converged,
        start_us: run.start_us,
        end_us: run.end_us,
        calls,
        loss_start_us,
        loss_end_us,
        lost_probes,
        loss_ms: loss_start_us.zip(loss_end_us).map(|(s, e)| ms(e - s)),
        decisive_call,
        third_site_route_us,
        parts,
        routers,
    }
}
