//! Update groups with fake members: each member is a [`MemberId`] whose "socket" is the list of
//! messages it pulled; tests decode those bytes back and count what each member was told.

use super::*;
use crate::speaker::Route;
use crate::wire::MAX_EXTENDED_MESSAGE_LEN;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

fn ebgp() -> PeerExport {
    PeerExport {
        local_asn: 65100,
        peer_asn: 65001,
        local_v4: Some("192.0.2.1".parse().unwrap()),
        local_v6: Some("2001:db8::1".parse().unwrap()),
        local_v6_link_local: None,
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
    }
}

fn ctx() -> Context {
    Context {
        four_octet_as: true,
        extended_message: false,
    }
}

/// `n` distinct IPv6 /64s of 2001:db8::/32.
fn routes(n: u32) -> Vec<Route> {
    (0..n)
        .map(|i| {
            let p = ipnet::Ipv6Net::new(
                std::net::Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0),
                64,
            )
            .unwrap();
            Route::new(IpNet::V6(p)).unwrap()
        })
        .collect()
}

fn announce(d: &mut DesiredLog, rs: &[Route]) {
    d.apply(rs.iter().map(|r| (r.prefix, Some(r.clone()))));
}

fn withdraw(d: &mut DesiredLog, rs: &[Route]) {
    d.apply(rs.iter().map(|r| (r.prefix, None)));
}

fn counter() -> (Waker, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    (
        Arc::new(move || {
            c.fetch_add(1, Ordering::Relaxed);
        }),
        n,
    )
}

fn join(g: &mut UpdateGroups, m: MemberId, export: &PeerExport, d: &DesiredLog) {
    let skipped = g.join(m, export, &ctx(), counter().0, d);
    assert!(skipped.is_empty(), "{skipped:?}");
}

/// Pull until the member has nothing more; the messages in order.
fn drain(g: &mut UpdateGroups, m: MemberId, d: &DesiredLog) -> Vec<Arc<Out>> {
    let mut all = Vec::new();
    for _ in 0..100_000 {
        let p = g.pull(m, 16 * 1024, d);
        all.extend(p.msgs);
        if !p.more {
            return all;
        }
    }
    panic!("member {m} never finished");
}

/// What a member's messages told it: prefix -> times announced, times withdrawn, EoR families.
#[derive(Default, Debug)]
struct Told {
    announced: BTreeMap<IpNet, usize>,
    withdrawn: BTreeMap<IpNet, usize>,
    eor: Vec<Family>,
}

fn told(msgs: &[Arc<Out>]) -> Told {
    let mut t = Told::default();
    for o in msgs {
        // Decode the bytes, not the side lists: the wire is what counts.
        let Message::Update(u) = Message::decode(&o.bytes, &ctx()).unwrap() else {
            panic!("not an UPDATE")
        };
        if let Some(f) = u.end_of_rib_family() {
            t.eor.push(f);
            continue;
        }
        let (a, w) = prefixes_of(&u);
        assert_eq!(a, o.announced);
        assert_eq!(w, o.withdrawn);
        for &p in a.iter() {
            *t.announced.entry(p).or_default() += 1;
        }
        for &p in w.iter() {
            *t.withdrawn.entry(p).or_default() += 1;
        }
    }
    t
}

fn assert_all_once(t: &Told, rs: &[Route]) {
    assert_eq!(t.announced.len(), rs.len());
    assert!(t.announced.values().all(|n| *n == 1), "a prefix sent twice");
    for r in rs {
        assert!(t.announced.contains_key(&r.prefix), "{} missing", r.prefix);
    }
}

#[test]
fn members_of_one_group_send_the_very_same_bytes() {
    let mut d = DesiredLog::new([]);
    let mut g = UpdateGroups::default();
    let mut other_as = ebgp();
    other_as.peer_asn = 65002; // another eBGP ASN exports the same attributes
    join(&mut g, 1, &ebgp(), &d);
    join(&mut g, 2, &ebgp(), &d);
    join(&mut g, 3, &other_as, &d);
    // Before anything was produced all three share the group that holds its whole history.
    assert_eq!(g.group_of(1), vec![1, 2, 3]);
    let eors: Vec<_> = (1..=3).map(|m| drain(&mut g, m, &d)).collect();
    assert_eq!(
        told(&eors[0]).eor,
        vec![Family::Ipv4Unicast, Family::Ipv6Unicast]
    );

    let rs = routes(10_000);
    announce(&mut d, &rs);
    let got: Vec<_> = (1..=3).map(|m| drain(&mut g, m, &d)).collect();
    assert_all_once(&told(&got[0]), &rs);
    assert_eq!(got[0].len(), got[1].len());
    assert_eq!(got[0].len(), got[2].len());
    for ((a, b), c) in got[0].iter().zip(&got[1]).zip(&got[2]) {
        assert_eq!(a.bytes.as_ptr(), b.bytes.as_ptr());
        assert_eq!(a.bytes.as_ptr(), c.bytes.as_ptr());
    }
    // Encoded once for all three: 2 End-of-RIB + the UPDATEs of one member.
    assert_eq!(g.stats().messages_encoded, 2 + got[0].len() as u64);
    assert_eq!(g.stats().groups, 1);
    assert_eq!(g.log_bytes(), 0, "everything taken: nothing kept");
}

#[test]
fn different_export_or_encoding_means_different_groups() {
    let d = DesiredLog::new(routes(10));
    let mut g = UpdateGroups::default();
    let mut other_addr = ebgp();
    other_addr.local_v6 = Some("2001:db8::2".parse().unwrap());
    let mut ibgp = ebgp();
    ibgp.peer_asn = 65100;
    let mut v6_only = ebgp();
    v6_only.families = vec![Family::Ipv6Unicast];
    join(&mut g, 1, &ebgp(), &d);
    join(&mut g, 2, &other_addr, &d);
    join(&mut g, 3, &ibgp, &d);
    join(&mut g, 4, &v6_only, &d);
    let two_octet = Context {
        four_octet_as: false,
        ..ctx()
    };
    g.join(5, &ebgp(), &two_octet, counter().0, &d);
    assert_eq!(g.stats().groups, 5);
    for m in 1..=5 {
        assert_eq!(g.group_of(m), vec![m]);
    }
    let a = drain(&mut g, 1, &d);
    let b = drain(&mut g, 2, &d);
    assert_ne!(a[0].bytes, b[0].bytes, "next hop differs");
    let c = drain(&mut g, 3, &d);
    assert_ne!(a[0].bytes, c[0].bytes, "LOCAL_PREF and AS_PATH differ");
    // Nothing ever merges across keys.
    for m in 4..=5 {
        drain(&mut g, m, &d);
    }
    assert_eq!(g.stats().merges, 0);
    assert_eq!(g.stats().groups, 5);
}

#[test]
fn a_slow_member_is_split_off_and_never_holds_the_others_back() {
    let limits = Limits {
        produce: 4096,
        lag: 32 * 1024,
        catch_up: 1024,
    };
    let mut d = DesiredLog::new([]);
    let mut g = UpdateGroups::new(limits);
    for m in 1..=3 {
        join(&mut g, m, &ebgp(), &d);
        drain(&mut g, m, &d);
    }
    assert_eq!(
        g.group_of(1),
        vec![1, 2, 3],
        "joined one after the other, merged"
    );
    let merges = g.stats().merges;
    let rs = routes(20_000);
    announce(&mut d, &rs);
    // Member 3 never reads; 1 and 2 take everything, one budget at a time, alternating.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut peak = 0;
    loop {
        let pa = g.pull(1, 4096, &d);
        let pb = g.pull(2, 4096, &d);
        a.extend(pa.msgs);
        b.extend(pb.msgs);
        peak = peak.max(g.log_bytes());
        if !pa.more && !pb.more {
            break;
        }
    }
    assert_all_once(&told(&a), &rs);
    assert_all_once(&told(&b), &rs);
    assert_eq!(g.stats().splits, 1, "member 3 split off once");
    assert_eq!(g.group_of(1), vec![1, 2]);
    assert_eq!(g.group_of(3), vec![3]);
    // Memory: the laggard keeps what it had not taken (at most the lag plus one production),
    // the others' group nothing beyond what they are taking.
    // One production is `produce` octets plus at most one message.
    let production = (limits.produce + 4096) as u64;
    assert!(peak <= limits.lag as u64 + 2 * production, "{peak}");
    let backlog = g.backlog(3);
    assert!(
        backlog > limits.lag as u64 && backlog <= limits.lag as u64 + production,
        "{backlog}"
    );
    // The laggard then catches up on its own: every route once, no End-of-RIB (it had it),
    // and merges back into the group.
    let c = drain(&mut g, 3, &d);
    assert_all_once(&told(&c), &rs);
    assert!(told(&c).eor.is_empty());
    assert_eq!(g.stats().merges, merges + 1);
    assert_eq!(g.group_of(1), vec![1, 2, 3]);
    // And shares the bytes again from the next change on.
    let more = routes(20_010);
    announce(&mut d, &more[20_000..]);
    let got: Vec<_> = (1..=3).map(|m| drain(&mut g, m, &d)).collect();
    assert_eq!(got[0].len(), 1);
    assert_eq!(got[0][0].bytes.as_ptr(), got[2][0].bytes.as_ptr());
}

#[test]
fn a_late_joiner_gets_the_full_table_then_end_of_rib_and_merges_back() {
    let rs = routes(3_000);
    let mut d = DesiredLog::new([]);
    announce(&mut d, &rs);
    let mut g = UpdateGroups::default();
    join(&mut g, 1, &ebgp(), &d);
    let first = drain(&mut g, 1, &d);
    let t = told(&first);
    assert_all_once(&t, &rs);
    assert_eq!(t.eor, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    // The log was trimmed: a late joiner cannot replay it and gets a group of its own.
    join(&mut g, 2, &ebgp(), &d);
    assert_eq!(g.group_of(2), vec![2]);
    let late = drain(&mut g, 2, &d);
    let t = told(&late);
    assert_all_once(&t, &rs);
    assert_eq!(t.eor, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    // End-of-RIB comes after every route.
    let last_route = late.iter().rposition(|o| o.end_of_rib.is_none()).unwrap();
    assert!(late[..=last_route].iter().all(|o| o.end_of_rib.is_none()));
    assert_eq!(g.group_of(1), vec![1, 2], "merged back once caught up");
    assert_eq!(g.stats().groups, 1);
}

#[test]
fn withdraw_before_send_cancels_and_only_the_latest_intent_is_sent() {
    let mut d = DesiredLog::new([]);
    let mut g = UpdateGroups::default();
    join(&mut g, 1, &ebgp(), &d);
    join(&mut g, 2, &ebgp(), &d);
    drain(&mut g, 1, &d);
    drain(&mut g, 2, &d);
    let rs = routes(2);
    announce(&mut d, &rs);
    d.apply([(rs[0].prefix, None)]);
    let mut changed = rs[1].clone();
    changed.attrs.med = Some(9);
    d.apply([(changed.prefix, Some(changed.clone()))]);
    for m in 1..=2 {
        let msgs = drain(&mut g, m, &d);
        assert_eq!(
            msgs.len(),
            1,
            "one UPDATE: the latest intent of the second prefix"
        );
        let t = told(&msgs);
        assert!(t.withdrawn.is_empty(), "never-sent prefix not withdrawn");
        assert_eq!(
            t.announced.keys().collect::<Vec<_>>(),
            vec![&changed.prefix]
        );
        let Message::Update(u) = Message::decode(&msgs[0].bytes, &ctx()).unwrap() else {
            panic!()
        };
        assert!(u
            .attributes
            .iter()
            .any(|a| matches!(a.value, crate::wire::AttributeValue::Med(9))));
    }
}

#[test]
fn route_refresh_resends_to_the_asking_member_only() {
    let rs = routes(500);
    let mut d = DesiredLog::new([]);
    let mut g = UpdateGroups::default();
    join(&mut g, 1, &ebgp(), &d);
    join(&mut g, 2, &ebgp(), &d);
    drain(&mut g, 1, &d);
    drain(&mut g, 2, &d);
    announce(&mut d, &rs);
    drain(&mut g, 1, &d);
    drain(&mut g, 2, &d);
    g.refresh(2, Family::Ipv6Unicast);
    assert!(drain(&mut g, 1, &d).is_empty());
    let again = drain(&mut g, 2, &d);
    assert_all_once(&told(&again), &rs);
    assert!(told(&again).eor.is_empty());
    assert_eq!(g.group_of(1), vec![1, 2]);
}

#[test]
fn idle_members_are_woken_when_another_produces() {
    let mut d = DesiredLog::new([]);
    let mut g = UpdateGroups::default();
    let (w1, n1) = counter();
    let (w2, n2) = counter();
    g.join(1, &ebgp(), &ctx(), w1, &d);
    g.join(2, &ebgp(), &ctx(), w2, &d);
    drain(&mut g, 1, &d);
    drain(&mut g, 2, &d);
    let (before1, before2) = (n1.load(Ordering::Relaxed), n2.load(Ordering::Relaxed));
    announce(&mut d, &routes(10));
    let p = g.pull(1, 1 << 20, &d);
    assert_eq!(p.msgs.len(), 1);
    assert_eq!(n2.load(Ordering::Relaxed), before2 + 1, "member 2 woken");
    assert_eq!(n1.load(Ordering::Relaxed), before1, "the producer is not");
    assert_eq!(g.pull(2, 1 << 20, &d).msgs.len(), 1);
    // A member that leaves stops holding messages.
    announce(&mut d, &routes(20)[10..]);
    g.pull(1, 1 << 20, &d);
    assert!(g.log_bytes() > 0);
    g.leave(2);
    assert_eq!(g.log_bytes(), 0);
    g.leave(1);
    assert_eq!(g.stats().groups, 0);
}

#[test]
fn a_group_behind_a_trimmed_desired_log_resyncs_in_full() {
    let mut d = DesiredLog::new([]);
    let mut g = UpdateGroups::default();
    join(&mut g, 1, &ebgp(), &d);
    drain(&mut g, 1, &d);
    // Flap one prefix past the log's reach, ending announced.
    let r = routes(1).remove(0);
    for i in 0..=crate::speaker::desired_log::MIN_LOG + 1 {
        d.apply([(r.prefix, (i % 2 == 1).then(|| r.clone()))]);
    }
    assert!(d.changes_from(0).is_none());
    let msgs = drain(&mut g, 1, &d);
    assert_all_once(&told(&msgs), &[r]);
}

/// An empty desired log and member 1 alone in its group, synced, with `Limits::catch_up` set.
fn one_member_catching_up_by(catch_up: usize) -> (DesiredLog, UpdateGroups) {
    let d = DesiredLog::new([]);
    let mut g = UpdateGroups::new(Limits {
        catch_up,
        ..Limits::default()
    });
    join(&mut g, 1, &ebgp(), &d);
    drain(&mut g, 1, &d);
    (d, g)
}

/// A batch larger than `catch_up` goes out in parts: the first pull already carries UPDATEs
/// (before the whole batch is applied), and in the end every prefix was told exactly once,
/// after which the group is idle and at the log's end.
#[test]
fn a_large_batch_is_sent_while_it_is_still_being_applied() {
    let (mut d, mut g) = one_member_catching_up_by(100);
    let rs = routes(1_000);
    announce(&mut d, &rs);
    let first = g.pull(1, 1024 * 1024, &d);
    let t = told(&first.msgs);
    assert!(first.more, "more of the batch waits");
    assert_eq!(
        t.announced.len(),
        100,
        "one catch-up's worth in the first pull"
    );
    let rest = drain(&mut g, 1, &d);
    let all: Vec<Arc<Out>> = first.msgs.into_iter().chain(rest).collect();
    assert_all_once(&told(&all), &rs);
    // Withdrawing all of it, too, in parts, each prefix once.
    withdraw(&mut d, &rs);
    let w = told(&drain(&mut g, 1, &d));
    assert_eq!(w.withdrawn.len(), rs.len());
    assert!(w.withdrawn.values().all(|n| *n == 1));
    assert!(w.announced.is_empty());
    assert!(!g.pull(1, 1024, &d).more);
}

/// With extended messages (RFC 8654) a part is 16 times as large, so that it still fills
/// UPDATEs of up to 65,535 octets: the first pull carries more than `catch_up` prefixes, in
/// messages longer than 4,096 octets, and every prefix is told once.
#[test]
fn a_group_with_extended_messages_applies_larger_parts() {
    let d = DesiredLog::new([]);
    let mut g = UpdateGroups::new(Limits {
        catch_up: 1_000,
        ..Limits::default()
    });
    let extended = Context {
        extended_message: true,
        ..ctx()
    };
    assert!(g.join(1, &ebgp(), &extended, counter().0, &d).is_empty());
    drain(&mut g, 1, &d);
    let mut d = d;
    let rs = routes(40_000);
    announce(&mut d, &rs);
    let first = g.pull(1, 1024 * 1024, &d);
    assert!(first.more, "more of the batch waits");
    let mut announced = 0;
    for o in &first.msgs {
        assert!(o.bytes.len() <= MAX_EXTENDED_MESSAGE_LEN);
        let Message::Update(u) = Message::decode(&o.bytes, &extended).unwrap() else {
            panic!("not an UPDATE")
        };
        announced += prefixes_of(&u).0.len();
    }
    // One production (64 KiB and a message) of the 16,000 applied: two full messages, far
    // more than the 1,000 prefixes a part without the scaling would hold.
    assert!(announced > 14_000, "{announced} prefixes in the first pull");
    let longest = first.msgs.iter().map(|o| o.bytes.len()).max().unwrap();
    assert!(
        longest > 60_000,
        "a full extended message: {longest} octets"
    );
    let mut total = announced;
    for _ in 0..1_000 {
        let p = g.pull(1, 1024 * 1024, &d);
        for o in &p.msgs {
            let Message::Update(u) = Message::decode(&o.bytes, &extended).unwrap() else {
                panic!("not an UPDATE")
            };
            total += prefixes_of(&u).0.len();
        }
        if !p.more {
            break;
        }
    }
    assert_eq!(total, rs.len(), "every prefix once");
}

/// Parts of a batch that produce nothing (changes that cancel within one part) never make a
/// pull come back empty while more waits: the driver stops pumping on an empty pull. Changes
/// that cancel across parts are sent as they were applied (announce, then withdraw): the
/// peer ends with the latest state.
#[test]
fn a_pull_never_comes_back_empty_with_more_to_do() {
    let (mut d, mut g) = one_member_catching_up_by(100);
    // Each prefix announced and withdrawn again in the same part of 100 changes.
    let gone = routes(500);
    for pair in gone.chunks(50) {
        announce(&mut d, pair);
        withdraw(&mut d, pair);
    }
    let stay = routes(501);
    announce(&mut d, &stay[500..]);
    let p = g.pull(1, 1024 * 1024, &d);
    let t = told(&p.msgs);
    assert_eq!(
        t.announced.len(),
        1,
        "1,000 changes that cancel, then the one that stays"
    );
    assert!(t.withdrawn.is_empty());
    assert!(!g.pull(1, 1024, &d).more);
    // Cancelling across parts: announced, then withdrawn; nothing stays.
    announce(&mut d, &gone);
    withdraw(&mut d, &gone);
    let t = told(&drain(&mut g, 1, &d));
    assert_eq!(
        t.announced.keys().collect::<Vec<_>>(),
        t.withdrawn.keys().collect::<Vec<_>>()
    );
}
