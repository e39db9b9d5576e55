//! `ferry completions SHELL` and `ferry man [--dir DIR]`, as people who build from source use
//! them (the Debian package ships the same output, see scripts/package-test.sh):
//! - bash, zsh and fish completions name the subcommands (failover, failback, man, ...);
//!   an unknown shell is a usage error;
//! - `ferry man` prints roff for `ferry`; `--dir` writes one page per command and
//!   subcommand, each naming its own command; a missing directory is a usage error.

mod support;

use std::collections::BTreeSet;

use support::*;

#[test]
fn completions_name_the_subcommands_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ferry_cli(&["completions", shell], None);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for word in ["failover", "failback", "speaker", "completions"] {
            assert!(out.stdout.contains(word), "{shell}: no {word}");
        }
    }
    let bash = ferry_cli(&["completions", "bash"], None).stdout;
    assert!(bash.contains("complete -F _ferry"), "{bash}");
    let bad = ferry_cli(&["completions", "tcsh"], None);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("tcsh"), "{}", bad.stderr);
}

#[test]
fn man_prints_the_top_page_and_writes_one_page_per_subcommand() {
    let top = ferry_cli(&["man"], None);
    assert_eq!(top.code, 0, "{}", top.stderr);
    assert!(
        top.stdout.starts_with(".ie"),
        "not roff: {}",
        &top.stdout[..80]
    );
    assert!(top.stdout.contains(".TH ferry 1"), "{}", top.stdout);

    let dir = tempfile::tempdir().unwrap();
    let out = ferry_cli(&["man", "--dir", dir.path().to_str().unwrap()], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let pages: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for page in [
        "ferry.1",
        "ferry-speaker.1",
        "ferry-failover.1",
        "ferry-failover-keep.1",
        "ferry-plan-check.1",
        "ferry-man.1",
    ] {
        assert!(pages.contains(page), "no {page} in {pages:?}");
    }
    let failover = std::fs::read_to_string(dir.path().join("ferry-failover.1")).unwrap();
    assert!(failover.contains(".TH ferry-failover 1"), "{failover}");
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");

    let missing = dir.path().join("nope");
    let out = ferry_cli(&["man", "--dir", missing.to_str().unwrap()], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
}
