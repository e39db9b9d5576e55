//! Issue 7, benchmark 2: ingest of a synthetic full IPv4 table (800,000 prefixes, 273,000
//! attribute sets, see `proto_tests::fulltable`) by Ferry, BIRD 2, FRR and GoBGP on the same
//! machine in one run, from one common sender (`bgp_blaster`, pre-encoded UPDATEs).
//!
//! Per run (fresh namespaces, see `proto_tests::ingest`): time from `GO` to the blaster until
//! the receiver reports every prefix, the receiver's peak RSS (VmHWM; FRR: bgpd, run without
//! zebra) and its CPU seconds (utime+stime over the run). Receivers alternate inside each
//! round (Ferry, BIRD, FRR, GoBGP, then again) so that the machine's background load hits all
//! of them; medians over the rounds, ratios to Ferry.
//!
//! Run as root, after building the release binary:
//! ```text
//! cargo build --release --bin ferry
//! cargo bench -p proto-tests --bench ingest_full
//! ```
//! Environment: `FERRY_BIN` (default `target/release/ferry`), `BENCH_INGEST_N` (prefixes,
//! default 800000), `BENCH_ROUNDS` (3), `BENCH_RECEIVERS` (e.g. `ferry,bird`), `BENCH_TIMEOUT`
//! (seconds per run, 300).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proto_tests::bench::{env_num, median, package_version};
use proto_tests::ingest::{ingest_once, write_table, Bins, IngestRun, ReceiverKind};
use testkit::root::can_run_with;

fn f2(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into())
}

fn mib(v: Option<f64>) -> String {
    v.map(|k| format!("{:.0}", k / 1024.0))
        .unwrap_or_else(|| "-".into())
}

fn main() {
    if !can_run_with("ingest_full", &["vtysh", "birdc"]) {
        return;
    }
    let bins = Bins::from_env(env!("CARGO_BIN_EXE_bgp_blaster"));
    let n = env_num("BENCH_INGEST_N", 800_000) as usize;
    let rounds = env_num("BENCH_ROUNDS", 3) as usize;
    let timeout = Duration::from_secs(env_num("BENCH_TIMEOUT", 300));
    let kinds = bins.selected(
        "BENCH_RECEIVERS",
        &ReceiverKind::ALL,
        ReceiverKind::name,
        ReceiverKind::program,
    );
    let dir = std::env::temp_dir().join(format!("fit-ingest-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let table_path = dir.join("table.bin");
    let g0 = Instant::now();
    let table = write_table(&table_path, n).unwrap_or_else(|e| panic!("table: {e}"));
    println!(
        "ingest_full: {n} IPv4 prefixes, {} attribute sets, {} UPDATEs, {:.1} MB on the wire \
         (generated in {:.1} s); {rounds} rounds, receivers {:?}, ferry {}",
        table.spec.sets,
        table.updates,
        table.wire.len() as f64 / 1e6,
        g0.elapsed().as_secs_f64(),
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        bins.ferry.display()
    );
    println!(
        "versions: frr {}, bird2 {}, gobgpd {}",
        package_version("frr"),
        package_version("bird2"),
        package_version("gobgpd"),
    );
    let mut results: BTreeMap<&str, Vec<IngestRun>> = BTreeMap::new();
    for round in 1..=rounds {
        for &k in &kinds {
            let r = ingest_once("ingest", k, &table_path, n as u64, &bins, timeout);
            println!(
                "round {round} {:<6} all held {:>7} s  (blaster done writing {:>6} s)  peak RSS {:>6} MiB  CPU {:>6} s{}",
                k.name(),
                f2(r.secs),
                f2(r.sent_secs),
                mib(r.rss_kib.map(|v| v as f64)),
                f2(r.cpu_secs),
                r.error.as_deref().map(|e| format!("\n  error: {e}")).unwrap_or_default()
            );
            results.entry(k.name()).or_default().push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let med = |v: &[IngestRun], f: fn(&IngestRun) -> Option<f64>| -> Option<f64> {
        let xs: Vec<f64> = v.iter().filter_map(f).collect();
        (xs.len() == v.len() && !xs.is_empty()).then(|| median(&xs))
    };
    let ferry = results.get("ferry");
    let ft = ferry.and_then(|v| med(v, |r| r.secs));
    let fr = ferry.and_then(|v| med(v, |r| r.rss_kib.map(|k| k as f64)));
    let fc = ferry.and_then(|v| med(v, |r| r.cpu_secs));
    let ratio = |x: Option<f64>, f: Option<f64>| match (x, f) {
        (Some(x), Some(f)) if f > 0.0 => format!("{:.2}x", x / f),
        _ => "-".into(),
    };
    println!();
    println!("| receiver | median time (s) | runs (s) | time vs Ferry | median peak RSS (MiB) | RSS vs Ferry | median CPU (s) | CPU vs Ferry |");
    println!("|---|---|---|---|---|---|---|---|");
    for k in &kinds {
        let v = &results[k.name()];
        let t = med(v, |r| r.secs);
        let rss = med(v, |r| r.rss_kib.map(|k| k as f64));
        let cpu = med(v, |r| r.cpu_secs);
        let runs: Vec<String> = v.iter().map(|r| f2(r.secs)).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            k.name(),
            f2(t),
            runs.join(", "),
            ratio(t, ft),
            mib(rss),
            ratio(rss, fr),
            f2(cpu),
            ratio(cpu, fc)
        );
    }
}
