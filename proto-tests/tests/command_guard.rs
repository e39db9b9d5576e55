//! CI regression guard for Ferry's commands as operators and scripts run them (issue 19
//! items 1 and 3), as ratios to other daemons measured in the same run:
//!
//! * `ferry announce P` / `ferry withdraw P` as a new process, from its start to its UPDATE
//!   captured in the speaker's namespace ([`proto_tests::cli_wire`]), against GoBGP's CLI
//!   (`gobgp global rib add|del`) and ExaBGP's `exabgpcli`, alternating, medians of
//!   [`WIRE_ROUNDS`] rounds each way. Fails when Ferry's median is above [`WIRE_RATIO`] times
//!   the faster of the two.
//! * 100,000 prefixes by `ferry announce --file` / `ferry withdraw --file` (a text file, one
//!   prefix a line) to an FRR receiver against BIRD driven by `birdc configure`
//!   ([`proto_tests::scale`]), alternating, medians of [`SCALE_ROUNDS`] (a round in which FRR
//!   stalls on the withdraw is run again, see [`FRR_STALL_CPU_SECS`]). Fails when Ferry's
//!   announce median is above [`ANNOUNCE_RATIO`] times BIRD's, its withdraw median above
//!   [`WITHDRAW_RATIO`] times, or its peak RSS above [`RSS_RATIO`] times BIRD's: today's
//!   level with room for noise, a guard against regressions (the target is 1.0x).
//!
//! Needs a release build of Ferry (`FERRY_RELEASE_BIN`, as `ingest_guard`), root and the
//! daemons; without them it skips, or fails under `FIT_REQUIRE=1`. `scripts/test.sh` runs it on
//! its own after the rest of the suite, so that parallel tests do not skew the ratios.

use std::path::PathBuf;
use std::time::Duration;

use proto_tests::bench::{median, prefixes};
use proto_tests::cli_wire::{Bench, Kind};
use proto_tests::fanout::SenderKind;
use proto_tests::ingest::Bins;
use proto_tests::scale::{cpu_text, f2, one_run, Setup};
use testkit::netns::Lab;
use testkit::root::can_run_with;

/// Rounds of announce + withdraw per sender (two more first, not counted).
const WIRE_ROUNDS: usize = 10;
/// Ferry's median command -> UPDATE at most this times the faster other CLI's.
const WIRE_RATIO: f64 = 1.0;
const SCALE_ROUNDS: usize = 3;
/// A withdraw in which FRR's bgpd and zebra spent more CPU than this is FRR's stall (see
/// below): the round is run again, at most [`STALL_RETRIES`] times in all.
const FRR_STALL_CPU_SECS: f64 = 0.2;
const STALL_RETRIES: usize = 6;
// The limits below hold today's level with room for noise: a guard against regressions, not
// issue 19's targets (at most BIRD's time and RSS). Quiet machine, 2026-12-05 06:26-06:36 UTC,
// after the update group's bulk paths (`announce_scale`, 6 rounds, BENCH_SETTLE_MS 3000 and
// 8000): `--file` announce 0.21-0.35 s against BIRD's 0.27-0.37 s (medians 0.75x and 0.81x;
// 1.31x before the bulk path of the store was reworked, up to 1.45x after it), withdraw
// 0.06-0.09 s against 0.06-0.07 s without FRR's stall (medians 1.12-1.25x with it), peak RSS
// 62-65 against 65-66 MiB (0.97-0.98x).
// FRR's stall: in 7 of 37 of Ferry's 100k withdraws that day and in none of BIRD's 31 (with
// the build before the bulk paths too, 1 of 6), and in 3 of 5 in the full test run after the
// rest of the suite, FRR took 0.24-0.66 s instead of 0.06-0.08 s, spending 0.3-1.06 s of CPU
// (0.03 s as a rule). What it does then (`perf record -a -g`): bgpd's route-processing work
// queue (`work_queue_run`: a zebra message per route, each with a large zeroed `memset`) runs
// before the last withdraw UPDATEs are parsed, and the count of received prefixes reaches 0
// only after it. FRR holds that queue back 50 ms after its first item
// (`WORK_QUEUE_DEFAULT_HOLD`): when parsing the 14 UPDATEs takes longer, the queue comes
// first. Why it hits Ferry's rounds and not BIRD's is not known: it is not only the CPU the
// sender still uses while FRR parses (Ferry writes and fdatasyncs its journal after sending,
// BIRD is done before it sends), for with the speaker at nice 19 one of 8 rounds still
// stalled, nor graceful restart (with it on Ferry's side one of 10 did). A deployment has the
// routers on other machines; here such a round is run again rather than let one stall decide
// the median of three. A regression of Ferry's own withdraw shows in every round and still
// fails.
/// Ferry's `--file` announce median at most this times BIRD's.
const ANNOUNCE_RATIO: f64 = 1.3;
/// Ferry's `--file` withdraw median at most this times BIRD's.
const WITHDRAW_RATIO: f64 = 3.0;
/// Ferry's peak RSS at most this times BIRD's.
const RSS_RATIO: f64 = 1.1;

/// FRR's CPU during the withdraw says FRR stalled (see [`FRR_STALL_CPU_SECS`]).
fn frr_stalled_on_withdraw(r: &proto_tests::scale::Run) -> bool {
    r.withdraw_cpu
        .is_some_and(|(_, frr)| frr > FRR_STALL_CPU_SECS)
}

fn release_ferry(test: &str) -> Option<PathBuf> {
    let require = std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1");
    match std::env::var_os("FERRY_RELEASE_BIN").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        Some(p) => panic!("FERRY_RELEASE_BIN={} is not a file", p.display()),
        None if require => panic!(
            "{test}: FERRY_RELEASE_BIN is not set (FIT_REQUIRE=1); scripts/test.sh builds \
             `cargo build --release --bin ferry` and sets it"
        ),
        None => {
            eprintln!("SKIPPED {test}: FERRY_RELEASE_BIN (a release ferry binary) is not set");
            None
        }
    }
}

#[test]
fn ferry_command_to_the_wire_ahead_of_gobgp_and_exabgp_clis() {
    let test = "command_guard wire";
    if !can_run_with(
        test,
        &["tcpdump", "bgpd", "gobgpd", "gobgp", "exabgp", "exabgpcli"],
    ) {
        return;
    }
    let Some(ferry) = release_ferry(test) else {
        return;
    };
    let kinds = [Kind::Ferry, Kind::GoBgp, Kind::ExaBgpCli];
    let labs: Vec<Lab> = kinds.iter().map(|k| Lab::new(k.lab_name())).collect();
    let benches: Vec<Bench> = kinds
        .iter()
        .zip(&labs)
        .map(|(k, lab)| {
            Bench::start(*k, lab, &ferry).unwrap_or_else(|e| panic!("{}: {e}", k.name()))
        })
        .collect();
    let mut update: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for round in 0..WIRE_ROUNDS + 2 {
        for (i, b) in benches.iter().enumerate() {
            for announce in [true, false] {
                let t = b
                    .once(announce)
                    .unwrap_or_else(|e| panic!("{} round {round}: {e}", b.kind.name()));
                if round >= 2 {
                    update[i].push(t.update_ms);
                }
            }
        }
    }
    let med: Vec<f64> = update.iter().map(|v| median(v)).collect();
    let others = med[1].min(med[2]);
    eprintln!(
        "command -> UPDATE medians: ferry {:.3} ms, gobgp {:.3} ms, exabgpcli {:.3} ms; ferry / \
         faster other {:.2}",
        med[0],
        med[1],
        med[2],
        med[0] / others
    );
    assert!(
        med[0] <= others * WIRE_RATIO,
        "`ferry announce|withdraw` took {:.3} ms (median) to its UPDATE, more than {WIRE_RATIO} x \
         the faster other CLI's {others:.3} ms",
        med[0]
    );
}

#[test]
fn ferry_file_100k_within_bird() {
    let test = "command_guard file";
    if !can_run_with(test, &["bgpd", "vtysh", "bird", "birdc"]) {
        return;
    }
    let Some(ferry) = release_ferry(test) else {
        return;
    };
    let setup = Setup {
        bins: Bins {
            ferry,
            blaster: PathBuf::from(env!("CARGO_BIN_EXE_bgp_blaster")),
        },
        timeout: Duration::from_secs(120),
        settle: Duration::from_secs(2),
        pcap_dir: None,
    };
    let list = prefixes(100_000);
    let kinds = [SenderKind::FerryFile, SenderKind::Bird];
    let mut runs = [Vec::new(), Vec::new()];
    let mut retries = 0;
    for round in 1..=SCALE_ROUNDS {
        for (i, k) in kinds.iter().enumerate() {
            let r = loop {
                let r = one_run(&setup, *k, &list, round);
                eprintln!(
                    "round {round} {}: announce {} s, withdraw {} s ({}), peak RSS {:?} KiB",
                    k.name(),
                    f2(r.announce),
                    f2(r.withdraw),
                    cpu_text(r.withdraw_cpu),
                    r.rss_kib
                );
                if let Some(e) = &r.error {
                    panic!("{} round {round}: {e}", k.name());
                }
                if frr_stalled_on_withdraw(&r) && retries < STALL_RETRIES {
                    retries += 1;
                    eprintln!(
                        "round {round} {}: FRR spent {} s of CPU on the withdraw (about 0.03 s \
                         as a rule): FRR's stall, run again ({retries} of {STALL_RETRIES})",
                        k.name(),
                        f2(r.withdraw_cpu.map(|(_, frr)| frr))
                    );
                    continue;
                }
                break r;
            };
            runs[i].push(r);
        }
    }
    let med = |i: usize, f: fn(&proto_tests::scale::Run) -> Option<f64>| {
        median(
            &runs[i]
                .iter()
                .map(|r| f(r).expect("a run without error"))
                .collect::<Vec<_>>(),
        )
    };
    let (fa, ba) = (med(0, |r| r.announce), med(1, |r| r.announce));
    let (fw, bw) = (med(0, |r| r.withdraw), med(1, |r| r.withdraw));
    let (fr, br) = (
        med(0, |r| r.rss_kib.map(|v| v as f64)),
        med(1, |r| r.rss_kib.map(|v| v as f64)),
    );
    eprintln!(
        "100k by command: announce ferry {fa:.3} s, bird {ba:.3} s ({:.2}x); withdraw ferry \
         {fw:.3} s, bird {bw:.3} s ({:.2}x); peak RSS ferry {fr:.0} KiB, bird {br:.0} KiB ({:.2}x)",
        fa / ba,
        fw / bw,
        fr / br
    );
    assert!(
        fa <= ba * ANNOUNCE_RATIO,
        "`ferry announce --file` of 100k took {fa:.3} s, more than {ANNOUNCE_RATIO} x BIRD's {ba:.3} s"
    );
    assert!(
        fw <= bw * WITHDRAW_RATIO,
        "`ferry withdraw --file` of 100k took {fw:.3} s, more than {WITHDRAW_RATIO} x BIRD's {bw:.3} s"
    );
    assert!(
        fr <= br * RSS_RATIO,
        "Ferry's peak RSS with 100k routes {fr:.0} KiB is more than {RSS_RATIO} x BIRD's {br:.0} KiB"
    );
}
