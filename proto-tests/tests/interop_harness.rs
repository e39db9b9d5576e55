//! Proves the interop harness (proto_tests::netns + proto_tests::daemons): FRR against BIRD 2,
//! GoBGP and ExaBGP, each pair in two fresh network namespaces. Needs root (skips otherwise,
//! or fails with FIT_REQUIRE=1).

use std::time::Duration;

use testkit::daemons::bird::{Bird, BirdConfig};

use testkit::daemons::exabgp::{ExaBgp, ExaBgpConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::gobgp::{GoBgp, GoBgpConfig};

use testkit::daemons::{BgpDaemon, Family, Peer, RibRoute, Route};
use testkit::netns::Lab;
use testkit::root::can_run_with;

const WAIT: Duration = Duration::from_secs(20);
const FRR_AS: u32 = 65001;
const OTHER_AS: u32 = 65002;
const FRR_IP: &str = "192.0.2.1";
const OTHER_IP: &str = "192.0.2.2";

const FRR_PROGS: &[&str] = &["/usr/lib/frr/bgpd", "vtysh"];

/// FRR in namespace a (192.0.2.1, AS 65001, active) announcing 203.0.113.0/24.
fn frr_config() -> FrrConfig {
    FrrConfig::new(FRR_AS, FRR_IP)
        .peer(Peer::new(OTHER_IP, OTHER_AS))
        .route(
            Route::new("203.0.113.0/24")
                .community("65001:10")
                .large_community("65001:1:1")
                .med(7),
        )
}

/// The route the other daemon originates.
fn other_route() -> Route {
    Route::new("198.51.100.0/24")
        .next_hop(OTHER_IP)
        .community("64512:100")
        .community("64512:200")
        .large_community("65002:1:2")
        .med(50)
}

fn check_other_route(r: &RibRoute) {
    assert_eq!(r.as_path, vec![OTHER_AS], "{r:?}");
    assert_eq!(r.communities, vec!["64512:100", "64512:200"], "{r:?}");
    assert_eq!(r.large_communities, vec!["65002:1:2"], "{r:?}");
    assert_eq!(r.med, Some(50), "{r:?}");
    assert_eq!(r.next_hop.as_deref(), Some(OTHER_IP), "{r:?}");
}

/// What differs per daemon in [`scenario`].
struct Expect {
    /// FRR can send the other daemon a ROUTE-REFRESH.
    frr_refresh: bool,
    /// What FRR logs for the other daemon's administrative shutdown.
    at_frr: &'static str,
    /// What the other daemon reports for FRR's shutdown with message "fit: frr maintenance".
    at_other: &'static str,
    /// The other daemon's shutdown keeps the session down (ExaBGP's teardown reconnects).
    stays_down: bool,
}

/// Session up both ways, routes both ways with attributes, route refresh, FRR shuts the
/// session down with a message (the other daemon sees it), re-enables it, then the other
/// daemon shuts the session down (with a message where it can) and FRR logs it.
fn scenario(frr: &Frr, other: &dyn BgpDaemon, expect: Expect) {
    frr.wait_established(OTHER_IP, WAIT);
    other.wait_established(FRR_IP, WAIT);

    let r = frr.wait_route("198.51.100.0/24", WAIT);
    check_other_route(&r);
    assert_eq!(frr.rib_ipv4().len(), 1, "{:?}", frr.rib_ipv4());

    let got = other.wait_route("203.0.113.0/24", WAIT);
    assert_eq!(got.as_path, vec![FRR_AS], "{got:?}");
    assert_eq!(got.communities, vec!["65001:10"], "{got:?}");
    assert_eq!(got.large_communities, vec!["65001:1:1"], "{got:?}");
    assert_eq!(got.med, Some(7), "{got:?}");

    // route refresh from FRR's side: the route is still there afterwards
    if expect.frr_refresh {
        frr.route_refresh(OTHER_IP, Family::Ipv4)
            .expect("frr soft in");
        frr.wait_log("sending REFRESH_REQ", WAIT);
        frr.wait_route("198.51.100.0/24", WAIT);
    }

    // runtime withdraw and announce by FRR
    frr.withdraw("203.0.113.0/24").expect("frr withdraw");
    other.wait_no_route("203.0.113.0/24", WAIT);
    frr.announce(&Route::new("203.0.113.0/24").community("65001:11"))
        .expect("frr announce");
    let got = other.wait_route_where("203.0.113.0/24", WAIT, &|r| r.communities == ["65001:11"]);
    // (FRR sends MED 0 for a `network` route without `set metric`)
    assert!(got.large_communities.is_empty(), "{got:?}");

    // FRR -> other: Cease/2 with a shutdown message
    frr.shutdown_peer(OTHER_IP, "fit: frr maintenance")
        .expect("frr shutdown");
    other.wait_notification(expect.at_other, WAIT);
    other.wait_no_route("203.0.113.0/24", WAIT);
    frr.enable_peer(OTHER_IP).expect("frr enable");
    frr.wait_established(OTHER_IP, WAIT);
    other.wait_established(FRR_IP, WAIT);
    frr.wait_route("198.51.100.0/24", WAIT);

    // other -> FRR
    other
        .shutdown_peer(FRR_IP, "fit: maintenance")
        .expect("shutdown");
    frr.wait_notification(expect.at_frr, WAIT);
    if expect.stays_down {
        frr.wait_no_route("198.51.100.0/24", WAIT);
    }
}

/// After the lab is dropped: no namespace with its prefix, none of its processes alive.
fn assert_cleaned(prefix: &str, pids: &[u32]) {
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.lines().any(|l| l.starts_with(prefix)),
        "namespaces left: {list}"
    );
    for p in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "process {p} still running"
        );
    }
    let tmp = std::env::temp_dir();
    for e in std::fs::read_dir(&tmp).expect("temp dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(prefix) || std::env::var("FIT_KEEP").is_ok(),
            "temp dir left: {name}"
        );
    }
}

#[test]
fn interop_frr_bird() {
    if !can_run_with(
        "interop_frr_bird",
        &[FRR_PROGS, &["bird", "birdc"]].concat(),
    ) {
        return;
    }
    let lab = Lab::new("frrbird");
    let prefix = lab.prefix().to_string();
    let mut pids = Vec::new();
    {
        let (a, b, _veth) = lab.pair();
        let frr = Frr::start(&lab, &a, &frr_config());
        let bird = Bird::start(
            &lab,
            &b,
            &BirdConfig::new(OTHER_AS, OTHER_IP)
                .peer(Peer::new(FRR_IP, FRR_AS).passive())
                .route(other_route()),
        );
        pids.extend(frr.pids());
        pids.push(bird.pid());
        scenario(
            &frr,
            &bird,
            Expect {
                frr_refresh: true,
                at_frr: "\"fit: maintenance\"",
                at_other: "fit: frr maintenance",
                stays_down: true,
            },
        );
        bird.route_refresh(FRR_IP, Family::Ipv4)
            .expect("bird reload in");
    }
    drop(lab);
    assert_cleaned(&prefix, &pids);
}

#[test]
fn interop_frr_gobgp() {
    if !can_run_with(
        "interop_frr_gobgp",
        &[FRR_PROGS, &["gobgpd", "gobgp"]].concat(),
    ) {
        return;
    }
    let lab = Lab::new("frrgobgp");
    let prefix = lab.prefix().to_string();
    let mut pids = Vec::new();
    {
        let (a, b, _veth) = lab.pair();
        let frr = Frr::start(&lab, &a, &frr_config());
        let gobgp = GoBgp::start(
            &lab,
            &b,
            &GoBgpConfig::new(OTHER_AS, OTHER_IP)
                .peer(Peer::new(FRR_IP, FRR_AS).local_address(OTHER_IP))
                .route(other_route()),
        );
        pids.extend(frr.pids());
        pids.push(gobgp.pid());
        scenario(
            &frr,
            &gobgp,
            Expect {
                frr_refresh: true,
                at_frr: "\"fit: maintenance\"",
                at_other: "fit: frr maintenance",
                stays_down: true,
            },
        );
    }
    drop(lab);
    assert_cleaned(&prefix, &pids);
}

#[test]
fn interop_frr_exabgp() {
    if !can_run_with("interop_frr_exabgp", &[FRR_PROGS, &["exabgp"]].concat()) {
        return;
    }
    let lab = Lab::new("frrexabgp");
    let prefix = lab.prefix().to_string();
    let mut pids = Vec::new();
    {
        let (a, b, _veth) = lab.pair();
        let frr = Frr::start(&lab, &a, &frr_config());
        let exabgp = ExaBgp::start(
            &lab,
            &b,
            &ExaBgpConfig::new(OTHER_AS, OTHER_IP)
                .peer(Peer::new(FRR_IP, FRR_AS).local_address(OTHER_IP))
                .route(other_route()),
        );
        pids.extend(frr.pids());
        pids.push(exabgp.pid());
        scenario(
            &frr,
            &exabgp,
            Expect {
                frr_refresh: false,
                at_frr: "Cease/Administrative Shutdown",
                // ExaBGP 4.2.21 cannot decode a Cease with a shutdown communication (see
                // daemons::exabgp): it answers NOTIFICATION 1/0 and drops the session
                at_other: "can not decode update message of type \"3\"",
                stays_down: false,
            },
        );
    }
    drop(lab);
    assert_cleaned(&prefix, &pids);
}
