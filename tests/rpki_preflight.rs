//! The RPKI preflight against real parts: Debian's `stayrtr` serving a VRP JSON file, and the
//! FRR lab (`ferry lab up --rpki`: stayrtr in r3's namespace and FRR's RPKI module, Debian's
//! `frr-rpki-rtrlib`, at r3 dropping Invalid routes). What it proves:
//! - Ferry's RTR client reads stayrtr's VRPs over RFC 8210 (version 1) and RFC 6810
//!   (version 0: stayrtr started with `-protocol 0`), and says which version answered; a
//!   changed file arrives on the next fetch.
//! - In the lab, with a ROA for the primary's AS (65101) only: `ferry plan check` fails naming
//!   the prefix, the recovery AS (65102) and the covering ROA, and warns that the IPv6 subnet
//!   has no ROA; `ferry failover` refuses to start and nothing moves; forced with
//!   `--ignore-rpki`, r3 receives the recovery site's route (its received-routes) and drops it
//!   (no path, no kernel route): what the preflight predicted.
//! - With a ROA for AS65102 published (the lab's VRP file changed under stayrtr), the
//!   preflight passes and r3's route goes via the recovery site, path 65002 65102.
//!
//! Needs root (namespaces), FRR with frr-rpki-rtrlib, and stayrtr (scripts/install-deps.sh);
//! skipped without them unless FIT_REQUIRE=1.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ferry::lab::rpki::{vrps_path, write_vrps};
use ferry::rpki::rov::Vrp;
use ferry::rpki::rtr;
use testkit::poll::poll;

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

/// stayrtr started by the test on loopback, serving `DIR/vrps.json` re-read every second;
/// killed on drop.
struct StayRtr {
    child: Child,
    log: PathBuf,
}

impl StayRtr {
    fn start(dir: &Path, bind: &str, metrics: &str, protocol: u8) -> Self {
        let log = dir.join(format!("stayrtr-{protocol}.log"));
        let out = std::fs::File::create(&log).expect("stayrtr log");
        let child = Command::new("stayrtr")
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

/// The answer of `validator` once it serves exactly `want` (stayrtr re-reads its file every
/// second), within 15 s; panics with the last answer otherwise.
fn wait_vrps(validator: &str, want: &[Vrp], stayrtr: &StayRtr) -> rtr::Answer {
    let mut last = None;
    let got = poll(Duration::from_secs(15), || {
        let r = rtr::fetch(validator, Duration::from_secs(2));
        let ok = matches!(&r, Ok(a) if a.vrps == want);
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
    let vrps = dir.path().join("vrps.json");
    let mut want = vec![vrp(SUBNET, 24, 65101), vrp("2001:db8::/32", 48, 65102)];
    want.sort();
    write_vrps(&vrps, &want).unwrap();
    // stayrtr's -protocol is the highest version it speaks (2 by default, a draft Ferry does
    // not ask for): Ferry asks with 1 and takes 0 from a version-0-only server.
    for (protocol, answered) in [(1u8, 1u8), (0, 0), (2, 1)] {
        let bind = format!("127.0.0.1:{}", free_port());
        let metrics = format!("127.0.0.1:{}", free_port());
        let s = StayRtr::start(dir.path(), &bind, &metrics, protocol);
        let got = wait_vrps(&bind, &want, &s);
        assert_eq!(got.version, answered, "stayrtr -protocol {protocol}");
        // An AS0 ROA and a changed file arrive on the next fetch.
        if protocol == 1 {
            let mut more = want.clone();
            more.push(vrp("203.0.113.0/24", 32, 0));
            more.sort();
            write_vrps(&vrps, &more).unwrap();
            wait_vrps(&bind, &more, &s);
            write_vrps(&vrps, &want).unwrap();
        }
    }
}

/// A lab instance up on the RPKI topology; taken down on drop (also when an assertion fails).
struct RpkiLab {
    instance: String,
    dir: tempfile::TempDir,
}

impl Drop for RpkiLab {
    fn drop(&mut self) {
        let _ = Command::new(ferry_bin())
            .args(["lab", "down", "--instance", &self.instance])
            .output();
    }
}

impl RpkiLab {
    /// `ferry lab up --rpki`: the built-in topology, stayrtr in r3's namespace serving one ROA
    /// (198.51.100.0/24-24 AS65101), r3 dropping Invalid on its FROM-PEER import.
    fn up() -> Self {
        let lab = RpkiLab {
            instance: format!("rpki{}", std::process::id() % 100_000),
            dir: tempfile::tempdir().unwrap(),
        };
        let args = ["lab", "up", "--instance", &lab.instance, "--rpki"];
        // Once more if the first fails: other labs coming up at the same time on a small
        // machine can make one of the lab's own waits time out (a failed `up` cleans up).
        let mut out = Command::new(ferry_bin()).args(args).output().unwrap();
        if !out.status.success() {
            eprintln!("lab up failed once, retrying:\n{}", say(&out));
            out = Command::new(ferry_bin()).args(args).output().unwrap();
            assert!(out.status.success(), "lab up: {}", say(&out));
        }
        let ns = lab.r3_ns();
        let want = format!("rpki: stayrtr at 127.0.0.1:3323 in namespace {ns} serves /run/ferry-lab/{}/rtr/vrps.json", lab.instance);
        assert!(say(&out).contains(&want), "{want:?} missing: {}", say(&out));
        lab
    }

    fn r3_ns(&self) -> String {
        format!("fl-{}-r3", self.instance)
    }

    /// `ferry ARGS` in r3's namespace (where stayrtr listens), runs journaled in the test's
    /// directory.
    fn ferry(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.r3_ns(), ferry_bin()])
            .args(args)
            .env("FERRY_STATE_DIR", self.dir.path().join("state"))
            .env_remove("FERRY_API")
            .stdin(Stdio::null())
            .output()
            .expect("run ferry")
    }

    /// vtysh at r3 (its runtime directory's socket); the output, empty on failure.
    fn r3(&self, command: &str) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.r3_ns(), "vtysh"]);
        let dir = format!("/run/ferry-lab/{}/r3", self.instance);
        testkit::daemons::frr_daemon::vtysh_args(&mut cmd, Path::new(&dir), &[command]);
        cmd.stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The AS path of each of r3's BGP paths for the subnet, the best one first.
    fn r3_paths(&self) -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.r3(&format!("show bgp ipv4 unicast {SUBNET} json")))
                .unwrap_or_default();
        let mut paths: Vec<(bool, String)> = v["paths"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let best = p["bestpath"]["overall"].as_bool().unwrap_or(false);
                        let path = p["aspath"]["string"].as_str().unwrap_or("?");
                        (!best, path.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths.into_iter().map(|(_, p)| p).collect()
    }

    /// r3's kernel route for the subnet ("" when none).
    fn r3_kernel(&self) -> String {
        let o = Command::new("ip")
            .args(["-n", &self.r3_ns(), "-4", "route", "show", SUBNET])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Waits (20 s) until r3's best path for the subnet has AS path `best` and its kernel
    /// route goes `via` (both `None`: r3 has no path and no kernel route for it).
    fn wait_r3(&self, best: Option<&str>, via: Option<&str>, what: &str) {
        let ok = poll(Duration::from_secs(20), || {
            let k = self.r3_kernel();
            let kernel_ok = match via {
                Some(via) => k.contains(&format!("via {via} ")),
                None => k.is_empty(),
            };
            let paths = self.r3_paths();
            (paths.first().map(String::as_str) == best && kernel_ok).then_some(())
        });
        assert!(
            ok.is_some(),
            "{what}: r3's paths for {SUBNET} are {:?} (want best {best:?}), kernel route {:?} (want via {via:?})\n{}",
            self.r3_paths(),
            self.r3_kernel(),
            self.r3("show rpki prefix-table")
        );
    }

    /// Whether r3's RPKI table (from stayrtr) holds a ROA of `asn` for the subnet.
    fn r3_has_roa(&self, asn: u32) -> bool {
        self.r3("show rpki prefix-table").lines().any(|l| {
            l.contains("198.51.100.0") && l.split_whitespace().any(|w| w == asn.to_string())
        })
    }

    /// The plan: the lab's two speakers by their unix sockets, both subnets, stayrtr on r3's
    /// loopback; no hooks (r3's table is what the test watches).
    fn plan(&self) -> String {
        let i = &self.instance;
        let path = self.dir.path().join("plan.toml");
        std::fs::write(
            &path,
            format!(
                r#"name = "rpki-lab"
primary = "primary"
recovery = "recovery"
order = "break-before-make"

[[site]]
name = "primary"
api = "/run/ferry-lab/{i}/sp1/ferry.sock"
origin_as = 65101
next_hop = "198.51.100.10"
next_hop6 = "2001:db8:100::10"

[[site]]
name = "recovery"
api = "/run/ferry-lab/{i}/sp2/ferry.sock"
origin_as = 65102
next_hop = "198.51.100.10"
next_hop6 = "2001:db8:100::10"

[[group]]
name = "vm"
subnets = ["{SUBNET}", "2001:db8:100::/64"]

[rpki]
rtr = "127.0.0.1:3323"
timeout_ms = 3000
"#
            ),
        )
        .unwrap();
        path.display().to_string()
    }
}

fn say(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn in_the_lab_an_invalid_recovery_origin_fails_the_preflight_and_r3_drops_it_when_forced() {
    if !testkit::root::lab_can_run() {
        return;
    }
    if let Err(e) = ferry::lab::rpki::check_installed() {
        assert!(!testkit::root::required(), "{e} (FIT_REQUIRE=1)");
        eprintln!("SKIPPED rpki lab: {e}");
        return;
    }
    let lab = RpkiLab::up();
    let plan = lab.plan();
    // `lab up` waited for r3's RPKI table and for the primary's route at r3.
    assert!(
        lab.r3_has_roa(65101),
        "{}",
        lab.r3("show rpki prefix-table")
    );
    lab.wait_r3(Some("65001 65101"), Some("192.0.2.1"), "lab up");

    // The recovery AS has no ROA and the primary's ROA covers the subnet: Invalid there.
    let o = lab.ferry(&["plan", "check", &plan]);
    let text = say(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    for want in [
        "rpki: 1 VRPs from 127.0.0.1:3323 (RTR version 1)",
        "rpki: primary 198.51.100.0/24 from AS65101: Valid",
        "rpki preflight failed: site recovery would originate 198.51.100.0/24 from AS65102: RPKI Invalid",
        "covering ROAs 198.51.100.0/24-24 AS65101",
        "warning: site recovery would originate 2001:db8:100::/64 from AS65102: RPKI NotFound",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let o = lab.ferry(&["plan", "check", &plan, "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", say(&o)));
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert_eq!(v["rpki"]["rtr_version"], 1, "{v}");
    assert!(
        v["rpki"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("198.51.100.0/24 from AS65102"),
        "{v}"
    );

    // The failover refuses before anything moves.
    let o = lab.ferry(&["failover", "--plan", &plan, "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    assert!(say(&o).contains("rpki preflight failed"), "{}", say(&o));
    lab.wait_r3(Some("65001 65101"), Some("192.0.2.1"), "refused failover");

    // Forced: the recovery speaker announces, r3 receives the route and drops it as Invalid,
    // and with the primary withdrawn the third site has no route at all.
    let o = lab.ferry(&["failover", "--plan", &plan, "--yes", "--ignore-rpki"]);
    assert!(o.status.success(), "forced failover: {}", say(&o));
    assert!(say(&o).contains("(ignored: --ignore-rpki)"), "{}", say(&o));
    let received = poll(Duration::from_secs(20), || {
        let out = lab.r3("show bgp ipv4 unicast neighbors 192.0.2.5 received-routes json");
        serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .filter(|v| v["receivedRoutes"].get(SUBNET).is_some())
    });
    assert!(received.is_some(), "r3 never received {SUBNET} from r2");
    lab.wait_r3(None, None, "forced failover: r3 drops the Invalid route");
    // r3's bgpd logs each UPDATE in (`debug bgp updates in`): r2's was denied by the import
    // route-map, whose first clause is `match rpki invalid`.
    let log = std::fs::read_to_string(format!(
        "/run/ferry-lab/{}/r3/bgpd-updates.log",
        lab.instance
    ))
    .unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains("192.0.2.5")
            && l.contains(&format!("UPDATE about {SUBNET}"))
            && l.contains("DENIED due to: route-map")),
        "no denied UPDATE from r2 in r3's log:\n{log}"
    );
    let rov = lab.r3(&format!("show rpki prefix {SUBNET} 65102"));
    assert!(!rov.contains("65102"), "r3 holds no ROA for AS65102: {rov}");

    // Back to the primary (its route is Valid: the preflight passes).
    let o = lab.ferry(&["failback", "--plan", &plan, "--yes"]);
    assert!(o.status.success(), "failback: {}", say(&o));
    lab.wait_r3(Some("65001 65101"), Some("192.0.2.1"), "failback");

    // A ROA for the recovery AS is published: the preflight passes, the move converges.
    write_vrps(
        &vrps_path(&lab.instance),
        &[vrp(SUBNET, 24, 65101), vrp(SUBNET, 24, 65102)],
    )
    .unwrap();
    let ok = poll(Duration::from_secs(20), || {
        lab.r3_has_roa(65102).then_some(())
    });
    assert!(ok.is_some(), "r3 never got the ROA for AS65102");
    let o = lab.ferry(&["plan", "check", &plan]);
    let text = say(&o);
    assert!(o.status.success(), "plan check with the ROA: {text}");
    assert!(
        text.contains("rpki: recovery 198.51.100.0/24 from AS65102: Valid"),
        "{text}"
    );
    let o = lab.ferry(&["failover", "--plan", &plan, "--yes"]);
    assert!(o.status.success(), "failover with the ROA: {}", say(&o));
    lab.wait_r3(
        Some("65002 65102"),
        Some("192.0.2.5"),
        "failover with a ROA for AS65102",
    );
}
