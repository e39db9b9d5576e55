//! Audit: who changed what, in the log, the route journal and `ferry routes --json`.
//!
//! Proves: each change (announce, withdraw, graceful withdraw's drain, lease renew, reset) logs
//! an info line `audit: ACTION by CALLER` where the caller on the Unix socket is the kernel's
//! word (uid, gid, pid and command of the `ferry` CLI process) and on TCP the remote address
//! with the token; the route journal and the snapshot record the time and the caller with
//! each change, and after a restart `ferry routes --json` still shows when and by whom each
//! route was last changed. With `api_group` the socket is 0660 and owned by that group: a
//! process of another uid in the group can change routes (and is named by its uid), one
//! outside it cannot connect. Failures injected: a caller without the group.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// `ferry routes --json` parsed.
fn routes(s: &Speaker) -> Vec<serde_json::Value> {
    serde_json::from_str(&s.cli_ok(&["routes", "--json"]).stdout).unwrap()
}

/// Wait until the speaker's log has a line containing every one of `parts`; returns it.
fn log_line(s: &Speaker, parts: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = s.log();
        if let Some(l) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return l.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_change_is_logged_and_recorded_with_its_caller() {
    let peer = RawPeer::listen(Ipv4Addr::new(127, 0, 0, 113));
    let ip = Ipv4Addr::new(127, 0, 0, 1);
    let tcp = SocketAddr::new(IpAddr::V4(ip), free_port(ip));
    let mut spec = SpeakerSpec::with(vec![NeighborSpec::active(peer.addr())]);
    spec.api_tcp = Some((tcp, "audit-test-token-0123456789".into()));
    let mut speaker = Speaker::start(spec);
    let uid = my_uid();
    let me = format!("uid {uid} gid ");

    let t0 = ferry::speaker::lease::now_ms();
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--lease", "60"]);
    let line = log_line(&speaker, &["audit: announce by", &me, "(ferry)"]);
    eprintln!("audit line: {line}");
    assert!(
        line.contains("198.51.100.0/24") && line.contains(" INFO "),
        "{line}"
    );
    let r = routes(&speaker);
    let changed = &r[0]["changed"];
    let by = changed["by"].as_str().unwrap();
    assert!(by.starts_with(&me) && by.ends_with("(ferry)"), "{changed}");
    let at = changed["at_ms"].as_u64().unwrap();
    assert!(
        at >= t0 && at <= ferry::speaker::lease::now_ms(),
        "{changed}"
    );
    assert!(changed["at"].as_str().unwrap().ends_with('Z'), "{changed}");

    // Over TCP: the remote address and that the token was used.
    let out = ferry_cli(
        &[
            "announce",
            "203.0.113.0/24",
            "--api-token-file",
            &speaker.dir.path().join("token").to_string_lossy(),
        ],
        Some(&format!("http://{tcp}")),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let line = log_line(
        &speaker,
        &["audit: announce by tcp 127.0.0.1:", "with the API token"],
    );
    assert!(line.contains("203.0.113.0/24"), "{line}");

    speaker.cli_ok(&["lease", "renew", "198.51.100.0/24"]);
    log_line(&speaker, &["audit: lease renew by", &me]);
    speaker.cli_ok(&["reset", &peer.ip.to_string()]);
    log_line(&speaker, &["audit: reset by", &me, "peer 127.0.0.113"]);
    speaker.cli_ok(&["withdraw", "--graceful", "1", "203.0.113.0/24"]);
    log_line(&speaker, &["audit: drain by", &me]);
    log_line(
        &speaker,
        &["audit: withdraw by", &me, "withdrawn [203.0.113.0/24]"],
    );
    log_line(&speaker, &["audit: drain end by", &me]);

    // The journal (the first change wrote the snapshot) records time and caller per change.
    let journal = std::fs::read_to_string(speaker.state_dir().join("routes.journal")).unwrap();
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{journal}");
    assert!(lines[0]["by"]
        .as_str()
        .unwrap()
        .starts_with("tcp 127.0.0.1:"));
    assert!(lines[1]["by"].as_str().unwrap().starts_with(&me));
    assert!(lines.iter().all(|l| l["at_ms"].as_u64().unwrap() >= t0));

    // After a restart (the journal is compacted into the snapshot) the stamp is still there.
    speaker.sigterm();
    speaker.wait_exit(WAIT);
    speaker.spawn();
    let r = routes(&speaker);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["changed"]["at_ms"].as_u64(), Some(at));
    assert_eq!(r[0]["changed"]["by"].as_str(), Some(by));
    // The table shows it too.
    let table = speaker.cli_ok(&["routes"]).stdout;
    assert!(
        table.contains("CHANGED") && table.contains(&format!("by {by}")),
        "{table}"
    );
}

/// A group made for the test, removed on drop.
struct TestGroup {
    name: String,
    gid: u32,
}

impl TestGroup {
    fn create() -> Option<Self> {
        let name = format!("ferryit{}", std::process::id());
        let ok = Command::new("groupadd")
            .arg(&name)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let out = Command::new("getent")
            .args(["group", &name])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let gid = text.split(':').nth(2)?.trim().parse().ok()?;
        Some(Self { name, gid })
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).status();
    }
}

#[test]
fn api_group_lets_its_members_in_and_names_their_uid() {
    if my_uid() != 0 {
        eprintln!("skipped: creating a group and switching uid need root");
        return;
    }
    let group = TestGroup::create().expect("groupadd (root)");
    let mut speaker = Speaker::prepare(SpeakerSpec::default());
    let mut config = speaker.spec.config(speaker.dir.path());
    config.speaker.api_group = Some(group.name.clone());
    testkit::speaker::write_config(&speaker.config_path(), &config).unwrap();
    // The test's directory must be reachable for the other uid; the socket decides the rest.
    std::fs::set_permissions(speaker.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    speaker.spawn();

    let meta = std::fs::metadata(speaker.api()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), group.gid);

    // nobody (65534) in the group: allowed, and the audit line names uid 65534.
    let as_nobody = |groups: &str, args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", groups, FERRY])
            .args(args)
            .env("FERRY_API", speaker.api())
            .output()
            .unwrap()
    };
    let out = as_nobody(
        &format!("--groups={}", group.gid),
        &["announce", "198.51.100.0/24"],
    );
    assert!(out.status.success(), "{out:?}");
    log_line(
        &speaker,
        &["audit: announce by uid 65534 gid 65534", "(ferry)"],
    );
    // Outside the group: no way in.
    let out = as_nobody("--clear-groups", &["withdraw", "198.51.100.0/24"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(routes(&speaker).len(), 1);
}

#[test]
fn an_unknown_api_group_stops_the_speaker_with_its_name() {
    let speaker = Speaker::prepare(SpeakerSpec::default());
    let mut config = speaker.spec.config(speaker.dir.path());
    config.speaker.api_group = Some("ferry-no-such-group".into());
    testkit::speaker::write_config(&speaker.config_path(), &config).unwrap();
    let out = speaker_must_exit(&speaker.config_path());
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("speaker.api_group \"ferry-no-such-group\": no such group"),
        "{out:?}"
    );
}
