//! Guard rails around the speaker's changes, with the real binary and a raw BGP peer.
//!
//! Proves: `allowed_prefixes` refuses an announce with a prefix outside the list, naming the
//! prefix and the list, through the API (400, the field) and the CLI (exit 2), announcing
//! nothing of the batch; `--dry-run` on announce and withdraw prints what would change and
//! changes nothing (no UPDATE reaches the peer, `routes` unchanged); `withdraw --all` refuses
//! without a terminal unless `--yes`, and on a terminal (a pty from script(1)) does nothing
//! unless the answer is yes; `ferry status` exits 3 while a session is not Established and 0
//! once all are (or with `--exit-zero`). Failures injected: the peer drops the session.

mod support;

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry::api::{blocking, SpeakerError};
use ferry::speaker::Route;
use support::*;

fn prefixes(s: &Speaker) -> Vec<String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&s.cli_ok(&["routes", "--json"]).stdout).unwrap();
    v.iter()
        .map(|r| r["prefix"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn allowed_prefixes_refuse_announcements_outside_the_list() {
    let mut speaker = Speaker::prepare(SpeakerSpec::default());
    let mut config = speaker.spec.config(speaker.dir.path());
    config.speaker.allowed_prefixes = Some(vec![
        "198.51.100.0/24".parse().unwrap(),
        "2001:db8:1::/48".parse().unwrap(),
    ]);
    testkit::speaker::write_config(&speaker.config_path(), &config).unwrap();
    speaker.spawn();

    speaker.cli_ok(&["announce", "198.51.100.128/25", "2001:db8:1:2::/64"]);
    let out = speaker.cli(&["announce", "198.51.100.0/24", "203.0.113.0/24"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "prefix 203.0.113.0/24 is outside speaker.allowed_prefixes [198.51.100.0/24, 2001:db8:1::/48]"
        ),
        "{out:?}"
    );
    // A dry run is checked the same way.
    let out = speaker.cli(&["announce", "--dry-run", "203.0.113.0/24"]);
    assert_eq!(out.code, 2, "{out:?}");

    let api = blocking::Speaker::unix(speaker.api()).unwrap();
    let route = |p: &str| Route::new(p.parse().unwrap()).unwrap();
    let e = api
        .announce(vec![route("198.51.100.0/24"), route("2001:db8:2::/48")])
        .unwrap_err();
    match &e {
        SpeakerError::Rejected {
            status: 400,
            field: Some(f),
            message,
        } => {
            assert_eq!(f, "routes[1].prefix");
            assert!(message.contains("2001:db8:2::/48 is outside"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing of either refused batch was announced.
    assert_eq!(
        prefixes(&speaker),
        ["198.51.100.128/25", "2001:db8:1:2::/64"]
    );
}

#[test]
fn dry_runs_print_what_would_change_and_change_nothing() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 114));
    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    peer.next_update();

    let out = speaker.cli_ok(&["announce", "--dry-run", "198.51.100.0/24", "203.0.113.0/24"]);
    assert!(
        out.stdout.contains("would announce 203.0.113.0/24\n")
            && !out.stdout.contains("would announce 198.51.100.0/24")
            && out.stdout.contains("1 prefix(es) would change")
            && out.stdout.contains("nothing was changed"),
        "{out:?}"
    );
    let out = speaker.cli_ok(&["withdraw", "--dry-run", "--json", "198.51.100.0/24"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["changed"], 1, "{v}");
    assert_eq!(
        v["dry_run"]["withdraw"],
        serde_json::json!(["198.51.100.0/24"])
    );
    let out = speaker.cli_ok(&["withdraw", "--all", "--dry-run"]);
    assert!(
        out.stdout.contains("would withdraw 198.51.100.0/24"),
        "{out:?}"
    );
    let out = speaker.cli_ok(&[
        "withdraw",
        "--dry-run",
        "--graceful",
        "30",
        "198.51.100.0/24",
    ]);
    assert!(out.stdout.contains("would withdraw"), "{out:?}");

    peer.expect_quiet(Duration::from_millis(500));
    assert_eq!(prefixes(&speaker), ["198.51.100.0/24"]);
}

/// `ferry withdraw --all` on a pseudo-terminal (script(1)), answering `answer`.
fn withdraw_all_on_a_terminal(speaker: &Speaker, answer: &str) -> (i32, String) {
    let cmd = format!("{FERRY} withdraw --all");
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("FERRY_API", speaker.api())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    // Keep stdin open until the answer is read: script ends the session at its EOF.
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn withdraw_all_asks_on_a_terminal_and_refuses_without_one() {
    let speaker = Speaker::start(SpeakerSpec::default());
    speaker.cli_ok(&["announce", "198.51.100.0/24", "203.0.113.0/24"]);

    // No terminal (stdin is /dev/null) and no --yes: refused, nothing withdrawn.
    let out = speaker.cli(&["withdraw", "--all"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("confirm with --yes"), "{out:?}");
    assert_eq!(prefixes(&speaker).len(), 2);

    let (code, text) = withdraw_all_on_a_terminal(&speaker, "n\n");
    assert!(
        text.contains("withdraw all 2 announced route(s) at"),
        "{text}"
    );
    assert!(
        text.contains("not confirmed; nothing was withdrawn"),
        "{text}"
    );
    assert_eq!(code, 1, "{text}");
    assert_eq!(prefixes(&speaker).len(), 2);

    let (code, text) = withdraw_all_on_a_terminal(&speaker, "y\n");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("withdrawn: 2 prefix(es) changed"), "{text}");
    assert!(prefixes(&speaker).is_empty());

    // --yes needs no terminal.
    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    speaker.cli_ok(&["withdraw", "--all", "--yes"]);
    assert!(prefixes(&speaker).is_empty());
}

#[test]
fn status_exits_3_while_a_session_is_not_established() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 115));
    let out = speaker.cli(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");

    peer.disconnect();
    let deadline = std::time::Instant::now() + WAIT;
    while speaker.status()[0]["state"] == "Established" {
        assert!(std::time::Instant::now() < deadline, "session still up");
        std::thread::sleep(Duration::from_millis(20));
    }
    for args in [&["status"][..], &["status", "--json"]] {
        let out = speaker.cli(args);
        assert_eq!(out.code, 3, "{out:?}");
        assert!(
            out.stdout.contains("127.0.0.115"),
            "the listing still: {out:?}"
        );
        assert!(
            out.stderr.contains("1 of 1 session(s) not Established"),
            "{out:?}"
        );
    }
    assert_eq!(speaker.cli(&["status", "--exit-zero"]).code, 0);
}
