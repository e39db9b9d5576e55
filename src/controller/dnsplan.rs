//! The plan's `[[dns]]` entries: records that change address when a group moves (its VMs come
//! up at the other site with new addresses), updated by RFC 2136 with TSIG.
//!
//! ```toml
//! [[dns]]
//! name = "app"
//! server = "192.0.2.53:53"            # the primary authoritative server: takes the updates
//! servers = ["198.51.100.53"]         # optional: more authoritative servers to verify (port 53)
//! zone = "example.test."
//! tsig_key_file = "/etc/ferry/app.key" # BIND's key file format (tsig-keygen)
//! records = [ { name = "web.example.test.", primary = "198.51.100.20", recovery = "192.0.2.130" } ]
//! ttl = 300                           # the TTL the records normally carry
//! failover_ttl = 30                   # pre-stage: lowered ahead of a planned failover
//! group = "web"                       # after that group's move; absent: after every group
//! timeout_ms = 10000                  # one deadline for each DNS step
//! ```
//!
//! Contract: a checked entry has a usable name (it names steps), at least one server address,
//! an absolute zone, records inside the zone whose `primary` and `recovery` are addresses of
//! one family (A or AAAA) that differ, no record twice in the plan, `0 < failover_ttl <= ttl`,
//! and a group that exists. Errors name the entry, the field and the value.
//!
//! Never does: read the key file (the steps and `ferry dns check` do, when they need it: a
//! plan is also read back from a run's journal, where the key may since have been rotated).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use hickory_proto::rr::Name;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsEntry {
    pub name: String,
    pub server: Spanned<String>,
    #[serde(default)]
    pub servers: Vec<Spanned<String>>,
    pub zone: Spanned<String>,
    pub tsig_key_file: PathBuf,
    pub records: Vec<DnsRecord>,
    pub ttl: u32,
    pub failover_ttl: u32,
    pub group: Option<Spanned<String>>,
    #[serde(default = "dns_timeout")]
    pub timeout_ms: u64,
    /// `server` then `servers`, parsed by [`DnsEntry::check`].
    #[serde(skip)]
    pub addrs: Vec<SocketAddr>,
}

fn dns_timeout() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    pub name: String,
    pub primary: String,
    pub recovery: String,
}

impl DnsRecord {
    /// The address at the primary site (checked by [`DnsEntry::check`]).
    pub fn primary_ip(&self) -> IpAddr {
        self.primary.parse().expect("checked")
    }
    pub fn recovery_ip(&self) -> IpAddr {
        self.recovery.parse().expect("checked")
    }
}

/// `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`.
fn server_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not IP, IP:PORT or [IPv6]:PORT"))
}

fn absolute(s: &str) -> String {
    if s.ends_with('.') {
        s.to_owned()
    } else {
        format!("{s}.")
    }
}

impl DnsEntry {
    /// The zone as an absolute name.
    pub fn zone(&self) -> String {
        absolute(self.zone.get_ref())
    }

    /// Check the entry; `line` gives the line of a span.
    pub fn check(&mut self, line: &dyn Fn(usize) -> usize) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "dns.name = {n:?}: use letters, digits, '-', '_' and '.' only (it names the run's steps)"
            ));
        }
        self.addrs.clear();
        for (key, s) in std::iter::once(("server", &self.server))
            .chain(self.servers.iter().map(|s| ("servers", s)))
        {
            let a = server_addr(s.get_ref())
                .map_err(|e| format!("dns {n:?} {key} at line {}: {e}", line(s.span().start)))?;
            if self.addrs.contains(&a) {
                return Err(format!(
                    "dns {n:?} {key} at line {}: {a} appears twice",
                    line(s.span().start)
                ));
            }
            self.addrs.push(a);
        }
        let zone = Name::from_ascii(self.zone()).map_err(|e| {
            format!(
                "dns {n:?} zone = {:?} at line {}: {e}",
                self.zone.get_ref(),
                line(self.zone.span().start)
            )
        })?;
        if self.records.is_empty() {
            return Err(format!("dns {n:?}: records is empty"));
        }
        for (i, r) in self.records.iter_mut().enumerate() {
            r.name = absolute(&r.name);
            let rn = Name::from_ascii(&r.name)
                .map_err(|e| format!("dns {n:?} records[{i}].name = {:?}: {e}", r.name))?;
            if !zone.zone_of(&rn) {
                return Err(format!(
                    "dns {n:?} records[{i}].name = {:?} is not in zone {:?}",
                    r.name,
                    self.zone.get_ref()
                ));
            }
            let p: IpAddr = r.primary.parse().map_err(|_| {
                format!(
                    "dns {n:?} records[{i}].primary = {:?}: not an IPv4 or IPv6 address",
                    r.primary
                )
            })?;
            let q: IpAddr = r.recovery.parse().map_err(|_| {
                format!(
                    "dns {n:?} records[{i}].recovery = {:?}: not an IPv4 or IPv6 address",
                    r.recovery
                )
            })?;
            if p.is_ipv4() != q.is_ipv4() {
                return Err(format!(
                    "dns {n:?} records[{i}] ({}): primary {p} and recovery {q} are of different families (one record is A or AAAA)",
                    r.name
                ));
            }
            if p == q {
                return Err(format!(
                    "dns {n:?} records[{i}] ({}): primary and recovery are the same address {p}: nothing would change",
                    r.name
                ));
            }
        }
        for (i, r) in self.records.iter().enumerate() {
            let v6 = r.primary_ip().is_ipv6();
            if self.records[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&r.name) && o.primary_ip().is_ipv6() == v6)
            {
                return Err(format!(
                    "dns {n:?} records[{i}]: {} {} appears twice",
                    r.name,
                    if v6 { "AAAA" } else { "A" }
                ));
            }
        }
        if self.ttl == 0 || self.failover_ttl == 0 || self.failover_ttl > self.ttl {
            return Err(format!(
                "dns {n:?}: ttl = {} and failover_ttl = {}: both above 0, failover_ttl not above ttl",
                self.ttl, self.failover_ttl
            ));
        }
        if self.timeout_ms == 0 {
            return Err(format!("dns {n:?}: timeout_ms must be above 0"));
        }
        Ok(())
    }
}
