//! The benchmark harness itself, small and fast, so that CI notices when it breaks even while
//! the ingest guard is ignored: `bgp_blaster blast` delivers a 2,000-prefix synthetic table to
//! Ferry and to BIRD and each reports exactly 2,000 prefixes received; `bgp_blaster sink`
//! sessions each hold all 300 prefixes that Ferry and BIRD announce by command. No timing is
//! asserted. Needs root and BIRD (skips otherwise, fails with FIT_REQUIRE=1); the Ferry binary
//! is [`proto_tests::ferry::ferry_bin`] (the debug build CI uses).

use std::path::PathBuf;
use std::time::Duration;

use proto_tests::bench::prefixes;
use proto_tests::fanout::{fanout_once, SenderKind};
use proto_tests::ingest::{ingest_once, write_table, Bins, ReceiverKind};
use testkit::root::can_run_with;

fn bins() -> Bins {
    Bins {
        ferry: proto_tests::ferry::ferry_bin(),
        blaster: PathBuf::from(env!("CARGO_BIN_EXE_bgp_blaster")),
    }
}

#[test]
fn blaster_table_reaches_ferry_and_bird() {
    if !can_run_with("bench_harness_ingest", &["bird", "birdc"]) {
        return;
    }
    let bins = bins();
    let dir = std::env::temp_dir().join(format!("fit-bench-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let table = dir.join("table.bin");
    let t = write_table(&table, 2_000).expect("table");
    assert_eq!(t.spec.sets, 682);
    for kind in [ReceiverKind::Ferry, ReceiverKind::Bird] {
        let r = ingest_once(
            "benchh",
            kind,
            &table,
            2_000,
            &bins,
            Duration::from_secs(30),
        );
        assert!(r.error.is_none(), "{}: {:?}", kind.name(), r.error);
        assert!(r.secs.is_some_and(|s| s > 0.0), "{}: {r:?}", kind.name());
        assert!(r.rss_kib.is_some_and(|k| k > 0), "{}: {r:?}", kind.name());
        assert!(r.cpu_secs.is_some(), "{}: {r:?}", kind.name());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sinks_hold_what_ferry_and_bird_announce() {
    if !can_run_with("bench_harness_fanout", &["bird", "birdc"]) {
        return;
    }
    let bins = bins();
    let list = prefixes(300);
    for kind in [SenderKind::Ferry, SenderKind::Bird] {
        let r = fanout_once(kind, &list, 3, &bins, Duration::from_secs(30));
        assert!(r.error.is_none(), "{}: {:?}", kind.name(), r.error);
        assert!(r.secs.is_some_and(|s| s > 0.0), "{}: {r:?}", kind.name());
    }
}
