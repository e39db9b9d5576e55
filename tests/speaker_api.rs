//! The speaker's HTTP/JSON API and the CLI's handling of bad input, against the real binary.
//!
//! Proves: over the Unix socket, bad requests get 400 with an `error` that names the problem
//! (malformed JSON, an unknown field by name, a prefix with host bits with the "did you mean"
//! correction, an empty list, a duplicate prefix), unknown endpoints 404; `/metrics` is
//! Prometheus text with `ferry_peer_established`; `/v1/events` streams `peer_state` and
//! `routes_sent` as newline-delimited JSON while they happen. The TCP API answers 401 without
//! or with a wrong bearer token and 200 with the right one; the CLI reaches it with
//! `--api-token-file`. The CLI exits 2 on bad input before contacting anyone (host bits,
//! community out of range) and on a 400 from the speaker, and 1 with "cannot reach the
//! speaker" when nothing listens. The speaker exits 2 on a config with an unknown key, naming
//! key and line, and 1 on a TCP API token that is too short.
//! Failures injected: hand-written request bodies and headers (raw hyper), missing or wrong
//! tokens, API addresses where nothing listens, broken config files.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON: {body:?}: {e}"))
}

fn post(speaker: &Speaker, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(
        Target::Unix(&speaker.api()),
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    );
    (status, json(&text))
}

fn get(speaker: &Speaker, path: &str) -> (u16, String) {
    http(Target::Unix(&speaker.api()), "GET", path, &[], "")
}

/// The `error` text of a 400 answer.
fn bad_request(speaker: &Speaker, path: &str, body: &str) -> String {
    let (status, v) = post(speaker, path, body);
    assert_eq!(status, 400, "{body} -> {v}");
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text: {v}"))
        .to_owned()
}

#[test]
fn bad_requests_are_400_naming_the_problem_and_unknown_endpoints_404() {
    let speaker = Speaker::start(SpeakerSpec::default());

    let e = bad_request(&speaker, "/v1/announce", r#"{"routes": ["#);
    assert!(
        e.contains("request body") && e.contains("EOF while parsing"),
        "{e}"
    );

    let e = bad_request(
        &speaker,
        "/v1/announce",
        r#"{"routes": [{"prefix": "198.51.100.0/24", "colour": "red"}]}"#,
    );
    assert!(e.contains("unknown field `colour`"), "{e}");
    assert!(e.contains("routes[0]"), "names where: {e}");

    let e = bad_request(
        &speaker,
        "/v1/announce",
        r#"{"routes": [{"prefix": "198.51.100.0/24"}], "dryrun": true}"#,
    );
    assert!(e.contains("unknown field `dryrun`"), "{e}");
    assert!(e.contains("did you mean `dry_run`?"), "{e}");

    let e = bad_request(
        &speaker,
        "/v1/announce",
        r#"{"routes": [{"prefix": "198.51.100.0/24", "nexthop": "192.0.2.1"}]}"#,
    );
    assert!(e.contains("did you mean `next_hop`?"), "{e}");

    let e = bad_request(
        &speaker,
        "/v1/announce",
        r#"{"routes": [{"prefix": "198.51.100.1/24"}]}"#,
    );
    assert!(e.contains("did you mean 198.51.100.0/24"), "{e}");

    let e = bad_request(&speaker, "/v1/announce", r#"{"routes": []}"#);
    assert!(e.contains("`routes`: empty list"), "{e}");
    let e = bad_request(&speaker, "/v1/withdraw", r#"{"prefixes": []}"#);
    assert!(e.contains("`prefixes`: empty list"), "{e}");
    let e = bad_request(&speaker, "/v1/withdraw", r#"{}"#);
    assert!(e.contains("`prefixes`: empty list"), "{e}");
    let e = bad_request(
        &speaker,
        "/v1/withdraw",
        r#"{"all": true, "prefixes": ["198.51.100.0/24"]}"#,
    );
    assert!(e.contains("`all` and `prefixes` exclude each other"), "{e}");
    let e = bad_request(&speaker, "/v1/withdraw", r#"{"all": false}"#);
    assert!(e.contains("`prefixes`: empty list"), "{e}");
    let e = bad_request(&speaker, "/v1/withdraw", r#"{"all": "yes"}"#);
    assert!(
        e.contains("`all`") && e.contains("expected a boolean"),
        "{e}"
    );
    let e = bad_request(
        &speaker,
        "/v1/withdraw",
        r#"{"prefixes": ["198.51.100.0/24", "198.51.100.0/33"]}"#,
    );
    assert!(e.contains("`prefixes[1]`"), "{e}");
    assert!(e.contains("\"198.51.100.0/33\""), "{e}");

    // The body says which field, for clients to act on without parsing the text.
    for (path, body, field) in [
        (
            "/v1/withdraw",
            r#"{"prefixes": ["198.51.100.0/33"]}"#,
            "prefixes[0]",
        ),
        (
            "/v1/announce",
            r#"{"routes": [{"prefix": "198.51.100.1/24"}]}"#,
            "routes[0]",
        ),
        ("/v1/announce", r#"{"routes": []}"#, "routes"),
        ("/v1/withdraw", r#"{"all": "yes"}"#, "all"),
    ] {
        let (status, v) = post(&speaker, path, body);
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["field"], field, "{body} -> {v}");
    }
    let (_, v) = post(&speaker, "/v1/announce", "not json");
    assert!(
        v.get("field").is_none(),
        "no field for a body that is not JSON: {v}"
    );

    let e = bad_request(
        &speaker,
        "/v1/announce",
        r#"{"routes": [{"prefix": "198.51.100.0/24"}, {"prefix": "198.51.100.0/24", "med": 5}]}"#,
    );
    assert!(e.contains("appears twice"), "{e}");

    let (status, body) = get(&speaker, "/v2/routes");
    assert_eq!(status, 404, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("no such endpoint"));

    let (status, body) = get(&speaker, "/v1/routes/received?peer=192.0.2.99");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not a configured neighbor"), "{body}");
    let (status, body) = get(&speaker, "/v1/routes/received?peer=not-an-ip");
    assert_eq!(status, 400, "{body}");

    // Nothing was changed by any of it.
    let (status, body) = get(&speaker, "/v1/routes");
    assert_eq!((status, json(&body)), (200, serde_json::json!([])));

    // A good one, for contrast.
    let (status, v) = post(
        &speaker,
        "/v1/announce",
        r#"{"routes": [{"prefix": "198.51.100.0/24"}]}"#,
    );
    assert_eq!((status, &v["changed"]), (200, &serde_json::json!(1)), "{v}");
}

#[test]
fn the_api_socket_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let speaker = Speaker::start(SpeakerSpec::default());
    let mode = std::fs::metadata(speaker.api())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn metrics_are_prometheus_text_with_the_session_state() {
    let ip = Ipv4Addr::new(127, 0, 0, 13);
    let (speaker, _peer) = established_pair(ip);
    let client = ferry::api::blocking::Speaker::unix(speaker.api()).unwrap();
    let text = client.metrics().unwrap();
    assert!(
        text.contains("# TYPE ferry_peer_established gauge"),
        "{text}"
    );
    assert!(
        text.contains(&format!("ferry_peer_established{{peer=\"{ip}\"}} 1")),
        "{text}"
    );
    assert!(text.contains("ferry_desired_routes 0"), "{text}");
    // Every sample line is `name{labels} value` or `name value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad sample {line:?}"));
    }
}

/// Read `/v1/events` in a thread; lines arrive on the channel. Returns once subscribed.
fn events(speaker: &Speaker) -> mpsc::Receiver<Value> {
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let path = speaker.api();
    thread::spawn(move || {
        runtime().block_on(async move {
            let s = tokio::net::UnixStream::connect(&path).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = hyper::Request::get("/v1/events")
                .header("host", "localhost")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(
                resp.headers()["content-type"],
                "application/x-ndjson",
                "content type"
            );
            let _ = ready_tx.send(());
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buf.extend_from_slice(&data);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let v: Value = serde_json::from_slice(&line).expect("event is JSON");
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        })
    });
    ready_rx
        .recv_timeout(WAIT)
        .expect("events stream did not start");
    rx
}

/// Events until one matches; panics with those seen after the timeout.
fn wait_event(rx: &mpsc::Receiver<Value>, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if want(&v) => return v,
            Ok(v) => seen.push(v),
            Err(_) => panic!("no {what} event within {WAIT:?}; saw {seen:#?}"),
        }
    }
}

#[test]
fn events_stream_peer_state_and_routes_sent() {
    let ip = Ipv4Addr::new(127, 0, 0, 14);
    let mut peer = RawPeer::listen(ip);
    let speaker = Speaker::start(SpeakerSpec::with(vec![NeighborSpec::active(peer.addr())]));
    let rx = events(&speaker);
    peer.accept();
    peer.handshake();
    peer.initial_sync(2);
    let up = wait_event(&rx, "peer_state to Established", |v| {
        v["event"] == "peer_state" && v["to"] == "Established"
    });
    assert_eq!(up["peer"], ip.to_string());
    assert_eq!(up["from"], "OpenConfirm");

    speaker.cli_ok(&["announce", "198.51.100.0/24"]);
    // Causal order: the change of the desired routes, then what it sent.
    let changed = wait_event(&rx, "desired_changed", |v| {
        assert_ne!(
            v["event"], "routes_sent",
            "routes_sent before desired_changed"
        );
        v["event"] == "desired_changed"
    });
    assert_eq!(changed["changed"], 1);
    let sent = wait_event(&rx, "routes_sent", |v| v["event"] == "routes_sent");
    assert_eq!(sent["peer"], ip.to_string());
    assert_eq!(sent["announced"], serde_json::json!(["198.51.100.0/24"]));
    assert_eq!(sent["withdrawn"], serde_json::json!([]));
    peer.next_update();

    speaker.cli_ok(&["withdraw", "198.51.100.0/24"]);
    let sent = wait_event(&rx, "routes_sent (withdrawal)", |v| {
        v["event"] == "routes_sent"
    });
    assert_eq!(sent["withdrawn"], serde_json::json!(["198.51.100.0/24"]));

    // The session going down is an event too.
    peer.disconnect();
    let down = wait_event(&rx, "peer_state from Established", |v| {
        v["event"] == "peer_state" && v["from"] == "Established"
    });
    assert_eq!(down["peer"], ip.to_string());
}

#[test]
fn tcp_api_requires_the_bearer_token() {
    let ip = Ipv4Addr::new(127, 0, 0, 1);
    let addr = SocketAddr::new(IpAddr::V4(ip), free_port(ip));
    let token = "ferry-test-token-0123456789";
    let speaker = Speaker::start(SpeakerSpec {
        api_tcp: Some((addr, token.to_owned())),
        ..SpeakerSpec::default()
    });
    // The TCP listener starts after the Unix socket: wait for it.
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "TCP API not listening");
        thread::sleep(Duration::from_millis(10));
    }

    let (status, body) = http(Target::Tcp(addr), "GET", "/v1/peers", &[], "");
    assert_eq!(status, 401, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let (status, _) = http(
        Target::Tcp(addr),
        "GET",
        "/v1/peers",
        &[("authorization", "Bearer ferry-test-token-012345678X")],
        "",
    );
    assert_eq!(status, 401);
    let (status, _) = http(
        Target::Tcp(addr),
        "GET",
        "/v1/peers",
        &[("authorization", token)],
        "",
    );
    assert_eq!(status, 401, "the token without `Bearer `");
    let (status, body) = http(
        Target::Tcp(addr),
        "GET",
        "/v1/peers",
        &[("authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!((status, json(&body)), (200, serde_json::json!([])));
    // Unknown endpoints are hidden behind the token too.
    let (status, _) = http(Target::Tcp(addr), "GET", "/nope", &[], "");
    assert_eq!(status, 401);

    // The CLI over TCP: with the token file it works, without it exits 1.
    let api = format!("http://{addr}");
    let token_file = speaker.dir.path().join("token");
    let out = ferry_cli(
        &[
            "status",
            "--json",
            "--api-token-file",
            &token_file.to_string_lossy(),
        ],
        Some(&api),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = ferry_cli(&["status"], Some(&api));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("bearer token"), "{out:?}");
}

#[test]
fn cli_rejects_bad_input_with_exit_2_before_contacting_the_speaker() {
    // Nothing listens here: a usage error must not depend on the speaker.
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("none.sock");
    let api = nowhere.to_string_lossy();

    let out = ferry_cli(&["announce", "198.51.100.1/24"], Some(&api));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("did you mean 198.51.100.0/24"),
        "{out:?}"
    );

    let out = ferry_cli(
        &["announce", "198.51.100.0/24", "--community", "70000:1"],
        Some(&api),
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--community") && out.stderr.contains("70000"),
        "{out:?}"
    );

    let out = ferry_cli(
        &["announce", "198.51.100.0/24", "--large-community", "1:2"],
        Some(&api),
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--large-community"), "{out:?}");

    let out = ferry_cli(&["withdraw", "2001:db8::1/32"], Some(&api));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("did you mean 2001:db8::/32"), "{out:?}");

    let out = ferry_cli(&["announce"], Some(&api));
    assert_eq!(out.code, 2, "clap usage error: {out:?}");

    let out = ferry_cli(&["status"], Some(&api));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("cannot reach the speaker"), "{out:?}");
    assert!(out.stderr.contains(&*api), "names the address: {out:?}");
    assert!(
        out.stderr.contains("--api or FERRY_API"),
        "names the option that sets it: {out:?}"
    );
}

#[test]
fn cli_exits_2_when_the_speaker_refuses_the_input() {
    let speaker = Speaker::start(SpeakerSpec::default());
    let file = speaker.dir.path().join("routes-in.json");
    std::fs::write(
        &file,
        r#"[{"prefix": "198.51.100.0/24"}, {"prefix": "198.51.100.0/24"}]"#,
    )
    .unwrap();
    let out = speaker.cli(&["announce", "--file", &file.to_string_lossy()]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("appears twice"), "{out:?}");
}

const CONFIG: &str = "[speaker]
asn = 65100
router_id = \"192.0.2.1\"
api = \"@API@\"
state_dir = \"@STATE@\"

[[neighbor]]
address = \"127.0.0.2\"
remote_as = 65001
hold_time = 9
";

#[test]
fn config_errors_stop_the_speaker_naming_key_and_line() {
    let out = speaker_must_fail(&CONFIG.replace("hold_time = 9", "hold_tme = 9"), &[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("hold_tme") && out.stderr.contains("line 10"),
        "{}",
        out.stderr
    );

    let out = speaker_must_fail(&CONFIG.replace("asn = 65100", "asn = 23456"), &[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("AS_TRANS") && out.stderr.contains("line 2"),
        "{}",
        out.stderr
    );

    // A TCP API token shorter than 16 characters: refused at start (exit 1), file named.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("short-token");
    write_private(&token, "short\n");
    let with_tcp = CONFIG.replace(
        "state_dir",
        &format!(
            "api_tcp = \"127.0.0.1:{}\"\napi_token_file = \"{}\"\nstate_dir",
            free_port(Ipv4Addr::LOCALHOST),
            token.display()
        ),
    );
    let out = speaker_must_fail(&with_tcp, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("shorter than 16") && out.stderr.contains("short-token"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_lease_expiry_is_an_event() {
    let (speaker, _peer) = established_pair(Ipv4Addr::new(127, 0, 0, 84));
    let rx = events(&speaker);
    speaker.cli_ok(&["announce", "198.51.100.0/24", "--lease", "1"]);
    let e = wait_event(&rx, "lease_expired", |v| v["event"] == "lease_expired");
    assert_eq!(e["prefixes"], serde_json::json!(["198.51.100.0/24"]), "{e}");
}

/// The prefixes `ferry routes --json` lists, with each route's JSON.
fn announced(speaker: &Speaker) -> Vec<Value> {
    let out = speaker.cli_ok(&["routes", "--json"]);
    match json(&out.stdout) {
        Value::Array(routes) => routes,
        other => panic!("routes --json is not an array: {other}"),
    }
}

fn prefixes_of(routes: &[Value]) -> Vec<String> {
    routes
        .iter()
        .map(|r| r["prefix"].as_str().unwrap().to_owned())
        .collect()
}

/// `ferry ARGS` reading `input` on standard input.
fn cli_with_stdin(speaker: &Speaker, args: &[&str], input: &str) -> CliOut {
    use std::io::Write as _;
    let mut child = std::process::Command::new(FERRY)
        .args(args)
        .env_remove("FERRY_API_TOKEN_FILE")
        .env("FERRY_API", speaker.api())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ferry");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    CliOut {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `--file` takes text with columns, a JSON array and JSON lines (from stdin with `-`), and
/// the speaker holds exactly what they say; withdraw takes the same file. A bad line is
/// refused with its number before anything is sent.
#[test]
fn cli_file_takes_text_json_and_json_lines() {
    let speaker = Speaker::start(SpeakerSpec::default());
    let text = speaker.dir.path().join("routes.txt");
    std::fs::write(
        &text,
        "# site A\n\n198.51.100.0/24\n203.0.113.0/24 next_hop=192.0.2.7 med=10 \
         communities=65000:1,no-export  # edge\n",
    )
    .unwrap();
    let out = speaker.cli_ok(&["announce", "--json", "--file", &text.to_string_lossy()]);
    assert!(out.stdout.contains("\"changed\":2"), "{out:?}");
    let routes = announced(&speaker);
    assert_eq!(prefixes_of(&routes), ["198.51.100.0/24", "203.0.113.0/24"]);
    let edge = &routes[1];
    assert_eq!(edge["next_hop"], "192.0.2.7");
    assert_eq!(edge["med"], 10);
    assert_eq!(
        edge["communities"],
        serde_json::json!(["65000:1", "no-export"])
    );
    assert_eq!(routes[0]["med"], Value::Null);

    // JSON lines on standard input, re-announcing one route with another MED.
    let out = cli_with_stdin(
        &speaker,
        &["announce", "--file", "-"],
        "{\"prefix\": \"203.0.113.0/24\", \"med\": 20}\n\"2001:db8:1::/48\"\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let routes = announced(&speaker);
    assert_eq!(
        prefixes_of(&routes),
        ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/48"]
    );
    assert_eq!(routes[1]["med"], 20);

    // A bad line: exit 2, the line named, nothing changed.
    let bad = speaker.dir.path().join("bad.txt");
    std::fs::write(&bad, "192.0.2.0/24\n10.0\n").unwrap();
    let out = speaker.cli(&["announce", "--file", &bad.to_string_lossy()]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("line 2, column 1: prefix \"10.0\" is not an IP prefix like"),
        "{out:?}"
    );
    assert_eq!(announced(&speaker).len(), 3);

    // The text file withdraws what it announced (its columns ignored); a JSON array the rest.
    speaker.cli_ok(&["withdraw", "--file", &text.to_string_lossy()]);
    assert_eq!(prefixes_of(&announced(&speaker)), ["2001:db8:1::/48"]);
    let out = cli_with_stdin(
        &speaker,
        &["withdraw", "--file", "-"],
        "[\"2001:db8:1::/48\"]",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(announced(&speaker).is_empty());
}

/// A bulk file goes to the speaker as a body written while it is sent (many frames, chunked):
/// every route arrives, with its attributes, and the same file withdraws them all.
#[test]
fn cli_file_streams_a_bulk_file_whole() {
    let speaker = Speaker::start(SpeakerSpec::default());
    let n = 20_000u32;
    let file = speaker.dir.path().join("bulk.txt");
    let text: String = (0..n)
        .map(|i| format!("2001:db8:{i:x}::/48 next_hop=2001:db8::1 med={i}\n"))
        .collect();
    std::fs::write(&file, &text).unwrap();
    // Well over one frame of the body (64 KiB) even in the compact form.
    assert!(text.len() > 4 * 65_536);
    let out = speaker.cli_ok(&["announce", "--json", "--file", &file.to_string_lossy()]);
    assert!(out.stdout.contains(&format!("\"changed\":{n}")), "{out:?}");
    let routes = announced(&speaker);
    assert_eq!(routes.len(), n as usize);
    let last = routes
        .iter()
        .find(|r| r["prefix"] == format!("2001:db8:{:x}::/48", n - 1))
        .expect("the last line's route");
    assert_eq!(last["med"], n - 1);
    assert_eq!(last["next_hop"], "2001:db8::1");
    let out = speaker.cli_ok(&["withdraw", "--json", "--file", &file.to_string_lossy()]);
    assert!(out.stdout.contains(&format!("\"changed\":{n}")), "{out:?}");
    assert!(announced(&speaker).is_empty());
}
