//! Issue 19 item 1: a one-line command, as a new process, to its UPDATE on the wire, for
//! Ferry (`ferry announce|withdraw P`), GoBGP (`gobgp global rib add|del`) and ExaBGP
//! (`exabgpcli`, and a line written into its named pipe), each against its own FRR receiver
//! of the same configuration, alternating inside each round. How it is timed:
//! [`proto_tests::cli_wire`]. With Ferry among the senders, each round also takes one sample
//! of each part of Ferry's path ([`proto_tests::cli_wire::FerryParts`]).
//!
//! Run as root, after building the release binary:
//! ```text
//! cargo build --release --bin ferry
//! cargo bench -p proto-tests --bench cli_to_wire
//! ```
//! Environment: `FERRY_BIN` (default `target/release/ferry`), `BENCH_ROUNDS` (30; two more
//! are run first and not counted), `BENCH_SENDERS` (e.g. `ferry,gobgp`; `ferry-before` adds
//! the build `FERRY_BIN_BEFORE` as one more sender, to compare two builds in one run).

use std::collections::BTreeMap;

use proto_tests::bench::{env_num, median};
use proto_tests::cli_wire::{Bench, FerryParts, Kind};
use testkit::netns::Lab;
use testkit::root::can_run_with;

/// Per (kind, announce?): update ms, return ms, return after the journal's fsync ms.
type Samples = (Vec<f64>, Vec<f64>, Vec<f64>);

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let programs = ["tcpdump", "bgpd", "gobgpd", "exabgp"];
    if !can_run_with("cli_to_wire", &programs) {
        return;
    }
    let ferry_bin = std::env::var_os("FERRY_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/ferry")
        });
    let kinds = Kind::from_env().unwrap_or_else(|e| panic!("{e}"));
    let rounds = env_num("BENCH_ROUNDS", 30) as usize;
    let labs: Vec<Lab> = kinds.iter().map(|k| Lab::new(k.lab_name())).collect();
    let before_bin = std::env::var_os("FERRY_BIN_BEFORE").map(std::path::PathBuf::from);
    let benches: Vec<Bench> = kinds
        .iter()
        .zip(&labs)
        .map(|(k, lab)| {
            let bin = match (k, &before_bin) {
                (Kind::FerryBefore, Some(b)) => b.clone(),
                (Kind::FerryBefore, None) => panic!("ferry-before needs FERRY_BIN_BEFORE"),
                _ => ferry_bin.clone(),
            };
            Bench::start(*k, lab, &bin).unwrap_or_else(|e| panic!("{}: {e}", k.name()))
        })
        .collect();
    println!(
        "cli_to_wire: {rounds} rounds (+2 warm-up), ferry = {}, load average {}",
        ferry_bin.display(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut samples: BTreeMap<(&str, bool), Samples> = BTreeMap::new();
    let mut parts: Vec<FerryParts> = Vec::new();
    for round in 0..rounds + 2 {
        for b in &benches {
            for announce in [true, false] {
                let t = b
                    .once(announce)
                    .unwrap_or_else(|e| panic!("{} round {round}: {e}", b.kind.name()));
                if round >= 2 {
                    let e = samples.entry((b.kind.name(), announce)).or_default();
                    e.0.push(t.update_ms);
                    e.1.push(t.return_ms);
                    e.2.extend(t.after_fsync_ms);
                }
            }
            if b.kind == Kind::Ferry {
                for announce in [true, false] {
                    let p = b
                        .ferry_parts(announce)
                        .unwrap_or_else(|e| panic!("ferry parts round {round}: {e}"));
                    if round >= 2 {
                        parts.push(p);
                    }
                }
            }
        }
    }
    println!();
    println!("| sender | command | median to UPDATE (ms) | p90 (ms) | median return (ms) | return after fsync (ms) | UPDATE vs Ferry |");
    println!("|---|---|---|---|---|---|---|");
    let ferry_med = |announce: bool| samples.get(&("ferry", announce)).map(|(u, _, _)| median(u));
    for k in &kinds {
        for announce in [true, false] {
            let Some((u, r, f)) = samples.get(&(k.name(), announce)) else {
                continue;
            };
            let ratio = ferry_med(announce)
                .map(|f| format!("{:.2}x", median(u) / f))
                .unwrap_or_else(|| "-".into());
            let fsync = if f.is_empty() {
                "-".to_string()
            } else {
                format!("{:.3}", median(f))
            };
            println!(
                "| {} | {} | {:.3} | {:.3} | {:.3} | {fsync} | {ratio} |",
                k.name(),
                if announce { "announce" } else { "withdraw" },
                median(u),
                pct(u, 0.9),
                median(r),
            );
        }
    }
    if !parts.is_empty() {
        let col = |f: fn(&FerryParts) -> f64| median(&parts.iter().map(f).collect::<Vec<_>>());
        println!();
        println!(
            "Ferry's parts, medians of {} samples (announce and withdraw):",
            parts.len()
        );
        println!("| part | median (ms) |");
        println!("|---|---|");
        println!(
            "| new process floor (/bin/true) | {:.3} |",
            col(|p| p.exec_true)
        );
        println!(
            "| `ferry --version` (process start + clap) | {:.3} |",
            col(|p| p.ferry_version)
        );
        println!(
            "| clap: the whole tree parses the command line | {:.3} |",
            col(|p| p.clap)
        );
        println!(
            "| clap: the subcommand alone (`ferry::cli::parse_from`) | {:.3} |",
            col(|p| p.clap_quick)
        );
        println!(
            "| a current-thread tokio runtime built + dropped | {:.3} |",
            col(|p| p.runtime)
        );
        println!(
            "| blocking client in process: call -> UPDATE | {:.3} |",
            col(|p| p.api_update)
        );
        println!(
            "| blocking client in process: call -> answer | {:.3} |",
            col(|p| p.api_answer)
        );
        println!(
            "| append + fdatasync of a journal line | {:.3} |",
            col(|p| p.fsync)
        );
    }
}
