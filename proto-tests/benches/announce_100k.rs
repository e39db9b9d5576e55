//! Issue 3, benchmark 2: announcing 100,000 prefixes to an FRR peer, time until FRR holds all
//! of them, for Ferry against BIRD 2, GoBGP and ExaBGP on the same machine, in one run.
//!
//! Each run uses fresh namespaces (see `proto_tests::bench`): a receiving FRR (`bgpd -Z`) that
//! starts with its neighbor shut down, and one sender that already holds the 100,000 IPv6 /64s
//! of 2001:db8::/32 (Ferry: `routes.json` preloaded in its state dir; BIRD: a static protocol;
//! GoBGP: an MRT TABLE_DUMP_V2 file injected with `gobgp mrt inject global`; ExaBGP: static
//! routes in its config). t0 is just before `no neighbor X shutdown` on FRR; the run ends when
//! `show bgp ipv6 unicast summary json` (polled every 25 ms) reports all prefixes received.
//! Then every prefix is withdrawn (Ferry: `POST /v1/withdraw` of all; BIRD: `birdc disable`
//! of the static protocol; GoBGP: `gobgp global rib -a ipv6 del all`; ExaBGP: one
//! `withdraw route` API line per prefix), timed from just before the command until FRR holds
//! 0. The sender's peak RSS (`VmHWM`) is read at the end of the run.
//!
//! Senders alternate per round (Ferry, BIRD, GoBGP, ExaBGP, then again), 3 rounds.
//!
//! Run as root, after building the release binary:
//! ```text
//! cargo build --release --bin ferry
//! cargo bench -p proto-tests --bench announce_100k
//! ```
//! Environment: `FERRY_BIN` (default `target/release/ferry`), `BENCH_N` (prefixes, default
//! 100000), `BENCH_ROUNDS` (3), `BENCH_SENDERS` (e.g. `ferry,bird`), `BENCH_TIMEOUT` (seconds
//! per wait, 180), `BENCH_FERRY_LOG` (Ferry's `FERRY_LOG`, default `warn`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto_tests::bench::{
    env_num, median, package_version, prefixes, topology, vm_hwm_kib, Receiver, Sender, SenderKind,
};
use testkit::netns::Lab;
use testkit::root::can_run_with;

const POLL: Duration = Duration::from_millis(25);

#[derive(Clone, Debug, Default)]
struct RunResult {
    established: Option<f64>,
    hold: Option<f64>,
    withdraw: Option<f64>,
    rss_kib: Option<u64>,
    errors: Vec<String>,
}

fn one_run(
    kind: SenderKind,
    prefixes: &[String],
    ferry_bin: &Path,
    timeout: Duration,
) -> RunResult {
    let mut r = RunResult::default();
    let lab = Lab::new("a100k");
    let (rns, sns) = topology(&lab);
    let receiver = Receiver::start(&lab, &rns);
    let sender = match Sender::start(kind, &lab, &sns, prefixes, ferry_bin) {
        Ok(s) => s,
        Err(e) => {
            r.errors.push(format!("start: {e}"));
            return r;
        }
    };
    let n = prefixes.len() as u64;
    let t0 = Instant::now();
    if let Err(e) = receiver.enable() {
        r.errors.push(format!("enable: {e}"));
        return r;
    }
    match receiver.wait_count(t0, n, POLL, timeout) {
        Ok((est, hold)) => {
            r.established = est.map(|d| d.as_secs_f64());
            r.hold = Some(hold.as_secs_f64());
        }
        Err(e) => {
            r.errors.push(format!(
                "announce: {e}\n--- sender log tail ---\n{}",
                testkit::daemons::tail_file(&sender.log_path(), 10)
            ));
            r.rss_kib = vm_hwm_kib(sender.pid());
            return r;
        }
    }
    let t1 = Instant::now();
    match sender
        .withdraw_all(prefixes)
        .and_then(|()| receiver.wait_count(t1, 0, POLL, timeout))
    {
        Ok((_, d)) => r.withdraw = Some(d.as_secs_f64()),
        Err(e) => r.errors.push(format!("withdraw: {e}")),
    }
    r.rss_kib = vm_hwm_kib(sender.pid());
    r
}

fn fmt_s(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}"))
        .unwrap_or_else(|| "timeout".into())
}

fn main() {
    if !can_run_with("announce_100k", &["/usr/lib/frr/bgpd", "vtysh"]) {
        return;
    }
    let ferry_bin = std::env::var_os("FERRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/ferry")
        });
    let n = env_num("BENCH_N", 100_000) as usize;
    let rounds = env_num("BENCH_ROUNDS", 3) as usize;
    let timeout = Duration::from_secs(env_num("BENCH_TIMEOUT", 180));
    let wanted = std::env::var("BENCH_SENDERS").unwrap_or_default();
    let kinds: Vec<SenderKind> = SenderKind::ALL
        .into_iter()
        .filter(|k| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == k.name()))
        .collect();
    let mut missing = Vec::new();
    for k in &kinds {
        let prog = match k {
            SenderKind::Ferry => ferry_bin.display().to_string(),
            SenderKind::Bird => "bird".into(),
            SenderKind::GoBgp => "gobgpd".into(),
            SenderKind::ExaBgp => "exabgp".into(),
        };
        if !testkit::root::program_exists(&prog) {
            missing.push(prog);
        }
    }
    assert!(
        missing.is_empty(),
        "missing: {missing:?} (build Ferry with `cargo build --release --bin ferry` or set FERRY_BIN)"
    );
    let prefixes = prefixes(n);
    println!(
        "announce_100k: {n} IPv6 /64s, {rounds} rounds, senders {:?}, ferry {}",
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        ferry_bin.display()
    );
    println!(
        "versions: frr {}, bird2 {}, gobgpd {}, exabgp {}",
        package_version("frr"),
        package_version("bird2"),
        package_version("gobgpd"),
        package_version("exabgp")
    );
    let mut results: BTreeMap<&str, Vec<RunResult>> = BTreeMap::new();
    for round in 1..=rounds {
        for &k in &kinds {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                one_run(k, &prefixes, &ferry_bin, timeout)
            }))
            .unwrap_or_else(|p| RunResult {
                errors: vec![format!(
                    "panic: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )],
                ..RunResult::default()
            });
            println!(
                "round {round} {:<7} established {:>7}  all held {:>7} s  withdrawn {:>7} s  peak RSS {} MiB{}",
                k.name(),
                fmt_s(r.established),
                fmt_s(r.hold),
                fmt_s(r.withdraw),
                r.rss_kib.map(|k| format!("{:.1}", k as f64 / 1024.0)).unwrap_or_else(|| "?".into()),
                if r.errors.is_empty() { String::new() } else { format!("\n  errors: {}", r.errors.join("\n  ")) }
            );
            results.entry(k.name()).or_default().push(r);
        }
    }

    let med = |v: &[RunResult], f: fn(&RunResult) -> Option<f64>| -> Option<f64> {
        let xs: Vec<f64> = v.iter().filter_map(f).collect();
        // a median only when every run finished
        (xs.len() == v.len() && !xs.is_empty()).then(|| median(&xs))
    };
    let ferry_med = results.get("ferry").and_then(|v| med(v, |r| r.hold));
    println!();
    println!(
        "| sender | median time to hold all (s) | runs (s) | ratio to Ferry | median session up (s) | median from Established (s) | median withdraw all (s) | peak RSS (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for k in &kinds {
        let v = &results[k.name()];
        let hold = med(v, |r| r.hold);
        let runs: Vec<String> = v.iter().map(|r| fmt_s(r.hold)).collect();
        let ratio = match (hold, ferry_med) {
            (Some(h), Some(f)) if f > 0.0 => format!("{:.2}x", h / f),
            _ => "-".into(),
        };
        let rss = v.iter().filter_map(|r| r.rss_kib).max();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            k.name(),
            fmt_s(hold),
            runs.join(", "),
            ratio,
            fmt_s(med(v, |r| r.established)),
            fmt_s(med(v, |r| Some(r.hold? - r.established?))),
            fmt_s(med(v, |r| r.withdraw)),
            rss.map(|k| format!("{:.1}", k as f64 / 1024.0))
                .unwrap_or_else(|| "?".into())
        );
    }
}
