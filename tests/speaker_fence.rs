//! Fencing tokens at a real speaker (real socket, real `ferry speaker`, a raw BGP peer).
//!
//! Proves: a call with a token lower than the one held for its fence is refused with 409
//! (the typed client's `SpeakerError::Fenced`: fence, held, offered) and changes nothing (the
//! peer receives no UPDATE, the route stays in `/v1/routes`); equal and higher tokens are
//! taken, a higher one raises the held token; a dry run and a read carry no token (a stale
//! client's dry run still works); the held token survives `kill -9` and a restart; the audit
//! line names the fence and token; `/metrics`, `GET /v1/fences` and `ferry fences` show them;
//! `require_fence` refuses an unfenced call with 428 and takes a fenced one, and a reload turns
//! it off; bad headers are 400 naming the header and its value.
//! Failures injected: a stale leader's calls (a lower token), SIGKILL of the speaker.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use ferry::api::{blocking, Fence, SpeakerError};
use ferry::speaker::Route;
use support::*;

const OURS: &str = "198.51.100.0/24";

fn client(speaker: &support::Speaker, token: Option<u64>) -> blocking::Speaker {
    let c = blocking::Speaker::unix(speaker.api()).expect("client");
    match token {
        Some(t) => c.with_fence(Fence::new("plan-a", t).unwrap()),
        None => c,
    }
}

fn route() -> Route {
    Route::new(OURS.parse().unwrap()).unwrap()
}

fn metrics(speaker: &support::Speaker) -> String {
    http(Target::Unix(&speaker.api()), "GET", "/metrics", &[], "").1
}

#[test]
fn a_lower_token_is_refused_and_changes_nothing_even_after_a_restart() {
    let (mut speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 91));
    let leader = client(&speaker, Some(5));
    leader
        .announce(vec![route()])
        .expect("announce with token 5");
    assert_eq!(peer.next_update().update().unwrap().nlri.len(), 1);

    // The stale leader (token 4) tries to withdraw: refused, nothing sent to the peer.
    let stale = client(&speaker, Some(4));
    let e = stale.withdraw(vec![OURS.parse().unwrap()]).unwrap_err();
    assert_eq!(
        e,
        SpeakerError::Fenced {
            fence: "plan-a".into(),
            held: 5,
            offered: 4
        }
    );
    let text = e.to_string();
    assert!(
        text.contains("plan-a") && text.contains("token 5") && text.contains("token 4"),
        "{text}"
    );
    assert!(stale.withdraw_all().unwrap_err().is_fenced());
    assert!(stale.announce(vec![route()]).unwrap_err().is_fenced());
    peer.expect_quiet(Duration::from_millis(1500));
    assert_eq!(client(&speaker, None).announced().unwrap(), vec![route()]);
    // Reads and dry runs carry no token: the stale client still reads and previews.
    assert_eq!(stale.announced().unwrap().len(), 1);
    let preview = stale
        .change(ferry::api::WithdrawRequest {
            prefixes: vec![OURS.parse().unwrap()],
            all: false,
            graceful_secs: None,
            dry_run: true,
        })
        .expect("a dry run is not fenced");
    assert_eq!(preview.changed, 1);

    // The refusal is audited, the accepted change names its fence and token.
    let log = speaker.log();
    assert!(log.contains("with fence plan-a token 5"), "{log}");
    assert!(
        log.contains("refused: fence plan-a holds token 5, offered 4"),
        "{log}"
    );
    let m = metrics(&speaker);
    assert!(m.contains("ferry_fence_token{fence=\"plan-a\"} 5"), "{m}");
    assert!(
        m.contains("ferry_fence_refused_total{fence=\"plan-a\"} 3"),
        "{m}"
    );
    let held = client(&speaker, None).fences().unwrap();
    assert_eq!(
        (
            held.len(),
            held[0].fence.as_str(),
            held[0].token,
            held[0].refused
        ),
        (1, "plan-a", 5, 3)
    );

    // kill -9 and start again: the held token is still 5.
    speaker.kill9();
    speaker.spawn();
    peer.disconnect();
    let e = client(&speaker, Some(4))
        .withdraw(vec![OURS.parse().unwrap()])
        .unwrap_err();
    assert!(
        matches!(
            e,
            SpeakerError::Fenced {
                held: 5,
                offered: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let out = speaker.cli_ok(&["fences", "--json"]).stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["token"], 5, "{v}");
    let out = speaker.cli_ok(&["fences"]).stdout;
    assert!(out.contains("plan-a") && out.contains('5'), "{out}");
    // The CLI's stale withdraw is refused too, saying which token is held.
    let out = speaker.cli(&["withdraw", OURS, "--fence", "plan-a", "--fence-token", "4"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("holds token 5") && out.stderr.contains("offered token 4"),
        "{out:?}"
    );
    assert_eq!(client(&speaker, None).announced().unwrap().len(), 1);
    // The same token is taken, a higher one too and raises the held one.
    speaker.cli_ok(&["announce", OURS, "--fence", "plan-a", "--fence-token", "5"]);
    speaker.cli_ok(&["withdraw", OURS, "--fence", "plan-a", "--fence-token", "7"]);
    assert!(client(&speaker, None).announced().unwrap().is_empty());
    assert!(client(&speaker, Some(6))
        .announce(vec![route()])
        .unwrap_err()
        .is_fenced());
    assert_eq!(client(&speaker, None).fences().unwrap()[0].token, 7);
    // Without a token (require_fence off) an operator's call bypasses fencing.
    speaker.cli_ok(&["announce", OURS]);
    assert_eq!(client(&speaker, None).announced().unwrap().len(), 1);
}

#[test]
fn a_fenced_lease_renewal_is_refused_below_the_held_token() {
    let (speaker, mut peer) = established_pair(Ipv4Addr::new(127, 0, 0, 92));
    speaker.cli_ok(&[
        "announce",
        OURS,
        "--lease",
        "30",
        "--fence",
        "keeper",
        "--fence-token",
        "10",
    ]);
    peer.next_update();
    speaker.cli_ok(&["lease", "renew", "--fence", "keeper", "--fence-token", "10"]);
    let out = speaker.cli(&["lease", "renew", "--fence", "keeper", "--fence-token", "9"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("fence keeper"), "{out:?}");
    // One flag alone is a usage error, nothing sent.
    let out = speaker.cli(&["lease", "renew", "--fence", "keeper"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = speaker.cli(&["announce", OURS, "--fence", "a/b", "--fence-token", "1"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--fence"), "{out:?}");
}

#[test]
fn require_fence_refuses_unfenced_calls_with_428_until_a_reload_turns_it_off() {
    let mut s = support::Speaker::prepare(SpeakerSpec::default());
    let mut config = s.spec.config(s.dir.path());
    config.speaker.require_fence = true;
    testkit::speaker::write_config(&s.config_path(), &config).unwrap();
    s.spawn();

    let body = format!(r#"{{"routes":[{{"prefix":"{OURS}"}}]}}"#);
    let (status, text) = http(Target::Unix(&s.api()), "POST", "/v1/announce", &[], &body);
    assert_eq!(status, 428, "{text}");
    assert!(text.contains("require_fence"), "{text}");
    let out = s.cli(&["announce", OURS]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("require_fence") && out.stderr.contains("Ferry-Fence"),
        "{out:?}"
    );
    assert!(client(&s, None).announced().unwrap().is_empty());
    // Dry runs and reads need no fence.
    s.cli_ok(&["announce", OURS, "--dry-run"]);
    s.cli_ok(&["routes"]);
    // A fenced call is taken.
    let (status, text) = http(
        Target::Unix(&s.api()),
        "POST",
        "/v1/announce",
        &[("Ferry-Fence", "plan-a"), ("Ferry-Fence-Token", "1")],
        &body,
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(client(&s, None).announced().unwrap().len(), 1);
    assert!(client(&s, None)
        .withdraw_all()
        .unwrap_err()
        .to_string()
        .contains("require_fence"));

    let check = ferry_cli(
        &[
            "speaker",
            "--config",
            s.config_path().to_str().unwrap(),
            "--check",
        ],
        None,
    );
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check.stdout.contains("fencing: required") && check.stdout.contains("plan-a token 1"),
        "{check:?}"
    );

    // Reloaded off: an operator's call without a token works again.
    config.speaker.require_fence = false;
    testkit::speaker::write_config(&s.config_path(), &config).unwrap();
    s.cli_ok(&["reload"]);
    s.cli_ok(&["withdraw", OURS]);
    assert!(client(&s, None).announced().unwrap().is_empty());
}

#[test]
fn bad_fence_headers_are_400_naming_the_header_and_value() {
    let s = support::Speaker::start(SpeakerSpec::default());
    let body = format!(r#"{{"prefixes":["{OURS}"]}}"#);
    // The headers sent, the header the error names, the value it quotes.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("Ferry-Fence", "plan-a"), ("Ferry-Fence-Token", "abc")],
            "Ferry-Fence-Token",
            "\"abc\"",
        ),
        (
            &[("Ferry-Fence", "plan-a"), ("Ferry-Fence-Token", "-3")],
            "Ferry-Fence-Token",
            "\"-3\"",
        ),
        (
            &[("Ferry-Fence", "a b"), ("Ferry-Fence-Token", "3")],
            "Ferry-Fence",
            "\"a b\"",
        ),
        (&[("Ferry-Fence", "plan-a")], "Ferry-Fence-Token", "missing"),
        (&[("Ferry-Fence-Token", "3")], "Ferry-Fence", "missing"),
    ];
    for (headers, header, value) in cases {
        for path in ["/v1/withdraw", "/v1/lease/renew"] {
            let (status, text) = http(Target::Unix(&s.api()), "POST", path, headers, &body);
            assert_eq!(status, 400, "{path} {headers:?}: {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["field"], *header, "{text}");
            let e = v["error"].as_str().unwrap();
            assert!(e.contains(header) && e.contains(value), "{text}");
        }
    }
    // Nothing was held from the bad calls.
    assert!(client(&s, None).fences().unwrap().is_empty());
}

/// The controller's plumbing: `ApiSites::with_fence` and `keeper::run_fenced` send the fence
/// to a real speaker, and a refusal comes back as `SpeakerError::Fenced` inside the site's error.
#[test]
fn the_controllers_sites_and_keeper_carry_the_fence() {
    use ferry::controller::sites::{ApiSites, SiteError, Sites};
    use ferry::controller::{keeper, plan::Plan};

    let s = support::Speaker::start(SpeakerSpec::default());
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::parse(&format!(
        r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"

[[site]]
name = "dc1"
api = "{}"
next_hop = "192.0.2.10"
lease_secs = 30

[[site]]
name = "dc2"
api = "{}"
next_hop = "192.0.2.20"
lease_secs = 30

[[group]]
name = "web"
subnets = ["{OURS}"]
"#,
        s.api().display(),
        dir.path().join("dc2-never-called.sock").display()
    ))
    .unwrap();
    let web = |t| Fence::new("web", t).unwrap();
    let leased = {
        let mut r = route();
        r.lease_secs = Some(30);
        r
    };
    let new_leader = ApiSites::new(&plan, Duration::from_secs(5))
        .unwrap()
        .with_fence(web(5));
    new_leader
        .announce("dc1", std::slice::from_ref(&leased))
        .unwrap();
    let old_leader = ApiSites::new(&plan, Duration::from_secs(5))
        .unwrap()
        .with_fence(web(4));
    match old_leader.withdraw("dc1", &[leased.prefix]).unwrap_err() {
        SiteError::Speaker {
            error: SpeakerError::Fenced { held, offered, .. },
            ..
        } => assert_eq!((held, offered), (5, 4)),
        other => panic!("{other:?}"),
    }
    assert!(old_leader
        .announce("dc1", std::slice::from_ref(&leased))
        .is_err());
    assert_eq!(client(&s, None).announced().unwrap().len(), 1);

    // The keeper with the old token fails its renewal and says why; with the new one it renews.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let mut said = Vec::new();
    let ok = keeper::run_fenced(&plan, &state, true, Some(web(4)), &mut |l| said.push(l)).unwrap();
    assert!(!ok, "{said:?}");
    assert!(
        said.iter()
            .any(|l| l.contains("fence web") && l.contains("token 5")),
        "{said:?}"
    );
    let mut said = Vec::new();
    let ok = keeper::run_fenced(&plan, &state, true, Some(web(5)), &mut |l| said.push(l)).unwrap();
    assert!(ok, "{said:?}");
    let held = client(&s, None).fences().unwrap();
    assert_eq!((held[0].token, held[0].refused), (5, 3), "{held:?}");
}
