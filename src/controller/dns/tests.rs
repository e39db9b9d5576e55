//! The DNS steps against a fake zone (prerequisites checked and applied all or nothing, as
//! RFC 2136 section 3 says a server does) and the plan's `[[dns]]` checks. Real BIND:
//! tests/controller_dns.rs.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::*;
use crate::api::{PeerStatus, ReceivedRoute};
use crate::controller::hook::{HookProcess, OnSpawn};
use crate::controller::journal::Mode;
use crate::controller::plan::{Hook, Plan, Probe};
use crate::controller::sites::{Probes, SiteError, Sites};
use crate::controller::step::{self, StepKind};
use crate::speaker::Route;

const BASE: &str = r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"
[[site]]
name = "dc1"
api = "/x/dc1.sock"
[[site]]
name = "dc2"
api = "/x/dc2.sock"
[[group]]
name = "web"
subnets = ["198.51.100.0/24"]
[[group]]
name = "app"
subnets = []
[[dns]]
name = "app"
server = "192.0.2.53"
zone = "example.test"
tsig_key_file = "/etc/ferry/app.key"
records = [ { name = "a.example.test.", primary = "203.0.113.1", recovery = "192.0.2.131" },
            { name = "b.example.test", primary = "203.0.113.2", recovery = "192.0.2.132" } ]
ttl = 300
failover_ttl = 5
group = "app"
"#;

fn plan(text: &str) -> Plan {
    Plan::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_dns_entry_is_checked_field_by_field() {
    let p = plan(BASE);
    let d = &p.dns[0];
    assert_eq!(
        d.addrs,
        vec!["192.0.2.53:53".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(d.zone(), "example.test.");
    assert_eq!(d.records[1].name, "b.example.test.");
    let bad = |from: &str, to: &str| Plan::parse(&BASE.replace(from, to)).unwrap_err();
    let e = bad("b.example.test\"", "b.example.org\"");
    assert!(
        e.contains("records[1].name = \"b.example.org.\" is not in zone"),
        "{e}"
    );
    let e = bad("recovery = \"192.0.2.132\"", "recovery = \"2001:db8::1\"");
    assert!(e.contains("different families"), "{e}");
    let e = bad("recovery = \"192.0.2.132\"", "recovery = \"203.0.113.2\"");
    assert!(e.contains("the same address"), "{e}");
    let e = bad("failover_ttl = 5", "failover_ttl = 600");
    assert!(e.contains("failover_ttl = 600"), "{e}");
    let e = bad("failover_ttl = 5", "failover_tl = 5");
    assert!(
        e.contains("failover_tl") && e.contains("did you mean"),
        "{e}"
    );
    let e = bad("server = \"192.0.2.53\"", "server = \"ns1:53\"");
    assert!(
        e.contains("server at line 19") && e.contains("\"ns1:53\""),
        "{e}"
    );
    // A typo in the group: named with a suggestion (the group itself moves a subnet here, so
    // its own check passes first).
    let e = Plan::parse(
        &BASE
            .replace("group = \"app\"", "group = \"ap\"")
            .replace("subnets = []", "subnets = [\"203.0.113.0/24\"]"),
    )
    .unwrap_err();
    assert!(
        e.contains("did you mean \"app\"") && e.contains("group = \"ap\" at line 26"),
        "{e}"
    );
    let e = bad("primary = \"203.0.113.1\"", "primary = \"web\"");
    assert!(e.contains("records[0].primary = \"web\""), "{e}");
    // A group without subnets needs a [[dns]] entry to move it.
    let e = bad("group = \"app\"\n", "");
    assert!(
        e.contains("group \"app\": subnets and hosts are empty"),
        "{e}"
    );
    let twice = format!("{BASE}\n[[dns]]\nname = \"again\"\nserver = \"192.0.2.54\"\nzone = \"example.test.\"\ntsig_key_file = \"k\"\nrecords = [ {{ name = \"A.example.test.\", primary = \"203.0.113.9\", recovery = \"192.0.2.9\" }} ]\nttl = 60\nfailover_ttl = 5\n");
    let e = Plan::parse(&twice).unwrap_err();
    assert!(
        e.contains("record A.example.test. is also in dns \"app\""),
        "{e}"
    );
}

#[test]
fn dns_steps_follow_their_group_and_prestage_only_when_planned() {
    let p = plan(BASE);
    let names = |mode| -> Vec<String> {
        step::build(&p, Direction::Failover, mode)
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(
        names(Mode::Planned),
        [
            "preflight",
            "dns prestage app",
            "withdraw web",
            "announce web",
            "dns update app",
            "dns verify app"
        ]
    );
    assert_eq!(
        names(Mode::Unplanned),
        [
            "preflight",
            "withdraw web",
            "announce web",
            "dns update app",
            "dns verify app"
        ]
    );
    // A test failover (a drill) leaves DNS alone.
    assert!(names(Mode::Test).iter().all(|n| !n.starts_with("dns")));
    // Without a group: after every group.
    let p = plan(
        &BASE
            .replace("group = \"app\"\n", "")
            .replace("[[group]]\nname = \"app\"\nsubnets = []\n", ""),
    );
    let steps = step::build(&p, Direction::Failover, Mode::Planned);
    assert!(matches!(
        steps.last().unwrap().kind,
        StepKind::DnsVerify { dns: 0 }
    ));
}

/// A zone: name -> (address, ttl); a serial that every applied update moves.
#[derive(Default)]
struct FakeDns {
    zone: RefCell<BTreeMap<String, (IpAddr, u32)>>,
    serial: Cell<u32>,
    updates: Cell<u32>,
    /// Servers that answer nothing.
    down: RefCell<Vec<SocketAddr>>,
}

impl FakeDns {
    fn with(p: &Plan) -> Self {
        let d = FakeDns::default();
        for r in &p.dns[0].records {
            d.zone
                .borrow_mut()
                .insert(r.name.clone(), (r.primary_ip(), 300));
        }
        d
    }
    fn holds(&self, name: &str) -> (IpAddr, u32) {
        self.zone.borrow()[name]
    }
    fn is_down(&self, server: SocketAddr) -> Result<(), DnsError> {
        if self.down.borrow().contains(&server) {
            return Err(DnsError::Timeout {
                server,
                what: "a query".into(),
                ms: 1,
            });
        }
        Ok(())
    }
}

impl Dns for FakeDns {
    fn key(&self, path: &Path) -> Result<TsigKey, String> {
        TsigKey::parse("key \"k\" { secret \"c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IQ==\"; };")
            .map_err(|e| format!("{}: {e}", path.display()))
    }
    fn addresses(
        &self,
        server: SocketAddr,
        host: &str,
        _v6: bool,
        _: Duration,
    ) -> Result<Answer, DnsError> {
        self.is_down(server)?;
        Ok(match self.zone.borrow().get(host) {
            Some((ip, ttl)) => Answer {
                addrs: vec![*ip],
                ttl: Some(*ttl),
            },
            None => Answer::default(),
        })
    }
    fn soa_serial(&self, server: SocketAddr, _: &str, _: Duration) -> Result<u32, DnsError> {
        self.is_down(server)?;
        Ok(self.serial.get())
    }
    fn update(
        &self,
        server: SocketAddr,
        _: &str,
        _: &TsigKey,
        changes: &[Replace],
        _: Duration,
    ) -> Result<UpdateOutcome, DnsError> {
        self.is_down(server)?;
        let mut z = self.zone.borrow_mut();
        if changes
            .iter()
            .any(|c| z.get(&c.name).map(|v| v.0) != Some(c.old))
        {
            return Ok(UpdateOutcome::PrerequisiteFailed("NXRRSET".into()));
        }
        for c in changes {
            z.insert(c.name.clone(), (c.new, c.ttl));
        }
        self.serial.set(self.serial.get() + 1);
        self.updates.set(self.updates.get() + 1);
        Ok(UpdateOutcome::Applied)
    }
    fn probe_update(
        &self,
        server: SocketAddr,
        _: &str,
        _: &TsigKey,
        _: Duration,
    ) -> Result<(), DnsError> {
        self.is_down(server)
    }
}

/// The DNS steps reach no site: every call is an error.
struct NoSites;

impl Sites for NoSites {
    fn announce(&self, site: &str, _: &[Route]) -> Result<(), SiteError> {
        Err(SiteError::NoSuchSite(site.into()))
    }
    fn withdraw(&self, site: &str, _: &[IpNet]) -> Result<(), SiteError> {
        Err(SiteError::NoSuchSite(site.into()))
    }
    fn peers(&self, site: &str) -> Result<Vec<PeerStatus>, SiteError> {
        Err(SiteError::NoSuchSite(site.into()))
    }
    fn announced(&self, site: &str) -> Result<Vec<Route>, SiteError> {
        Err(SiteError::NoSuchSite(site.into()))
    }
    fn received(&self, site: &str, _: Duration) -> Result<Vec<ReceivedRoute>, SiteError> {
        Err(SiteError::NoSuchSite(site.into()))
    }
}

/// A clock that moves only when slept.
struct Clock {
    base: Instant,
    at: Cell<Duration>,
}

impl Probes for Clock {
    fn hook(
        &self,
        _: &Hook,
        _: bool,
        _: &[(String, String)],
        _: OnSpawn<'_>,
    ) -> Result<(), String> {
        Err("no hooks here".into())
    }
    fn end_orphan(&self, _: &HookProcess) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn probe(&self, _: &Probe, _: Duration, _: &[(String, String)]) -> Result<(), String> {
        Err("no probes here".into())
    }
    fn now(&self) -> Instant {
        self.base + self.at.get()
    }
    fn sleep(&self, d: Duration) {
        self.at.set(self.at.get() + d);
    }
}

fn ctx<'a>(p: &'a Plan, direction: Direction, dns: &'a FakeDns, clock: &'a Clock) -> Ctx<'a> {
    Ctx {
        plan: p,
        direction,
        mode: Mode::Planned,
        sites: &NoSites,
        probes: clock,
        dns,
        spawned: &|_| Ok(()),
    }
}

fn clock() -> Clock {
    Clock {
        base: Instant::now(),
        at: Cell::new(Duration::ZERO),
    }
}

#[test]
fn update_is_idempotent_and_names_a_foreign_value() {
    let p = plan(BASE);
    let (dns, clock) = (FakeDns::with(&p), clock());
    let cx = ctx(&p, Direction::Failover, &dns, &clock);
    let e = &p.dns[0];
    let note = prestage(&cx, e).unwrap().unwrap();
    assert!(note.contains("lowered to 5 s now (was 300 s)"), "{note}");
    assert_eq!(
        prestage(&cx, e).unwrap().unwrap(),
        "pre-staged already: TTL 5 s or less"
    );
    let note = update(&cx, e, false).unwrap().unwrap();
    assert!(note.starts_with("updated at 192.0.2.53:53"), "{note}");
    assert_eq!(
        dns.holds("a.example.test."),
        ("192.0.2.131".parse().unwrap(), 5)
    );
    // Applied again (a resume after a crash before its journal record): done, nothing sent.
    let n = dns.updates.get();
    let note = update(&cx, e, false).unwrap().unwrap();
    assert!(note.starts_with("already updated"), "{note}");
    assert_eq!(dns.updates.get(), n);
    assert!(verify(&cx, e)
        .unwrap()
        .unwrap()
        .contains("1 servers answer"));
    // Failback reverses.
    let back = ctx(&p, Direction::Failback, &dns, &clock);
    update(&back, e, false).unwrap();
    assert_eq!(
        dns.holds("b.example.test.").0,
        "203.0.113.2".parse::<IpAddr>().unwrap()
    );
    // Someone else's value: the update fails naming it, and changes nothing.
    dns.zone.borrow_mut().insert(
        "b.example.test.".into(),
        ("198.51.100.7".parse().unwrap(), 60),
    );
    let e2 = update(&cx, e, false).unwrap_err();
    assert!(
        e2.contains("b.example.test. holds 198.51.100.7, expected 203.0.113.2")
            && e2.contains("NXRRSET"),
        "{e2}"
    );
    assert_eq!(
        dns.holds("a.example.test.").0,
        "203.0.113.1".parse::<IpAddr>().unwrap()
    );
    // Its compensation restores nothing (nothing of this run there) and leaves b alone.
    let note = update(&cx, e, true).unwrap().unwrap();
    assert!(
        note.contains("nothing to restore") && note.contains("b.example.test. holds 198.51.100.7"),
        "{note}"
    );
    let note = unstage(&cx, e).unwrap().unwrap();
    assert!(note.contains("left alone"), "{note}");
    assert_eq!(dns.holds("b.example.test.").1, 60);
}

#[test]
fn verify_waits_for_every_server_until_its_deadline() {
    let text = BASE.replace(
        "server = \"192.0.2.53\"",
        "server = \"192.0.2.53\"\nservers = [\"[2001:db8::53]:5353\"]\ntimeout_ms = 500",
    );
    let p = plan(&text);
    let (dns, clock) = (FakeDns::with(&p), clock());
    let cx = ctx(&p, Direction::Failover, &dns, &clock);
    let e = &p.dns[0];
    update(&cx, e, false).unwrap();
    dns.down.borrow_mut().push(e.addrs[1]);
    let err = verify(&cx, e).unwrap_err();
    assert!(
        err.contains("not verified after 48") && err.contains("[2001:db8::53]:5353"),
        "{err}"
    );
    dns.down.borrow_mut().clear();
    assert!(verify(&cx, e)
        .unwrap()
        .unwrap()
        .contains("2 servers answer"));
}
