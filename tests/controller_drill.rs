//! Test failovers and host moves with real `ferry speaker`s and FRR routers in network
//! namespaces: a production router ("prod", AS 65001) peered with the primary, recovery and
//! observer speakers, and a test-network router ("r4", AS 65004) peered only with the test
//! site's speaker.
//!
//! ```text
//!   ns sp: dc1 192.0.2.1, dc2 192.0.2.2, obs 192.0.2.3 ---- prod 192.0.2.254 (ns prod)
//!          lab 203.0.113.1 ------------------------------- r4 203.0.113.254 (ns test)
//! ```
//!
//! Proves, one after the other: `plan check` announces the host route at the primary for the
//! check and fails naming the host and `le 32` while prod's prefix list has no `le 32`
//! (nothing left announced after); with `le 32` it passes. `ferry failover --test` puts the
//! subnet and the host route in r4's RIB while prod keeps the primary's routes only (no
//! route carrying the test site's community, no /32) and the recovery speaker announces
//! nothing; history lists the run as a test failover; a real failover is refused until
//! `cleanup-test`, which empties r4. The real failover then moves the /25 and the /32 to dc2
//! at prod while the covering 198.51.100.128/25 stays with dc1; failback withdraws the /32.
//! Failure injected: a router that filters host routes (prefix list without `le 32`).
//! Skipped when not root or FRR is missing, unless FIT_REQUIRE=1.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::{BgpDaemon, Peer};
use testkit::Lab;

const PROD_AS: u32 = 65001;
const R4_AS: u32 = 65004;
const ROUTE_WAIT: Duration = Duration::from_secs(20);

/// A speaker in namespace `ns` at `local`, peering eBGP with the FRR router at `router`.
fn speaker(ns: &str, local: Ipv4Addr, router: Ipv4Addr, router_as: u32) -> Speaker {
    Speaker::start(SpeakerSpec {
        neighbors: vec![NeighborSpec {
            remote_as: router_as,
            port: None,
            local_address: IpAddr::V4(local),
            ..NeighborSpec::active((router, 179).into())
        }],
        router_id: Some(local),
        wrapper: ["ip", "netns", "exec", ns].map(String::from).to_vec(),
        ..SpeakerSpec::default()
    })
}

fn plan_text(dc1: &Speaker, dc2: &Speaker, lab: &Speaker, obs: &Speaker) -> String {
    format!(
        r#"name = "drill"
primary = "dc1"
recovery = "dc2"
test_site = "lab"
order = "break-before-make"

[[site]]
name = "dc1"
api = "{}"
verify_community = "65100:1"

[[site]]
name = "dc2"
api = "{}"
verify_community = "65100:2"

[[site]]
name = "lab"
api = "{}"
verify_community = "65100:3"

[[site]]
name = "obs"
api = "{}"

[[group]]
name = "web"
subnets = ["198.51.100.0/25"]

[[group]]
name = "vm"
hosts = ["198.51.100.200/32"]

[verify]
observer = "obs"
timeout_ms = 3000
interval_ms = 50
"#,
        dc1.api().display(),
        dc2.api().display(),
        lab.api().display(),
        obs.api().display()
    )
}

/// `ferry ARGS --plan PLAN --state-dir STATE`.
fn run(args: &[&str], plan: &Path, state: &Path) -> CliOut {
    let (plan, state) = (plan.to_string_lossy(), state.to_string_lossy());
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--plan", &plan, "--state-dir", &state]);
    ferry_cli(&all, None)
}

/// `ferry plan check PLAN`.
fn check(plan: &Path) -> CliOut {
    ferry_cli(&["plan", "check", &plan.to_string_lossy()], None)
}

/// prod's best path for `prefix`, if any.
fn prod_route(prod: &Frr, prefix: &str) -> Option<testkit::daemons::RibRoute> {
    prod.rib_ipv4().remove(prefix)
}

#[test]
fn test_failover_reaches_the_test_network_only_and_host_routes_move_one_vm() {
    if !lab_can_run() {
        return;
    }
    let lab = Lab::new("drill");
    let sp = lab.netns("sp");
    let prodns = lab.netns("prod");
    let testns = lab.netns("test");
    lab.veth(
        &sp,
        &["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"],
        &prodns,
        &["192.0.2.254/24"],
    );
    lab.veth(&sp, &["203.0.113.1/24"], &testns, &["203.0.113.254/24"]);
    // prod accepts the plan's subnets and the covering subnet exactly: no `le 32` yet.
    let prod = Frr::start(
        &lab,
        &prodns,
        &FrrConfig::new(PROD_AS, "192.0.2.254")
            .peer(Peer::new("192.0.2.1", LOCAL_ASN).passive())
            .peer(Peer::new("192.0.2.2", LOCAL_ASN).passive())
            .peer(Peer::new("192.0.2.3", LOCAL_ASN).passive())
            .extra_global("ip prefix-list DC seq 5 permit 198.51.100.0/24 ge 25 le 25")
            .extra_global("route-map FIT-ALL permit 10\n match ip address prefix-list DC\nexit"),
    );
    let r4 = Frr::start(
        &lab,
        &testns,
        &FrrConfig::new(R4_AS, "203.0.113.254").peer(Peer::new("203.0.113.1", LOCAL_ASN).passive()),
    );
    let spn = sp.name().to_owned();
    let router = Ipv4Addr::new(192, 0, 2, 254);
    let dc1 = speaker(&spn, Ipv4Addr::new(192, 0, 2, 1), router, PROD_AS);
    let dc2 = speaker(&spn, Ipv4Addr::new(192, 0, 2, 2), router, PROD_AS);
    let obs = speaker(&spn, Ipv4Addr::new(192, 0, 2, 3), router, PROD_AS);
    let test = speaker(
        &spn,
        Ipv4Addr::new(203, 0, 113, 1),
        Ipv4Addr::new(203, 0, 113, 254),
        R4_AS,
    );
    for a in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        prod.wait_established(a, ROUTE_WAIT);
    }
    r4.wait_established("203.0.113.1", ROUTE_WAIT);
    dc1.cli_ok(&[
        "announce",
        "198.51.100.0/25",
        "198.51.100.128/25",
        "--community",
        "65100:1",
    ]);
    prod.wait_route("198.51.100.0/25", ROUTE_WAIT);
    prod.wait_route("198.51.100.128/25", ROUTE_WAIT);

    let dir = tempfile::tempdir().unwrap();
    let plan: PathBuf = dir.path().join("plan.toml");
    let state = dir.path().join("state");
    std::fs::write(&plan, plan_text(&dc1, &dc2, &test, &obs)).unwrap();

    // A router that drops host routes: plan check says so, and leaves nothing announced.
    let out = check(&plan);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("does not see host route 198.51.100.200/32")
            && out.stderr.contains("le 32"),
        "{out:?}"
    );
    let routes = dc1.cli_ok(&["routes", "--json"]).stdout;
    assert!(!routes.contains("198.51.100.200/32"), "{routes}");

    prod.configure(&["ip prefix-list DC seq 6 permit 198.51.100.0/24 ge 32 le 32"])
        .unwrap();
    let out = check(&plan);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("host routes: observer obs sees 1 host routes"),
        "{out:?}"
    );
    prod.wait_no_route("198.51.100.200/32", ROUTE_WAIT);

    // The test failover: r4 has the routes, prod only the primary's.
    let out = run(&["failover", "--test", "--yes"], &plan, &state);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("cleanup-test"), "{out:?}");
    let at_r4 = r4.wait_route("198.51.100.0/25", ROUTE_WAIT);
    assert_eq!(at_r4.as_path, vec![LOCAL_ASN]);
    assert!(
        at_r4.communities.contains(&"65100:3".to_string()),
        "{at_r4:?}"
    );
    r4.wait_route("198.51.100.200/32", ROUTE_WAIT);
    let rib = prod.rib_ipv4();
    assert!(!rib.contains_key("198.51.100.200/32"), "{rib:?}");
    for (p, r) in &rib {
        assert!(
            !r.communities.contains(&"65100:3".to_string())
                && r.peer.as_deref() != Some("192.0.2.2"),
            "prod sees {p} from the test site or the recovery: {r:?}"
        );
    }
    assert!(prod_route(&prod, "198.51.100.0/25")
        .unwrap()
        .communities
        .contains(&"65100:1".to_string()));
    let dc2_routes = dc2.cli_ok(&["routes", "--json"]).stdout;
    assert!(!dc2_routes.contains("198.51.100"), "{dc2_routes}");
    let h = ferry_cli(
        &[
            "failover",
            "history",
            "--state-dir",
            &state.to_string_lossy(),
        ],
        None,
    );
    assert!(
        h.stdout.contains("test failover") && h.stdout.contains("completed"),
        "{h:?}"
    );

    // No real run until the test is cleaned up.
    let out = run(&["failover", "--yes"], &plan, &state);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not cleaned up"), "{out:?}");
    let out = run(&["failover", "cleanup-test", "--yes"], &plan, &state);
    assert_eq!(out.code, 0, "{out:?}");
    r4.wait_no_route("198.51.100.0/25", ROUTE_WAIT);
    r4.wait_no_route("198.51.100.200/32", ROUTE_WAIT);

    // The real failover moves the /25 and the VM's /32; the covering /25 stays at dc1.
    let out = run(&["failover", "--yes"], &plan, &state);
    assert_eq!(out.code, 0, "{out:?}");
    let from_dc2 = |r: &testkit::daemons::RibRoute| r.communities.contains(&"65100:2".to_string());
    prod.wait_route_where("198.51.100.0/25", ROUTE_WAIT, &from_dc2);
    prod.wait_route_where("198.51.100.200/32", ROUTE_WAIT, &from_dc2);
    assert!(prod_route(&prod, "198.51.100.128/25")
        .unwrap()
        .communities
        .contains(&"65100:1".to_string()));
    let out = run(&["failback", "--yes"], &plan, &state);
    assert_eq!(out.code, 0, "{out:?}");
    prod.wait_no_route("198.51.100.200/32", ROUTE_WAIT);
    prod.wait_route_where("198.51.100.0/25", ROUTE_WAIT, &|r| {
        r.communities.contains(&"65100:1".to_string())
    });
    assert!(
        r4.rib_ipv4().is_empty(),
        "the test network got nothing from the real runs"
    );
}
