//! Issue 7, benchmark 1: announce and withdraw N = 1,000 / 10,000 / 100,000 IPv6 prefixes by
//! command to an FRR receiver, from Ferry, BIRD 2, GoBGP and FRR, in one alternating run.
//!
//! Each run uses fresh namespaces and the receiver of `benches/announce_100k.rs`
//! (`proto_tests::bench::Receiver`: FRR 8.4 bgpd + zebra, AS 65001, `2001:db8:ffff::1`); the
//! sender (AS 65002, `2001:db8:ffff::2`, passive, IPv6 unicast) starts without routes. Once the
//! session is Established (and 1 s has passed), t0 is taken just before the announce command
//! (see `proto_tests::fanout::CommandSender`: Ferry one `POST /v1/announce`, BIRD a config with
//! N static routes and `birdc configure`, GoBGP `gobgp mrt inject global`, FRR `vtysh -f` with N
//! `network` lines); the run ends at the first poll (every 5 ms, over one kept connection to
//! bgpd's vty socket, ~0.1 ms a query) of `show bgp ipv6 unicast summary json` where FRR holds
//! all N. Then a settle: at least `BENCH_SETTLE_MS` (8,000), and on until FRR (bgpd, zebra)
//! and the sender used at most one clock tick of CPU in 300 ms, so that FRR has finished
//! with the announce. After 3 s (the earlier default) FRR was idle by that measure, yet 4 of
//! 20 100k withdraws, of either sender, took 3-6x as long with FRR busy 0.3-0.7 CPU s in
//! them; after 8 s 1 of 28 did (what FRR does then is not known). Then the withdraw
//! command (Ferry `POST /v1/withdraw`,
//! BIRD the config without the routes, GoBGP `gobgp global rib -a ipv6 del all`, FRR `no
//! network` lines) is timed until FRR holds none. Sizes and senders alternate inside each
//! round; medians over the rounds, ratios to Ferry.
//!
//! Extended messages (RFC 8654, UPDATEs up to 65,535 octets): FRR advertises them by
//! default, so does Ferry; BIRD is configured with `enable extended messages on` so that
//! it sends the same large UPDATEs; GoBGP has no support and sends 4,096-octet ones.
//!
//! Run as root, after building the release binary:
//! ```text
//! cargo build --release --bin ferry
//! cargo bench -p proto-tests --bench announce_scale
//! ```
//! Environment: `FERRY_BIN` (default `target/release/ferry`), `BENCH_SIZES` (default
//! `1000,10000,100000`), `BENCH_ROUNDS` (3), `BENCH_SENDERS` (e.g. `ferry,bird`),
//! `BENCH_TIMEOUT` (seconds per wait, 300), `BENCH_SETTLE_MS` (8000), `BENCH_PCAP` (a
//! directory: each run's BGP traffic, seen from the sender's namespace, is written there as
//! `<sender>-<N>-<round>.pcap` by `tcpdump`, to compare how the senders pack and pace UPDATEs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use proto_tests::bench::{env_num, median, package_version, prefixes};
use proto_tests::fanout::SenderKind;
use proto_tests::ingest::Bins;
use proto_tests::scale::{cpu_text, f2, one_run, Run, Setup};
use testkit::root::can_run_with;

fn main() {
    if !can_run_with("announce_scale", &["vtysh", "birdc", "gobgp"]) {
        return;
    }
    let bins = Bins::from_env(env!("CARGO_BIN_EXE_bgp_blaster"));
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|e| panic!("BENCH_SIZES: {s:?}: {e}"))
        })
        .collect();
    let rounds = env_num("BENCH_ROUNDS", 3) as usize;
    let setup = Setup {
        bins,
        timeout: Duration::from_secs(env_num("BENCH_TIMEOUT", 300)),
        settle: Duration::from_millis(env_num("BENCH_SETTLE_MS", 8000)),
        pcap_dir: std::env::var_os("BENCH_PCAP").map(PathBuf::from),
    };
    let bins = &setup.bins;
    if let Some(dir) = &setup.pcap_dir {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("BENCH_PCAP {}: {e}", dir.display()));
    }
    let kinds = bins.selected(
        "BENCH_SENDERS",
        &SenderKind::ALL,
        SenderKind::name,
        SenderKind::program,
    );
    println!(
        "announce_scale: sizes {sizes:?}, {rounds} rounds, senders {:?}, ferry {}",
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        bins.ferry.display()
    );
    println!(
        "versions: frr {}, bird2 {}, gobgpd {}",
        package_version("frr"),
        package_version("bird2"),
        package_version("gobgpd")
    );
    let lists: Vec<Vec<String>> = sizes.iter().map(|&n| prefixes(n)).collect();
    let mut results: BTreeMap<(usize, &str), Vec<Run>> = BTreeMap::new();
    for round in 1..=rounds {
        for (i, &n) in sizes.iter().enumerate() {
            for &k in &kinds {
                let r = one_run(&setup, k, &lists[i], round);
                println!(
                    "round {round} n={n:<6} {:<6} announce {:>7} s (command {:>7} s, {})  settle {:.1} s  withdraw {:>7} s (command {:>7} s, {})  peak RSS {} MiB{}",
                    k.name(),
                    f2(r.announce),
                    f2(r.announce_cmd),
                    cpu_text(r.announce_cpu),
                    r.settle.unwrap_or(f64::NAN),
                    f2(r.withdraw),
                    f2(r.withdraw_cmd),
                    cpu_text(r.withdraw_cpu),
                    r.rss_kib.map(|v| format!("{:.0}", v as f64 / 1024.0)).unwrap_or_else(|| "-".into()),
                    r.error.as_deref().map(|e| format!("\n  error: {e}")).unwrap_or_default()
                );
                results.entry((n, k.name())).or_default().push(r);
            }
        }
    }
    let med = |v: &[Run], f: fn(&Run) -> Option<f64>| -> Option<f64> {
        let xs: Vec<f64> = v.iter().filter_map(f).collect();
        (xs.len() == v.len() && !xs.is_empty()).then(|| median(&xs))
    };
    let ratio = |x: Option<f64>, f: Option<f64>| match (x, f) {
        (Some(x), Some(f)) if f > 0.0 => format!("{:.2}x", x / f),
        _ => "-".into(),
    };
    println!();
    println!("| N | sender | median announce (s) | vs Ferry | median command (s) | median withdraw (s) | vs Ferry | median command (s) | peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        let fv = results.get(&(n, "ferry"));
        let fa = fv.and_then(|v| med(v, |r| r.announce));
        let fw = fv.and_then(|v| med(v, |r| r.withdraw));
        for k in &kinds {
            let v = &results[&(n, k.name())];
            let a = med(v, |r| r.announce);
            let w = med(v, |r| r.withdraw);
            let rss = v.iter().filter_map(|r| r.rss_kib).max();
            println!(
                "| {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
                k.name(),
                f2(a),
                ratio(a, fa),
                f2(med(v, |r| r.announce_cmd)),
                f2(w),
                ratio(w, fw),
                f2(med(v, |r| r.withdraw_cmd)),
                rss.map(|v| format!("{:.0}", v as f64 / 1024.0))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
}
