//! The RPKI preflight against real parts: Debian's `stayrtr` serving a VRP JSON file, FRR's
//! RPKI module (`bgpd -M rpki`, Debian's `frr-rpki-rtrlib`) at a router r3 that drops
//! Invalid routes, and two `ferry speaker`s (dc1 AS65101, dc2 AS65102) peering with r3, each
//! in its own namespace. What it proves:
//! - Ferry's RTR client reads stayrtr's VRPs over RFC 8210 (version 1) and RFC 6810
//!   (version 0: stayrtr started with `-protocol 0`).
//! - `ferry plan check` fails when the recovery AS has no ROA while another AS's ROA covers
//!   the subnet, naming the prefix, the AS and the covering ROA; `ferry failover` refuses to
//!   start; forced with `--ignore-rpki`, r3 receives dc2's route and drops it (in its
//!   received-routes, absent from its RIB): what the preflight predicted.
//! - With a ROA for the recovery AS published (the VRP file changed under stayrtr), the
//!   preflight passes and the route from AS65102 is r3's best path.
//!
//! Needs root (namespaces), FRR with frr-rpki-rtrlib, and stayrtr (scripts/install-deps.sh).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ferry::config::{Asn, Config, NeighborConfig, RouterId, Seconds, SpeakerConfig};
use ferry::rpki::rov::Vrp;
use ferry::rpki::rtr;
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::Peer;
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;
use testkit::speaker;

const SUBNET: &str = "198.51.100.0/24";

fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// A VRP file as rpki-client and stayrtr write them.
fn write_vrps(path: &Path, roas: &[(&str, u8, u32)]) {
    let roas: Vec<serde_json::Value> = roas
        .iter()
        .map(|(p, m, a)| serde_json::json!({"prefix": p, "maxLength": m, "asn": format!("AS{a}")}))
        .collect();
    let v = serde_json::json!({"metadata": {"buildtime": "2026-01-01T00:00:00Z"}, "roas": roas});
    // Replaced whole, so stayrtr never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, v.to_string()).expect("write VRPs");
    std::fs::rename(&tmp, path).expect("rename VRPs");
}

/// stayrtr started by the test (in the root namespace on loopback, or in a lab namespace),
/// serving `vrps` re-read every second; killed on drop.
struct StayRtr {
    child: Child,
    log: PathBuf,
}

impl StayRtr {
    fn start(mut cmd: Command, dir: &Path, bind: &str, metrics: &str, protocol: u8) -> Self {
        let log = dir.join("stayrtr.log");
        let out = std::fs::File::create(&log).expect("stayrtr log");
        let child = cmd
            .args(["-bind", bind, "-metrics.addr", metrics])
            .arg("-cache")
            .arg(dir.join("vrps.json"))
            .args(["-checktime=false", "-refresh", "1", "-rtr.refresh", "1"])
            .args(["-protocol", &protocol.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start stayrtr (Debian package stayrtr)");
        StayRtr { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for StayRtr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The VRPs `validator` serves once it serves exactly `want` (stayrtr re-reads its file
/// every second), within 15 s; panics with the last answer otherwise.
fn wait_vrps(validator: &str, want: &[Vrp], stayrtr: &StayRtr) -> Vec<Vrp> {
    let mut last = None;
    let got = poll(Duration::from_secs(15), || {
        let r = rtr::fetch(validator, Duration::from_secs(2));
        let ok = matches!(&r, Ok(v) if v == want);
        last = Some(r);
        ok.then_some(())
    });
    match (got, last) {
        (Some(()), Some(Ok(v))) => v,
        (_, last) => panic!(
            "{validator} did not serve {want:?}; last answer {last:?}\nstayrtr log:\n{}",
            stayrtr.log()
        ),
    }
}

/// FRR's RPKI module (Debian's frr-rpki-rtrlib), wherever the architecture puts it.
fn rpki_module() -> String {
    let arch = std::env::consts::ARCH;
    let found = [
        format!("/usr/lib/{arch}-linux-gnu/frr/modules/bgpd_rpki.so"),
        "/usr/lib/frr/modules/bgpd_rpki.so".to_string(),
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file());
    found.unwrap_or_else(|| "bgpd_rpki.so (Debian package frr-rpki-rtrlib)".into())
}

fn vrp(p: &str, max_len: u8, asn: u32) -> Vrp {
    Vrp::new(p.parse().unwrap(), max_len, asn).unwrap()
}

#[test]
fn the_rtr_client_reads_stayrtr_over_rfc8210_and_rfc6810() {
    // Loopback only, no namespace: root is not needed, stayrtr is.
    if !testkit::root::program_exists("stayrtr") {
        assert!(
            !testkit::root::required(),
            "stayrtr is missing (FIT_REQUIRE=1)"
        );
        eprintln!("SKIPPED the_rtr_client_reads_stayrtr: stayrtr is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let roas = [(SUBNET, 24, 65101), ("2001:db8::/32", 48, 65102)];
    write_vrps(&dir.path().join("vrps.json"), &roas);
    let mut want = vec![vrp(SUBNET, 24, 65101), vrp("2001:db8::/32", 48, 65102)];
    want.sort();
    for protocol in [1u8, 0] {
        let bind = format!("127.0.0.1:{}", free_port());
        let metrics = format!("127.0.0.1:{}", free_port());
        let s = StayRtr::start(
            Command::new("stayrtr"),
            dir.path(),
            &bind,
            &metrics,
            protocol,
        );
        let got = wait_vrps(&bind, &want, &s);
        assert_eq!(got, want, "protocol {protocol}");
        // An AS0 ROA and a changed file arrive on the next fetch.
        if protocol == 1 {
            write_vrps(
                &dir.path().join("vrps.json"),
                &[
                    (SUBNET, 24, 65101),
                    ("2001:db8::/32", 48, 65102),
                    ("203.0.113.0/24", 32, 0),
                ],
            );
            let mut more = want.clone();
            more.push(vrp("203.0.113.0/24", 32, 0));
            more.sort();
            wait_vrps(&bind, &more, &s);
            write_vrps(&dir.path().join("vrps.json"), &roas);
        }
    }
}

/// A `ferry speaker` in `ns`, AS `asn`, with r3 (AS65003) at `r3` as its one neighbor.
fn start_speaker(lab: &Lab, ns: &Netns, asn: u32, me: &str, r3: &str) -> PathBuf {
    let dir = lab.daemon_dir("ferry", ns);
    let me: Ipv4Addr = me.parse().unwrap();
    let mut speaker_conf = SpeakerConfig::new(
        Asn(asn),
        RouterId(me),
        dir.join("api.sock"),
        dir.join("state"),
    );
    speaker_conf.listen = Some(SocketAddr::from((me, 179)));
    let mut n = NeighborConfig::new(r3.parse().unwrap(), Asn(65003));
    n.connect_retry = Seconds(1);
    let config = Config {
        speaker: speaker_conf,
        neighbors: vec![n],
        health_checks: Vec::new(),
    };
    let conf = dir.join("ferry.toml");
    speaker::write_config(&conf, &config).unwrap_or_else(|e| panic!("{e}"));
    let mut c = ns.command(ferry_bin());
    c.arg("speaker").arg("--config").arg(&conf);
    c.env("FERRY_LOG", "info").env_remove("FERRY_API");
    let pid = lab.spawn("ferry speaker", c, &dir.join("speaker.log"));
    let api = dir.join("api.sock");
    let up = poll(Duration::from_secs(10), || {
        if !lab.is_running(pid) {
            return Some(false);
        }
        speaker::api_ready(&api).then_some(true)
    });
    assert_eq!(
        up,
        Some(true),
        "speaker AS{asn} did not come up:\n{}",
        std::fs::read_to_string(dir.join("speaker.log")).unwrap_or_default()
    );
    api
}

/// `ferry ARGS` in `ns` (where the validator is), with the runs' state in `state`.
fn ferry(ns: &Netns, state: &Path, args: &[&str]) -> Output {
    ns.command(ferry_bin())
        .args(args)
        .env("FERRY_STATE_DIR", state)
        .env_remove("FERRY_API")
        .output()
        .expect("run ferry")
}

fn say(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// r3's paths for the subnet: the AS path of each.
fn r3_paths(frr: &Frr) -> Vec<String> {
    let v = frr
        .vtysh_json(&format!("show bgp ipv4 unicast {SUBNET} json"))
        .unwrap_or_default();
    v["paths"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["aspath"]["string"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (15 s) until r3's paths for the subnet are `want`.
fn wait_r3(frr: &Frr, want: &[&str], what: &str) {
    let ok = poll(Duration::from_secs(15), || {
        (r3_paths(frr) == want).then_some(())
    });
    assert!(
        ok.is_some(),
        "{what}: r3's paths for {SUBNET} are {:?}, want {want:?}\n{}",
        r3_paths(frr),
        frr.vtysh("show rpki prefix-table").unwrap_or_default()
    );
}

/// Whether r3's RPKI table (from stayrtr) holds a ROA of `asn` for the subnet.
fn r3_has_roa(frr: &Frr, asn: u32) -> bool {
    frr.vtysh("show rpki prefix-table")
        .map(|t| {
            t.lines().any(|l| {
                l.contains("198.51.100.0") && l.split_whitespace().any(|w| w == asn.to_string())
            })
        })
        .unwrap_or(false)
}

#[test]
fn an_invalid_recovery_origin_fails_the_preflight_and_r3_drops_it_when_forced() {
    let needs = ["stayrtr", "bgpd", "vtysh", &rpki_module()];
    if !testkit::root::can_run_with("rpki_preflight_r3_drops_invalid", &needs) {
        return;
    }
    let lab = Lab::new("rpkipre");
    let r3 = lab.netns("r3");
    let dc1 = lab.netns("dc1");
    let dc2 = lab.netns("dc2");
    lab.veth(&r3, &["192.0.2.1/29"], &dc1, &["192.0.2.2/29"])
        .wait_up(Duration::from_secs(5));
    lab.veth(&r3, &["192.0.2.9/29"], &dc2, &["192.0.2.10/29"])
        .wait_up(Duration::from_secs(5));

    // The validator, in r3's namespace: FRR and the ferry CLI reach it on r3's loopback.
    let rtr_dir = lab.tempdir("rtr");
    let vrps = rtr_dir.join("vrps.json");
    write_vrps(&vrps, &[(SUBNET, 24, 65101)]);
    let stayrtr = StayRtr::start(
        r3.command("stayrtr"),
        &rtr_dir,
        "127.0.0.1:3323",
        "127.0.0.1:9847",
        1,
    );

    let frr = Frr::start(
        &lab,
        &r3,
        &FrrConfig::new(65003, "192.0.2.1")
            .with_bgpd_module("rpki")
            .peer(Peer::new("192.0.2.2", 65101))
            .peer(Peer::new("192.0.2.10", 65102))
            .extra_global("rpki\n rpki polling_period 1\n rpki cache 127.0.0.1 3323 preference 1\nexit\n!")
            .extra_global("route-map RPKI-IN deny 10\n match rpki invalid\nexit\n!\nroute-map RPKI-IN permit 20\nexit\n!"),
    );
    // Drop Invalid on the way in; keep what was received to show it arrived.
    frr.configure(&[
        "router bgp 65003",
        "address-family ipv4 unicast",
        "neighbor 192.0.2.2 soft-reconfiguration inbound",
        "neighbor 192.0.2.10 soft-reconfiguration inbound",
        "neighbor 192.0.2.2 route-map RPKI-IN in",
        "neighbor 192.0.2.10 route-map RPKI-IN in",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let api1 = start_speaker(&lab, &dc1, 65101, "192.0.2.2", "192.0.2.1");
    let api2 = start_speaker(&lab, &dc2, 65102, "192.0.2.10", "192.0.2.9");
    let ok = poll(Duration::from_secs(20), || {
        r3_has_roa(&frr, 65101).then_some(())
    });
    assert!(
        ok.is_some(),
        "r3 has no VRPs from stayrtr:\n{}\n{}\nstayrtr log:\n{}",
        frr.vtysh("show rpki cache-connection").unwrap_or_default(),
        frr.vtysh("show rpki prefix-table").unwrap_or_default(),
        stayrtr.log()
    );

    let state = lab.tempdir("state");
    let plan = state.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            r#"name = "rpki"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"
[[site]]
name = "dc1"
api = "{}"
origin_as = 65101
[[site]]
name = "dc2"
api = "{}"
origin_as = 65102
[[group]]
name = "web"
subnets = ["{SUBNET}"]
[rpki]
rtr = "127.0.0.1:3323"
timeout_ms = 3000
"#,
            api1.display(),
            api2.display()
        ),
    )
    .unwrap();
    let plan = plan.to_str().unwrap();
    let o = ferry(
        &r3,
        &state,
        &["announce", SUBNET, "--api", api1.to_str().unwrap()],
    );
    assert!(o.status.success(), "announce at dc1: {}", say(&o));
    wait_r3(&frr, &["65101"], "dc1 announces (Valid)");

    // The recovery AS has no ROA; dc1's ROA covers the subnet: Invalid at dc2.
    let o = ferry(&r3, &state, &["plan", "check", plan]);
    let text = say(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    for want in [
        "rpki preflight failed",
        "site dc2 would originate 198.51.100.0/24 from AS65102: RPKI Invalid",
        "covering ROAs 198.51.100.0/24-24 AS65101",
        "rpki: dc1 198.51.100.0/24 from AS65101: Valid",
        "speakers: ready for failover",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let o = ferry(&r3, &state, &["plan", "check", plan, "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", say(&o)));
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert!(
        v["rpki"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("AS65102"),
        "{v}"
    );

    // The failover refuses before anything moves.
    let o = ferry(&r3, &state, &["failover", "--plan", plan, "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert!(say(&o).contains("rpki preflight failed"), "{}", say(&o));
    wait_r3(&frr, &["65101"], "refused failover leaves dc1");

    // Forced: dc2 announces, r3 receives the route and drops it as Invalid.
    let o = ferry(
        &r3,
        &state,
        &["failover", "--plan", plan, "--yes", "--ignore-rpki"],
    );
    assert!(o.status.success(), "forced failover: {}", say(&o));
    assert!(say(&o).contains("(ignored: --ignore-rpki)"), "{}", say(&o));
    let received = poll(Duration::from_secs(15), || {
        frr.vtysh_json("show bgp ipv4 unicast neighbors 192.0.2.10 received-routes json")
            .ok()
            .filter(|v| v["receivedRoutes"].get(SUBNET).is_some())
    });
    assert!(received.is_some(), "r3 never received {SUBNET} from dc2");
    wait_r3(&frr, &[], "forced failover: r3 drops dc2's Invalid route");
    let rov = frr
        .vtysh(&format!("show rpki prefix {SUBNET} 65102"))
        .unwrap_or_default();
    assert!(!rov.contains("65102"), "r3 holds no ROA for AS65102: {rov}");

    // Back to dc1 (its route is Valid: the preflight passes).
    let o = ferry(&r3, &state, &["failback", "--plan", plan, "--yes"]);
    assert!(o.status.success(), "failback: {}", say(&o));
    wait_r3(&frr, &["65101"], "failback");

    // A ROA for the recovery AS is published: the preflight passes, r3 takes the route.
    write_vrps(&vrps, &[(SUBNET, 24, 65101), (SUBNET, 24, 65102)]);
    // (stayrtr is in r3's namespace: r3's table shows when it serves the new file.)
    let ok = poll(Duration::from_secs(20), || {
        r3_has_roa(&frr, 65102).then_some(())
    });
    assert!(ok.is_some(), "r3 never got the ROA for AS65102");
    let o = ferry(&r3, &state, &["plan", "check", plan]);
    assert!(o.status.success(), "plan check with the ROA: {}", say(&o));
    assert!(
        say(&o).contains("rpki: dc2 198.51.100.0/24 from AS65102: Valid"),
        "{}",
        say(&o)
    );
    let o = ferry(&r3, &state, &["failover", "--plan", plan, "--yes"]);
    assert!(o.status.success(), "failover with the ROA: {}", say(&o));
    wait_r3(&frr, &["65102"], "failover with a ROA for AS65102");
}
