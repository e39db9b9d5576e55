//! Health-driven announcements against real FRR 8.4: Ferry in namespace `a` (192.0.2.1,
//! AS 65100), FRR's bgpd in `b` (192.0.2.2, AS 65002). The "service" is a TCP listener the
//! test owns, bound in `a` on 127.0.0.1 (Ferry's `tcp` check connects to it); dropping it
//! makes the check fail, binding it again makes it pass.
//!
//! What each test proves (asserted at FRR's RIB, with Ferry's `ferry health --json`):
//! * `health_check_withdraws_on_fall_and_announces_on_rise`: with the service up, the
//!   announced route reaches FRR; with it gone, after `fall` failed probes the route leaves
//!   FRR (the check is `down`, the log has the audit line); with it back, after `rise`
//!   probes the route is at FRR again. A route outside the check's prefixes stays at FRR
//!   throughout. Before the first success nothing governed is announced: a check whose
//!   service is not there at start keeps the route from FRR.
//! * `a_flapping_service_is_held_down`: `hold_down_ms = 3000`; the service goes and comes
//!   straight back once the check fell: the route stays away from FRR (sampled every 100 ms)
//!   for the hold-down (less 600 ms for seeing the fall late), however many probes pass
//!   meanwhile, then returns.
//! * `health_check_deprefers_on_fall`: `on_fall = "deprefer"` with `prepend = 2` and a MED:
//!   on fall FRR keeps the route with an AS path two ASNs longer and the MED; on rise it is
//!   back as announced. A `ferry reload` with the check changed is refused (exit 2, restart
//!   needed) and the running check goes on.
//!
//! Needs root and FRR (skips otherwise, fails with FIT_REQUIRE=1).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::config::HealthCheckConfig;
use proto_tests::ferry::{Ferry, FerryConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Peer};
use testkit::netns::{Lab, Netns};
use testkit::root::can_run_with;

const FERRY_AS: u32 = 65100;
const PEER_AS: u32 = 65002;
const FERRY_IP: &str = "192.0.2.1";
const PEER_IP: &str = "192.0.2.2";
const GOVERNED: &str = "198.51.100.0/24";
const OTHER: &str = "203.0.113.0/24";
const UP: Duration = Duration::from_secs(20);
const FRR_PROGS: &[&str] = &["/usr/lib/frr/bgpd", "vtysh"];
const INTERVAL_MS: u64 = 200;
const FALL: u64 = 3;
const RISE: u64 = 2;

/// The service: a listener in Ferry's namespace, accepting (and closing) on a thread until
/// dropped, so the backlog never fills.
struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    fn start(ns: &Netns, addr: SocketAddr) -> Service {
        let listener: TcpListener = ns
            .tcp_listener(addr)
            .unwrap_or_else(|e| panic!("service listener: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Service {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lab(test: &str) -> (Lab, Netns, Netns) {
    let lab = Lab::new(test);
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, &["192.0.2.1/24"], &b, &["192.0.2.2/24"])
        .wait_up(Duration::from_secs(5));
    (lab, a, b)
}

fn check(service: SocketAddr, extra: &str) -> HealthCheckConfig {
    toml::from_str(&format!(
        "name = \"web\"\nprefixes = [\"{GOVERNED}\"]\ntcp = \"{service}\"\n\
         interval_ms = {INTERVAL_MS}\ntimeout_ms = 150\nrise = {RISE}\nfall = {FALL}\n{extra}"
    ))
    .expect("health check config")
}

/// `ferry health --json`'s state of the check `web`.
fn state(ferry: &Ferry) -> String {
    let v = ferry
        .cli_json(&["health"])
        .unwrap_or_else(|e| ferry.fail(&e));
    v[0]["state"].as_str().unwrap_or_default().to_string()
}

fn frr_config() -> FrrConfig {
    FrrConfig::new(PEER_AS, PEER_IP).peer(Peer::new(FERRY_IP, FERRY_AS).passive())
}

fn ferry_config(check: HealthCheckConfig) -> FerryConfig {
    FerryConfig::new(FERRY_AS, FERRY_IP)
        .neighbor(Peer::new(PEER_IP, PEER_AS).local_address(FERRY_IP))
        .health_check(check)
}

#[test]
fn health_check_withdraws_on_fall_and_announces_on_rise() {
    if !can_run_with(
        "health_check_withdraws_on_fall_and_announces_on_rise",
        FRR_PROGS,
    ) {
        return;
    }
    let (lab, a, b) = lab("healthwd");
    let addr: SocketAddr = "127.0.0.1:18081".parse().unwrap();
    let frr = Frr::start(&lab, &b, &frr_config());
    // No service yet: the governed route waits for the first success.
    let ferry = Ferry::start(&lab, &a, &ferry_config(check(addr, "")));
    frr.wait_established(FERRY_IP, UP);
    ferry.cli_ok(&["announce", GOVERNED, OTHER]);
    frr.wait_route(OTHER, UP);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !frr.rib_ipv4().contains_key(GOVERNED),
        "announced before the check ever passed"
    );
    assert_eq!(state(&ferry), "down");

    // Service up: after `rise` probes (the hold-down is 0) the route is at FRR.
    let service = Service::start(&a, addr);
    let t0 = Instant::now();
    frr.wait_route(GOVERNED, UP);
    eprintln!(
        "rise: route at FRR {:?} after the service came up",
        t0.elapsed()
    );
    assert_eq!(state(&ferry), "up");

    // Service gone: after `fall` failed probes the route leaves FRR; the other stays.
    drop(service);
    let t0 = Instant::now();
    frr.wait_no_route(GOVERNED, UP);
    let took = t0.elapsed();
    eprintln!("fall: route gone from FRR {took:?} after the service went");
    assert!(
        took >= Duration::from_millis((FALL - 1) * INTERVAL_MS),
        "withdrawn after {took:?}: sooner than {FALL} probes"
    );
    assert!(
        frr.rib_ipv4().contains_key(OTHER),
        "the ungoverned route left"
    );
    assert_eq!(state(&ferry), "down");
    if !ferry.log_contains("audit: health by speaker: health check web: web up -> down") {
        ferry.fail("no audit line for the fall");
    }
    let routes = ferry
        .cli_json(&["routes"])
        .unwrap_or_else(|e| ferry.fail(&e));
    assert_eq!(
        routes.as_array().map(Vec::len),
        Some(2),
        "the desired routes keep both: {routes}"
    );

    // Back: the route returns.
    let _service = Service::start(&a, addr);
    frr.wait_route(GOVERNED, UP);
    assert_eq!(state(&ferry), "up");
    let v = ferry
        .cli_json(&["health"])
        .unwrap_or_else(|e| ferry.fail(&e));
    // init -> down (no service at start), -> up, -> down, -> up.
    assert_eq!(v[0]["transitions"], 4, "{v}");
}

#[test]
fn health_check_deprefers_on_fall() {
    if !can_run_with("health_check_deprefers_on_fall", FRR_PROGS) {
        return;
    }
    let (lab, a, b) = lab("healthdp");
    let addr: SocketAddr = "127.0.0.1:18082".parse().unwrap();
    let frr = Frr::start(&lab, &b, &frr_config());
    let service = Service::start(&a, addr);
    let ferry = Ferry::start(
        &lab,
        &a,
        &ferry_config(check(
            addr,
            "on_fall = \"deprefer\"\nprepend = 2\nmed = 900",
        )),
    );
    frr.wait_established(FERRY_IP, UP);
    ferry.cli_ok(&["announce", GOVERNED]);
    let r = frr.wait_route(GOVERNED, UP);
    assert_eq!(r.as_path, vec![FERRY_AS], "{r:?}");
    assert_eq!(r.med, None, "{r:?}");

    drop(service);
    let r = frr.wait_route_where(GOVERNED, UP, &|r| r.as_path.len() == 3);
    assert_eq!(r.as_path, vec![FERRY_AS; 3], "{r:?}");
    assert_eq!(r.med, Some(900), "{r:?}");
    assert_eq!(state(&ferry), "down");

    let _service = Service::start(&a, addr);
    let r = frr.wait_route_where(GOVERNED, UP, &|r| r.as_path.len() == 1);
    assert_eq!(r.med, None, "{r:?}");
    assert_eq!(state(&ferry), "up");

    // A reload that changes the check is refused (restart), and the check runs on.
    ferry.write_config(&ferry_config(check(
        addr,
        "on_fall = \"deprefer\"\nmed = 5",
    )));
    let e = ferry.cli(&["reload"]).unwrap_err();
    assert!(
        e.contains("exit status: 2") && e.contains("health_check changed"),
        "{e}"
    );
    let v = ferry
        .cli_json(&["health"])
        .unwrap_or_else(|e| ferry.fail(&e));
    assert_eq!(
        (v[0]["state"].as_str(), v[0]["on_fall"].as_str()),
        (Some("up"), Some("deprefer")),
        "{v}"
    );
}

#[test]
fn a_flapping_service_is_held_down() {
    if !can_run_with("a_flapping_service_is_held_down", FRR_PROGS) {
        return;
    }
    let (lab, a, b) = lab("healthhd");
    let addr: SocketAddr = "127.0.0.1:18083".parse().unwrap();
    let frr = Frr::start(&lab, &b, &frr_config());
    let service = Service::start(&a, addr);
    let ferry = Ferry::start(&lab, &a, &ferry_config(check(addr, "hold_down_ms = 3000")));
    frr.wait_established(FERRY_IP, UP);
    ferry.cli_ok(&["announce", GOVERNED]);
    frr.wait_route(GOVERNED, UP);

    drop(service);
    let fell = (0..100)
        .find(|_| {
            std::thread::sleep(Duration::from_millis(50));
            state(&ferry) == "down"
        })
        .unwrap_or_else(|| ferry.fail("the check did not fall"));
    let t_fall = Instant::now();
    let _service = Service::start(&a, addr);
    frr.wait_no_route(GOVERNED, UP);
    // Probes pass every 200 ms from now on (rise 2 alone would bring the route back within
    // about 400 ms); the hold-down keeps it away until 3 s after the fall. `t_fall` is when
    // the fall was seen, a little after it happened: 600 ms of margin for a loaded machine.
    const HELD: Duration = Duration::from_millis(2400);
    while t_fall.elapsed() < HELD {
        assert!(
            !frr.rib_ipv4().contains_key(GOVERNED),
            "route back {:?} after the fall, inside the hold-down",
            t_fall.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    frr.wait_route(GOVERNED, UP);
    let back = t_fall.elapsed();
    eprintln!("held down: route back at FRR {back:?} after the fall (poll {fell})");
    assert!(back >= HELD, "{back:?}");
    assert_eq!(state(&ferry), "up");
}
