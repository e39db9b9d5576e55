//! `ferry lab dns`: a mixed plan (group `web` moves 198.51.100.0/24 by BGP, group `app` comes
//! up with a new address that DNS follows) run by the failover controller in the lab, twice:
//! once pre-staged (`ferry failover prestage` ran ahead, so the resolver holds the short
//! `failover_ttl`) and once not (the resolver cached the record with the old `ttl` just before
//! the run). The client probes the subnet's VM by address and the app by name (a lookup at its
//! caching resolver before every probe, [`super::nameprobe`]).
//!
//! The app's loss window is split on one clock (the lab's): `cutover` (first lost probe -> the
//! DNS update step starts), `dns_update` (-> the update step is journaled done: the
//! authoritative server applied it), `authoritative` (-> the verify step is done: every
//! authoritative server, the primary and its secondary, answers the new address), `cache` (-> the first probe whose lookup
//! gave the new address: the resolver's cached entry expired), `answer` (-> its answer from the
//! recovery VM). Step times are when the controller's journal lines appeared (the journal
//! is read every 2 ms), so each boundary is within a few ms.
//!
//! Pass criteria: pre-staged, the client follows within `failover_ttl` + 1.5 s of the
//! update; not pre-staged, within the old `ttl` + 1.5 s and later than the pre-staged run's;
//! the subnet's probes end at the recovery VM; the failback brings both back to the primary.
//!
//! Never does: change the three-site lab's files (the DNS nodes are added at run time by
//! [`super::dns`]).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::dns::{self, DnsLab};
use super::instance::{preflight, LabInstance};
use super::journalwatch::{step_times, JournalWatch};
use super::mixedplan::write_plan;
use super::nameprobe::{NameProbe, NameProber};
use super::probe::{Probe, Prober};
use super::proc::{self, in_ns};
use super::scenarios::{DownGuard, Outcome, Say};
use super::topology::Site;
use super::{now_us, LabError, Result};

/// The records' normal TTL in the lab: short, so the run without pre-stage stays short.
pub const OLD_TTL: u32 = 20;
pub const FAILOVER_TTL: u32 = 5;
/// Milliseconds between the by-name probes (each with a lookup).
const NAME_INTERVAL: Duration = Duration::from_millis(10);
/// Slack on top of a TTL: the resolver's and the prober's own time.
const SLACK_MS: f64 = 1500.0;

/// The app's loss window and its parts, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct DnsMove {
    pub name: String,
    pub prestaged: bool,
    /// The TTL the resolver had cached the old answer with.
    pub cached_ttl: u32,
    pub converged: bool,
    pub loss_ms: Option<f64>,
    pub cutover_ms: Option<f64>,
    pub dns_update_ms: Option<f64>,
    pub authoritative_ms: Option<f64>,
    pub cache_ms: Option<f64>,
    pub answer_ms: Option<f64>,
    /// Update applied -> the client's first lookup giving the new address.
    pub follow_ms: Option<f64>,
    /// The subnet's loss window (probes by address, 1 ms apart).
    pub subnet_loss_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DnsReport {
    pub old_ttl: u32,
    pub failover_ttl: u32,
    pub name_probe_interval_ms: u64,
    pub moves: Vec<DnsMove>,
}

/// `ferry ARGS` run by the controller at the third site (in the DNS server's namespace: it
/// reaches the server there, the speakers by their Unix sockets).
fn ferry(d: &DnsLab, args: &[&str], state_dir: &Path, say: Say) -> Result<String> {
    let mut cmd = in_ns(&d.ns, &super::ferry_exe());
    cmd.args(args);
    if matches!(args.first(), Some(&"failover" | &"failback")) && args.get(1) != Some(&"prestage") {
        cmd.arg("--state-dir").arg(state_dir);
    }
    let out = proc::run(&mut cmd, Duration::from_secs(120))?;
    for l in out.lines() {
        say.line(&format!("  ferry {}: {l}", args[0]));
    }
    Ok(out)
}

/// First lost probe after the last answer from `from`; first answer from `to` after it.
fn window<P>(
    probes: &[P],
    from: &str,
    to: &str,
    tag: impl Fn(&P) -> Option<&str>,
    sent: impl Fn(&P) -> i64,
    recv: impl Fn(&P) -> Option<i64>,
) -> Option<(i64, usize, i64)> {
    let first_to = probes.iter().position(|p| tag(p) == Some(to))?;
    let last_from = probes[..first_to]
        .iter()
        .rposition(|p| tag(p) == Some(from))?;
    let lost = last_from + 1;
    Some((sent(probes.get(lost)?), first_to, recv(&probes[first_to])?))
}

fn ms(a: i64, b: i64) -> f64 {
    (b - a) as f64 / 1000.0
}

/// Analyse one move from the probes and the journal lines.
fn analyze(
    name: &str,
    prestaged: bool,
    cached_ttl: u32,
    named: &[NameProbe],
    subnet: &[Probe],
    lines: &[(i64, serde_json::Value)],
) -> DnsMove {
    let (p, r) = (Site::Primary.name(), Site::Recovery.name());
    let w = window(
        named,
        p,
        r,
        |x| x.tag.as_deref(),
        |x| x.sent_us,
        |x| x.recv_us,
    );
    let update = step_times(lines, "dns update app");
    let verify = step_times(lines, "dns verify app");
    let new_addr = dns::app_address(Site::Recovery);
    let first_new = w.and_then(|(lost_at, _, _)| {
        named
            .iter()
            .find(|x| x.sent_us >= lost_at && x.addr == Some(new_addr))
            .map(|x| x.sent_us)
    });
    let mut m = DnsMove {
        name: name.into(),
        prestaged,
        cached_ttl,
        converged: w.is_some(),
        loss_ms: w.map(|(a, _, b)| ms(a, b)),
        cutover_ms: None,
        dns_update_ms: None,
        authoritative_ms: None,
        cache_ms: None,
        answer_ms: None,
        follow_ms: None,
        subnet_loss_ms: window(
            subnet,
            p,
            r,
            |x| x.tag.as_deref(),
            |x| x.sent_us,
            |x| x.recv_us,
        )
        .map(|(a, _, b)| ms(a, b)),
    };
    if let (Some((lost, _, answered)), Some((u0, u1)), Some((_, v1)), Some(new)) =
        (w, update, verify, first_new)
    {
        // Boundaries in order (a part that ended before the previous one is 0).
        let mut b = [lost, u0, u1, v1, new, answered];
        for i in 1..b.len() {
            b[i] = b[i].max(b[i - 1]);
        }
        m.cutover_ms = Some(ms(b[0], b[1]));
        m.dns_update_ms = Some(ms(b[1], b[2]));
        m.authoritative_ms = Some(ms(b[2], b[3]));
        m.cache_ms = Some(ms(b[3], b[4]));
        m.answer_ms = Some(ms(b[4], b[5]));
        m.follow_ms = Some(ms(u1, new));
    }
    m
}

/// One failover of the mixed plan with both probers running, then its failback.
fn one_move(
    lab: &LabInstance,
    d: &mut DnsLab,
    plan: &Path,
    out: &Path,
    prestaged: bool,
    say: Say,
) -> Result<DnsMove> {
    let name = if prestaged {
        "failover-prestaged"
    } else {
        "failover-not-prestaged"
    };
    let plan_s = plan.display().to_string();
    let state = out.join("controller");
    if prestaged {
        ferry(d, &["failover", "prestage", "--plan", &plan_s], &state, say)?;
    } else {
        ferry(
            d,
            &["failover", "prestage", "--plan", &plan_s, "--restore"],
            &state,
            say,
        )?;
    }
    let cached_ttl = if prestaged { FAILOVER_TTL } else { OLD_TTL };
    // The secondary has it too (a resolver may ask either).
    d.wait_ttl(cached_ttl, Duration::from_secs(10))?;
    // An empty cache, filled by the prober's first lookup: with the short TTL after the
    // pre-stage (as once the old TTL has passed), with the old one without it.
    d.restart_resolver()?;
    let t = &lab.topo;
    let client = lab.ns(&t.client().map(|c| c.name.clone()).unwrap_or_default());
    let named = NameProber::start(
        &client,
        dns::RESOLVER,
        dns::NAME,
        t.probe_port,
        NAME_INTERVAL,
        out.join(format!("{name}-names.csv")),
    )?;
    let subnet = Prober::start(
        lab.rt.as_ref(),
        &client,
        std::net::SocketAddr::from((t.vm_address, t.probe_port)),
        lab.dir.join(format!("{name}-subnet.csv")),
        out.join(format!("{name}-subnet.csv")),
        |_| {},
    )?;
    let p = Site::Primary.name();
    if !named.wait_for(p, Duration::from_secs(5)) || !subnet.wait_for(p, 50, Duration::from_secs(5))
    {
        return Err(LabError::step(
            name,
            "the client's probes are not answered by the primary VMs",
        ));
    }
    say.line(&format!(
        "{name}: the client resolves {} to the primary app VM",
        dns::NAME
    ));
    let watch = JournalWatch::start(&state);
    let run = ferry(d, &["failover", "--yes", "--plan", &plan_s], &state, say);
    let bound = Duration::from_secs(u64::from(cached_ttl) + 10);
    let r = Site::Recovery.name();
    let followed = run.is_ok() && named.wait_for(r, bound) && subnet.wait_for(r, 50, bound);
    // A few answers from the new VM, for the record.
    std::thread::sleep(Duration::from_millis(300));
    let lines = watch.finish();
    let names = named.finish()?;
    let probes = subnet.finish()?;
    run?;
    let mut m = analyze(name, prestaged, cached_ttl, &names, &probes, &lines);
    m.converged &= followed;
    say.line(&format!("{name}: {m:?}"));
    // Back to the primary (records at failover_ttl, the subnet at the primary).
    ferry(d, &["failback", "--yes", "--plan", &plan_s], &state, say)?;
    let back = proc::poll(
        Duration::from_secs(u64::from(FAILOVER_TTL) + 10),
        Duration::from_millis(100),
        || {
            lab.route_via(Site::Primary)
                && d.dig_resolver()
                    .is_ok_and(|a| a == dns::app_address(Site::Primary).to_string())
        },
    );
    if !back {
        return Err(LabError::step(
            format!("{name}: failback"),
            "the resolver or the third site's route did not come back to the primary",
        ));
    }
    Ok(m)
}

/// `ferry lab dns`: up, the DNS nodes, both moves, the report (`OUT/dns-report.json`), down.
pub fn run(instance: &str, out: &Path, verbose: bool) -> Result<(Vec<Outcome>, DnsReport)> {
    let mut lab = LabInstance::new(instance, None)?;
    preflight(lab.rt.as_ref(), &lab.topo)?;
    dns::preflight()?;
    let _guard = DownGuard(instance.into());
    let say = Say {
        t0: now_us(),
        verbose,
    };
    std::fs::create_dir_all(out)
        .map_err(|e| LabError::step(format!("creating {}", out.display()), e))?;
    lab.up(&|m| say.line(m))?;
    say.line("adding the DNS servers and the app VMs");
    let mut d = DnsLab::start(&mut lab, OLD_TTL)?;
    d.start_app(Site::Primary, lab.topo.probe_port)?;
    let plan = write_plan(&lab, &d, out)?;
    let check = ferry(
        &d,
        &["dns", "check", "--plan", &plan.display().to_string()],
        &out.join("controller"),
        say,
    );
    let mut outcomes = Vec::new();
    let mut record = |name: &str, passed: bool, detail: String| {
        outcomes.push(Outcome::reported(name, passed, detail));
    };
    record(
        "dns-check",
        check.is_ok(),
        check.err().map(|e| e.to_string()).unwrap_or_default(),
    );
    let mut moves = Vec::new();
    for prestaged in [true, false] {
        match one_move(&lab, &mut d, &plan, out, prestaged, say) {
            Ok(m) => moves.push(m),
            Err(e) => record(
                if prestaged {
                    "failover-prestaged"
                } else {
                    "failover-not-prestaged"
                },
                false,
                e.to_string(),
            ),
        }
    }
    let with = moves.iter().find(|m| m.prestaged).and_then(|m| m.follow_ms);
    for m in &moves {
        let limit = f64::from(m.cached_ttl) * 1000.0 + SLACK_MS;
        let ok = m.converged
            && m.follow_ms.is_some_and(|f| f <= limit)
            && (m.prestaged || m.follow_ms.zip(with).is_some_and(|(f, w)| f > w))
            && m.subnet_loss_ms.is_some();
        record(
            &m.name,
            ok,
            format!(
                "client follows {} ms after the update (bound {limit:.0}); loss {} ms = cutover {} + dns update {} + authoritative {} + cache {} + answer {}; subnet loss {} ms",
                f(m.follow_ms),
                f(m.loss_ms),
                f(m.cutover_ms),
                f(m.dns_update_ms),
                f(m.authoritative_ms),
                f(m.cache_ms),
                f(m.answer_ms),
                f(m.subnet_loss_ms)
            ),
        );
    }
    let rep = DnsReport {
        old_ttl: OLD_TTL,
        failover_ttl: FAILOVER_TTL,
        name_probe_interval_ms: NAME_INTERVAL.as_millis() as u64,
        moves,
    };
    let path = out.join("dns-report.json");
    serde_json::to_string_pretty(&rep)
        .map_err(|e| LabError::step("dns report", e))
        .and_then(|j| {
            std::fs::write(&path, j)
                .map_err(|e| LabError::step(format!("writing {}", path.display()), e))
        })?;
    drop(d);
    Ok((outcomes, rep))
}

fn f(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.1}"))
}
