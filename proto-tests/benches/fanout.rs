//! Issue 7, benchmark 3: fan-out. One sender (Ferry, BIRD 2, GoBGP, FRR) with 50 established
//! eBGP sessions to raw sinks announces 10,000 IPv6 prefixes; time from the announce command
//! until the last of the 50 sessions holds all of them (see `proto_tests::fanout` for the
//! layout and each daemon's announce command). Senders alternate inside each round; medians
//! over the rounds, ratios to Ferry.
//!
//! Run as root, after building the release binary:
//! ```text
//! cargo build --release --bin ferry
//! cargo bench -p proto-tests --bench fanout
//! ```
//! Environment: `FERRY_BIN` (default `target/release/ferry`), `BENCH_N` (prefixes, 10000),
//! `BENCH_PEERS` (50), `BENCH_ROUNDS` (3), `BENCH_SENDERS` (e.g. `ferry,bird`),
//! `BENCH_TIMEOUT` (seconds per run, 180).

use std::collections::BTreeMap;
use std::time::Duration;

use proto_tests::bench::{env_num, median, package_version, prefixes};
use proto_tests::fanout::{fanout_once, FanoutRun, SenderKind};
use proto_tests::ingest::Bins;
use testkit::root::can_run_with;

fn f2(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into())
}

fn main() {
    if !can_run_with("fanout", &["vtysh", "birdc", "gobgp"]) {
        return;
    }
    let bins = Bins::from_env(env!("CARGO_BIN_EXE_bgp_blaster"));
    let n = env_num("BENCH_N", 10_000) as usize;
    let peers = env_num("BENCH_PEERS", 50) as usize;
    let rounds = env_num("BENCH_ROUNDS", 3) as usize;
    let timeout = Duration::from_secs(env_num("BENCH_TIMEOUT", 180));
    let kinds = bins.selected(
        "BENCH_SENDERS",
        &SenderKind::ALL,
        SenderKind::name,
        SenderKind::program,
    );
    let prefixes = prefixes(n);
    println!(
        "fanout: {n} IPv6 /64s to {peers} sinks, {rounds} rounds, senders {:?}, ferry {}",
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        bins.ferry.display()
    );
    println!(
        "versions: frr {}, bird2 {}, gobgpd {}",
        package_version("frr"),
        package_version("bird2"),
        package_version("gobgpd")
    );
    let mut results: BTreeMap<&str, Vec<FanoutRun>> = BTreeMap::new();
    for round in 1..=rounds {
        for &k in &kinds {
            let r = fanout_once(k, &prefixes, peers, &bins, timeout);
            println!(
                "round {round} {:<6} last peer holds all {:>7} s  (command returned {:>6} s)  peak RSS {:>6} MiB  CPU {:>6} s{}",
                k.name(),
                f2(r.secs),
                f2(r.command_secs),
                r.rss_kib.map(|v| format!("{:.0}", v as f64 / 1024.0)).unwrap_or_else(|| "-".into()),
                f2(r.cpu_secs),
                r.error.as_deref().map(|e| format!("\n  error: {e}")).unwrap_or_default()
            );
            results.entry(k.name()).or_default().push(r);
        }
    }
    let med = |v: &[FanoutRun], f: fn(&FanoutRun) -> Option<f64>| -> Option<f64> {
        let xs: Vec<f64> = v.iter().filter_map(f).collect();
        (xs.len() == v.len() && !xs.is_empty()).then(|| median(&xs))
    };
    let ft = results.get("ferry").and_then(|v| med(v, |r| r.secs));
    println!();
    println!("| sender | median time to last peer (s) | runs (s) | ratio to Ferry | median command (s) | median CPU (s) | peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|");
    for k in &kinds {
        let v = &results[k.name()];
        let t = med(v, |r| r.secs);
        let runs: Vec<String> = v.iter().map(|r| f2(r.secs)).collect();
        let ratio = match (t, ft) {
            (Some(t), Some(f)) if f > 0.0 => format!("{:.2}x", t / f),
            _ => "-".into(),
        };
        let rss = v.iter().filter_map(|r| r.rss_kib).max();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            k.name(),
            f2(t),
            runs.join(", "),
            ratio,
            f2(med(v, |r| r.command_secs)),
            f2(med(v, |r| r.cpu_secs)),
            rss.map(|v| format!("{:.0}", v as f64 / 1024.0))
                .unwrap_or_else(|| "-".into())
        );
    }
}
