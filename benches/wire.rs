//! Decode and encode a synthetic full IPv4 table (800,000 prefixes) on one core.
//!
//! Two shapes of the same table:
//! - `packed`: 8,000 distinct attribute sets, so UPDATEs carry ~100 prefixes each (what a
//!   speaker that groups by attributes sends, and the shape the target is stated for);
//! - `realistic`: 273,000 distinct attribute sets (~3 prefixes per UPDATE), the attribute
//!   diversity of a real Internet table.
//!
//! AS paths have 2-6 hops of 4-octet ASNs, about half the sets carry 1-3 communities and some a
//! large community or MED. `ferry decode`-level work (JSON) is not measured, only the codec.
//! Throughput is reported in prefixes/s by criterion; MB/s = table octets (printed) / time.
//! Run: `cargo bench --bench wire`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use testkit::rng::Rng;

use ferry::wire::{
    split_frame, AsPath, AttributeValue, Community, Context, LargeCommunity, Message, Origin,
    PathAttribute, Update, MAX_MESSAGE_LEN,
};

const PREFIXES: usize = 800_000;

fn attribute_set(rng: &mut Rng) -> Vec<PathAttribute> {
    let hops = 2 + rng.below(5) as usize;
    let asns: Vec<u32> = (0..hops).map(|_| 1 + rng.below(400_000) as u32).collect();
    let mut attrs = vec![
        PathAttribute::new(AttributeValue::Origin(Origin::Igp)),
        PathAttribute::new(AttributeValue::AsPath(AsPath::sequence(&asns))),
        PathAttribute::new(AttributeValue::NextHop(Ipv4Addr::new(
            192,
            0,
            2,
            1 + rng.below(200) as u8,
        ))),
    ];
    if rng.below(4) == 0 {
        attrs.push(PathAttribute::new(AttributeValue::Med(
            rng.below(1000) as u32
        )));
    }
    if rng.below(2) == 0 {
        let n = 1 + rng.below(3);
        let c = (0..n)
            .map(|_| Community::new(asns[0] as u16, rng.below(65_535) as u16))
            .collect();
        attrs.push(PathAttribute::new(AttributeValue::Communities(c)));
    }
    if rng.below(8) == 0 {
        let lc = LargeCommunity {
            global: asns[0],
            local1: 1,
            local2: rng.below(1000) as u32,
        };
        attrs.push(PathAttribute::new(AttributeValue::LargeCommunities(vec![
            lc,
        ])));
    }
    attrs
}

/// Prefixes spread over 1.0.0.0-223.255.255.255 with a /24-heavy length mix.
fn prefix(rng: &mut Rng, i: usize) -> Ipv4Net {
    let len = match rng.below(10) {
        0..=5 => 24,
        6 => 22,
        7 => 23,
        8 => 20,
        _ => 16 + rng.below(8) as u8,
    };
    let addr = (0x0100_0000u32 + (i as u32).wrapping_mul(0x0000_0100 * 3 + 7))
        & !((1u32 << (32 - len)) - 1);
    Ipv4Net::new(Ipv4Addr::from(addr), len).expect("length <= 32")
}

/// Build the table as UPDATEs that each fit 4096 octets.
fn table(sets: usize) -> Vec<Message> {
    let mut rng = Rng::new(0x5eed_f0e5 ^ sets as u64);
    let ctx = Context::default();
    let attr_sets: Vec<Vec<PathAttribute>> = (0..sets).map(|_| attribute_set(&mut rng)).collect();
    let mut by_set: Vec<Vec<Ipv4Net>> = vec![Vec::new(); sets];
    for i in 0..PREFIXES {
        by_set[i % sets].push(prefix(&mut rng, i));
    }
    let mut out = Vec::new();
    for (attrs, prefixes) in attr_sets.into_iter().zip(by_set) {
        let base = Update {
            attributes: attrs,
            ..Update::default()
        };
        let room = MAX_MESSAGE_LEN - Message::Update(base.clone()).encoded_len(&ctx);
        let mut current = Vec::new();
        let mut used = 0;
        for p in prefixes {
            let len = 1 + usize::from(p.prefix_len()).div_ceil(8);
            if used + len > room {
                out.push(Message::Update(Update {
                    nlri: std::mem::take(&mut current),
                    ..base.clone()
                }));
                used = 0;
            }
            used += len;
            current.push(p);
        }
        if !current.is_empty() {
            out.push(Message::Update(Update {
                nlri: current,
                ..base.clone()
            }));
        }
    }
    out
}

fn bench_shape(c: &mut Criterion, name: &str, sets: usize) {
    let ctx = Context::default();
    let messages = table(sets);
    let mut wire = BytesMut::new();
    messages.iter().for_each(|m| m.encode(&ctx, &mut wire));
    let octets = wire.len();
    eprintln!(
        "{name}: {} UPDATEs, {PREFIXES} prefixes, {octets} octets ({:.1} prefixes/UPDATE)",
        messages.len(),
        PREFIXES as f64 / messages.len() as f64
    );
    let frames: Vec<BytesMut> = {
        let mut buf = wire.clone();
        std::iter::from_fn(|| split_frame(&mut buf, MAX_MESSAGE_LEN).expect("valid framing"))
            .collect()
    };
    let mut group = c.benchmark_group(format!("full_table_{name}"));
    group.throughput(Throughput::Elements(PREFIXES as u64));
    group.sample_size(10);
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0;
            for f in &frames {
                if let Ok(Message::Update(u)) = Message::decode(f, &ctx) {
                    n += u.nlri.len();
                }
            }
            assert_eq!(n, PREFIXES);
            black_box(n)
        })
    });
    let mut out = BytesMut::with_capacity(octets);
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            messages.iter().for_each(|m| m.encode(&ctx, &mut out));
            assert_eq!(out.len(), octets);
            black_box(out.len())
        })
    });
    group.finish();
}

fn full_table(c: &mut Criterion) {
    bench_shape(c, "packed", 8_000);
    bench_shape(c, "realistic", 273_000);
}

criterion_group!(benches, full_table);
criterion_main!(benches);
