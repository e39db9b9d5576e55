//! The DNS steps of a run, for a `[[dns]]` entry ([`super::dnsplan`]), `from` being the site
//! losing the group and `to` the one gaining it:
//!
//! - **pre-stage** (planned runs only): the records, still at their `from` addresses, get
//!   `failover_ttl` (done already when `ferry failover prestage` ran ahead: then nothing is
//!   sent). Compensation: `ttl` again.
//! - **update**: one UPDATE of the zone, signed with the entry's TSIG key (RFC 8945), sent to
//!   `server`: for every record the prerequisite that its RRset is exactly the `from` address
//!   (RFC 2136 section 2.4.2), then the RRset replaced by the `to` address with
//!   `failover_ttl`. The server applies all of it or nothing (RFC 2136 section 3.4).
//!   Compensation: the same from `to` back to `from`, for the records that hold `to`.
//! - **verify**: until `timeout_ms`, every listed server answers every record with the `to`
//!   address and the zone's SOA serial the primary server has now (a secondary that has not
//!   transferred the updated zone answers an older serial).
//!
//! Contract:
//! - Idempotent: when a prerequisite fails and every record already holds what the step
//!   would write, the step is done (a run killed between the update and its journal record
//!   resumes); when a record holds anything else, the step fails naming each record's
//!   actual addresses and nothing was changed.
//! - Compensations restore only what this run set: a record holding an address it did not
//!   write (changed by someone else) is left alone and named in the note. A server that does
//!   not answer fails the compensation (the run stops for the operator: what the server holds
//!   cannot be known).
//! - An unplanned run has no pre-stage step and its DNS steps never contact the old site:
//!   the DNS servers are the only ones asked.
//! - Every call gets only what is left of the step's `timeout_ms`.
//!
//! Never does: journal, or choose what runs next ([`super::executor`]); build DNS messages
//! ([`crate::dns::client`]).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use super::dnsplan::{DnsEntry, DnsRecord};
use super::journal::Direction;
use super::step::Ctx;
use crate::dns::{client, Answer, DnsError, Replace, TsigKey, UpdateOutcome};

/// What the DNS steps ask of the world, so the executor's unit tests can use a fake.
pub trait Dns {
    fn key(&self, path: &Path) -> Result<TsigKey, String>;
    /// `host`'s A (or, `v6`, AAAA) records at `server`, asked without recursion.
    fn addresses(
        &self,
        server: SocketAddr,
        host: &str,
        v6: bool,
        within: Duration,
    ) -> Result<Answer, DnsError>;
    fn soa_serial(&self, server: SocketAddr, zone: &str, within: Duration)
        -> Result<u32, DnsError>;
    fn update(
        &self,
        server: SocketAddr,
        zone: &str,
        key: &TsigKey,
        changes: &[Replace],
        within: Duration,
    ) -> Result<UpdateOutcome, DnsError>;
    /// A signed update that changes nothing: Ok when the key is accepted and the zone takes
    /// updates from it ([`client::probe_update`]).
    fn probe_update(
        &self,
        server: SocketAddr,
        zone: &str,
        key: &TsigKey,
        within: Duration,
    ) -> Result<(), DnsError>;
}

/// The real one: key files on disk, [`crate::dns::client`] on the network.
pub struct SystemDns;

impl Dns for SystemDns {
    fn key(&self, path: &Path) -> Result<TsigKey, String> {
        TsigKey::load(path)
    }
    fn addresses(
        &self,
        server: SocketAddr,
        host: &str,
        v6: bool,
        within: Duration,
    ) -> Result<Answer, DnsError> {
        client::addresses(server, host, v6, within)
    }
    fn soa_serial(
        &self,
        server: SocketAddr,
        zone: &str,
        within: Duration,
    ) -> Result<u32, DnsError> {
        client::soa_serial(server, zone, within)
    }
    fn update(
        &self,
        server: SocketAddr,
        zone: &str,
        key: &TsigKey,
        changes: &[Replace],
        within: Duration,
    ) -> Result<UpdateOutcome, DnsError> {
        client::update(server, zone, key, changes, within)
    }
    fn probe_update(
        &self,
        server: SocketAddr,
        zone: &str,
        key: &TsigKey,
        within: Duration,
    ) -> Result<(), DnsError> {
        client::probe_update(server, zone, key, within)
    }
}

/// How often verification asks again.
const POLL: Duration = Duration::from_millis(20);

/// The record's address at the site losing the group and at the one gaining it.
fn ends(direction: Direction, r: &DnsRecord) -> (IpAddr, IpAddr) {
    match direction {
        Direction::Failover => (r.primary_ip(), r.recovery_ip()),
        Direction::Failback => (r.recovery_ip(), r.primary_ip()),
    }
}

/// One deadline for a step, on the executor's clock.
struct Deadline<'a> {
    cx: &'a Ctx<'a>,
    start: Instant,
    timeout: Duration,
}

impl<'a> Deadline<'a> {
    fn new(cx: &'a Ctx<'a>, e: &DnsEntry) -> Self {
        Self {
            cx,
            start: cx.probes.now(),
            timeout: Duration::from_millis(e.timeout_ms),
        }
    }
    fn elapsed(&self) -> Duration {
        self.cx.probes.now() - self.start
    }
    /// What is left (at least 1 ms: a call at the deadline fails by its own timeout).
    fn left(&self) -> Duration {
        self.timeout
            .saturating_sub(self.elapsed())
            .max(Duration::from_millis(1))
    }
}

fn show(a: &Answer) -> String {
    if a.addrs.is_empty() {
        "no address".into()
    } else {
        let v: Vec<String> = a.addrs.iter().map(|ip| ip.to_string()).collect();
        v.join(" ")
    }
}

/// Send `changes` as one update; a failed prerequisite is success when every record already
/// holds its `new` address (applied before, by an earlier attempt), else an error naming what
/// each record holds.
fn send(
    dns: &dyn Dns,
    e: &DnsEntry,
    key: &TsigKey,
    changes: &[Replace],
    left: &dyn Fn() -> Duration,
) -> Result<bool, String> {
    let server = e.addrs[0];
    let hint = |err: DnsError| -> String {
        match &err {
            DnsError::Refused(r) if r.tsig.is_some() => format!(
                "{err}: the server does not accept key {:?} from {} (name, algorithm and secret must match its key clause)",
                key.name,
                e.tsig_key_file.display()
            ),
            _ => err.to_string(),
        }
    };
    match dns
        .update(server, &e.zone(), key, changes, left())
        .map_err(hint)?
    {
        UpdateOutcome::Applied => Ok(true),
        UpdateOutcome::PrerequisiteFailed(rcode) => {
            let mut wrong = Vec::new();
            for c in changes {
                let a = dns
                    .addresses(server, &c.name, c.new.is_ipv6(), left())
                    .map_err(|err| {
                        format!(
                            "prerequisite failed ({rcode}); then reading {}: {err}",
                            c.name
                        )
                    })?;
                if a.addrs != [c.new] {
                    wrong.push(format!("{} holds {}, expected {}", c.name, show(&a), c.old));
                }
            }
            if wrong.is_empty() {
                return Ok(false);
            }
            Err(format!(
                "{server} refused the update: prerequisite failed ({rcode}): {}; changed outside ferry? nothing was changed",
                wrong.join("; ")
            ))
        }
    }
}

fn key(cx: &Ctx<'_>, e: &DnsEntry) -> Result<TsigKey, String> {
    cx.dns
        .key(&e.tsig_key_file)
        .map_err(|err| format!("dns {:?}: {err}", e.name))
}

/// Pre-stage in a run: `failover_ttl` on the records at their `from` addresses.
pub fn prestage(cx: &Ctx<'_>, e: &DnsEntry) -> Result<Option<String>, String> {
    let d = Deadline::new(cx, e);
    let key = key(cx, e)?;
    let server = e.addrs[0];
    let mut changes = Vec::new();
    let mut was = 0;
    for r in &e.records {
        let (from, _) = ends(cx.direction, r);
        let a = cx
            .dns
            .addresses(server, &r.name, from.is_ipv6(), d.left())
            .map_err(|err| err.to_string())?;
        if a.addrs == [from] && a.ttl.is_some_and(|t| t <= e.failover_ttl) {
            continue;
        }
        was = was.max(a.ttl.unwrap_or(0));
        changes.push(Replace {
            name: r.name.clone(),
            old: from,
            new: from,
            ttl: e.failover_ttl,
        });
    }
    if changes.is_empty() {
        return Ok(Some(format!(
            "pre-staged already: TTL {} s or less",
            e.failover_ttl
        )));
    }
    send(cx.dns, e, &key, &changes, &|| d.left())?;
    Ok(Some(format!(
        "TTL of {} records lowered to {} s now (was {was} s): resolvers may keep the old addresses up to {was} s; run `ferry failover prestage` that long ahead",
        changes.len(),
        e.failover_ttl
    )))
}

/// The records among `changes` that hold their `old` address now and do not already carry
/// the change's TTL (the others need nothing, or are left alone by a compensation: this run
/// did not set them), and words about those left alone.
fn ours(
    dns: &dyn Dns,
    e: &DnsEntry,
    changes: Vec<Replace>,
    left: &dyn Fn() -> Duration,
) -> Result<(Vec<Replace>, Vec<String>), String> {
    let mut keep = Vec::new();
    let mut other = Vec::new();
    for c in changes {
        let a = dns
            .addresses(e.addrs[0], &c.name, c.old.is_ipv6(), left())
            .map_err(|err| err.to_string())?;
        if a.addrs == [c.old] {
            if c.old != c.new || a.ttl != Some(c.ttl) {
                keep.push(c);
            }
        } else {
            other.push(format!("{} holds {}", c.name, show(&a)));
        }
    }
    Ok((keep, other))
}

fn left_alone(other: &[String]) -> String {
    if other.is_empty() {
        String::new()
    } else {
        format!("; left alone (not set by this run): {}", other.join(", "))
    }
}

/// Undo the pre-stage: `ttl` again on the records that hold their `from` addresses.
pub fn unstage(cx: &Ctx<'_>, e: &DnsEntry) -> Result<Option<String>, String> {
    let d = Deadline::new(cx, e);
    let key = key(cx, e)?;
    let changes: Vec<Replace> = e
        .records
        .iter()
        .map(|r| {
            let (from, _) = ends(cx.direction, r);
            Replace {
                name: r.name.clone(),
                old: from,
                new: from,
                ttl: e.ttl,
            }
        })
        .collect();
    let (changes, other) = ours(cx.dns, e, changes, &|| d.left())?;
    if !changes.is_empty() {
        send(cx.dns, e, &key, &changes, &|| d.left())?;
    }
    Ok(Some(format!(
        "TTL {} s again on {} records{}",
        e.ttl,
        changes.len(),
        left_alone(&other)
    )))
}

/// The update (`undo`: its compensation, `to` back to `from`, for the records that hold `to`).
pub fn update(cx: &Ctx<'_>, e: &DnsEntry, undo: bool) -> Result<Option<String>, String> {
    let d = Deadline::new(cx, e);
    let key = key(cx, e)?;
    let changes: Vec<Replace> = e
        .records
        .iter()
        .map(|r| {
            let (from, to) = ends(cx.direction, r);
            let (old, new) = if undo { (to, from) } else { (from, to) };
            Replace {
                name: r.name.clone(),
                old,
                new,
                ttl: e.failover_ttl,
            }
        })
        .collect();
    let what = |changes: &[Replace]| -> String {
        let v: Vec<String> = changes
            .iter()
            .map(|c| format!("{} {}", c.name, c.new))
            .collect();
        v.join(", ")
    };
    if undo {
        let (changes, other) = ours(cx.dns, e, changes, &|| d.left())?;
        if changes.is_empty() {
            return Ok(Some(format!("nothing to restore{}", left_alone(&other))));
        }
        send(cx.dns, e, &key, &changes, &|| d.left())?;
        return Ok(Some(format!(
            "restored at {}: {}{}",
            e.addrs[0],
            what(&changes),
            left_alone(&other)
        )));
    }
    let sent = send(cx.dns, e, &key, &changes, &|| d.left())?;
    Ok(Some(if sent {
        format!("updated at {}: {}", e.addrs[0], what(&changes))
    } else {
        format!("already updated (an earlier attempt): {}", what(&changes))
    }))
}

/// Every listed server answers every record with its `to` address, at the serial the primary
/// server has now.
pub fn verify(cx: &Ctx<'_>, e: &DnsEntry) -> Result<Option<String>, String> {
    let d = Deadline::new(cx, e);
    let zone = e.zone();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let r = (|| -> Result<u32, String> {
            let serial = cx
                .dns
                .soa_serial(e.addrs[0], &zone, d.left())
                .map_err(|err| err.to_string())?;
            for server in &e.addrs {
                if *server != e.addrs[0] {
                    let s = cx
                        .dns
                        .soa_serial(*server, &zone, d.left())
                        .map_err(|err| err.to_string())?;
                    if s != serial {
                        return Err(format!(
                            "{server} serves {zone} at serial {s}, the primary {} at {serial}",
                            e.addrs[0]
                        ));
                    }
                }
                for rec in &e.records {
                    let (_, to) = ends(cx.direction, rec);
                    let a = cx
                        .dns
                        .addresses(*server, &rec.name, to.is_ipv6(), d.left())
                        .map_err(|err| err.to_string())?;
                    if a.addrs != [to] {
                        return Err(format!(
                            "{server} answers {} with {}, expected {to}",
                            rec.name,
                            show(&a)
                        ));
                    }
                }
            }
            Ok(serial)
        })();
        let elapsed = d.elapsed();
        match r {
            Ok(serial) => {
                return Ok(Some(format!(
                    "{} servers answer the new addresses (serial {serial}) after {} ms",
                    e.addrs.len(),
                    elapsed.as_millis()
                )))
            }
            Err(err) if elapsed + POLL >= d.timeout => {
                return Err(format!(
                    "dns {:?} not verified after {} ms ({tries} tries, timeout_ms = {}): {err}",
                    e.name,
                    elapsed.as_millis(),
                    e.timeout_ms
                ))
            }
            Err(_) => cx.probes.sleep(POLL),
        }
    }
}

/// `ferry failover prestage`: `failover_ttl` (`restore`: `ttl`) on the records at whichever
/// of their two addresses they hold now. One signed update per entry; lines to show.
pub fn set_ttl(dns: &dyn Dns, e: &DnsEntry, restore: bool) -> Result<Vec<String>, String> {
    let start = Instant::now();
    let timeout = Duration::from_millis(e.timeout_ms);
    let left = || {
        timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1))
    };
    let key = dns
        .key(&e.tsig_key_file)
        .map_err(|err| format!("dns {:?}: {err}", e.name))?;
    let ttl = if restore { e.ttl } else { e.failover_ttl };
    let server = e.addrs[0];
    let mut changes = Vec::new();
    let mut lines = Vec::new();
    for r in &e.records {
        let (p, q) = (r.primary_ip(), r.recovery_ip());
        let a = dns
            .addresses(server, &r.name, p.is_ipv6(), left())
            .map_err(|err| err.to_string())?;
        let at = if a.addrs == [p] {
            p
        } else if a.addrs == [q] {
            q
        } else {
            return Err(format!(
                "dns {:?}: {} holds {} at {server}, neither primary {p} nor recovery {q}; nothing was changed",
                e.name,
                r.name,
                show(&a)
            ));
        };
        lines.push(format!(
            "{} {at}: TTL {} -> {ttl}",
            r.name,
            a.ttl.map_or("?".into(), |t| t.to_string())
        ));
        changes.push(Replace {
            name: r.name.clone(),
            old: at,
            new: at,
            ttl,
        });
    }
    send(dns, e, &key, &changes, &left)?;
    Ok(lines)
}

/// When the records carry more than `failover_ttl`: the warning `plan check` gives.
pub fn not_prestaged(dns: &dyn Dns, e: &DnsEntry) -> Result<Option<String>, String> {
    let mut high = Vec::new();
    for r in &e.records {
        let a = dns
            .addresses(
                e.addrs[0],
                &r.name,
                r.primary_ip().is_ipv6(),
                Duration::from_millis(e.timeout_ms),
            )
            .map_err(|err| err.to_string())?;
        if let Some(t) = a.ttl.filter(|t| *t > e.failover_ttl) {
            high.push(format!("{} TTL {t} s", r.name));
        }
    }
    Ok((!high.is_empty()).then(|| {
        format!(
            "dns {:?} is not pre-staged ({}; failover_ttl = {}): resolvers would keep the old addresses that long; run `ferry failover prestage --plan PLAN` at least {} s before a planned failover",
            e.name,
            high.join(", "),
            e.failover_ttl,
            e.ttl
        )
    }))
}

/// `ferry dns check`: the key file, every server, the records' addresses (which site they
/// point at) and that the zone takes updates signed with the key. Lines to show, or the
/// first problem.
pub fn check(dns: &dyn Dns, e: &DnsEntry) -> Result<Vec<String>, String> {
    let timeout = Duration::from_millis(e.timeout_ms);
    let zone = e.zone();
    let mut lines = Vec::new();
    let key = dns
        .key(&e.tsig_key_file)
        .map_err(|err| format!("dns {:?}: {err}", e.name))?;
    lines.push(format!(
        "key {} ({}) from {}: valid",
        key.name,
        key.algorithm,
        e.tsig_key_file.display()
    ));
    let mut sides = Vec::new();
    for server in &e.addrs {
        let serial = dns
            .soa_serial(*server, &zone, timeout)
            .map_err(|err| err.to_string())?;
        lines.push(format!("{server}: answers for {zone}, serial {serial}"));
        for r in &e.records {
            let (p, q) = (r.primary_ip(), r.recovery_ip());
            let a = dns
                .addresses(*server, &r.name, p.is_ipv6(), timeout)
                .map_err(|err| err.to_string())?;
            let side = if a.addrs == [p] {
                "primary"
            } else if a.addrs == [q] {
                "recovery"
            } else {
                return Err(format!(
                    "dns {:?}: {server} answers {} with {}, neither primary {p} nor recovery {q}",
                    e.name,
                    r.name,
                    show(&a)
                ));
            };
            sides.push(side);
            lines.push(format!(
                "  {} {} ({side}), TTL {}",
                r.name,
                show(&a),
                a.ttl.map_or("?".into(), |t| t.to_string())
            ));
        }
    }
    if sides.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!(
            "dns {:?}: the records point at different sites ({}): a half-done move?",
            e.name,
            sides.join(", ")
        ));
    }
    dns.probe_update(e.addrs[0], &zone, &key, timeout)
        .map_err(|err| format!("dns {:?}: updates: {err}", e.name))?;
    lines.push(format!(
        "{}: takes updates of {zone} signed with key {}",
        e.addrs[0], key.name
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests;
