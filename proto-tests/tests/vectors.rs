//! Real messages captured from FRR, BIRD, GoBGP and ExaBGP sessions (proto-tests/vectors/)
//! decode to the expected values and re-encode byte for byte.
//!
//! A vector whose `.args` file says `--as2` comes from a session without 4-octet ASNs and is read
//! with 2-octet AS_PATHs, as on the wire.

use std::path::Path;

use ferry::inspect::{parse_hex, Decoder};
use ferry::wire::{Context, Message};
use proto_tests::{hex_vectors, subset_mismatches};

fn read_hex(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_hex(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The wire context of a vector: 4-octet ASNs unless its `.args` file (the `ferry decode`
/// arguments the capture needs) says `--as2`, as for a session whose peer lacked the capability.
fn context_of(vector: &Path) -> Context {
    let args = std::fs::read_to_string(vector.with_extension("args")).unwrap_or_default();
    Context {
        four_octet_as: !args.split_whitespace().any(|a| a == "--as2"),
        ..Context::default()
    }
}

#[test]
fn every_vector_decodes_to_its_expected_value() {
    let vectors = hex_vectors();
    assert!(vectors.len() >= 40, "only {} vectors found", vectors.len());
    let mut failures = Vec::new();
    for path in &vectors {
        let bytes = read_hex(path);
        let mut decoder = Decoder::new(!context_of(path).four_octet_as);
        let line = match decoder.decode_one(&bytes) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{}: decode error {e}", path.display()));
                continue;
            }
        };
        let expect_path = path.with_extension("expect.json");
        let expected: serde_json::Value = match std::fs::read_to_string(&expect_path) {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display())),
            Err(_) => {
                failures.push(format!("{}: no expected value", expect_path.display()));
                continue;
            }
        };
        for m in subset_mismatches(&expected, &line) {
            failures.push(format!("{}: {m}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_vector_re_encodes_byte_for_byte() {
    let mut failures = Vec::new();
    for path in hex_vectors() {
        let ctx = context_of(&path);
        let bytes = read_hex(&path);
        match Message::decode(&bytes, &ctx) {
            Ok(msg) => {
                let again = msg.to_bytes(&ctx);
                if again[..] != bytes[..] {
                    failures.push(format!(
                        "{}:\n  wire {}\n  ours {}",
                        path.display(),
                        hex::encode(&bytes),
                        hex::encode(&again)
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_daemon_is_represented() {
    let vectors = hex_vectors();
    for daemon in ["frr", "bird", "gobgp", "exabgp"] {
        let n = vectors
            .iter()
            .filter(|p| p.parent().and_then(|d| d.file_name()) == Some(daemon.as_ref()))
            .count();
        assert!(n >= 5, "{daemon}: only {n} vectors");
    }
}

/// Each captured session decodes whole from its pcap: every message of `session.jsonl`, no
/// error and no RFC 7606 finding (the captures are of healthy sessions, some with 2-octet ASNs,
/// where the other direction's OPEN decides the AS_PATH width).
#[test]
fn every_session_capture_decodes_cleanly() {
    let mut checked = 0;
    for path in hex_vectors()
        .iter()
        .filter_map(|p| p.parent())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let pcap = path.join("session.pcap");
        let Ok(bytes) = std::fs::read(&pcap) else {
            continue;
        };
        let decoded = ferry::inspect::decode_pcap(&bytes, false)
            .unwrap_or_else(|e| panic!("{}: {e}", pcap.display()));
        assert!(
            !decoded.failed,
            "{}: {:?}",
            pcap.display(),
            decoded.lines.last()
        );
        let records = std::fs::read_to_string(path.join("session.jsonl"))
            .expect("session.jsonl next to session.pcap");
        assert_eq!(
            decoded.lines.len(),
            records.lines().count(),
            "{}",
            pcap.display()
        );
        for line in &decoded.lines {
            assert!(line.get("rfc7606").is_none(), "{}: {line}", pcap.display());
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} captures");
}
