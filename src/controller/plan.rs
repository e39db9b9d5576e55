//! The failover plan: a TOML file read once, checked whole, then treated as data.
//!
//! Contract:
//! - Unknown keys are rejected by name; every bad value names its key, the value and the line
//!   (toml reports the position; rules spanning keys look the line up from a span: the value's,
//!   or that of its `[[table]]`).
//! - A `Plan` that exists is usable: primary and recovery (and `test_site`) are distinct
//!   sites, every group, hook, health check and observer reference resolves, every subnet and
//!   host route builds a valid [`Route`] with each site's attributes, no prefix appears twice,
//!   `hosts` are /32 or /128 outside every subnet the plan moves, and `test = true` hooks
//!   and checks have a `test_site` (and no stop-primary stage).
//! - The plan's text is kept ([`Plan::text`]) so a run's journal can carry it and `resume`
//!   never depends on the file still being there or unchanged.
//!
//! Never does: contact a speaker or run a hook (see [`super::executor`]).
//!
//! The format (a valid plan: tests/examples.rs checks it, as it checks the plans of
//! examples/plan/). Hooks and health checks with a `group` run for that group, after its
//! stop-primary and cutover hooks; without one they are plan-wide and run before any group
//! moves, so a check of VMs that a group's cutover recovers needs that group.
//!
//! ```toml
//! name = "web"
//! primary = "dc1"
//! recovery = "dc2"
//! order = "break-before-make"   # or "make-before-break"
//! on_failure = "rollback"       # or "stop" (wait for the operator)
//! overlap_ms = 0                # make-before-break: time both sites announce
//! # test_site = "dc2-test"      # `failover --test` announces there instead (docs/drills.md)
//! [drain]                       # optional: re-announce with GRACEFUL_SHUTDOWN, then wait
//! wait_ms = 5000
//! [[site]]
//! name = "dc1"
//! api = "/run/ferry/dc1.sock"   # or http://host:port, with api_token_file
//! next_hop = "192.0.2.10"       # next_hop6 for IPv6 subnets; absent: next hop self
//! communities = ["65001:100"]   # also large_communities, med, local_pref, prepend,
//! lease_secs = 30               # leased mode: withdrawn unless `ferry lease renew` comes
//! origin_as = 65101             # with [verify] observer: the last AS of the AS path it sees
//! verify_community = "65001:1"  # optional: added to this site's routes; the observer checks it
//! [[site]]
//! name = "dc2"
//! api = "http://192.0.2.20:8179"
//! api_token_file = "/etc/ferry/dc2-token"
//! next_hop = "192.0.2.20"
//! lease_secs = 30
//! origin_as = 65102
//! [[site]]                      # an observer: neither primary nor recovery
//! name = "obs"
//! api = "/run/ferry/obs.sock"
//! [[group]]                     # groups move one after the other, in file order
//! name = "web"
//! subnets = ["198.51.100.0/24"]
//! # hosts = ["203.0.113.10/32"] # host routes only the recovery announces (docs/drills.md)
//! [[hook]]                      # stage: pre-check, stop-primary, cutover, post-check
//! name = "vm-cutover"
//! stage = "cutover"
//! group = "web"                 # optional: only for that group
//! command = ["/usr/local/bin/cutover", "--plan", "web"]
//! env = { SITE = "dc2" }        # or http = { url = "https://...", method = "POST", ca_file = "ca.pem" }
//! timeout_ms = 60000
//! undo = ["/usr/local/bin/cutover", "--undo"]   # optional compensation
//! # test = true                 # test failovers only (hooks and health checks alike)
//! [[health_check]]
//! name = "web-tcp"
//! group = "web"                 # after the web group's cutover
//! tcp = "198.51.100.10:80"      # or http = "http://...", icmp = "198.51.100.10", command = [...]
//! interval_ms = 500
//! rise = 2
//! fall = 10                     # optional; absent: only the timeout fails it
//! timeout_ms = 60000
//! [verify]                      # optional
//! observer = "obs"              # a site whose received routes must show the move
//! # command = ["vtysh", "-c", "show ip bgp 198.51.100.0/24"]
//! # match_next_hop = true       # also compare next hops (only if nothing rewrites them)
//! timeout_ms = 10000            # one deadline for the whole check of a group
//! interval_ms = 100
//! [auto]                        # optional, HA controllers on etcd only (docs/ha.md)
//! after_secs = 10               # failover by quorum once most non-primary sites saw it down
//! interval_ms = 500             # each controller's check of the primary's speaker API
//! margin_ms = 1000              # added to the primary's lease_secs before announcing
//! [[auto.check]]                # optional, as [[health_check]]: the primary's VMs
//! name = "web-at-dc1"
//! tcp = "192.0.2.81:443"
//! [store]                       # optional: the HA controllers' etcd (docs/ha.md), used by
//! etcd = ["192.0.2.1:2379", "192.0.2.2:2379", "192.0.2.3:2379"]   # commands given this plan
//! ttl_secs = 5                  # the lock's and leadership's lease; --etcd-* flags override
//! # ca = "/etc/ferry/etcd-ca.pem"   # then https; cert + key, user + password_file as the flags
//! [rpki]                        # optional: RPKI preflight (docs/rpki.md); needs origin_as
//! rtr = ["192.0.2.30:3323"]     # RTR validators, asked in order, first that answers is used
//! timeout_ms = 5000             # per validator
//! ```
//!
//! Verification by an observer. The observer is a Ferry speaker at a third site (where the
//! clients are), peering with the routers that carry the subnet there, e.g. eBGP with the
//! third site's edge router; it announces nothing and needs only its `[[site]]` with `api`.
//! Before anything moves, the preflight requires it to see each subnet from the site losing
//! it; after each group moves, it must see the subnet from the site gaining it and, in a
//! planned run, no longer from the other. It recognises a site's route by what survives the
//! routers in between ([`super::observe`]): `origin_as`, the last AS of the AS path (the site
//! speaker's AS unless a router replaces it; a plan field because the speaker's API does not
//! report its AS, and what counts is what reaches the observer), and `verify_community`, which
//! the site then announces with its routes (routers must pass communities on; the site losing
//! the subnet must already announce with it). Each of the two sites needs at least one of
//! them, and `ferry plan check` warns when both sites look the same (same origin AS, no
//! differing community). The next hop is compared only with `match_next_hop = true`: eBGP
//! routers set their own next hop (next-hop-self), so by default it proves nothing. A router
//! that holds a route of its own for the subnet does not pass for a site: its path ends in
//! its own AS. A failed check names the observer and lists every path it holds for the
//! subnet (AS path, next hop, communities).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::dnsplan::DnsEntry;
use crate::speaker::attrs::AttributesText;
use crate::speaker::Route;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plan {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    BreakBeforeMake,
    MakeBeforeBreak,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    Rollback,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    PreCheck,
    StopPrimary,
    Cutover,
    PostCheck,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    pub primary: Spanned<String>,
    pub recovery: Spanned<String>,
    pub order: Order,
    #[serde(default = "rollback")]
    pub on_failure: OnFailure,
    #[serde(default)]
    pub overlap_ms: u64,
    pub drain: Option<Drain>,
    #[serde(rename = "site")]
    pub sites: Vec<Site>,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
    #[serde(default, rename = "hook")]
    pub hooks: Vec<Hook>,
    #[serde(default, rename = "health_check")]
    pub health_checks: Vec<HealthCheck>,
    pub verify: Option<Verify>,
    /// Failover by quorum of the HA controllers (off without the table; docs/ha.md).
    pub auto: Option<Auto>,
    /// Records whose addresses change with a group (RFC 2136 updates): [`super::dnsplan`].
    #[serde(default, rename = "dns")]
    pub dns: Vec<DnsEntry>,
    /// The site that `ferry failover --test` announces to instead of `recovery`: a speaker at
    /// the recovery site peered only with the isolated test network's routers (SRM's "test
    /// network"). Never primary, recovery or the observer.
    pub test_site: Option<Spanned<String>>,
    pub rpki: Option<Rpki>,
    /// Where the HA controllers keep their state when no `--store` is given.
    pub store: Option<PlanStore>,
    #[serde(skip)]
    pub text: String,
}

/// `[store]`: the etcd the plan's HA controllers share, as `--store etcd://...` and the
/// `--etcd-*` flags give it (a flag, or `FERRY_STORE`, wins over the table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStore {
    /// The members, `"host:port"` each.
    pub etcd: Vec<String>,
    pub ttl_secs: Option<u64>,
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
}

impl PlanStore {
    /// The `--store` value this table stands for.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.etcd.join(","))
    }

    pub fn auth(&self) -> super::store::EtcdAuth {
        super::store::EtcdAuth {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            user: self.user.clone(),
            password_file: self.password_file.clone(),
        }
    }

    /// Checked as the flags are, errors naming the table's fields.
    fn check(&self) -> Result<(), String> {
        if self.etcd.is_empty() {
            return Err("store.etcd is empty: list the etcd members, \"host:port\" each".into());
        }
        if let Some(m) = self
            .etcd
            .iter()
            .find(|m| m.contains(',') || m.contains("://"))
        {
            return Err(format!(
                "store.etcd member {m:?}: expected \"host:port\" (one member per string)"
            ));
        }
        let ttl = self.ttl_secs.unwrap_or(super::store::DEFAULT_TTL_SECS);
        super::store::StoreSpec::parse(
            Some(&self.url()),
            std::path::Path::new(""),
            self.auth(),
            ttl,
        )
        .map(|_| ())
        .map_err(|e| {
            [
                ("--store", "store.etcd"),
                ("--etcd-ttl-secs", "store.ttl_secs"),
                ("--etcd-cert and --etcd-key", "store.cert and store.key"),
                (
                    "--etcd-user and --etcd-password-file",
                    "store.user and store.password_file",
                ),
            ]
            .iter()
            .fold(e, |e, (flag, field)| e.replacen(flag, field, 1))
        })
    }
}

/// `[auto]`: the HA controllers (`ferry controller run --site`) check the primary's speaker
/// API; when a majority of the controllers not at the primary have seen it down for
/// `after_secs`, the leader starts an unplanned failover and announces at the recovery site
/// only after the primary's leases ran out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auto {
    /// How long the primary must be seen down by a majority.
    pub after_secs: u32,
    /// How often each controller checks the primary (also each check's timeout).
    #[serde(default = "auto_interval")]
    pub interval_ms: u64,
    /// Added to the primary's `lease_secs` (and one renewal's timeout) before announcing at
    /// the recovery site.
    #[serde(default = "auto_margin")]
    pub margin_ms: u64,
    /// Checks of the primary's VMs (`[[auto.check]]`, as `[[health_check]]` is written): the
    /// primary is seen down when its speaker's API does not answer or one of these fails.
    #[serde(default, rename = "check")]
    pub checks: Vec<HealthCheck>,
}

fn auto_interval() -> u64 {
    500
}
fn auto_margin() -> u64 {
    1000
}

fn rollback() -> OnFailure {
    OnFailure::Rollback
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: String,
    pub api: String,
    pub api_token_file: Option<PathBuf>,
    /// Next hop of IPv4 subnets (absent: the speaker's own address on each session).
    pub next_hop: Option<String>,
    /// Next hop of IPv6 subnets.
    pub next_hop6: Option<String>,
    #[serde(default)]
    pub communities: Vec<String>,
    #[serde(default)]
    pub large_communities: Vec<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    #[serde(default)]
    pub prepend: u32,
    /// Announce in leased mode (fencing): the site's speaker withdraws the subnets by itself
    /// unless `ferry lease renew` reaches it within this many seconds, so a site cut off from
    /// its renewer stops attracting traffic.
    pub lease_secs: Option<u32>,
    /// How `[verify] observer` recognises this site's routes: the last AS of their AS_PATH
    /// as the observer receives them (this site's speaker's AS, unless a router on the way
    /// replaces it). A plan field because the speaker's API does not report its AS, and
    /// because what counts is what arrives at the observer, not what the speaker sends.
    pub origin_as: Option<u32>,
    /// A community ("ASN:VALUE", or "A:B:C" for a large one) this site adds to its
    /// announcements, and that `[verify] observer` looks for on its routes.
    pub verify_community: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<Spanned<String>>,
    /// Host routes (/32, /128) the recovery side announces while the primary keeps the
    /// covering subnet: moves single VMs (longest match wins).
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// Parsed from `subnets` by [`Plan::parse`].
    #[serde(skip)]
    pub prefixes: Vec<IpNet>,
    /// Parsed from `hosts` by [`Plan::parse`].
    #[serde(skip)]
    pub host_prefixes: Vec<IpNet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub name: String,
    pub stage: Stage,
    pub group: Option<Spanned<String>>,
    pub command: Option<Vec<String>>,
    pub http: Option<HttpCall>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "hook_timeout")]
    pub timeout_ms: u64,
    pub undo: Option<Vec<String>>,
    /// Runs in test failovers only (`ferry failover --test`), never in a real run; its `undo`
    /// runs at `ferry failover cleanup-test`.
    #[serde(default)]
    pub test: bool,
}

fn hook_timeout() -> u64 {
    60_000
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    /// `http://host:port/path` or `https://...` (see [`super::http`]).
    pub url: String,
    #[serde(default = "post")]
    pub method: String,
    pub body: Option<String>,
    /// The status that means success; any 2xx when absent.
    pub expect_status: Option<u16>,
    /// PEM file of the CAs that sign the server's certificate (instead of the public roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and its key, for servers that ask for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

fn post() -> String {
    "POST".into()
}

impl HttpCall {
    /// A health probe: GET `url`, any 2xx is success, no client certificate.
    pub fn get(url: String, ca_file: Option<PathBuf>) -> Self {
        HttpCall {
            url,
            method: "GET".into(),
            body: None,
            expect_status: None,
            ca_file,
            client_cert: None,
            client_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub name: String,
    pub group: Option<Spanned<String>>,
    /// `host:port` that must accept a TCP connection.
    pub tcp: Option<String>,
    /// `http(s)://host:port/path` that must answer 2xx to a GET.
    pub http: Option<String>,
    /// For an `https://` check: PEM file of the CAs that sign the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// A host that must answer `ping -c 1` (ICMP through the system's ping).
    pub icmp: Option<String>,
    pub command: Option<Vec<String>>,
    #[serde(default = "interval")]
    pub interval_ms: u64,
    #[serde(default = "one")]
    pub rise: u32,
    pub fall: Option<u32>,
    #[serde(default = "check_timeout")]
    pub timeout_ms: u64,
    /// Runs in test failovers only, never in a real run.
    #[serde(default)]
    pub test: bool,
}

fn interval() -> u64 {
    500
}
fn one() -> u32 {
    1
}
fn check_timeout() -> u64 {
    60_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    pub observer: Option<Spanned<String>>,
    pub command: Option<Vec<String>>,
    #[serde(default = "verify_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "verify_interval")]
    pub interval_ms: u64,
    /// Also require the site's `next_hop` at the observer: only for observers that receive
    /// the sites' routes with their next hops unchanged (iBGP, or a route server).
    #[serde(default)]
    pub match_next_hop: bool,
}

/// `[rpki]`: the RTR validators whose VRPs the preflight validates each site's routes against
/// (RFC 6811), by the sites' `origin_as` ([`super::rpki`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rpki {
    /// `"host:port"` or a list of them, asked in order; the first that answers is used.
    #[serde(deserialize_with = "one_or_many")]
    pub rtr: Vec<String>,
    /// One deadline per validator: connect and its whole answer.
    #[serde(default = "rpki_timeout")]
    pub timeout_ms: u64,
}

fn rpki_timeout() -> u64 {
    5_000
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "rtr: give \"host:port\" or a list [\"host:port\", ...]",
        )),
    }
}

fn verify_timeout() -> u64 {
    10_000
}
fn verify_interval() -> u64 {
    100
}

/// What a probe (health check or command verification) does once.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Tcp(String),
    Http(HttpCall),
    Command(Vec<String>),
}

impl HealthCheck {
    pub fn probe(&self) -> Probe {
        if let Some(a) = &self.tcp {
            return Probe::Tcp(a.clone());
        }
        if let Some(u) = &self.http {
            return Probe::Http(HttpCall::get(u.clone(), self.ca_file.clone()));
        }
        if let Some(h) = &self.icmp {
            let argv = ["ping", "-n", "-q", "-c", "1", "-W", "1", h.as_str()];
            return Probe::Command(argv.iter().map(|s| s.to_string()).collect());
        }
        Probe::Command(self.command.clone().unwrap_or_default())
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Hook {
    pub fn in_group(&self, group: Option<&str>) -> bool {
        self.group.as_ref().map(|g| g.get_ref().as_str()) == group
    }
}

impl Site {
    /// The route this site announces for `prefix`, with its attributes; validated.
    pub fn route(&self, prefix: IpNet) -> Result<Route, String> {
        let next_hop = match prefix {
            IpNet::V4(_) => &self.next_hop,
            IpNet::V6(_) => &self.next_hop6,
        };
        let mut attrs = AttributesText::default();
        attrs.communities.clone_from(&self.communities);
        attrs.large_communities.clone_from(&self.large_communities);
        if let Some(c) = &self.verify_community {
            match super::observe::Tag::parse(c)
                .map_err(|e| format!("site {:?} verify_community: {e}", self.name))?
            {
                super::observe::Tag::Standard(_) => attrs.communities.push(c.clone()),
                super::observe::Tag::Large(_) => attrs.large_communities.push(c.clone()),
            }
        }
        attrs.med = self.med;
        attrs.local_pref = self.local_pref;
        Route::from_text(
            &prefix.to_string(),
            next_hop.as_deref(),
            attrs,
            self.prepend,
            self.lease_secs,
        )
        .map_err(|e| format!("site {:?}: {e}", self.name))
    }
}

/// Line (1-based) of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl Plan {
    pub fn load(path: &Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| PlanError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parse and check; errors carry key, value and line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut plan: Plan =
            toml::from_str(text).map_err(|e| crate::suggest::did_you_mean(&e.to_string()))?;
        plan.text = text.to_owned();
        plan.check()?;
        Ok(plan)
    }

    fn at<T>(&self, s: &Spanned<T>) -> usize {
        line_of(&self.text, s.span().start)
    }

    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }

    pub fn primary(&self) -> &Site {
        self.site(self.primary.get_ref()).expect("checked")
    }

    pub fn recovery(&self) -> &Site {
        self.site(self.recovery.get_ref()).expect("checked")
    }

    /// The subnets of every group (what the primary announces; hosts excluded).
    pub fn all_prefixes(&self) -> Vec<IpNet> {
        self.groups
            .iter()
            .flat_map(|g| g.prefixes.iter().copied())
            .collect()
    }

    /// The host routes of every group.
    pub fn all_hosts(&self) -> Vec<IpNet> {
        self.groups
            .iter()
            .flat_map(|g| g.host_prefixes.iter().copied())
            .collect()
    }

    /// The test site (`test_site`), when the plan has one.
    pub fn test_site(&self) -> Option<&Site> {
        self.test_site.as_ref().and_then(|t| self.site(t.get_ref()))
    }

    /// What `site` announces for group `g` when the group is there: the primary keeps only
    /// the subnets (it holds the hosts' covering subnet), the recovery and test sites announce
    /// the subnets and the host routes.
    pub fn group_at(&self, g: usize, site: &Site) -> Vec<IpNet> {
        let group = &self.groups[g];
        let mut v = group.prefixes.clone();
        if site.name != *self.primary.get_ref() {
            v.extend(group.host_prefixes.iter().copied());
        }
        v
    }

    /// [`Plan::group_at`] over every group.
    pub fn all_at(&self, site: &Site) -> Vec<IpNet> {
        (0..self.groups.len())
            .flat_map(|g| self.group_at(g, site))
            .collect()
    }

    fn site_ref(&self, key: &str, s: &Spanned<String>) -> Result<(), String> {
        if self.site(s.get_ref()).is_none() {
            let names: Vec<_> = self.sites.iter().map(|s| s.name.as_str()).collect();
            let guess = crate::suggest::closest(s.get_ref(), &names)
                .map(|n| format!("; did you mean {n:?}?"))
                .unwrap_or_default();
            return Err(format!(
                "{key} = {:?} at line {}: no [[site]] has that name (sites: {}){guess}",
                s.get_ref(),
                self.at(s),
                names.join(", ")
            ));
        }
        Ok(())
    }

    fn group_ref(&self, key: &str, g: &Option<Spanned<String>>) -> Result<(), String> {
        if let Some(g) = g {
            if !self.groups.iter().any(|x| &x.name == g.get_ref()) {
                let names: Vec<_> = self.groups.iter().map(|x| x.name.as_str()).collect();
                let guess = crate::suggest::closest(g.get_ref(), &names)
                    .map(|n| format!("; did you mean {n:?}?"))
                    .unwrap_or_default();
                return Err(format!(
                    "{key} = {:?} at line {}: no [[group]] has that name{guess}",
                    g.get_ref(),
                    self.at(g)
                ));
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "name = {:?}: use letters, digits, '-', '_' and '.' only (it names files in the state directory)",
                self.name
            ));
        }
        // Where each [[table]] starts, for errors about a table as a whole.
        let tables: Tables = toml::from_str(&self.text).unwrap_or_default();
        let at = |kind: &'static str, i: usize| {
            let line = match kind {
                "site" => tables.site.get(i),
                "group" => tables.group.get(i),
                "hook" => tables.hook.get(i),
                "health_check" => tables.health_check.get(i),
                "dns" => tables.dns.get(i),
                "rpki" => tables.rpki.as_ref(),
                "store" => tables.store.as_ref(),
                _ => tables.verify.as_ref(),
            }
            .map(|t| line_of(&self.text, t.span().start));
            move |e: String| match line {
                Some(n) if !e.contains(" line ") => format!("{e} (the [{kind}] at line {n})"),
                _ => e,
            }
        };
        for (i, s) in self.sites.iter().enumerate() {
            if self.sites[..i].iter().any(|t| t.name == s.name) {
                return Err(at("site", i)(format!(
                    "site.name {:?} appears twice",
                    s.name
                )));
            }
            crate::api::Endpoint::parse(&s.api)
                .map_err(|e| at("site", i)(format!("site {:?}: api: {e}", s.name)))?;
        }
        self.site_ref("primary", &self.primary)?;
        self.site_ref("recovery", &self.recovery)?;
        if self.primary.get_ref() == self.recovery.get_ref() {
            return Err(format!(
                "recovery = {:?} at line {}: the same site as primary",
                self.recovery.get_ref(),
                self.at(&self.recovery)
            ));
        }
        if self.groups.is_empty() {
            return Err("no [[group]]: a plan moves at least one subnet".into());
        }
        let mut seen: Vec<IpNet> = Vec::new();
        let mut groups = std::mem::take(&mut self.groups);
        for (i, g) in groups.iter_mut().enumerate() {
            // A changed-IP group moves no subnet: its VMs come up with new addresses and a
            // [[dns]] entry follows them.
            let dns_only = self
                .dns
                .iter()
                .any(|d| d.group.as_ref().is_some_and(|n| *n.get_ref() == g.name));
            if g.subnets.is_empty() && g.hosts.is_empty() && !dns_only {
                return Err(at("group", i)(format!(
                    "group {:?}: subnets and hosts are empty (give at least one, or name the group in a [[dns]] entry: its VMs change address)",
                    g.name
                )));
            }
            g.prefixes.clear();
            g.host_prefixes.clear();
            for (key, list) in [("subnets", &g.subnets), ("hosts", &g.hosts)] {
                for s in list {
                    let p = crate::speaker::route::parse_prefix(s.get_ref()).map_err(|e| {
                        format!("group {:?} {key} at line {}: {e}", g.name, self.at(s))
                    })?;
                    if seen.contains(&p) {
                        return Err(format!(
                            "group {:?} {key} at line {}: {p} appears twice in the plan",
                            g.name,
                            self.at(s)
                        ));
                    }
                    if key == "hosts" && p.prefix_len() != p.max_prefix_len() {
                        return Err(format!(
                            "group {:?} hosts at line {}: {p} is not a host route (/{} for {}); list subnets under subnets",
                            g.name,
                            self.at(s),
                            p.max_prefix_len(),
                            if p.max_prefix_len() == 32 { "IPv4" } else { "IPv6" },
                        ));
                    }
                    seen.push(p);
                    if key == "hosts" {
                        g.host_prefixes.push(p);
                    } else {
                        g.prefixes.push(p);
                    }
                }
            }
        }
        // A host inside a subnet the plan moves would move twice (and stay behind on failback
        // of the other group).
        for g in &groups {
            for h in &g.host_prefixes {
                if let Some((o, net)) = groups
                    .iter()
                    .find_map(|o| o.prefixes.iter().find(|n| n.contains(h)).map(|n| (o, n)))
                {
                    return Err(format!(
                        "group {:?} hosts: {h} lies inside {net}, which group {:?} moves whole; a host route is for a VM whose subnet stays at the primary",
                        g.name, o.name
                    ));
                }
            }
        }
        // A host route whose next hop is the host itself resolves through itself: routers
        // reject it (FRR marks the path "inaccessible": the prefix loops through itself), and
        // the VM would be unreachable at the recovery site however well the move went.
        for g in &groups {
            for h in &g.host_prefixes {
                for site in &self.sites {
                    let (key, nh) = if h.addr().is_ipv4() {
                        ("next_hop", &site.next_hop)
                    } else {
                        ("next_hop6", &site.next_hop6)
                    };
                    let Some(nh) = nh else { continue };
                    if nh.parse::<IpAddr>().is_ok_and(|a| h.contains(&a)) {
                        return Err(format!(
                            "site {:?} {key} = {nh:?}: the next hop of group {:?}'s host route {h} is that host itself, which routers reject (the route would resolve through itself); use another address on the host's LAN, e.g. its hypervisor's, or leave {key} unset",
                            site.name, g.name
                        ));
                    }
                }
            }
        }
        self.groups = groups;
        for (i, g) in self.groups.iter().enumerate() {
            if self.groups[..i].iter().any(|h| h.name == g.name) {
                return Err(at("group", i)(format!(
                    "group.name {:?} appears twice",
                    g.name
                )));
            }
        }
        if let Some(t) = &self.test_site {
            self.site_ref("test_site", t)?;
            for (role, other) in [("primary", &self.primary), ("recovery", &self.recovery)] {
                if t.get_ref() == other.get_ref() {
                    return Err(format!(
                        "test_site = {:?} at line {}: the {role} site; the test site is a speaker peered only with the test network's routers",
                        t.get_ref(),
                        self.at(t)
                    ));
                }
            }
        }
        for (i, site) in self.sites.iter().enumerate() {
            let moving = [&self.primary, &self.recovery]
                .into_iter()
                .chain(self.test_site.as_ref())
                .any(|s| *s.get_ref() == site.name);
            if !moving {
                continue;
            }
            for p in &seen {
                site.route(*p).map_err(at("site", i))?;
            }
        }
        let hook = |h: &Hook| -> Result<(), String> {
            self.group_ref(&format!("hook {:?} group", h.name), &h.group)?;
            match (&h.command, &h.http) {
                (Some(c), None) if !c.is_empty() => {}
                (None, Some(call)) => {
                    check_url(&call.url)
                        .map_err(|e| format!("hook {:?} http.url: {e}", h.name))?;
                    if call.client_cert.is_some() != call.client_key.is_some() {
                        return Err(format!(
                            "hook {:?}: http.client_cert and http.client_key go together",
                            h.name
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "hook {:?}: give exactly one of command = [\"prog\", \"arg\"...] or http = {{ url = ... }}",
                        h.name
                    ))
                }
            }
            if matches!(&h.undo, Some(u) if u.is_empty()) {
                return Err(format!("hook {:?}: undo is empty", h.name));
            }
            if h.timeout_ms == 0 {
                return Err(format!("hook {:?}: timeout_ms must be above 0", h.name));
            }
            if h.test && h.stage == Stage::StopPrimary {
                return Err(format!(
                    "hook {:?}: test = true with stage = \"stop-primary\": a test failover never stops the primary",
                    h.name
                ));
            }
            if h.test && self.test_site.is_none() {
                return Err(format!(
                    "hook {:?}: test = true, but the plan has no test_site to test against",
                    h.name
                ));
            }
            Ok(())
        };
        for (i, h) in self.hooks.iter().enumerate() {
            hook(h).map_err(at("hook", i))?;
            // Names make the steps (and the journal's record of them): one per name.
            if self.hooks[..i].iter().any(|o| o.name == h.name) {
                return Err(at("hook", i)(format!(
                    "hook.name {:?} appears twice",
                    h.name
                )));
            }
        }
        let check = |c: &HealthCheck| -> Result<(), String> {
            self.group_ref(&format!("health_check {:?} group", c.name), &c.group)?;
            let kinds = [
                c.tcp.is_some(),
                c.http.is_some(),
                c.icmp.is_some(),
                c.command.as_ref().is_some_and(|c| !c.is_empty()),
            ];
            if kinds.iter().filter(|k| **k).count() != 1
                || matches!(&c.command, Some(v) if v.is_empty())
            {
                return Err(format!(
                    "health_check {:?}: give exactly one of tcp = \"host:port\", http = \"http://host:port/path\", icmp = \"host\" or command = [...]",
                    c.name
                ));
            }
            if let Some(u) = &c.http {
                check_url(u).map_err(|e| format!("health_check {:?} http: {e}", c.name))?;
            } else if c.ca_file.is_some() {
                return Err(format!(
                    "health_check {:?}: ca_file is for http = \"https://...\" checks",
                    c.name
                ));
            }
            if c.rise == 0 || c.fall == Some(0) || c.timeout_ms == 0 || c.interval_ms == 0 {
                return Err(format!(
                    "health_check {:?}: rise, fall, interval_ms and timeout_ms must be above 0",
                    c.name
                ));
            }
            if c.test && self.test_site.is_none() {
                return Err(format!(
                    "health_check {:?}: test = true, but the plan has no test_site to test against",
                    c.name
                ));
            }
            Ok(())
        };
        for (i, c) in self.health_checks.iter().enumerate() {
            check(c).map_err(at("health_check", i))?;
            if self.health_checks[..i].iter().any(|o| o.name == c.name) {
                return Err(at("health_check", i)(format!(
                    "health_check.name {:?} appears twice",
                    c.name
                )));
            }
        }
        if let Some(a) = &self.auto {
            self.check_auto(a).map_err(at("auto", 0))?;
            for c in &a.checks {
                check(c).map_err(|e| at("auto", 0)(format!("auto.check {:?}: {e}", c.name)))?;
            }
        }
        let mut dns = std::mem::take(&mut self.dns);
        let checked = self.check_dns(&mut dns, &at);
        self.dns = dns;
        checked?;
        if let Some(r) = &self.rpki {
            self.check_rpki(r).map_err(at("rpki", 0))?;
        }
        if let Some(st) = &self.store {
            st.check().map_err(at("store", 0))?;
        }
        if let Some(v) = &self.verify {
            match (&v.observer, &v.command) {
                (Some(o), None) => {
                    self.site_ref("verify.observer", o)?;
                    self.check_marks(o.get_ref()).map_err(at("verify", 0))?;
                    if self.test_site.as_ref().map(|t| t.get_ref()) == Some(o.get_ref()) {
                        return Err(at("verify", 0)(format!(
                            "verify.observer = {:?} is the test_site: the observer is a speaker at a third site",
                            o.get_ref()
                        )));
                    }
                }
                (None, Some(c)) if !c.is_empty() => {}
                _ => {
                    return Err(at("verify", 0)(
                        "verify: give exactly one of observer = \"SITE\" or command = [...]".into(),
                    ))
                }
            }
            if v.timeout_ms == 0 || v.interval_ms == 0 {
                return Err(at("verify", 0)(
                    "verify: timeout_ms and interval_ms must be above 0".into(),
                ));
            }
        }
        Ok(())
    }

    fn check_auto(&self, a: &Auto) -> Result<(), String> {
        if !(1..=3600).contains(&a.after_secs) {
            return Err(format!(
                "auto.after_secs = {}: expected 1-3600 seconds",
                a.after_secs
            ));
        }
        if !(100..=60_000).contains(&a.interval_ms) {
            return Err(format!(
                "auto.interval_ms = {}: expected 100-60000",
                a.interval_ms
            ));
        }
        if a.margin_ms > 60_000 {
            return Err(format!(
                "auto.margin_ms = {}: expected 0-60000",
                a.margin_ms
            ));
        }
        if self.primary().lease_secs.is_none() {
            return Err(format!(
                "auto: the primary site {:?} has no lease_secs; without leases a cut-off primary keeps announcing, so failover by quorum would make both sites announce",
                self.primary().name
            ));
        }
        if self.sites.len() < 3 {
            return Err(format!(
                "auto: {} [[site]]s; a quorum needs a controller at a third site (a witness [[site]])",
                self.sites.len()
            ));
        }
        Ok(())
    }

    /// Each `[[dns]]` entry ([`DnsEntry::check`]), its group, and no name or record twice.
    fn check_dns<F, G>(&self, dns: &mut [DnsEntry], at: &F) -> Result<(), String>
    where
        F: Fn(&'static str, usize) -> G,
        G: Fn(String) -> String,
    {
        let line = |offset: usize| line_of(&self.text, offset);
        {
            for (i, d) in dns.iter_mut().enumerate() {
                d.check(&line).map_err(at("dns", i))?;
                self.group_ref(&format!("dns {:?} group", d.name), &d.group)
                    .map_err(at("dns", i))?;
            }
            for (i, d) in dns.iter().enumerate() {
                if dns[..i].iter().any(|o| o.name == d.name) {
                    return Err(at("dns", i)(format!("dns.name {:?} appears twice", d.name)));
                }
                for r in &d.records {
                    let v6 = r.primary_ip().is_ipv6();
                    if let Some(o) = dns[..i].iter().find(|o| {
                        o.records.iter().any(|x| {
                            x.name.eq_ignore_ascii_case(&r.name) && x.primary_ip().is_ipv6() == v6
                        })
                    }) {
                        return Err(at("dns", i)(format!(
                            "dns {:?}: record {} is also in dns {:?}: one entry per record",
                            d.name, r.name, o.name
                        )));
                    }
                }
            }
            Ok(())
        }
    }

    /// Validators that can be asked, and an origin AS for each site that announces.
    fn check_rpki(&self, r: &Rpki) -> Result<(), String> {
        if r.rtr.is_empty() {
            return Err("rpki.rtr is empty: give at least one validator as \"host:port\"".into());
        }
        for v in &r.rtr {
            crate::rpki::rtr::check_address(v).map_err(|e| format!("rpki.rtr {v:?}: {e}"))?;
        }
        if r.timeout_ms == 0 {
            return Err("rpki.timeout_ms must be above 0".into());
        }
        for site in [self.primary(), self.recovery()] {
            match site.origin_as {
                None => {
                    return Err(format!(
                        "[rpki] needs site {:?} origin_as: the AS its routes are originated from (its speaker's AS, the last of the AS path they carry)",
                        site.name
                    ))
                }
                Some(0) => {
                    return Err(format!(
                        "site {:?} origin_as = 0: AS 0 never originates a route (RFC 7607); give its speaker's AS",
                        site.name
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The observer must have something to recognise each moving site's routes by.
    fn check_marks(&self, observer: &str) -> Result<(), String> {
        for site in [self.primary(), self.recovery()] {
            if site.name == observer {
                return Err(format!(
                    "verify.observer = {observer:?} is the {} site: the observer is a speaker at a third site",
                    if site.name == *self.primary.get_ref() { "primary" } else { "recovery" }
                ));
            }
            if site.origin_as == Some(0) {
                return Err(format!(
                    "site {:?} origin_as = 0: AS 0 never originates a route (RFC 7607); give its speaker's AS",
                    site.name
                ));
            }
            for p in self.all_prefixes().into_iter().chain(self.all_hosts()) {
                let marks = super::observe::Marks::of(self, site, p)?;
                let by_next_hop = self.verify.as_ref().is_some_and(|v| v.match_next_hop);
                if by_next_hop && marks.next_hop.is_none() {
                    return Err(format!(
                        "verify.match_next_hop = true, but site {:?} sets no next hop for {p} (next_hop, or next_hop6 for IPv6)",
                        site.name
                    ));
                }
                if marks.is_empty() {
                    return Err(format!(
                        "verify.observer = {observer:?}: site {:?} gives it nothing to recognise its routes by: set origin_as (the AS of its speaker, the last of the AS path the observer sees) or verify_community",
                        site.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The spans of the plan's tables (a second, lenient reading of the same text).
#[derive(Deserialize, Default)]
struct Tables {
    #[serde(default)]
    site: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    group: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    hook: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    health_check: Vec<Spanned<toml::Table>>,
    verify: Option<Spanned<toml::Table>>,
    #[serde(default)]
    dns: Vec<Spanned<toml::Table>>,
    rpki: Option<Spanned<toml::Table>>,
    store: Option<Spanned<toml::Table>>,
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not http(s)://HOST:PORT/PATH: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{url:?} is not http(s)://HOST:PORT/PATH"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const PLAN: &str = r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"

[[site]]
name = "dc1"
api = "/run/ferry/dc1.sock"
next_hop = "192.0.2.10"

[[site]]
name = "dc2"
api = "http://127.0.0.1:8179"
next_hop = "192.0.2.20"

[[group]]
name = "web"
subnets = ["198.51.100.0/24"]

[[hook]]
name = "cutover"
stage = "cutover"
command = ["true"]

[[health_check]]
name = "web-up"
command = ["true"]
"#;

    #[test]
    fn example_parses() {
        let p = Plan::parse(PLAN).unwrap();
        assert_eq!(p.primary().name, "dc1");
        assert_eq!(p.all_prefixes(), vec!["198.51.100.0/24".parse().unwrap()]);
        assert_eq!(p.on_failure, OnFailure::Rollback);
        assert_eq!(p.hooks[0].stage, Stage::Cutover);
    }

    #[test]
    fn store_table_is_checked_as_the_flags_are_and_names_field_and_value() {
        let with = |store: &str| Plan::parse(&format!("{PLAN}[store]\n{store}\n"));
        let p = with("etcd = [\"192.0.2.1:2379\", \"192.0.2.2:2379\"]\nttl_secs = 7").unwrap();
        let st = p.store.unwrap();
        assert_eq!(st.url(), "etcd://192.0.2.1:2379,192.0.2.2:2379");
        assert_eq!(st.ttl_secs, Some(7));
        assert!(Plan::parse(PLAN).unwrap().store.is_none());
        for (store, want) in [
            ("etcd = []", "store.etcd is empty"),
            (
                "etcd = [\"192.0.2.1\"]",
                "store.etcd \"etcd://192.0.2.1\": member \"192.0.2.1\" has no :PORT",
            ),
            ("etcd = [\"192.0.2.1:0\"]", "port \"0\" is not 1-65535"),
            (
                "etcd = [\"http://192.0.2.1:2379\"]",
                "store.etcd member \"http://192.0.2.1:2379\"",
            ),
            (
                "etcd = [\"192.0.2.1:2379,192.0.2.2:2379\"]",
                "one member per string",
            ),
            (
                "etcd = [\"192.0.2.1:2379\"]\nttl_secs = 1",
                "store.ttl_secs 1: expected 2-3600",
            ),
            (
                "etcd = [\"192.0.2.1:2379\"]\ncert = \"/c.pem\"",
                "store.cert and store.key go together",
            ),
            (
                "etcd = [\"192.0.2.1:2379\"]\nuser = \"ferry\"",
                "store.user and store.password_file go together",
            ),
            (
                "etcd = [\"192.0.2.1:2379\"]\nendpoints = 3",
                "unknown field `endpoints`",
            ),
        ] {
            let e = with(store).unwrap_err().to_string();
            assert!(e.contains(want), "{store}: {e}");
        }
        // Where the table is, for the errors about it as a whole.
        let e = with("etcd = []").unwrap_err().to_string();
        assert!(e.contains("(the [store] at line"), "{e}");
    }

    #[test]
    fn auto_is_checked_and_names_field_and_value() {
        let leased = PLAN.replace(
            "next_hop = \"192.0.2.10\"",
            "next_hop = \"192.0.2.10\"\nlease_secs = 9",
        );
        let witness = "[[site]]\nname = \"w\"\napi = \"/run/w.sock\"\n";
        let with =
            |base: &str, auto: &str| Plan::parse(&format!("{base}{witness}[auto]\n{auto}\n"));
        let p = with(&leased, "after_secs = 3").unwrap();
        let a = p.auto.unwrap();
        assert_eq!((a.after_secs, a.interval_ms, a.margin_ms), (3, 500, 1000));
        assert!(Plan::parse(PLAN).unwrap().auto.is_none());
        for (auto, want) in [
            ("after_secs = 0", "auto.after_secs = 0"),
            ("after_secs = 3\ninterval_ms = 5", "auto.interval_ms = 5"),
            (
                "after_secs = 3\nmargin_ms = 70000",
                "auto.margin_ms = 70000",
            ),
        ] {
            let e = with(&leased, auto).unwrap_err().to_string();
            assert!(e.contains(want), "{auto}: {e}");
        }
        let e = with(PLAN, "after_secs = 3").unwrap_err().to_string();
        assert!(e.contains("\"dc1\" has no lease_secs"), "{e}");
        let vm = "after_secs = 3\n[[auto.check]]\nname = \"vm\"\ntcp = \"192.0.2.81:443\"";
        assert_eq!(
            with(&leased, vm).unwrap().auto.unwrap().checks[0].name,
            "vm"
        );
        let e = with(&leased, "after_secs = 3\n[[auto.check]]\nname = \"vm\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto.check \"vm\""), "{e}");
        let e = Plan::parse(&format!("{leased}[auto]\nafter_secs = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a witness"), "{e}");
    }

    #[test]
    fn unknown_key_and_bad_values_name_key_and_line() {
        let e =
            Plan::parse(&PLAN.replace("next_hop = \"192.0.2.20\"", "nexthop = \"x\"")).unwrap_err();
        assert!(e.contains("nexthop") && e.contains("line 14"), "{e}");
        assert!(e.contains("did you mean `next_hop`?"), "{e}");
        let e = Plan::parse(&PLAN.replace("order =", "ordr =")).unwrap_err();
        assert!(e.contains("did you mean `order`?"), "{e}");
        let e =
            Plan::parse(&PLAN.replace("recovery = \"dc2\"", "recovery = \"dc22\"")).unwrap_err();
        assert!(e.contains("did you mean \"dc2\"?"), "{e}");
        let e = Plan::parse(&PLAN.replace("break-before-make", "sideways")).unwrap_err();
        assert!(e.contains("sideways") && e.contains("line 4"), "{e}");
        let e = Plan::parse(&PLAN.replace("recovery = \"dc2\"", "recovery = \"dc3\"")).unwrap_err();
        assert!(e.contains("\"dc3\"") && e.contains("line 3"), "{e}");
        let e = Plan::parse(&PLAN.replace("198.51.100.0/24", "198.51.100.1/24")).unwrap_err();
        assert!(
            e.contains("198.51.100.0/24?") && e.contains("line 18"),
            "{e}"
        );
        let e = Plan::parse(&PLAN.replace("192.0.2.20", "2001:db8::1")).unwrap_err();
        assert!(e.contains("dc2") && e.contains("next_hop"), "{e}");
        let e = Plan::parse(&PLAN.replace("command = [\"true\"]\n\n[[health", "\n[[health"))
            .unwrap_err();
        assert!(
            e.contains("hook \"cutover\"") && e.contains("line 20"),
            "{e}"
        );
        let e = Plan::parse(&PLAN.replace("192.0.2.20", "2001:db8::1")).unwrap_err();
        assert!(e.contains("[site] at line 11"), "{e}");
        let twice = format!(
            "{PLAN}\n[[hook]]\nname = \"cutover\"\nstage = \"post-check\"\ncommand = [\"true\"]\n"
        );
        let e = Plan::parse(&twice).unwrap_err();
        assert!(
            e.contains("hook.name \"cutover\" appears twice") && e.contains("line 29"),
            "{e}"
        );
    }

    #[test]
    fn https_hooks_take_a_ca_file_and_a_client_certificate() {
        let with = |http: &str| {
            Plan::parse(&PLAN.replace(
                "command = [\"true\"]\n\n[[health",
                &format!("http = {{ url = \"https://vc.example/api/cutover\"{http} }}\n\n[[health"),
            ))
        };
        let p = with(
            ", ca_file = \"/etc/ferry/ca.pem\", client_cert = \"c.pem\", client_key = \"k.pem\"",
        )
        .unwrap();
        let call = p.hooks[0].http.as_ref().unwrap();
        assert_eq!(call.ca_file, Some(PathBuf::from("/etc/ferry/ca.pem")));
        assert_eq!(call.client_key, Some(PathBuf::from("k.pem")));
        let e = with(", client_cert = \"c.pem\"").unwrap_err();
        assert!(
            e.contains("client_cert and http.client_key go together") && e.contains("line 20"),
            "{e}"
        );
        assert!(with("").is_ok());
    }

    #[test]
    fn site_attributes_make_the_route() {
        let text = PLAN.replace(
            "next_hop = \"192.0.2.20\"",
            "next_hop = \"192.0.2.20\"\ncommunities = [\"65002:7\"]\nmed = 5\nlease_secs = 30",
        );
        let p = Plan::parse(&text).unwrap();
        let r = p
            .recovery()
            .route("198.51.100.0/24".parse().unwrap())
            .unwrap();
        assert_eq!(r.next_hop, Some("192.0.2.20".parse().unwrap()));
        assert_eq!(r.attrs.communities[0].to_string(), "65002:7");
        assert_eq!((r.attrs.med, r.lease_secs), (Some(5), Some(30)));
        let e = Plan::parse(&text.replace("lease_secs = 30", "lease_secs = 0")).unwrap_err();
        assert!(
            e.contains("lease_secs") && e.contains("[site] at line 11"),
            "{e}"
        );
    }

    #[test]
    fn health_checks_take_exactly_one_kind() {
        let with = |kind: &str| Plan::parse(&format!("{PLAN}{kind}\n"));
        let p = with("").unwrap();
        assert_eq!(
            p.health_checks[0].probe(),
            Probe::Command(vec!["true".into()])
        );
        let e = with("tcp = \"198.51.100.10:80\"").unwrap_err();
        assert!(e.contains("exactly one of tcp"), "{e}");
        let base = PLAN.replace(
            "name = \"web-up\"\ncommand = [\"true\"]",
            "name = \"web-up\"",
        );
        let one = |kind: &str| Plan::parse(&format!("{base}{kind}\n"));
        assert_eq!(
            one("http = \"http://198.51.100.10:8080/health\"")
                .unwrap()
                .health_checks[0]
                .probe(),
            Probe::Http(HttpCall {
                url: "http://198.51.100.10:8080/health".into(),
                method: "GET".into(),
                body: None,
                expect_status: None,
                ca_file: None,
                client_cert: None,
                client_key: None,
            })
        );
        match one("icmp = \"198.51.100.10\"").unwrap().health_checks[0].probe() {
            Probe::Command(argv) => assert_eq!(argv[0], "ping"),
            other => panic!("{other:?}"),
        }
        assert!(one("http = \"ftp://x\"").unwrap_err().contains("http"));
        let e = one("tcp = \"198.51.100.10:443\"\nca_file = \"/etc/ca.pem\"").unwrap_err();
        assert!(e.contains("ca_file is for http"), "{e}");
        assert!(one("http = \"https:///path\"").is_err());
        let p = one("http = \"https://vc.example/health\"\nca_file = \"/etc/ca.pem\"").unwrap();
        match p.health_checks[0].probe() {
            Probe::Http(c) => assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ca.pem"))),
            other => panic!("{other:?}"),
        }
        assert!(one("").unwrap_err().contains("exactly one"));
    }

    #[test]
    fn hosts_are_host_routes_outside_the_moved_subnets() {
        let with = |hosts: &str| {
            Plan::parse(&PLAN.replace(
                "subnets = [\"198.51.100.0/24\"]",
                &format!("subnets = [\"203.0.113.0/25\"]\nhosts = [{hosts}]"),
            ))
        };
        let p = with("\"198.51.100.10/32\", \"2001:db8::10/128\"").unwrap();
        assert_eq!(p.all_prefixes(), vec!["203.0.113.0/25".parse().unwrap()]);
        assert_eq!(p.all_hosts().len(), 2);
        assert_eq!(
            p.group_at(0, p.primary()).len(),
            1,
            "the primary keeps the subnet only"
        );
        assert_eq!(p.group_at(0, p.recovery()).len(), 3);
        let e = with("\"198.51.100.0/28\"").unwrap_err();
        assert!(
            e.contains("hosts at line 19")
                && e.contains("198.51.100.0/28 is not a host route (/32 for IPv4)"),
            "{e}"
        );
        let e = with("\"203.0.113.9/32\"").unwrap_err();
        assert!(
            e.contains(
                "203.0.113.9/32 lies inside 203.0.113.0/25, which group \"web\" moves whole"
            ),
            "{e}"
        );
        let e = Plan::parse(
            &PLAN
                .replace(
                    "subnets = [\"198.51.100.0/24\"]",
                    "subnets = [\"203.0.113.0/25\"]\nhosts = [\"198.51.100.10/32\"]",
                )
                .replace("next_hop = \"192.0.2.20\"", "next_hop = \"198.51.100.10\""),
        )
        .unwrap_err();
        assert!(
            e.contains("site \"dc2\" next_hop = \"198.51.100.10\"")
                && e.contains("that host itself"),
            "{e}"
        );
        let e = with("\"198.51.100.10/32\", \"198.51.100.10/32\"").unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = with("\"198.51.100.10\"").unwrap_err();
        assert!(e.contains("198.51.100.10/32"), "{e}");
        let only_hosts = PLAN.replace(
            "subnets = [\"198.51.100.0/24\"]",
            "hosts = [\"198.51.100.10/32\"]",
        );
        assert!(Plan::parse(&only_hosts).unwrap().all_prefixes().is_empty());
        let neither = PLAN.replace("subnets = [\"198.51.100.0/24\"]", "");
        assert!(Plan::parse(&neither)
            .unwrap_err()
            .contains("subnets and hosts are empty"));
    }

    #[test]
    fn test_site_and_test_hooks_are_checked() {
        let lab = "\n[[site]]\nname = \"lab\"\napi = \"/run/ferry/lab.sock\"\n";
        let with = |test_site: &str, more: &str| {
            Plan::parse(&format!(
                "{}{lab}{more}",
                PLAN.replace(
                    "recovery = \"dc2\"",
                    &format!("recovery = \"dc2\"\n{test_site}")
                )
            ))
        };
        let p = with("test_site = \"lab\"", "").unwrap();
        assert_eq!(p.test_site().unwrap().name, "lab");
        let e = with("test_site = \"dc2\"", "").unwrap_err();
        assert!(
            e.contains("test_site = \"dc2\" at line 4: the recovery site"),
            "{e}"
        );
        let e = with("test_site = \"labb\"", "").unwrap_err();
        assert!(e.contains("did you mean \"lab\"?"), "{e}");
        let hook =
            "[[hook]]\nname = \"t\"\nstage = \"stop-primary\"\ntest = true\ncommand = [\"x\"]\n";
        let e = with("test_site = \"lab\"", hook).unwrap_err();
        assert!(e.contains("a test failover never stops the primary"), "{e}");
        let e = with("", &hook.replace("stop-primary", "cutover")).unwrap_err();
        assert!(
            e.contains("hook \"t\": test = true, but the plan has no test_site"),
            "{e}"
        );
        let check = "[[health_check]]\nname = \"c\"\ntest = true\ncommand = [\"x\"]\n";
        let e = with("", check).unwrap_err();
        assert!(e.contains("health_check \"c\": test = true"), "{e}");
        assert!(with("test_site = \"lab\"", check).is_ok());
    }
}
