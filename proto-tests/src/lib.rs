//! Shared helpers for the protocol tests: finding wire vectors and matching decoded JSON
//! against expected values.
//!
//! Expected values are subsets: every key in the expected object must be present with a matching
//! value; arrays must have the same length and match element by element.
//!
//! The interop harness (namespaces, the [`testkit::Lab`] guard, FRR, BIRD 2, GoBGP and ExaBGP)
//! is the workspace's test kit, `testkit`; [`ferry`] starts the real `ferry speaker` in such a
//! namespace and drives its CLI, so it can stand where the interop tests expect a daemon.
//!
//! Benchmarks (issue 7): [`fulltable`] generates a synthetic full IPv4 table as pre-encoded
//! UPDATEs, which the `bgp_blaster` binary writes to a receiver in [`ingest`] runs; [`fanout`]
//! has one sender announce to 50 `bgp_blaster sink` sessions; [`cli_wire`] times one-line
//! commands (Ferry's, GoBGP's, ExaBGP's) from their start to their UPDATE on the wire;
//! [`scale`] is one run of a bulk announce and withdraw by command.

pub mod bench;
pub mod cli_wire;
pub mod fanout;
pub mod ferry;
pub mod fulltable;
pub mod ingest;
pub mod scale;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Directory of the captured vectors.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Every `*.hex` vector under `vectors/`, sorted.
pub fn hex_vectors() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![vectors_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "hex") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Where `actual` differs from the subset `expected`, as "path: expected X, got Y" lines.
pub fn subset_mismatches(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(expected, actual, "$", &mut out);
    out
}

fn walk(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => walk(ev, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: expected {ev}, missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                walk(ev, av, &format!("{path}[{i}]"), out);
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: expected {e}, got {a}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_matching_reports_differences() {
        let actual = json!({"a": 1, "b": [{"x": 1, "y": 2}], "c": "z"});
        assert!(subset_mismatches(&json!({"b": [{"x": 1}]}), &actual).is_empty());
        assert_eq!(
            subset_mismatches(&json!({"b": [{"x": 2}]}), &actual),
            vec!["$.b[0].x: expected 2, got 1"]
        );
        assert_eq!(subset_mismatches(&json!({"b": []}), &actual).len(), 1);
        assert_eq!(
            subset_mismatches(&json!({"d": 1}), &actual),
            vec!["$.d: expected 1, missing"]
        );
    }
}
