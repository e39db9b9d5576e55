//! The speaker never loses an acknowledged route: not to a second speaker started on the same
//! `state_dir`, not to a full disk, not to `kill -9` in the middle of a burst of announces.
//!
//! Invariant every test here checks: a route whose announce was answered 200 (the CLI exited
//! 0) is among the desired routes after any later restart, and a route whose announce was
//! refused is not; the state files always load.
//! Failures injected: a second `ferry speaker` on the same config (with and without `listen`);
//! ENOSPC on a 256 KiB tmpfs mounted over `state_dir` (root only; unmounted on drop); SIGKILL at
//! random points of a burst.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// `ferry speaker --config PATH` that must exit on its own: its exit code and output.
fn speaker_exits(config: &Path) -> CliOut {
    let mut child = Command::new(FERRY)
        .arg("speaker")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry speaker");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the second speaker kept running beside the first:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    CliOut {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file of a directory with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read state_dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let bytes = std::fs::read(e.path()).expect("read state file");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// The prefixes `ferry routes --json` lists.
fn desired(speaker: &Speaker) -> BTreeSet<String> {
    let out = speaker.cli_ok(&["routes", "--json"]);
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("JSON");
    routes
        .iter()
        .map(|r| r["prefix"].as_str().expect("prefix").to_owned())
        .collect()
}

fn set(prefixes: &[&str]) -> BTreeSet<String> {
    prefixes.iter().map(|p| p.to_string()).collect()
}

/// Speaker A acknowledged two routes (a snapshot and a journal line); the same config started
/// again, and a copy without `listen` and with its own API socket, both exit 1 naming A (pid,
/// start time, API socket) and leave every file of the state_dir byte-identical; A then
/// acknowledges a third route, and after a restart all three are there.
#[test]
fn a_second_speaker_on_the_same_state_dir_is_refused_and_touches_nothing() {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let mut a = Speaker::start(SpeakerSpec {
        listen: Some(listen),
        ..SpeakerSpec::default()
    });
    a.cli_ok(&["announce", "198.51.100.0/24"]);
    a.cli_ok(&["announce", "203.0.113.0/24"]);
    let before = files(&a.state_dir());
    assert!(
        before.contains_key("routes.journal"),
        "the second change is journaled: {:?}",
        before.keys()
    );

    let config = std::fs::read_to_string(a.config_path()).expect("config");
    let other_api = a.dir.path().join("api-b.sock");
    let without_listen = a.dir.path().join("no-listen.toml");
    let text: String = config
        .lines()
        .filter(|l| !l.starts_with("listen"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace(
            &a.api().display().to_string(),
            &other_api.display().to_string(),
        );
    std::fs::write(&without_listen, text).expect("write config");

    for config in [a.config_path(), without_listen] {
        let out = speaker_exits(&config);
        assert_eq!(out.code, 1, "{config:?}: {out:?}");
        for want in [
            "another speaker is running on it".to_string(),
            format!("pid {}", a.pid()),
            "started 20".to_string(),
            format!("api {}", a.api().display()),
            a.state_dir().display().to_string(),
        ] {
            assert!(
                out.stderr.contains(&want),
                "{want:?} missing: {}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("API listening"), "{}", out.stderr);
        assert_eq!(files(&a.state_dir()), before, "the state_dir was changed");
        assert!(!other_api.exists(), "the second speaker opened an API");
    }

    a.cli_ok(&["announce", "192.0.2.0/24"]);
    a.kill9();
    a.spawn();
    assert_eq!(
        desired(&a),
        set(&["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"])
    );
}
