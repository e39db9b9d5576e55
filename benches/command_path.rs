//! Where an announce or withdraw command's time goes inside the speaker, phase by phase, for
//! N = 1,000 / 10,000 / 100,000 IPv6 /64s: parse the API body, prepare it in the
//! [`RouteStore`] (check, compute what changes), hand the changes to the [`DesiredLog`] (what
//! `Shared::publish` does), commit it to the store (journal line, fdatasync, then the table),
//! compact when due, then send: one eBGP session's update group
//! (IPv6, link-local next hop as on a shared link) applies the change and encodes every UPDATE
//! it makes, pulled 64 KiB at a time as a driver does. The phases are the library calls the
//! daemon's API handler makes, without HTTP and without a peer, so a change to one of them shows
//! here even on a noisy machine. Medians of `FERRY_BENCH_ROUNDS` (default 15) rounds.
//!
//! Run: `cargo bench --bench command_path` (state directory under `target/tmp`).

use std::time::{Duration, Instant};

use ferry::api::{AnnounceRequest, WithdrawRequest};
use ferry::speaker::update_group::Limits;
use ferry::speaker::{Change, DesiredLog, PeerExport, RouteStore, UpdateGroups};
use ferry::wire::{Context, Family};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[derive(Default)]
struct Phases {
    parse: Vec<Duration>,
    prepare: Vec<Duration>,
    publish: Vec<Duration>,
    commit: Vec<Duration>,
    compact: Vec<Duration>,
    send: Vec<Duration>,
}

impl Phases {
    fn row(self, n: usize, what: &str) {
        let total: Vec<Duration> = (0..self.parse.len())
            .map(|i| {
                self.parse[i]
                    + self.prepare[i]
                    + self.publish[i]
                    + self.commit[i]
                    + self.compact[i]
                    + self.send[i]
            })
            .collect();
        println!(
            "| {n} | {what} | {} | {} | {} | {} | {} | {} | {} |",
            ms(median(self.parse)),
            ms(median(self.prepare)),
            ms(median(self.publish)),
            ms(median(self.commit)),
            ms(median(self.compact)),
            ms(median(self.send)),
            ms(median(total))
        );
    }
}

/// The one session whose update group the send phase drives.
struct Session {
    groups: UpdateGroups,
}

const MEMBER: u64 = 1;

impl Session {
    fn new(desired: &DesiredLog) -> Session {
        let export = PeerExport {
            local_asn: 65002,
            peer_asn: 65001,
            local_v4: None,
            local_v6: Some("2001:db8:ffff::2".parse().expect("address")),
            local_v6_link_local: Some("fe80::2".parse().expect("address")),
            families: vec![Family::Ipv6Unicast],
        };
        let ctx = Context {
            four_octet_as: true,
            extended_message: true,
        };
        let mut groups = UpdateGroups::new(Limits::default());
        groups.join(MEMBER, &export, &ctx, std::sync::Arc::new(|| {}), desired);
        let mut s = Session { groups };
        s.drain(desired);
        s
    }

    /// Pull until nothing is left; the octets pulled.
    fn drain(&mut self, desired: &DesiredLog) -> usize {
        let mut octets = 0;
        loop {
            let pull = self.groups.pull(MEMBER, 64 * 1024, desired);
            octets += pull.msgs.iter().map(|m| m.bytes.len()).sum::<usize>();
            if !pull.more && pull.msgs.is_empty() {
                return octets;
            }
        }
    }
}

/// Parse, prepare, publish, commit, compact, send: the daemon's order (`Shared::change`
/// publishes before the store writes; the drivers then send while it writes).
fn one(
    body: &[u8],
    store: &mut RouteStore,
    desired: &mut DesiredLog,
    session: &mut Session,
    phases: &mut Phases,
    announce: bool,
) {
    let t = Instant::now();
    let change = if announce {
        let req: AnnounceRequest<std::sync::Arc<ferry::speaker::Route>> =
            serde_json::from_slice(body).expect("announce body");
        Change::Announce(req.routes)
    } else {
        let req: WithdrawRequest = serde_json::from_slice(body).expect("withdraw body");
        Change::Withdraw(req.prefixes)
    };
    phases.parse.push(t.elapsed());
    let t = Instant::now();
    let applied = store.prepare(change).expect("store prepare");
    phases.prepare.push(t.elapsed());
    let t = Instant::now();
    let (_, retired) = desired.apply_retiring(
        applied
            .announced
            .iter()
            .map(|r| (r.prefix, Some(r.clone())))
            .chain(applied.withdrawn.iter().map(|p| (*p, None))),
    );
    phases.publish.push(t.elapsed());
    let t = Instant::now();
    store
        .commit(applied)
        .map_err(|f| f.error)
        .expect("store commit");
    // The daemon frees what the desired log let go of after the write, while drivers send.
    drop(retired);
    phases.commit.push(t.elapsed());
    let t = Instant::now();
    store.compact_if_due().expect("compact");
    phases.compact.push(t.elapsed());
    let t = Instant::now();
    let octets = session.drain(desired);
    phases.send.push(t.elapsed());
    assert!(octets > 0, "the change produced no UPDATE");
}

fn main() {
    let rounds: usize = std::env::var("FERRY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/command_path");
    println!("command_path: {rounds} rounds, medians in ms");
    println!("| N | command | parse | prepare | publish | commit | compact | send | total |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in [1_000usize, 10_000, 100_000] {
        let prefixes: Vec<String> = (0..n)
            .map(|i| format!("2001:db8:{:x}:{:x}::/64", 1 + (i >> 16), i & 0xffff))
            .collect();
        let items: Vec<String> = prefixes
            .iter()
            .map(|p| format!("{{\"prefix\":\"{p}\"}}"))
            .collect();
        let announce = format!("{{\"routes\":[{}]}}", items.join(","));
        let quoted: Vec<String> = prefixes.iter().map(|p| format!("\"{p}\"")).collect();
        let withdraw = format!("{{\"prefixes\":[{}]}}", quoted.join(","));
        let dir = base.join(n.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("state dir");
        let mut store = RouteStore::load(&dir).expect("store");
        let mut desired = DesiredLog::from_shared(store.routes().values().cloned());
        let mut session = Session::new(&desired);
        let (mut a, mut w) = (Phases::default(), Phases::default());
        for _ in 0..rounds {
            let s = &mut session;
            one(
                announce.as_bytes(),
                &mut store,
                &mut desired,
                s,
                &mut a,
                true,
            );
            one(
                withdraw.as_bytes(),
                &mut store,
                &mut desired,
                s,
                &mut w,
                false,
            );
        }
        a.row(n, "announce");
        w.row(n, "withdraw");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
