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
use std::time::{Duration, Instant};

use proto_tests::bench::{
    env_num, median, package_version, prefixes, topology, vm_hwm_kib, Receiver, RECEIVER_AS,
    RECEIVER_IP, SENDER_AS, SENDER_ID, SENDER_IP,
};
use proto_tests::fanout::{CommandSender, Me, SenderKind};
use proto_tests::ingest::{cpu_secs, Bins};
use testkit::daemons::{Family, Peer};
use testkit::netns::Lab;
use testkit::root::can_run_with;

const POLL: Duration = Duration::from_millis(2);

#[derive(Clone, Debug, Default)]
struct Run {
    announce: Option<f64>,
    announce_cmd: Option<f64>,
    withdraw: Option<f64>,
    withdraw_cmd: Option<f64>,
    rss_kib: Option<u64>,
    /// CPU seconds (utime+stime) the sender and FRR (bgpd and zebra) spent from the command
    /// until FRR held all (announce) and none (withdraw).
    announce_cpu: Option<(f64, f64)>,
    withdraw_cpu: Option<(f64, f64)>,
    /// Seconds from FRR holding all to the withdraw command (see `wait_until_quiet`).
    settle: Option<f64>,
    error: Option<String>,
}

/// How long FRR and the sender must stay (nearly) idle before the withdraw.
const QUIET: Duration = Duration::from_millis(300);

/// Wait until the sender and FRR together used at most one clock tick (`cpu_secs`' unit,
/// 10 ms) of CPU during `QUIET`.
fn wait_until_quiet(cpu: &dyn Fn() -> Option<(f64, f64)>, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let total = || cpu().map(|(s, f)| s + f);
    let mut last = total().ok_or("cannot read the CPU time of the sender or FRR")?;
    loop {
        std::thread::sleep(QUIET);
        let now = total().ok_or("cannot read the CPU time of the sender or FRR")?;
        if now - last <= 0.0101 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "FRR and the sender still busy {} s after the announce",
                timeout.as_secs()
            ));
        }
        last = now;
    }
}

/// Wall-clock seconds since the epoch, to find t0 in a capture (`frame.time_epoch`).
fn epoch_secs() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:.6}", d.as_secs_f64())
}

fn cpu_text(v: Option<(f64, f64)>) -> String {
    v.map(|(s, f)| format!("cpu sender {s:.2} frr {f:.2}"))
        .unwrap_or_else(|| "cpu -".into())
}

fn f2(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into())
}

/// What every run shares (from the environment).
struct Setup {
    bins: Bins,
    /// Longest wait for FRR's count.
    timeout: Duration,
    /// Pause between the announce and the timed withdraw.
    settle: Duration,
    /// Where each run's capture goes (`BENCH_PCAP`).
    pcap_dir: Option<PathBuf>,
}

fn one_run(setup: &Setup, kind: SenderKind, prefixes: &[String], round: usize) -> Run {
    let mut r = Run::default();
    if let Err(e) = inner(setup, kind, prefixes, round, &mut r) {
        r.error = Some(e);
    }
    r
}

fn inner(
    setup: &Setup,
    kind: SenderKind,
    prefixes: &[String],
    round: usize,
    r: &mut Run,
) -> Result<(), String> {
    let Setup {
        bins,
        timeout,
        settle,
        ..
    } = setup;
    let (timeout, settle) = (*timeout, *settle);
    let pcap = setup
        .pcap_dir
        .as_ref()
        .map(|d| d.join(format!("{}-{}-{round}.pcap", kind.name(), prefixes.len())));
    let lab = Lab::new("ascale");
    let (rns, sns) = topology(&lab);
    let capturing = pcap.is_some();
    if let Some(file) = pcap {
        let mut cmd = sns.command("tcpdump");
        cmd.args(["-i", "any", "-s", "0", "-U", "-w"])
            .arg(&file)
            .args(["tcp", "port", "179"]);
        lab.spawn("tcpdump", cmd, &lab.tempdir("pcap").join("tcpdump.log"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let receiver = Receiver::start(&lab, &rns);
    let me = Me {
        asn: SENDER_AS,
        ip: SENDER_IP.into(),
        id: SENDER_ID.into(),
    };
    let peer = Peer::new(RECEIVER_IP, RECEIVER_AS)
        .passive()
        .local_address(SENDER_IP)
        .hold_time(proto_tests::bench::HOLD)
        .families(&[Family::Ipv6])
        .extended_messages();
    let sender = CommandSender::start(kind, &lab, &sns, bins, &me, vec![peer])?;
    receiver.enable()?;
    receiver.wait_count(Instant::now(), 0, POLL, Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(1));
    sender.prepare(prefixes)?;
    let n = prefixes.len() as u64;
    let cpu = || {
        let frr: Option<f64> = receiver.frr.pids().iter().map(|&p| cpu_secs(p)).sum();
        cpu_secs(sender.pid()).zip(frr)
    };
    let cpu_since =
        |c0: Option<(f64, f64)>| c0.zip(cpu()).map(|((s0, f0), (s1, f1))| (s1 - s0, f1 - f0));
    let c0 = cpu();
    let t0 = Instant::now();
    if capturing {
        println!("  announce t0 at {}", epoch_secs());
    }
    sender.announce(prefixes)?;
    r.announce_cmd = Some(t0.elapsed().as_secs_f64());
    let (_, d) = receiver.wait_count(t0, n, POLL, timeout)?;
    r.announce = Some(d.as_secs_f64());
    r.announce_cpu = cpu_since(c0);
    // FRR counts a prefix as received before it has chosen and installed it: let it finish
    // the announce (zebra, kernel) before the withdraw, so that the withdraw of the sender
    // that announced fastest does not pay for FRR's backlog.
    let t_settle = Instant::now();
    std::thread::sleep(settle);
    wait_until_quiet(&cpu, timeout)?;
    r.settle = Some(t_settle.elapsed().as_secs_f64());
    let c1 = cpu();
    let t1 = Instant::now();
    if capturing {
        println!("  withdraw t1 at {}", epoch_secs());
    }
    sender.withdraw(prefixes)?;
    r.withdraw_cmd = Some(t1.elapsed().as_secs_f64());
    let (_, d) = receiver.wait_count(t1, 0, POLL, timeout)?;
    r.withdraw = Some(d.as_secs_f64());
    r.withdraw_cpu = cpu_since(c1);
    r.rss_kib = vm_hwm_kib(sender.pid());
    Ok(())
}

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
