//! Latency from an `announce`/`withdraw` API call to the UPDATE arriving at a BGP peer.
//!
//! Starts the real `ferry speaker` (release build) with a state dir on the usual disk, a raw BGP
//! peer on 127.0.0.1 that records when each UPDATE arrives, and then alternates announce and
//! withdraw of 198.51.100.0/24 through the HTTP API over the Unix socket, N times (default
//! 1,000; `FERRY_BENCH_N` overrides). For each call it reports two latencies:
//! - call -> UPDATE at the peer (what a failover waits for), and
//! - call -> API answer (the desired routes are fsync'd before the answer).
//!
//! Loopback adds a few microseconds; the figure is an upper bound for "UPDATE leaving the socket".
//!
//! Then the bulk command: `FERRY_BENCH_BULK` (default 10,000) IPv6 /64s of 2001:db8::/32 in one
//! announce call and one withdraw call, `FERRY_BENCH_BULK_ROUNDS` (default 9) times: call ->
//! first UPDATE, call -> the UPDATE that completes all of them, call -> API answer. This is
//! Ferry's own part of `proto-tests/benches/announce_scale.rs` (no FRR to wait for).
//! Run: `cargo bench --bench announce_latency`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferry::api::{Endpoint, SessionState};
use ferry::config::{Asn, Config, NeighborConfig, RouterId, SpeakerConfig};
use ferry::speaker::Route;
use ferry::wire::{split_frame, Capability, Context, Message, MpNlri, Open, MAX_MESSAGE_LEN};
use testkit::speaker::{self, SpeakerProcess};

/// What one UPDATE carried, and when it arrived.
struct Arrival {
    at: Instant,
    announced: usize,
    withdrawn: usize,
}

fn count(n: &MpNlri) -> usize {
    match n {
        MpNlri::Ipv4(v) => v.len(),
        MpNlri::Ipv6(v) => v.len(),
        MpNlri::Raw(_) => 0,
    }
}

/// Accept the speaker's connection, complete the OPEN exchange (IPv4 and IPv6 unicast), then
/// report each UPDATE's arrival time and prefix counts (End-of-RIB markers excluded).
fn raw_peer(listener: TcpListener, updates: mpsc::Sender<Arrival>) {
    let (mut sock, _) = listener.accept().expect("speaker connects");
    sock.set_nodelay(true).ok();
    let ctx = Context::default();
    let caps = vec![
        Capability::Multiprotocol {
            afi: ferry::wire::Afi::Ipv4,
            safi: ferry::wire::Safi::Unicast,
        },
        Capability::Multiprotocol {
            afi: ferry::wire::Afi::Ipv6,
            safi: ferry::wire::Safi::Unicast,
        },
        Capability::RouteRefresh,
        Capability::FourOctetAs(65001),
    ];
    let open = Message::Open(Open::new(65001, 90, "192.0.2.2".parse().expect("ip"), caps));
    sock.write_all(&open.to_bytes(&ctx)).expect("send OPEN");
    sock.write_all(&Message::Keepalive.to_bytes(&ctx))
        .expect("send KEEPALIVE");
    let mut buf = BytesMut::with_capacity(65536);
    let mut chunk = [0u8; 65536];
    loop {
        let n = match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(frame)) = split_frame(&mut buf, MAX_MESSAGE_LEN) {
            match Message::decode(&frame, &ctx) {
                Ok(Message::Update(u)) if u.end_of_rib_family().is_none() => {
                    let arrival = Arrival {
                        at: now,
                        announced: u.nlri.len() + u.mp_reach().map_or(0, |m| count(&m.nlri)),
                        withdrawn: u.withdrawn.len()
                            + u.mp_unreach().map_or(0, |m| count(&m.withdrawn)),
                    };
                    if updates.send(arrival).is_err() {
                        return;
                    }
                }
                Ok(Message::Keepalive) => {
                    let _ = sock.write_all(&Message::Keepalive.to_bytes(&ctx));
                }
                _ => {}
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:<28} n={:<5} median={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        v.len(),
        percentile(&v, 0.5).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

/// A numeric setting from the environment; `default` when unset or not a number.
fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; no criterion here.
    let n = env_usize("FERRY_BENCH_N", 1000);
    let dir =
        tempfile::tempdir_in(std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| "target".into()))
            .expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw peer");
    let port = listener.local_addr().expect("addr").port();
    let sock = dir.path().join("ferry.sock");
    let mut neighbor = NeighborConfig::new(IpAddr::from([127, 0, 0, 1]), Asn(65001));
    neighbor.port = port;
    let config = Config {
        speaker: SpeakerConfig::new(
            Asn(65100),
            RouterId(Ipv4Addr::new(192, 0, 2, 1)),
            sock.clone(),
            dir.path().to_owned(),
        ),
        neighbors: vec![neighbor],
        health_checks: Vec::new(),
    };
    let config_path = dir.path().join("ferry.toml");
    speaker::write_config(&config_path, &config).expect("write config");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || raw_peer(listener, tx));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.env("FERRY_LOG", "warn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let _speaker = SpeakerProcess::start(cmd, &config_path, &sock, None, Duration::from_secs(10))
        .expect("start ferry speaker");
    // Wait for Established: the API reports it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = ferry::api::Speaker::new(Endpoint::Unix(sock.clone()), None);
    rt.block_on(async {
        loop {
            let peers = client.peers().await.expect("peers");
            if peers.iter().all(|p| p.state == SessionState::Established) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "session not Established: {peers:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // Let the End-of-RIB and first KEEPALIVEs pass.
    std::thread::sleep(Duration::from_millis(200));
    while rx.try_recv().is_ok() {}

    let route = Route::new("198.51.100.0/24".parse().expect("prefix")).expect("route");
    let mut to_update = Vec::with_capacity(n);
    let mut to_answer = Vec::with_capacity(n);
    rt.block_on(async {
        for i in 0..n {
            let t0 = Instant::now();
            let resp = if i % 2 == 0 {
                client.announce(vec![route.clone()]).await
            } else {
                client.withdraw(vec![route.prefix]).await
            }
            .expect("API call");
            to_answer.push(t0.elapsed());
            assert_eq!(resp.changed, 1);
            let arrived = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("UPDATE within 5 s");
            to_update.push(arrived.at.saturating_duration_since(t0));
        }
    });
    println!(
        "ferry announce/withdraw latency, {n} calls, state dir {}",
        dir.path().display()
    );
    report("call -> UPDATE at peer", to_update);
    report("call -> API answer", to_answer);
    bulk(&rt, &client, &rx);
}

/// The bulk section (see the module doc).
fn bulk(rt: &tokio::runtime::Runtime, client: &ferry::api::Speaker, rx: &mpsc::Receiver<Arrival>) {
    let (n, rounds) = (
        env_usize("FERRY_BENCH_BULK", 10_000),
        env_usize("FERRY_BENCH_BULK_ROUNDS", 9),
    );
    if n == 0 {
        return;
    }
    let routes: Vec<Route> = (0..n)
        .map(|i| {
            let p = format!("2001:db8:{:x}:{:x}::/64", 1 + (i >> 16), i & 0xffff);
            let mut r = Route::new(p.parse().expect("prefix")).expect("route");
            // The session runs over IPv4: no IPv6 address of its own to be next hop self.
            r.next_hop = Some("2001:db8:ffff::2".parse().expect("next hop"));
            r
        })
        .collect();
    let prefixes: Vec<_> = routes.iter().map(|r| r.prefix).collect();
    let mut times: [Vec<Duration>; 6] = Default::default();
    for _ in 0..rounds {
        for announce in [true, false] {
            let t0 = Instant::now();
            rt.block_on(async {
                let r = if announce {
                    client.announce(routes.clone()).await
                } else {
                    client.withdraw(prefixes.clone()).await
                }
                .expect("bulk API call");
                assert_eq!(r.changed, n);
            });
            let answered = t0.elapsed();
            let (mut seen, mut first) = (0, None);
            while seen < n {
                let a = rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("bulk UPDATEs within 10 s");
                first.get_or_insert(a.at);
                seen += if announce { a.announced } else { a.withdrawn };
                if seen >= n {
                    let k = if announce { 0 } else { 3 };
                    times[k].push(first.unwrap_or(a.at).saturating_duration_since(t0));
                    times[k + 1].push(a.at.saturating_duration_since(t0));
                    times[k + 2].push(answered);
                }
            }
        }
    }
    let [af, al, aa, wf, wl, wa] = times;
    println!("bulk: {n} IPv6 prefixes per call, {rounds} rounds");
    report("announce: call -> first UPDATE", af);
    report("announce: call -> all sent", al);
    report("announce: call -> API answer", aa);
    report("withdraw: call -> first UPDATE", wf);
    report("withdraw: call -> all sent", wl);
    report("withdraw: call -> API answer", wa);
}
