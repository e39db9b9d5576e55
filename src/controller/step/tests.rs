//! Verification against a fake observer and a fake clock: which routes prove the move (origin
//! AS and verify community through a router that rewrites next hops; not the router's own
//! route, not the old site's), what the failures say, and one deadline per step for commands
//! and observer requests alike.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::*;
use crate::api::{PeerStatus, ReceivedRoute, SpeakerError};
use crate::controller::hook::HookProcess;
use crate::controller::observe::plan_tests::PLAN;
use crate::controller::plan::{Hook, Plan, Probe};
use crate::controller::sites::{Probes, SiteError, Sites};
use crate::speaker::Route;

/// A fake clock both fakes advance.
struct Clock {
    base: Instant,
    at: Cell<Duration>,
}

impl Clock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            at: Cell::new(Duration::ZERO),
        }
    }
    fn pass(&self, d: Duration) {
        self.at.set(self.at.get() + d);
    }
}

/// dc1 announces the subnet; the observer holds `seen`. Its requests take no time, except
/// those after the first `answers` ones, which take all they are given and get no answer.
struct Observer<'a> {
    clock: &'a Clock,
    seen: Vec<ReceivedRoute>,
    answers: usize,
    asked: RefCell<Vec<Duration>>,
}

impl<'a> Observer<'a> {
    fn new(clock: &'a Clock, seen: Vec<ReceivedRoute>) -> Self {
        Self {
            clock,
            seen,
            answers: usize::MAX,
            asked: RefCell::default(),
        }
    }
}

impl Sites for Observer<'_> {
    fn announce(&self, site: &str, _: &[Route]) -> Result<(), SiteError> {
        Err(SiteError::NoSuchSite(site.into()))
    }
    fn withdraw(&self, site: &str, _: &[IpNet]) -> Result<(), SiteError> {
        Err(SiteError::NoSuchSite(site.into()))
    }
    fn peers(&self, _: &str) -> Result<Vec<PeerStatus>, SiteError> {
        Ok(vec![crate::controller::sites::established_peer()])
    }
    fn announced(&self, site: &str) -> Result<Vec<Route>, SiteError> {
        let p = Plan::parse(PLAN).unwrap();
        Ok(match site {
            "dc1" => vec![p.primary().route(p.all_prefixes()[0]).unwrap()],
            _ => vec![],
        })
    }
    fn received(&self, site: &str, within: Duration) -> Result<Vec<ReceivedRoute>, SiteError> {
        self.asked.borrow_mut().push(within);
        if self.asked.borrow().len() > self.answers {
            self.clock.pass(within);
            return Err(SiteError::Speaker {
                site: site.into(),
                op: None,
                error: SpeakerError::NoAnswer {
                    endpoint: "/x/obs.sock".into(),
                    detail: format!("no answer within {} ms", within.as_millis()),
                },
            });
        }
        Ok(self.seen.clone())
    }
}

/// The clock, and a verify command that fails after 600 ms the first time and then hangs
/// until it is cut at the timeout it is given.
struct Timed<'a> {
    clock: &'a Clock,
    given: RefCell<Vec<Duration>>,
}

impl Probes for Timed<'_> {
    fn hook(
        &self,
        _: &Hook,
        _: bool,
        _: &[(String, String)],
        _: OnSpawn<'_>,
    ) -> Result<(), String> {
        Ok(())
    }
    fn end_orphan(&self, _: &HookProcess) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn probe(&self, _: &Probe, timeout: Duration, _: &[(String, String)]) -> Result<(), String> {
        self.given.borrow_mut().push(timeout);
        if self.given.borrow().len() == 1 {
            self.clock.pass(Duration::from_millis(600));
            return Err("exit status 1".into());
        }
        self.clock.pass(timeout);
        Err(format!("killed after {} ms", timeout.as_millis()))
    }
    fn now(&self) -> Instant {
        self.clock.base + self.clock.at.get()
    }
    fn sleep(&self, d: Duration) {
        self.clock.pass(d);
    }
}

/// A path at the observer one eBGP hop behind r3 (AS 65003), which sets itself as next hop.
fn path(as_path: &str, communities: &[&str]) -> ReceivedRoute {
    crate::controller::observe::tests::route(as_path, "192.0.2.25", communities)
}

const DC1: &str = "65003 65001 65101";
const DC2: &str = "65003 65002 65102";
/// r3's own route for the subnet (a static route it announces).
const R3: &str = "65003";

fn verify_with(
    plan: &str,
    mode: Mode,
    sites: &dyn Sites,
    probes: &dyn Probes,
) -> Result<Option<String>, String> {
    let plan = Plan::parse(plan).unwrap();
    let cx = Ctx {
        plan: &plan,
        direction: Direction::Failover,
        mode,
        sites,
        probes,
        dns: &crate::controller::dns::SystemDns,
        spawned: &|_| Ok(()),
    };
    let step = Step {
        name: "verify web".into(),
        kind: StepKind::Verify { group: 0 },
    };
    step.apply(&cx)
}

fn verify(seen: Vec<ReceivedRoute>, mode: Mode) -> Result<Option<String>, String> {
    let clock = Clock::new();
    let obs = Observer::new(&clock, seen);
    let probes = Timed {
        clock: &clock,
        given: RefCell::default(),
    };
    verify_with(PLAN, mode, &obs, &probes)
}

#[test]
fn the_move_is_seen_by_origin_as_through_a_router_that_rewrites_next_hops() {
    let note = verify(vec![path(DC2, &[])], Mode::Planned).unwrap();
    assert_eq!(note.as_deref(), Some("seen after 0 ms"));
    // Prepending on the way changes nothing.
    assert!(verify(
        vec![path("65003 65003 65002 65102 65102", &[])],
        Mode::Planned
    )
    .is_ok());
}

#[test]
fn the_routers_own_route_or_the_old_sites_does_not_pass_for_the_new_site() {
    let e = verify(vec![path(R3, &[])], Mode::Planned).unwrap_err();
    assert!(
        e.contains("not verified after 900 ms (10 tries, timeout_ms = 1000)")
            && e.contains(
                "observer obs has no path for 198.51.100.0/24 from dc2 (origin AS 65102)"
            )
            && e.contains("it sees [as path 65003, next hop 192.0.2.25, from peer 192.0.2.25]"),
        "{e}"
    );
    let e = verify(vec![path(DC1, &[])], Mode::Planned).unwrap_err();
    assert!(e.contains("no path for 198.51.100.0/24 from dc2"), "{e}");
    let e = verify(vec![path(DC2, &[]), path(DC1, &[])], Mode::Planned).unwrap_err();
    assert!(
        e.contains("observer obs still has 198.51.100.0/24 from dc1 (origin AS 65101)")
            && e.contains("as path 65003 65001 65101"),
        "{e}"
    );
    // Unplanned: the old site may still announce where we cannot reach it (its leases fence it).
    assert!(verify(vec![path(DC2, &[]), path(DC1, &[])], Mode::Unplanned).is_ok());
}

#[test]
fn a_verify_community_tells_sites_of_the_same_as_apart() {
    let plan = PLAN
        .replace(
            "origin_as = 65102",
            "origin_as = 65101\nverify_community = \"65101:2\"",
        )
        .replace(
            "origin_as = 65101\n[[site]]\nname = \"dc2\"",
            "origin_as = 65101\nverify_community = \"65101:1\"\n[[site]]\nname = \"dc2\"",
        );
    let run = |seen: Vec<ReceivedRoute>| {
        let clock = Clock::new();
        let obs = Observer::new(&clock, seen);
        let probes = Timed {
            clock: &clock,
            given: RefCell::default(),
        };
        verify_with(&plan, Mode::Planned, &obs, &probes)
    };
    assert!(run(vec![path("65003 65001 65101", &["65101:2"])]).is_ok());
    let e = run(vec![path("65003 65001 65101", &["65101:1"])]).unwrap_err();
    assert!(
        e.contains("from dc2 (origin AS 65101, community 65101:2)")
            && e.contains("communities 65101:1"),
        "{e}"
    );
    // A router that strips communities: nothing proves the move.
    assert!(run(vec![path("65003 65001 65101", &[])]).is_err());
}

#[test]
fn a_hanging_verify_command_gets_only_the_time_left_and_the_failure_says_how_long_it_took() {
    let plan = PLAN.replace("observer = \"obs\"", "command = [\"hangs\"]");
    let clock = Clock::new();
    let obs = Observer::new(&clock, vec![]);
    let probes = Timed {
        clock: &clock,
        given: RefCell::default(),
    };
    let e = verify_with(&plan, Mode::Planned, &obs, &probes).unwrap_err();
    // Failed at 600 ms, waited 100, then 300 ms were left of the 1000.
    assert_eq!(
        *probes.given.borrow(),
        [Duration::from_millis(1000), Duration::from_millis(300)]
    );
    assert_eq!(clock.at.get(), Duration::from_millis(1000));
    assert!(
        e.starts_with(
            "not verified after 1000 ms (2 tries, timeout_ms = 1000): killed after 300 ms"
        ),
        "{e}"
    );
}

#[test]
fn an_observer_that_stops_answering_gets_only_the_time_left() {
    let clock = Clock::new();
    let mut obs = Observer::new(&clock, vec![path(R3, &[])]);
    obs.answers = 3;
    let probes = Timed {
        clock: &clock,
        given: RefCell::default(),
    };
    let e = verify_with(PLAN, Mode::Planned, &obs, &probes).unwrap_err();
    let ms: Vec<u128> = obs.asked.borrow().iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [1000, 900, 800, 700]);
    assert_eq!(clock.at.get(), Duration::from_millis(1000));
    assert!(
        e.starts_with("not verified after 1000 ms (4 tries, timeout_ms = 1000): site obs: ")
            && e.contains("no answer within 700 ms (before that: observer obs has no path for 198.51.100.0/24 from dc2"),
        "{e}"
    );
}

fn preflight_with(seen: Vec<ReceivedRoute>) -> Result<Option<String>, String> {
    preflight_answering(seen, usize::MAX).0
}

/// The preflight, the observer answering `answers` times; and the time each request got.
fn preflight_answering(
    seen: Vec<ReceivedRoute>,
    answers: usize,
) -> (Result<Option<String>, String>, Vec<u128>) {
    let plan = Plan::parse(PLAN).unwrap();
    let clock = Clock::new();
    let mut obs = Observer::new(&clock, seen);
    obs.answers = answers;
    let probes = Timed {
        clock: &clock,
        given: RefCell::default(),
    };
    let cx = Ctx {
        plan: &plan,
        direction: Direction::Failover,
        mode: Mode::Planned,
        sites: &obs,
        probes: &probes,
        dns: &crate::controller::dns::SystemDns,
        spawned: &|_| Ok(()),
    };
    let r = preflight(&cx);
    let asked = obs.asked.borrow().iter().map(|d| d.as_millis()).collect();
    (r, asked)
}

#[test]
fn the_preflight_finds_the_old_site_behind_next_hop_self_and_says_what_it_sees_when_not() {
    assert!(preflight_with(vec![path(DC1, &[])]).is_ok());
    let (r, asked) = preflight_answering(vec![path(R3, &[])], usize::MAX);
    let e = r.unwrap_err();
    assert!(
        e.starts_with("observer obs does not see 198.51.100.0/24 from dc1 (origin AS 65101); it sees [as path 65003,")
            && e.contains("(after 900 ms)"),
        "{e}"
    );
    // One deadline, and no request with less than an interval of it left.
    assert_eq!(asked, [1000, 900, 800, 700, 600, 500, 400, 300, 200, 100]);
    // An observer that stops answering: its error, and what it showed before.
    let (r, _) = preflight_answering(vec![path(R3, &[])], 2);
    let e = r.unwrap_err();
    assert!(
        e.contains("no answer within 800 ms (before that: observer obs does not see 198.51.100.0/24 from dc1"),
        "{e}"
    );
    let e = preflight_with(vec![]).unwrap_err();
    assert!(e.contains("it sees no path"), "{e}");
}
