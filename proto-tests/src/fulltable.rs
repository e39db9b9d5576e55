//! A synthetic full IPv4 table, pre-encoded as BGP UPDATE frames with the `ferry::wire` codec,
//! for the ingest benchmark and its CI guard (`bgp_blaster` writes the frames to a receiver).
//!
//! Shape (deterministic from [`TableSpec::seed`]): `prefixes` distinct, pairwise disjoint IPv4
//! prefixes (/24 60 %, /22, /23, /20 10 % each, /16-/23 10 %) laid out in 1.0.0.0-223.255.255.255
//! skipping 127/8; `sets` distinct attribute sets (default 273,000 for 800,000 prefixes, the
//! attribute diversity of a real Internet table, ~2.9 prefixes per set): ORIGIN IGP, AS_PATH of
//! 2-6 4-octet ASNs starting with the sender's AS (FRR enforces the first AS), NEXT_HOP = the
//! sender's address (every set; receivers check it is on the link), MED on a quarter of the sets,
//! 1-3 communities on half, a large community on an eighth. Prefix `i` belongs to set
//! `i % sets`; each set's prefixes are packed into UPDATEs of at most 4096 octets, one set after
//! the other, then one IPv4 End-of-RIB (RFC 4724 §2).
//!
//! Random ASNs avoid 0, 23456 (AS_TRANS) and 64512-65535, so no path contains a receiver's
//! private AS (which would be dropped by loop detection) and no path is rejected as reserved.

use std::net::Ipv4Addr;

use bytes::BytesMut;
use ferry::wire::{
    AsPath, AttributeValue, Community, Context, Family, LargeCommunity, Message, Origin,
    PathAttribute, Update, MAX_MESSAGE_LEN,
};
use ipnet::Ipv4Net;
use testkit::rng::Rng;

/// Size and seed of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub prefixes: usize,
    pub sets: usize,
    pub seed: u64,
}

impl TableSpec {
    /// 800,000 prefixes, 273,000 attribute sets.
    pub const FULL: TableSpec = TableSpec {
        prefixes: 800_000,
        sets: 273_000,
        seed: 0x5eed_f0e5,
    };

    /// `prefixes` prefixes with the full table's prefixes-per-set ratio (273/800).
    pub fn scaled(prefixes: usize) -> TableSpec {
        TableSpec {
            prefixes,
            sets: (prefixes * 273 / 800).max(1),
            seed: TableSpec::FULL.seed,
        }
    }
}

/// The encoded table: every frame (UPDATEs, then End-of-RIB) back to back.
pub struct Table {
    pub spec: TableSpec,
    pub wire: Vec<u8>,
    /// UPDATEs carrying prefixes (the End-of-RIB not counted).
    pub updates: usize,
}

/// A public-looking ASN: 1-399,999 without 23456 and 64512-65535.
fn random_asn(rng: &mut Rng) -> u32 {
    loop {
        let a = 1 + rng.below(399_999) as u32;
        if a != 23_456 && !(64_512..=65_535).contains(&a) {
            return a;
        }
    }
}

fn attribute_set(rng: &mut Rng, sender_as: u32, next_hop: Ipv4Addr) -> Vec<PathAttribute> {
    let hops = 2 + rng.below(5) as usize;
    let mut asns = vec![sender_as];
    asns.extend((1..hops).map(|_| random_asn(rng)));
    let mut attrs = vec![
        PathAttribute::new(AttributeValue::Origin(Origin::Igp)),
        PathAttribute::new(AttributeValue::AsPath(AsPath::sequence(&asns))),
        PathAttribute::new(AttributeValue::NextHop(next_hop)),
    ];
    if rng.below(4) == 0 {
        attrs.push(PathAttribute::new(AttributeValue::Med(
            rng.below(1000) as u32
        )));
    }
    if rng.below(2) == 0 {
        let n = 1 + rng.below(3);
        let origin = asns[1] as u16;
        let c = (0..n)
            .map(|_| Community::new(origin, rng.below(65_535) as u16))
            .collect();
        attrs.push(PathAttribute::new(AttributeValue::Communities(c)));
    }
    if rng.below(8) == 0 {
        let lc = LargeCommunity {
            global: asns[1],
            local1: 1,
            local2: rng.below(1000) as u32,
        };
        attrs.push(PathAttribute::new(AttributeValue::LargeCommunities(vec![
            lc,
        ])));
    }
    attrs
}

/// `n` distinct, pairwise disjoint prefixes (see the module docs); Err when they do not fit.
pub fn prefixes(rng_seed: u64, n: usize) -> Result<Vec<Ipv4Net>, String> {
    let mut rng = Rng::new(rng_seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(n);
    let mut cursor: u64 = 0x0100_0000;
    for _ in 0..n {
        let len: u8 = match rng.below(10) {
            0..=5 => 24,
            6 => 22,
            7 => 23,
            8 => 20,
            _ => 16 + rng.below(8) as u8,
        };
        let size = 1u64 << (32 - len);
        cursor = cursor.div_ceil(size) * size;
        if (cursor >> 24) == 127 {
            cursor = 128 << 24;
        }
        if cursor + size > 0xe000_0000 {
            return Err(format!(
                "{n} prefixes do not fit in 1.0.0.0-223.255.255.255 (stopped at {})",
                out.len()
            ));
        }
        let net = Ipv4Net::new(Ipv4Addr::from(cursor as u32), len)
            .map_err(|e| format!("prefix length {len}: {e}"))?;
        out.push(net);
        cursor += size;
    }
    Ok(out)
}

/// Generates and encodes the table (4-octet ASNs, 4096-octet messages).
pub fn generate(spec: TableSpec, sender_as: u32, next_hop: Ipv4Addr) -> Result<Table, String> {
    if spec.sets == 0 || spec.sets > spec.prefixes.max(1) {
        return Err(format!(
            "sets = {} must be between 1 and prefixes = {}",
            spec.sets, spec.prefixes
        ));
    }
    let mut rng = Rng::new(spec.seed ^ spec.sets as u64);
    let ctx = Context::default();
    let attr_sets: Vec<Vec<PathAttribute>> = (0..spec.sets)
        .map(|_| attribute_set(&mut rng, sender_as, next_hop))
        .collect();
    let mut by_set: Vec<Vec<Ipv4Net>> = vec![Vec::new(); spec.sets];
    for (i, p) in prefixes(spec.seed, spec.prefixes)?.into_iter().enumerate() {
        by_set[i % spec.sets].push(p);
    }
    let mut buf = BytesMut::with_capacity(spec.prefixes * 30);
    let mut updates = 0;
    for (attrs, prefixes) in attr_sets.into_iter().zip(by_set) {
        let base = Update {
            attributes: attrs,
            ..Update::default()
        };
        let room = MAX_MESSAGE_LEN - Message::Update(base.clone()).encoded_len(&ctx);
        let mut current = Vec::new();
        let mut used = 0;
        let mut flush = |current: &mut Vec<Ipv4Net>, buf: &mut BytesMut| {
            Message::Update(Update {
                nlri: std::mem::take(current),
                ..base.clone()
            })
            .encode(&ctx, buf);
            updates += 1;
        };
        for p in prefixes {
            let len = 1 + usize::from(p.prefix_len()).div_ceil(8);
            if used + len > room {
                flush(&mut current, &mut buf);
                used = 0;
            }
            used += len;
            current.push(p);
        }
        if !current.is_empty() {
            flush(&mut current, &mut buf);
        }
    }
    Message::Update(Update::end_of_rib(Family::Ipv4Unicast)).encode(&ctx, &mut buf);
    Ok(Table {
        spec,
        wire: buf.to_vec(),
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry::wire::split_frame;

    #[test]
    fn prefixes_are_distinct_and_disjoint() {
        let p = prefixes(TableSpec::FULL.seed, 800_000).expect("800k fit");
        assert_eq!(p.len(), 800_000);
        for w in p.windows(2) {
            assert!(
                w[0].broadcast() < w[1].network(),
                "{} overlaps {}",
                w[0],
                w[1]
            );
        }
        assert!(p.iter().all(|n| n.network().octets()[0] != 127));
        let slash24 = p.iter().filter(|n| n.prefix_len() == 24).count();
        assert!((450_000..=530_000).contains(&slash24), "{slash24} /24s");
    }

    #[test]
    fn table_decodes_to_the_spec() {
        let spec = TableSpec::scaled(10_000);
        assert_eq!(spec.sets, 3_412);
        let nh = Ipv4Addr::new(192, 0, 2, 2);
        let t = generate(spec, 65010, nh).expect("table");
        let ctx = Context::default();
        let mut buf = BytesMut::from(&t.wire[..]);
        let (mut n, mut frames, mut eor) = (0, 0, 0);
        let mut paths = std::collections::HashSet::new();
        while let Some(f) = split_frame(&mut buf, MAX_MESSAGE_LEN).expect("frame") {
            let Message::Update(u) = Message::decode(&f, &ctx).expect("decodes") else {
                panic!("not an UPDATE");
            };
            frames += 1;
            if u.nlri.is_empty() {
                eor += 1;
                continue;
            }
            n += u.nlri.len();
            let mut path = None;
            for a in &u.attributes {
                match &a.value {
                    AttributeValue::AsPath(p) => path = Some(format!("{p:?}")),
                    AttributeValue::NextHop(h) => assert_eq!(*h, nh),
                    _ => {}
                }
            }
            let path = path.expect("AS_PATH");
            assert!(path.contains("65010"), "{path}");
            paths.insert(path);
        }
        assert_eq!(n, 10_000);
        assert_eq!(eor, 1);
        assert_eq!(frames, t.updates + 1);
        assert!(buf.is_empty());
        // sets are random: nearly all distinct
        assert!(paths.len() > 3_300, "{} distinct paths", paths.len());
        // deterministic
        assert_eq!(generate(spec, 65010, nh).expect("again").wire, t.wire);
    }
}
