//! What a full table costs against the per-peer attribute budget (`max_attribute_bytes`).
//!
//! Proves: the synthetic full table of `proto_tests::fulltable` (800,000 IPv4 prefixes in
//! 273,000 distinct attribute sets, the diversity of a real Internet table) applied to one
//! peer's Adj-RIB-In counts well under the default budget (at most a quarter of it), so the
//! default never refuses a normal full table. Prints the figure for docs/resilience.md.
//! Nothing is injected: the table is generated, framed and decoded as the daemon would.

use std::net::Ipv4Addr;

use bytes::BytesMut;
use ferry::config::DEFAULT_MAX_ATTRIBUTE_BYTES;
use ferry::speaker::AdjRibIn;
use ferry::wire::{split_frame, Context, Message, MAX_MESSAGE_LEN};
use proto_tests::fulltable::{generate, TableSpec};

#[test]
fn a_full_table_fits_the_default_attribute_budget_four_times_over() {
    let table = generate(TableSpec::FULL, 65001, Ipv4Addr::new(192, 0, 2, 2)).unwrap();
    let ctx = Context::default();
    let mut rib = AdjRibIn::unlimited();
    let mut wire = BytesMut::from(&table.wire[..]);
    while let Some(frame) = split_frame(&mut wire, MAX_MESSAGE_LEN).unwrap() {
        let Message::Update(u) = Message::decode(&frame, &ctx).unwrap() else {
            panic!("not an UPDATE");
        };
        rib.apply(&u, true).unwrap();
    }
    assert_eq!(rib.len(), TableSpec::FULL.prefixes);
    let used = rib.attribute_bytes();
    println!(
        "full table: {} prefixes, {} attribute sets, {used} octets counted ({:.1} per set), default budget {DEFAULT_MAX_ATTRIBUTE_BYTES}",
        rib.len(),
        rib.attribute_sets(),
        used as f64 / rib.attribute_sets() as f64
    );
    assert!(
        (used as u64) * 4 <= DEFAULT_MAX_ATTRIBUTE_BYTES,
        "{used} octets for a full table leaves less than 4x headroom under {DEFAULT_MAX_ATTRIBUTE_BYTES}"
    );
}
