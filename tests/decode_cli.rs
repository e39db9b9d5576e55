//! `ferry decode` as a user runs it: hex arguments, hex on stdin, `--raw FILE`, `--pcap FILE`
//! (each also `-` for stdin),
//! and the exit codes of docs/decode-json.md (0 decoded, 1 a message would reset the session,
//! 2 bad input).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

struct Run {
    code: i32,
    lines: Vec<Value>,
    stderr: String,
}

/// Run `ferry decode ARGS`, feeding `stdin` when given.
fn decode(args: &[&str], stdin: Option<&str>) -> Run {
    decode_bytes(args, stdin.map(str::as_bytes))
}

/// Run `ferry decode ARGS`, feeding `stdin` (any bytes) when given.
fn decode_bytes(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("decode")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for ferry");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    Run {
        code: out.status.code().expect("exit code"),
        lines,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto-tests/vectors")
}

fn vector_hex(name: &str) -> String {
    let path = vectors().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

const KEEPALIVE: &str = "ffffffffffffffffffffffffffffffff001304";

/// An UPDATE for 198.51.100.0/24 with ORIGIN, AS_PATH, NEXT_HOP and a COMMUNITIES attribute of
/// 5 octets (RFC 7606 §7.8: treat-as-withdraw).
const UPDATE_BAD_COMMUNITIES: &str = concat!(
    "ffffffffffffffffffffffffffffffff",
    "0037",
    "02",
    "0000",
    "001c",
    "400101",
    "00",
    "400206",
    "02010000fde9",
    "400304",
    "c0000201",
    "c00805",
    "fde9006400",
    "18c63364",
);

/// An UPDATE whose withdrawn routes length (4000) overruns the message (RFC 4271 §6.3).
const UPDATE_BAD_WITHDRAWN_LEN: &str = "ffffffffffffffffffffffffffffffff0017020fa00000";

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferry-decode-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

#[test]
fn hex_arguments_decode_one_line_per_message() {
    let r = decode(&[KEEPALIVE], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.lines, vec![json!({"type": "KEEPALIVE", "length": 19})]);

    // Several arguments are joined: a message may be split across them, several may follow.
    let update = vector_hex("bird/update-ipv4-plain.hex");
    let (a, b) = update.split_at(40);
    let r = decode(&[a, b, KEEPALIVE], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.lines.len(), 2);
    assert_eq!(r.lines[0]["type"], "UPDATE");
    assert_eq!(r.lines[0]["nlri"], json!(["203.0.113.128/25"]));
    assert_eq!(r.lines[1]["type"], "KEEPALIVE");
}

#[test]
fn hex_on_stdin_with_separators_decodes_like_arguments() {
    let open = vector_hex("frr/open.hex");
    let from_args = decode(&[&open], None);
    assert_eq!(from_args.code, 0, "{}", from_args.stderr);
    // Whitespace, line breaks, 0x prefixes and ':' separators are ignored.
    let spaced: Vec<String> = open
        .as_bytes()
        .chunks(2)
        .map(|p| format!("0x{}", std::str::from_utf8(p).unwrap()))
        .collect();
    let text = format!("{}\n{}\n", spaced[..20].join(" "), spaced[20..].join(":"));
    for args in [&["-"][..], &[][..]] {
        let r = decode(args, Some(&text));
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(r.lines, from_args.lines, "{args:?}");
    }
    assert_eq!(from_args.lines[0]["type"], "OPEN");
}

#[test]
fn raw_file_of_back_to_back_messages() {
    let bytes = hex::decode(format!(
        "{}{}{}",
        vector_hex("gobgp/open.hex"),
        KEEPALIVE,
        vector_hex("gobgp/update-ipv6-plain.hex")
    ))
    .unwrap();
    let path = temp_file("raw.bin", &bytes);
    let r = decode(&["--raw", path.to_str().unwrap()], None);
    std::fs::remove_file(&path).ok();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let piped = decode_bytes(&["--raw", "-"], Some(&bytes));
    assert_eq!(
        (piped.code, &piped.lines),
        (0, &r.lines),
        "{}",
        piped.stderr
    );
    let types: Vec<&str> = r
        .lines
        .iter()
        .map(|l| l["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["OPEN", "KEEPALIVE", "UPDATE"]);
    assert!(r.lines.iter().all(|l| l.get("direction").is_none()));
}

fn type_name(code: u64) -> &'static str {
    match code {
        1 => "OPEN",
        2 => "UPDATE",
        3 => "NOTIFICATION",
        4 => "KEEPALIVE",
        5 => "ROUTE-REFRESH",
        _ => panic!("message type {code}"),
    }
}

#[test]
fn every_captured_session_pcap_decodes_with_directions() {
    let mut sessions = 0;
    for entry in std::fs::read_dir(vectors()).unwrap() {
        let dir = entry.unwrap().path();
        let pcap = dir.join("session.pcap");
        if !pcap.exists() {
            continue;
        }
        sessions += 1;
        let jsonl = std::fs::read_to_string(dir.join("session.jsonl")).unwrap();
        let mut want: Vec<&str> = jsonl
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                type_name(v["type"].as_u64().unwrap())
            })
            .collect();
        let r = decode(&["--pcap", pcap.to_str().unwrap()], None);
        assert_eq!(r.code, 0, "{}: {}", pcap.display(), r.stderr);
        // The same capture piped in (`tcpdump -w - | ferry decode --pcap -`) decodes the same.
        let piped = decode_bytes(&["--pcap", "-"], Some(&std::fs::read(&pcap).unwrap()));
        assert_eq!(piped.code, 0, "{}: {}", pcap.display(), piped.stderr);
        assert_eq!(piped.lines, r.lines, "{}", pcap.display());
        assert_eq!(r.lines.len(), want.len(), "{}", pcap.display());
        for line in &r.lines {
            let direction = line["direction"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no direction in {line}", pcap.display()));
            assert!(direction.contains(" -> "), "{direction}");
            assert!(line.get("error").is_none(), "{}: {line}", pcap.display());
        }
        let mut got: Vec<&str> = r
            .lines
            .iter()
            .map(|l| l["type"].as_str().unwrap())
            .collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "{}", pcap.display());
    }
    assert!(sessions >= 5, "only {sessions} session captures");
}

#[test]
fn session_resetting_message_prints_the_error_and_exits_1() {
    let r = decode(&[KEEPALIVE, UPDATE_BAD_WITHDRAWN_LEN, KEEPALIVE], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // Decoding stops at the error: the KEEPALIVE before it, then the error, nothing after.
    assert_eq!(r.lines.len(), 2, "{:?}", r.lines);
    assert_eq!(r.lines[0]["type"], "KEEPALIVE");
    let e = &r.lines[1]["error"];
    assert_eq!(e["code"], 3);
    assert_eq!(e["subcode"], 1);
    assert_eq!(e["code_name"], "UPDATE Message Error");
    assert_eq!(e["subcode_name"], "Malformed Attribute List");
    assert_eq!(e["field"], "withdrawn_routes_length");
    assert_eq!(e["offset"], 19);
    assert_eq!(e["data"], "");
    assert!(e["detail"].as_str().unwrap().contains("4000"), "{e}");
}

#[test]
fn treat_as_withdraw_update_exits_0_with_its_rfc7606_list() {
    let r = decode(&[UPDATE_BAD_COMMUNITIES], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.lines.len(), 1);
    let u = &r.lines[0];
    assert_eq!(u["type"], "UPDATE");
    assert_eq!(u["nlri"], json!(["198.51.100.0/24"]));
    let issues = u["rfc7606"].as_array().expect("rfc7606 list");
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["action"], "treat-as-withdraw");
    assert_eq!(issues[0]["attribute"], 8);
    assert!(issues[0]["detail"]
        .as_str()
        .unwrap()
        .contains("COMMUNITIES"));
    // The malformed attribute is left out; the others are there.
    let attrs = &u["attributes"];
    assert!(attrs.get("communities").is_none(), "{attrs}");
    assert_eq!(attrs["origin"], "igp");
    assert_eq!(attrs["next_hop"], "192.0.2.1");
}

#[test]
fn non_hex_input_exits_2_naming_the_character() {
    let r = decode(&["ffffzz"], None);
    assert_eq!(r.code, 2);
    assert!(r.lines.is_empty());
    assert!(r.stderr.contains("not a hex digit"), "{}", r.stderr);
    assert!(r.stderr.contains("'z'"), "{}", r.stderr);

    let r = decode(&["-"], Some("hello"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a hex digit"), "{}", r.stderr);

    let r = decode(&["fff"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("odd number"), "{}", r.stderr);
}

#[test]
fn missing_file_exits_2_naming_the_file() {
    let missing = std::env::temp_dir().join("ferry-decode-cli-does-not-exist.bin");
    for flag in ["--raw", "--pcap"] {
        let r = decode(&[flag, missing.to_str().unwrap()], None);
        assert_eq!(r.code, 2, "{flag}");
        assert!(r.lines.is_empty(), "{flag}");
        assert!(r.stderr.contains("cannot read"), "{flag}: {}", r.stderr);
        assert!(
            r.stderr.contains(missing.to_str().unwrap()),
            "{flag}: {}",
            r.stderr
        );
    }
}

#[test]
fn input_ending_inside_a_message_exits_2() {
    let r = decode(&[&KEEPALIVE[..30]], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("19-octet header"), "{}", r.stderr);
    let update = vector_hex("frr/update-ipv4-plain.hex");
    let r = decode(&[&update[..update.len() - 2]], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ends inside a message"), "{}", r.stderr);
}

/// RFC 7607 §2: AS 0 as the peer AS of an OPEN is Bad Peer AS (exit 1); AS 0 in an UPDATE's
/// AS_PATH makes the UPDATE treat-as-withdraw (RFC 7606 §7.2; exit 0 with its rfc7606 list).
#[test]
fn as_zero_is_reported_as_rfc7607_says() {
    // OPEN: version 4, My AS 0, hold 90, id 192.0.2.1, no optional parameters.
    let open = "ffffffffffffffffffffffffffffffff001d01040000005ac000020100";
    let r = decode(&[open], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let e = &r.lines[0]["error"];
    assert_eq!(
        (e["code"].as_u64(), e["subcode"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(e["subcode_name"], "Bad Peer AS");
    assert_eq!(e["field"], "my_as");
    assert!(e["detail"].as_str().unwrap().contains("RFC 7607"), "{e}");

    // UPDATE for 198.51.100.0/24 with AS_PATH [65001 0].
    let update = concat!(
        "ffffffffffffffffffffffffffffffff",
        "0033",
        "02",
        "0000",
        "0018",
        "40010100",
        "40020a",
        "02020000fde900000000",
        "400304c0000201",
        "18c63364",
    );
    let r = decode(&[update], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let issues = r.lines[0]["rfc7606"].as_array().expect("rfc7606 list");
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["action"], "treat-as-withdraw");
    assert_eq!(issues[0]["attribute"], 2);
    assert!(
        issues[0]["detail"].as_str().unwrap().contains("AS 0"),
        "{issues:?}"
    );
}
