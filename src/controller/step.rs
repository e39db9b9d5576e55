//! The steps of a run, built from the plan as data, each with an idempotent `apply` and a
//! `compensate` that undoes it.
//!
//! Order (docs/design.md, "Failover, step by step"), `from` losing the subnets, `to` gaining them:
//! preflight; pre-check hooks; optional drain of `from` (GRACEFUL_SHUTDOWN, RFC 8326, then the
//! plan's wait); plan-wide stop-primary and cutover hooks and health checks; then per group, in
//! plan order: its stop-primary and cutover hooks, its health checks, the move (announce at `to`
//! and withdraw at `from`, in the plan's order; none for a changed-IP group without subnets),
//! verification, then its `[[dns]]` entries' update and verify ([`super::dns`]); the `[[dns]]`
//! entries without a group; post-check hooks. A planned run pre-stages every `[[dns]]` entry
//! (its TTL) right after the pre-check hooks. Hooks and
//! checks without a `group` are plan-wide; pre- and post-checks always run once per run.
//!
//! Contract:
//! - `apply` and `compensate` may run twice (a crash between the action and its journal
//!   record): announce and withdraw are idempotent at the speaker, checks only read, hooks are
//!   the plan author's to make idempotent (they get `FERRY_*` variables to tell).
//! - Compensations: announce at `to` <-> withdraw at `to`; withdraw at `from` <-> announce at
//!   `from` with its normal attributes; drain <-> the same; hooks run their `undo` if given;
//!   checks have none.
//! - Unplanned mode: steps at `from` are best effort: a `from` that takes no connection is
//!   noted, not a failure; one that takes the request and never answers is noted only when
//!   its routes are leased (the leases fence it), else the step fails; one that answers and
//!   refuses (or fails) a request fails the step. Drain and stop-primary hooks are not built;
//!   preflight checks `to` only when `from` is passed over, and takes a leased `from` that
//!   no longer announces the subnets (its leases ran out: fenced) as a note.
//!
//! - Test runs (`Mode::Test`): the plan's `test_site` takes the recovery's place; no drain,
//!   stop-primary hooks or withdrawals; only `test = true` hooks and checks; failback is
//!   `cleanup-test` (`build_cleanup`), whose withdrawals have no compensation.
//! - Host routes: announced and withdrawn at the recovery (or test) site only
//!   ([`Plan::group_at`]); the primary keeps the covering subnet.
//!
//! Never does: write the journal or choose what runs next ([`super::executor`]).

use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::hook::OnSpawn;
use super::journal::{Direction, Mode};
use super::observe::{self, Marks};
use super::plan::{Order, Plan, Probe, Site, Stage};
use super::sites::{Probes, SiteError, Sites};
use crate::api::{ReceivedRoute, SessionState};
use crate::speaker::Route;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    Preflight,
    Hook {
        hook: usize,
        group: Option<usize>,
    },
    Drain,
    Health {
        check: usize,
        group: Option<usize>,
    },
    Announce {
        group: usize,
    },
    Withdraw {
        group: usize,
    },
    Verify {
        group: usize,
    },
    /// `[[dns]]` entry `dns` ([`super::dns`]).
    DnsPrestage {
        dns: usize,
    },
    DnsUpdate {
        dns: usize,
    },
    DnsVerify {
        dns: usize,
    },
    /// `cleanup-test`: a test hook's `undo`.
    Undo {
        hook: usize,
        group: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
}

/// Everything a step needs.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub direction: Direction,
    pub mode: Mode,
    pub sites: &'a dyn Sites,
    pub probes: &'a dyn Probes,
    /// The DNS servers of the plan's `[[dns]]` entries.
    pub dns: &'a dyn super::dns::Dns,
    /// Told each hook command's process before it is waited for (the executor journals it).
    pub spawned: OnSpawn<'a>,
}

/// The site a run of `direction` and `mode` moves the subnets from, and the one it moves
/// them to: in a test run the test site takes the recovery's place (a test run of a plan
/// without one is refused before any is built: [`check_test`]).
pub fn ends(plan: &Plan, direction: Direction, mode: Mode) -> (&Site, &Site) {
    let other = match mode {
        Mode::Test => plan
            .test_site()
            .expect("checked by check_test before a test run"),
        _ => plan.recovery(),
    };
    match direction {
        Direction::Failover => (plan.primary(), other),
        Direction::Failback => (other, plan.primary()),
    }
}

impl Ctx<'_> {
    /// The recovery site, or the test site in a test run.
    fn other(&self) -> &Site {
        match self.direction {
            Direction::Failover => self.to(),
            Direction::Failback => self.from(),
        }
    }

    pub fn from(&self) -> &Site {
        ends(self.plan, self.direction, self.mode).0
    }

    pub fn to(&self) -> &Site {
        ends(self.plan, self.direction, self.mode).1
    }

    /// The prefixes of `group` (all groups when `None`) that move, hosts included.
    fn prefixes(&self, group: Option<usize>) -> Vec<IpNet> {
        let other = self.other();
        match group {
            Some(g) => self.plan.group_at(g, other),
            None => self.plan.all_at(other),
        }
    }

    fn routes(&self, site: &Site, prefixes: &[IpNet]) -> Result<Vec<Route>, String> {
        prefixes.iter().map(|p| site.route(*p)).collect()
    }

    fn env(&self, step: &Step, group: Option<usize>) -> Vec<(String, String)> {
        let subnets: Vec<String> = self.prefixes(group).iter().map(|p| p.to_string()).collect();
        vec![
            ("FERRY_PLAN".into(), self.plan.name.clone()),
            (
                "FERRY_DIRECTION".into(),
                match self.direction {
                    Direction::Failover => "failover",
                    Direction::Failback => "failback",
                }
                .into(),
            ),
            ("FERRY_FROM".into(), self.from().name.clone()),
            ("FERRY_TO".into(), self.to().name.clone()),
            (
                "FERRY_GROUP".into(),
                group
                    .map(|g| self.plan.groups[g].name.clone())
                    .unwrap_or_default(),
            ),
            ("FERRY_SUBNETS".into(), subnets.join(" ")),
            ("FERRY_STEP".into(), step.name.clone()),
            (
                "FERRY_TEST".into(),
                if self.mode == Mode::Test { "1" } else { "0" }.into(),
            ),
        ]
    }

    /// Best effort at `from` in unplanned mode: what [`Ctx::may_skip`] allows is noted and
    /// skipped; anything else fails the step in either mode.
    fn at_from(&self, r: Result<(), SiteError>) -> Result<Option<String>, String> {
        match r {
            Ok(()) => Ok(None),
            Err(e) => match self.may_skip(&e) {
                Some(why) => Ok(Some(format!("skipped (unplanned): {e}{why}"))),
                None => Err(e.to_string()),
            },
        }
    }

    /// Whether an error at `from` may be passed over in an unplanned run, and what to add to
    /// the note: a site that took nothing (no connection) is down or cut off; one that took
    /// the request and never answered may be hung with its BGP sessions up, so only its
    /// leases make passing it over safe. A site that answers and refuses or fails is up and
    /// would keep announcing: never passed over.
    fn may_skip(&self, e: &SiteError) -> Option<String> {
        if self.mode != Mode::Unplanned {
            return None;
        }
        match self.from().lease_secs {
            _ if e.is_unreachable() => Some(String::new()),
            Some(secs) if e.is_no_answer() => Some(format!(
                "; its leases ({secs} s) withdraw the routes unless renewed"
            )),
            _ => None,
        }
    }
}

/// A test run (`Mode::Test`) needs the plan's `test_site`: refused here, before anything is
/// built or journaled, so that no step of a test run can fall back to the recovery site.
pub fn check_test(plan: &Plan, mode: Mode) -> Result<(), String> {
    if mode == Mode::Test && plan.test_site().is_none() {
        return Err(format!(
            "plan {} has no test_site: name the site whose speaker peers only with the test network (test_site = \"SITE\")",
            plan.name
        ));
    }
    Ok(())
}

/// The steps of a run, in order. A test failover (`Mode::Test`, failover) builds the same
/// shape as a real one without drain, stop-primary hooks and withdrawals, with only the
/// `test = true` hooks and checks (a real run only those without); a test failback is
/// `cleanup-test` (`build_cleanup`).
pub fn build(plan: &Plan, direction: Direction, mode: Mode) -> Vec<Step> {
    let test = mode == Mode::Test;
    if test && direction == Direction::Failback {
        return build_cleanup(plan);
    }
    let planned = mode == Mode::Planned;
    let mut v = vec![Step {
        name: "preflight".into(),
        kind: StepKind::Preflight,
    }];
    let hooks = |v: &mut Vec<Step>, stage: Stage, group: Option<usize>| {
        for (i, h) in plan.hooks.iter().enumerate() {
            let in_group = match group {
                Some(g) => h.in_group(Some(&plan.groups[g].name)),
                None => stage == Stage::PreCheck || stage == Stage::PostCheck || h.in_group(None),
            };
            if h.stage == stage && in_group && h.test == test {
                v.push(Step {
                    name: format!("hook {}", h.name),
                    kind: StepKind::Hook { hook: i, group },
                });
            }
        }
    };
    let checks = |v: &mut Vec<Step>, group: Option<usize>| {
        for (i, c) in plan.health_checks.iter().enumerate() {
            let g = c.group.as_ref().map(|g| g.get_ref().as_str());
            if g == group.map(|g| plan.groups[g].name.as_str()) && c.test == test {
                v.push(Step {
                    name: format!("health {}", c.name),
                    kind: StepKind::Health { check: i, group },
                });
            }
        }
    };
    // A test failover leaves the records alone: DNS has no isolated test copy to update.
    let dns = |v: &mut Vec<Step>, group: Option<usize>| {
        for (i, d) in plan.dns.iter().enumerate().filter(|_| !test) {
            let g = d.group.as_ref().map(|g| g.get_ref().as_str());
            if g == group.map(|g| plan.groups[g].name.as_str()) {
                v.push(Step {
                    name: format!("dns update {}", d.name),
                    kind: StepKind::DnsUpdate { dns: i },
                });
                v.push(Step {
                    name: format!("dns verify {}", d.name),
                    kind: StepKind::DnsVerify { dns: i },
                });
            }
        }
    };
    hooks(&mut v, Stage::PreCheck, None);
    if planned {
        for (i, d) in plan.dns.iter().enumerate() {
            v.push(Step {
                name: format!("dns prestage {}", d.name),
                kind: StepKind::DnsPrestage { dns: i },
            });
        }
    }
    if planned && plan.drain.is_some() {
        v.push(Step {
            name: "drain".into(),
            kind: StepKind::Drain,
        });
    }
    if planned {
        hooks(&mut v, Stage::StopPrimary, None);
    }
    hooks(&mut v, Stage::Cutover, None);
    checks(&mut v, None);
    for (g, group) in plan.groups.iter().enumerate() {
        if planned {
            hooks(&mut v, Stage::StopPrimary, Some(g));
        }
        hooks(&mut v, Stage::Cutover, Some(g));
        checks(&mut v, Some(g));
        let announce = Step {
            name: format!("announce {}", group.name),
            kind: StepKind::Announce { group: g },
        };
        let withdraw = Step {
            name: format!("withdraw {}", group.name),
            kind: StepKind::Withdraw { group: g },
        };
        // A changed-IP group (no subnets, no hosts) moves by its [[dns]] entries only.
        if !(group.subnets.is_empty() && group.hosts.is_empty()) {
            match plan.order {
                // The primary keeps announcing in a test.
                _ if test => v.push(announce),
                Order::BreakBeforeMake => v.extend([withdraw, announce]),
                Order::MakeBeforeBreak => v.extend([announce, withdraw]),
            }
            if plan.verify.is_some() {
                v.push(Step {
                    name: format!("verify {}", group.name),
                    kind: StepKind::Verify { group: g },
                });
            }
        }
        dns(&mut v, Some(g));
    }
    dns(&mut v, None);
    hooks(&mut v, Stage::PostCheck, None);
    v
}

/// `cleanup-test`: withdraw every group at the test site, then the `undo` of each test hook
/// that has one, the last hook first.
fn build_cleanup(plan: &Plan) -> Vec<Step> {
    let mut v: Vec<Step> = plan
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| Step {
            name: format!("withdraw {}", group.name),
            kind: StepKind::Withdraw { group: g },
        })
        .collect();
    let forward = build(plan, Direction::Failover, Mode::Test);
    for s in forward.iter().rev() {
        if let StepKind::Hook { hook, group } = s.kind {
            let h = &plan.hooks[hook];
            if h.undo.is_some() {
                v.push(Step {
                    name: format!("undo hook {}", h.name),
                    kind: StepKind::Undo { hook, group },
                });
            }
        }
    }
    v
}

impl Step {
    /// Do the step; `Ok(Some(note))` when something worth showing happened.
    pub fn apply(&self, cx: &Ctx<'_>) -> Result<Option<String>, String> {
        match &self.kind {
            StepKind::Preflight => preflight(cx),
            StepKind::Hook { hook, group } => {
                let h = &cx.plan.hooks[*hook];
                cx.probes
                    .hook(h, false, &cx.env(self, *group), cx.spawned)
                    .map(|_| None)
            }
            StepKind::Drain => {
                let from = cx.from();
                let mut routes = cx.routes(from, &cx.plan.all_at(from))?;
                for r in &mut routes {
                    r.attrs.mark_graceful_shutdown();
                }
                cx.sites.announce(&from.name, &routes)?;
                let wait = cx.plan.drain.as_ref().map_or(0, |d| d.wait_ms);
                cx.probes.sleep(Duration::from_millis(wait));
                Ok(Some(format!("waited {wait} ms")))
            }
            StepKind::Health { check, group } => health(cx, self, *check, *group),
            StepKind::Announce { group } => {
                let to = cx.to();
                let prefixes = cx.plan.group_at(*group, to);
                if prefixes.is_empty() {
                    return Ok(Some(host_only(cx, *group, to)));
                }
                let routes = cx.routes(to, &prefixes)?;
                cx.sites.announce(&to.name, &routes)?;
                Ok(None)
            }
            StepKind::Withdraw { group } => {
                if cx.mode != Mode::Test
                    && cx.plan.order == Order::MakeBeforeBreak
                    && cx.plan.overlap_ms > 0
                {
                    cx.probes.sleep(Duration::from_millis(cx.plan.overlap_ms));
                }
                let from = cx.from();
                let prefixes = cx.plan.group_at(*group, from);
                if prefixes.is_empty() {
                    return Ok(Some(host_only(cx, *group, from)));
                }
                cx.at_from(cx.sites.withdraw(&from.name, &prefixes))
            }
            StepKind::Verify { group } => verify(cx, self, *group),
            StepKind::DnsPrestage { dns } => super::dns::prestage(cx, &cx.plan.dns[*dns]),
            StepKind::DnsUpdate { dns } => super::dns::update(cx, &cx.plan.dns[*dns], false),
            StepKind::DnsVerify { dns } => super::dns::verify(cx, &cx.plan.dns[*dns]),
            StepKind::Undo { hook, group } => {
                let h = &cx.plan.hooks[*hook];
                cx.probes
                    .hook(h, true, &cx.env(self, *group), cx.spawned)
                    .map(|_| None)
            }
        }
    }

    /// Undo what `apply` did (or may have done).
    pub fn compensate(&self, cx: &Ctx<'_>) -> Result<Option<String>, String> {
        match &self.kind {
            StepKind::Preflight
            | StepKind::Health { .. }
            | StepKind::Verify { .. }
            | StepKind::DnsVerify { .. }
            | StepKind::Undo { .. } => Ok(None),
            StepKind::DnsPrestage { dns } => super::dns::unstage(cx, &cx.plan.dns[*dns]),
            StepKind::DnsUpdate { dns } => super::dns::update(cx, &cx.plan.dns[*dns], true),
            // A failed cleanup never announces the test routes again: run it once more.
            StepKind::Withdraw { .. } if cx.mode == Mode::Test => Ok(None),
            StepKind::Hook { hook, group } => {
                let h = &cx.plan.hooks[*hook];
                if h.undo.is_none() {
                    return Ok(None);
                }
                cx.probes
                    .hook(h, true, &cx.env(self, *group), cx.spawned)
                    .map(|_| None)
            }
            StepKind::Drain => {
                let from = cx.from();
                let routes = cx.routes(from, &cx.plan.all_prefixes())?;
                cx.at_from(cx.sites.announce(&from.name, &routes))
            }
            StepKind::Announce { group } => {
                let to = cx.to();
                let prefixes = cx.plan.group_at(*group, to);
                if !prefixes.is_empty() {
                    cx.sites.withdraw(&to.name, &prefixes)?;
                }
                Ok(None)
            }
            StepKind::Withdraw { group } => {
                let from = cx.from();
                let prefixes = cx.plan.group_at(*group, from);
                if prefixes.is_empty() {
                    return Ok(None);
                }
                let routes = cx.routes(from, &prefixes)?;
                cx.at_from(cx.sites.announce(&from.name, &routes))
            }
        }
    }
}

/// The note of a move step with nothing to do at `site`: a group of host routes only, whose
/// covering subnet stays at the primary.
fn host_only(cx: &Ctx<'_>, group: usize, site: &Site) -> String {
    format!(
        "nothing to do at {}: group {} moves host routes only; {} keeps the covering subnet",
        site.name,
        cx.plan.groups[group].name,
        cx.plan.primary().name
    )
}

/// Sessions up and the subnets where they should be; each host route covered by a subnet the
/// primary announces (else the host would be reachable only while moved). `pub` for
/// `ferry plan check`.
pub fn preflight(cx: &Ctx<'_>) -> Result<Option<String>, String> {
    let mut notes = Vec::new();
    let primary = cx.plan.primary().name.clone();
    let mut at_primary: Option<Vec<IpNet>> = None;
    for (site, should_announce) in [(cx.from(), true), (cx.to(), false)] {
        let prefixes = cx.plan.all_at(site);
        let peers = match cx.sites.peers(&site.name) {
            Ok(p) => p,
            Err(e) if should_announce && cx.may_skip(&e).is_some() => {
                notes.push(format!("{} unreachable (unplanned): {e}", site.name));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if peers.is_empty() {
            return Err(format!("site {}: the speaker has no neighbors", site.name));
        }
        let down: Vec<String> = peers
            .iter()
            .filter(|p| p.state != SessionState::Established)
            .map(|p| format!("{} is {}", p.address, p.state))
            .collect();
        if !down.is_empty() {
            return Err(format!(
                "site {}: sessions not Established: {}",
                site.name,
                down.join(", ")
            ));
        }
        let announced: Vec<IpNet> = cx
            .sites
            .announced(&site.name)?
            .into_iter()
            .map(|r| r.prefix)
            .collect();
        if site.name == primary {
            at_primary = Some(announced.clone());
        }
        for p in &prefixes {
            match (should_announce, announced.contains(p)) {
                // Unplanned, leased: the site's leases ran out (it fenced itself, as an
                // `[auto]` run waits for), so there is nothing to withdraw there.
                (true, false) if cx.mode == Mode::Unplanned && site.lease_secs.is_some() => {
                    notes.push(format!(
                        "{} no longer announces {p} (unplanned; its leases ran out)",
                        site.name
                    ));
                }
                (true, false) => {
                    return Err(format!(
                        "site {} does not announce {p}: nothing to move (already moved? see `ferry failover status`)",
                        site.name
                    ))
                }
                (false, true) => {
                    return Err(format!(
                        "site {} already announces {p}: both sites would attract it",
                        site.name
                    ))
                }
                _ => {}
            }
        }
    }
    if let Some(announced) = at_primary {
        for h in cx.plan.all_hosts() {
            if !announced.iter().any(|p| p.contains(&h) && *p != h) {
                return Err(format!(
                    "host {h}: site {primary} (primary) announces no subnet covering it; a host route moves one VM out of a subnet the primary keeps announcing"
                ));
            }
        }
    }
    if cx.mode != Mode::Unplanned {
        if let Some(v) = &cx.plan.verify {
            if let Some(obs) = &v.observer {
                observer_sees_from(cx, obs.get_ref(), &cx.plan.all_at(cx.from()), v)?;
            }
        }
    }
    Ok((!notes.is_empty()).then(|| notes.join("; ")))
}

/// A dry run (`--dry-run`, `ferry plan check`): the preflight, and the observer, when the plan
/// has one, answers. Changes nothing.
pub fn dry_run(cx: &Ctx<'_>) -> Result<Option<String>, String> {
    let note = preflight(cx)?;
    if let Some(v) = &cx.plan.verify {
        if let Some(obs) = &v.observer {
            cx.sites
                .received(obs.get_ref(), Duration::from_millis(v.timeout_ms))
                .map_err(|e| format!("verify.observer: {e}"))?;
        }
    }
    Ok(note)
}

/// `ferry plan check` with host routes and an observer: does a router between the sites and
/// the observer filter host routes (a prefix list without `le 32`)? Each host route is
/// announced for the check at the primary, which already attracts that traffic through the
/// covering subnet (forwarding does not change), until the observer sees it from the primary
/// or the verification timeout passes; then withdrawn again, whatever the outcome. Routers
/// only on the recovery site's path are not covered (that would move the VM): the failover's
/// own verification checks them.
pub fn host_probe(cx: &Ctx<'_>) -> Result<Option<String>, String> {
    let hosts = cx.plan.all_hosts();
    let (Some(v), false) = (&cx.plan.verify, hosts.is_empty()) else {
        return Ok(None);
    };
    let Some(obs) = &v.observer else {
        return Ok(None);
    };
    let primary = cx.plan.primary();
    // A host route the primary already announces is observed, never withdrawn after.
    let held: Vec<IpNet> = cx
        .sites
        .announced(&primary.name)?
        .into_iter()
        .map(|r| r.prefix)
        .collect();
    let fresh: Vec<IpNet> = hosts
        .iter()
        .filter(|h| !held.contains(h))
        .copied()
        .collect();
    let routes = cx.routes(primary, &fresh)?;
    if !routes.is_empty() {
        cx.sites.announce(&primary.name, &routes)?;
    }
    let seen = (|| {
        let start = cx.probes.now();
        let timeout = Duration::from_millis(v.timeout_ms);
        loop {
            let got = cx.sites.received(obs.get_ref(), left(cx, start, timeout))?;
            let mut missing = None;
            for h in &hosts {
                let ours = Marks::of(cx.plan, primary, *h)?;
                let theirs = Marks::of(cx.plan, cx.plan.recovery(), *h)?;
                if !got
                    .iter()
                    .any(|r| r.prefix == *h && ours.holds(&theirs, r, true))
                {
                    missing = Some(format!(
                        "observer {} does not see host route {h} announced for the check at {} ({ours}): a router on the way filters host routes (its prefix list needs `le 32`, `le 128` for IPv6) or strips the marks; it sees {}",
                        obs.get_ref(),
                        primary.name,
                        observe::seen(&got, *h)
                    ));
                    break;
                }
            }
            let Some(m) = missing else {
                return Ok(format!(
                    "observer {} sees {} host routes",
                    obs.get_ref(),
                    hosts.len()
                ));
            };
            let elapsed = cx.probes.now() - start;
            if elapsed + Duration::from_millis(v.interval_ms) >= timeout {
                return Err(format!("{m} (after {} ms)", elapsed.as_millis()));
            }
            cx.probes.sleep(Duration::from_millis(v.interval_ms));
        }
    })();
    let withdrawn = if fresh.is_empty() {
        Ok(())
    } else {
        cx.sites.withdraw(&primary.name, &fresh)
    };
    match (seen, withdrawn) {
        (Ok(note), Ok(())) => Ok(Some(note)),
        (Err(e), Ok(())) => Err(e),
        (r, Err(w)) => Err(format!(
            "{}; and withdrawing the check's host routes at {} failed: {w}; withdraw them there (`ferry withdraw`)",
            r.err().unwrap_or_else(|| "host routes seen".into()),
            primary.name
        )),
    }
}

/// Before anything moves, the observer must see every prefix from `from` (by the marks the
/// plan gives it, [`super::observe`]): a router that receives but filters the route (FRR's
/// `(Policy)`), or strips the marks, is a failed preflight, not a silent success later.
/// Polls for up to the verification timeout, each request bounded by the time left.
fn observer_sees_from(
    cx: &Ctx<'_>,
    obs: &str,
    prefixes: &[IpNet],
    v: &super::plan::Verify,
) -> Result<(), String> {
    let start = cx.probes.now();
    let timeout = Duration::from_millis(v.timeout_ms);
    let interval = Duration::from_millis(v.interval_ms);
    // What the observer showed the last time it answered.
    let mut saw: Option<String> = None;
    loop {
        let routes = cx
            .sites
            .received(obs, left(cx, start, timeout))
            .map_err(|e| match &saw {
                Some(s) => format!("{e} (before that: {s})"),
                None => e.to_string(),
            })?;
        let mut missing = None;
        for p in prefixes {
            let from = Marks::of(cx.plan, cx.from(), *p)?;
            let to = Marks::of(cx.plan, cx.to(), *p)?;
            if !routes
                .iter()
                .any(|r| r.prefix == *p && from.holds(&to, r, true))
            {
                missing = Some(format!(
                    "observer {obs} does not see {p} from {} ({from}); it sees {}",
                    cx.from().name,
                    observe::seen(&routes, *p)
                ));
                break;
            }
        }
        let Some(m) = missing else {
            return Ok(());
        };
        // No request is made with less than an interval left: it would fail by its own
        // timeout and hide what the observer showed.
        let elapsed = cx.probes.now() - start;
        if elapsed + interval >= timeout {
            return Err(format!(
                "{m} (after {} ms). A router on the way filters the route or strips its marks, or the plan's marks are wrong (origin_as, verify_community); fix that before moving",
                elapsed.as_millis(),
            ));
        }
        saw = Some(m);
        cx.probes.sleep(interval);
    }
}

/// What is left of the step's `timeout` since `start` (at least 1 ms, so that a call made at
/// the deadline fails by its own timeout rather than being given none).
fn left(cx: &Ctx<'_>, start: Instant, timeout: Duration) -> Duration {
    timeout
        .saturating_sub(cx.probes.now() - start)
        .max(Duration::from_millis(1))
}

fn health(
    cx: &Ctx<'_>,
    step: &Step,
    check: usize,
    group: Option<usize>,
) -> Result<Option<String>, String> {
    let c = &cx.plan.health_checks[check];
    let env = cx.env(step, group);
    let start = cx.probes.now();
    let interval = Duration::from_millis(c.interval_ms);
    let (mut ups, mut downs, mut tries) = (0u32, 0u32, 0u32);
    let mut last = String::new();
    loop {
        let left = c.timeout().saturating_sub(cx.probes.now() - start);
        tries += 1;
        match cx.probes.probe(
            &c.probe(),
            // One probe may take up to an interval (at least 1 s), never past the deadline.
            left.min(interval.max(Duration::from_secs(1)))
                .max(Duration::from_millis(1)),
            &env,
        ) {
            Ok(()) => {
                ups += 1;
                downs = 0;
                if ups >= c.rise {
                    return Ok(Some(format!("healthy after {tries} probes")));
                }
            }
            Err(e) => {
                ups = 0;
                downs += 1;
                last = e;
                if c.fall.is_some_and(|f| downs >= f) {
                    return Err(format!(
                        "health check {}: {downs} failures in a row, last: {last}",
                        c.name
                    ));
                }
            }
        }
        if cx.probes.now() - start + interval > c.timeout() {
            return Err(format!(
                "health check {} not healthy within {} ms ({tries} probes), last: {last}",
                c.name, c.timeout_ms
            ));
        }
        cx.probes.sleep(interval);
    }
}

/// One deadline for the step: each command run and each request to the observer gets only
/// what is left of `timeout_ms`, and the message reports the time it really took.
fn verify(cx: &Ctx<'_>, step: &Step, group: usize) -> Result<Option<String>, String> {
    let Some(v) = &cx.plan.verify else {
        return Ok(None);
    };
    let start = cx.probes.now();
    let timeout = Duration::from_millis(v.timeout_ms);
    let interval = Duration::from_millis(v.interval_ms);
    let mut tries = 0u32;
    // What the observer showed the last time it answered, for a failure by a request error.
    let mut saw: Option<String> = None;
    loop {
        tries += 1;
        let within = left(cx, start, timeout);
        let r = match (&v.observer, &v.command) {
            (Some(obs), _) => match cx.sites.received(obs.get_ref(), within) {
                Ok(routes) => observed(cx, obs.get_ref(), group, &routes).inspect_err(|e| {
                    saw = Some(e.clone());
                }),
                Err(e) => Err(e.to_string()),
            },
            (None, Some(cmd)) => cx.probes.probe(
                &Probe::Command(cmd.clone()),
                within,
                &cx.env(step, Some(group)),
            ),
            (None, None) => Ok(()),
        };
        let elapsed = cx.probes.now() - start;
        match r {
            Ok(()) => return Ok(Some(format!("seen after {} ms", elapsed.as_millis()))),
            Err(e) if elapsed + interval >= timeout => {
                let before = match saw {
                    Some(s) if s != e => format!(" (before that: {s})"),
                    _ => String::new(),
                };
                return Err(format!(
                    "not verified after {} ms ({tries} tries, timeout_ms = {}): {e}{before}",
                    elapsed.as_millis(),
                    v.timeout_ms
                ));
            }
            Err(_) => cx.probes.sleep(interval),
        }
    }
}

/// The observer `obs` has every prefix of `group` from `to` (by the marks the plan gives it)
/// and, in a planned run, none from `from`; a host route, announced at the recovery site only,
/// is required from the recovery after a failover and gone from it after a failback.
/// Unplanned: `from` may be isolated from us yet still announcing (its lease fences it), so
/// only the first half is required. When the plan's marks cannot tell the sites apart
/// (`ferry plan check` warns), only the first half is checked either way. A test run is
/// checked by [`observed_test`].
fn observed(cx: &Ctx<'_>, obs: &str, group: usize, routes: &[ReceivedRoute]) -> Result<(), String> {
    if cx.mode == Mode::Test {
        return observed_test(cx, obs, group, routes);
    }
    for p in cx.plan.group_at(group, cx.to()) {
        let to = Marks::of(cx.plan, cx.to(), p)?;
        let from = Marks::of(cx.plan, cx.from(), p)?;
        if !routes
            .iter()
            .any(|r| r.prefix == p && to.holds(&from, r, true))
        {
            return Err(format!(
                "observer {obs} has no path for {p} from {} ({to}); it sees {}",
                cx.to().name,
                observe::seen(routes, p)
            ));
        }
    }
    if cx.mode != Mode::Planned {
        return Ok(());
    }
    for p in cx.plan.group_at(group, cx.from()) {
        let to = Marks::of(cx.plan, cx.to(), p)?;
        let from = Marks::of(cx.plan, cx.from(), p)?;
        if from != to
            && routes
                .iter()
                .any(|r| r.prefix == p && from.holds(&to, r, false))
        {
            return Err(format!(
                "observer {obs} still has {p} from {} ({from}); it sees {}",
                cx.from().name,
                observe::seen(routes, p)
            ));
        }
    }
    Ok(())
}

/// A test run's check at the production observer: it still sees every subnet of `group` from
/// the primary, no route of the group carrying the test site's marks, and no path at all for
/// a host route (nothing in production announces one during a test). A route here is a leak
/// from the test network into production.
fn observed_test(
    cx: &Ctx<'_>,
    obs: &str,
    group: usize,
    routes: &[ReceivedRoute],
) -> Result<(), String> {
    let (primary, test) = (cx.plan.primary(), cx.to());
    for p in cx.plan.group_at(group, test) {
        let of_p: Vec<_> = routes.iter().filter(|r| r.prefix == p).collect();
        let host = cx.plan.groups[group].host_prefixes.contains(&p);
        let theirs = Marks::of(cx.plan, test, p)?;
        let ours = Marks::of(cx.plan, primary, p)?;
        if (host && !of_p.is_empty())
            || (theirs != ours && of_p.iter().any(|r| theirs.holds(&ours, r, false)))
        {
            return Err(format!(
                "observer {obs} sees {p} from the test network (test site {}): the test leaks into production; it sees {}",
                test.name,
                observe::seen(routes, p)
            ));
        }
        if !host && !of_p.iter().any(|r| ours.holds(&theirs, r, true)) {
            return Err(format!(
                "observer {obs} has no path for {p} from {} ({ours}) during the test; it sees {}",
                primary.name,
                observe::seen(routes, p)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
