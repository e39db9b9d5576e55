//! One run of `announce_scale` (issue 7 benchmark 1, issue 19 item 3): N prefixes announced
//! and then withdrawn by one sender's command to the FRR receiver of [`crate::bench`], in
//! fresh namespaces; the times until FRR holds all and then none, the sender's peak RSS and
//! CPU. The bench (`benches/announce_scale.rs`) alternates senders and sizes; the CI guard
//! (`tests/command_guard.rs`) runs Ferry's `--file` commands against BIRD at 100,000.
//!
//! Never: touches anything outside the run's [`Lab`] (which removes its namespaces and stops
//! its daemons, also on failure).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bench::{
    topology, vm_hwm_kib, Receiver, RECEIVER_AS, RECEIVER_IP, SENDER_AS, SENDER_ID, SENDER_IP,
};
use crate::fanout::{CommandSender, Me, SenderKind};
use crate::ingest::{cpu_secs, Bins};
use testkit::daemons::{Family, Peer};
use testkit::netns::Lab;

const POLL: Duration = Duration::from_millis(2);

#[derive(Clone, Debug, Default)]
pub struct Run {
    pub announce: Option<f64>,
    pub announce_cmd: Option<f64>,
    pub withdraw: Option<f64>,
    pub withdraw_cmd: Option<f64>,
    pub rss_kib: Option<u64>,
    /// CPU seconds (utime+stime) the sender and FRR (bgpd and zebra) spent from the command
    /// until FRR held all (announce) and none (withdraw).
    pub announce_cpu: Option<(f64, f64)>,
    pub withdraw_cpu: Option<(f64, f64)>,
    /// Seconds from FRR holding all to the withdraw command (see `wait_until_quiet`).
    pub settle: Option<f64>,
    pub error: Option<String>,
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

pub fn cpu_text(v: Option<(f64, f64)>) -> String {
    v.map(|(s, f)| format!("cpu sender {s:.2} frr {f:.2}"))
        .unwrap_or_else(|| "cpu -".into())
}

pub fn f2(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into())
}

/// What every run shares (from the environment).
pub struct Setup {
    pub bins: Bins,
    /// Longest wait for FRR's count.
    pub timeout: Duration,
    /// Pause between the announce and the timed withdraw.
    pub settle: Duration,
    /// Where each run's capture goes (`BENCH_PCAP`).
    pub pcap_dir: Option<PathBuf>,
}

pub fn one_run(setup: &Setup, kind: SenderKind, prefixes: &[String], round: usize) -> Run {
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
        .hold_time(crate::bench::HOLD)
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
