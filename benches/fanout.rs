//! Fan-out quick harness: one release `ferry speaker`, 50 raw BGP sink sessions on
//! 127.0.0.10-59, routes announced by one bulk API call.
//!
//! Measures, over `FERRY_BENCH_REPS` repetitions (default 5), medians of:
//! - fan-out: POST /v1/announce of 10,000 IPv6 /64s (2001:db8::/32, next hop 2001:db8::1) ->
//!   the last of the 50 sinks holds all of them; the same for the bulk withdrawal;
//! - the speaker's CPU seconds (utime + stime from /proc) per announce + withdraw round, its
//!   RSS after the rounds and its peak RSS (VmHWM);
//! - per-change cost with 100,000 routes installed: announce one more prefix, time from the
//!   call to the UPDATE at the first and at the last sink (`FERRY_BENCH_SINGLE`, default 50
//!   changes), and the speaker's CPU per change.
//!
//! The sinks count prefixes by walking the NLRI length octets (no full decode, so that 50
//! sinks on a shared 2-core machine take little CPU from the speaker); the integration test
//! tests/speaker_fanout.rs checks with full decoding that each prefix arrives exactly once.
//! `FERRY_BIN` selects the binary (default: the one cargo built), so an older build can be
//! measured with the same harness. Run: `cargo bench --bench fanout`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::api::Endpoint;
use ferry::config::{Asn, Config, HoldTime, NeighborConfig, RouterId, Seconds, SpeakerConfig};
use ferry::speaker::Route;
use ferry::wire::{Afi, Capability, Context, Message, Open, Safi};
use ipnet::{IpNet, Ipv6Net};
use testkit::speaker::{self, SpeakerProcess};

const SINKS: usize = 50;
const WAIT: Duration = Duration::from_secs(120);

/// One sink's view: prefixes held now, and when the count last changed (ns since `epoch`).
#[derive(Default)]
struct Sink {
    held: AtomicI64,
    changed_at: AtomicU64,
    updates: AtomicU64,
    established: AtomicU64,
}

/// Count the prefixes in an NLRI field: one length octet, then ceil(len / 8) octets each.
fn count_nlri(mut b: &[u8]) -> i64 {
    let mut n = 0;
    while let Some((&len, rest)) = b.split_first() {
        let skip = usize::from(len).div_ceil(8).min(rest.len());
        b = &rest[skip..];
        n += 1;
    }
    n
}

/// (announced, withdrawn) prefixes of one UPDATE body (after the 19-octet header).
fn count_update(body: &[u8]) -> (i64, i64) {
    let get = |i: usize| usize::from(*body.get(i).unwrap_or(&0));
    let wlen = (get(0) << 8) | get(1);
    let mut withdrawn = count_nlri(body.get(2..2 + wlen).unwrap_or(&[]));
    let alen = (get(2 + wlen) << 8) | get(3 + wlen);
    let attrs_start = 4 + wlen;
    let attrs = body.get(attrs_start..attrs_start + alen).unwrap_or(&[]);
    let mut announced = count_nlri(body.get(attrs_start + alen..).unwrap_or(&[]));
    let mut i = 0;
    while i + 3 <= attrs.len() {
        let flags = attrs[i];
        let code = attrs[i + 1];
        let (len, hdr) = if flags & 0x10 != 0 && i + 4 <= attrs.len() {
            (
                (usize::from(attrs[i + 2]) << 8) | usize::from(attrs[i + 3]),
                4,
            )
        } else {
            (usize::from(attrs[i + 2]), 3)
        };
        let v = attrs.get(i + hdr..i + hdr + len).unwrap_or(&[]);
        match code {
            // MP_REACH_NLRI: AFI, SAFI, next hop length, next hop, reserved, NLRI.
            14 if v.len() > 4 => {
                let nh = usize::from(v[3]);
                announced += count_nlri(v.get(5 + nh..).unwrap_or(&[]));
            }
            // MP_UNREACH_NLRI: AFI, SAFI, withdrawn NLRI.
            15 if v.len() >= 3 => withdrawn += count_nlri(&v[3..]),
            _ => {}
        }
        i += hdr + len;
    }
    (announced, withdrawn)
}

fn sink(listener: TcpListener, state: Arc<Sink>, epoch: Instant) {
    let (mut sock, _) = listener.accept().expect("speaker connects");
    sock.set_nodelay(true).ok();
    let ctx = Context::default();
    let caps = vec![
        Capability::Multiprotocol {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
        },
        Capability::Multiprotocol {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
        },
        Capability::FourOctetAs(65001),
    ];
    let open = Message::Open(Open::new(
        65001,
        240,
        "192.0.2.2".parse().expect("ip"),
        caps,
    ));
    sock.write_all(&open.to_bytes(&ctx)).expect("send OPEN");
    sock.write_all(&Message::Keepalive.to_bytes(&ctx))
        .expect("send KEEPALIVE");
    let keepalive = Message::Keepalive.to_bytes(&ctx);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 18];
    loop {
        let n = match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        let (mut ann, mut wd, mut ups) = (0, 0, 0);
        while buf.len() - at >= 19 {
            let len = usize::from(u16::from_be_bytes([buf[at + 16], buf[at + 17]]));
            if len < 19 || buf.len() - at < len {
                break;
            }
            match buf[at + 18] {
                2 => {
                    let (a, w) = count_update(&buf[at + 19..at + len]);
                    if a == 0 && w == 0 {
                        state.established.fetch_add(1, Ordering::Relaxed); // End-of-RIB
                    }
                    ann += a;
                    wd += w;
                    ups += 1;
                }
                4 => {
                    let _ = sock.write_all(&keepalive);
                }
                _ => {}
            }
            at += len;
        }
        buf.drain(..at);
        if ann != 0 || wd != 0 {
            state.held.fetch_add(ann - wd, Ordering::Relaxed);
            state
                .changed_at
                .store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
        }
        state.updates.fetch_add(ups, Ordering::Relaxed);
    }
}

fn prefix(i: u32) -> Ipv6Net {
    Ipv6Net::new(
        std::net::Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0),
        64,
    )
    .expect("prefix")
}

fn routes(range: std::ops::Range<u32>) -> Vec<Route> {
    range
        .map(|i| {
            Route::new(IpNet::V6(prefix(i)))
                .and_then(|r| r.with_next_hop("2001:db8::1".parse().expect("ip")))
                .expect("route")
        })
        .collect()
}

/// CPU seconds (user + system) of `pid` so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Wait until every sink holds `want` prefixes; the time the last one got there.
fn wait_all(sinks: &[Arc<Sink>], want: i64) -> Duration {
    let deadline = Instant::now() + WAIT;
    loop {
        if sinks.iter().all(|s| s.held.load(Ordering::Acquire) == want) {
            let last = sinks
                .iter()
                .map(|s| s.changed_at.load(Ordering::Acquire))
                .max()
                .unwrap_or(0);
            return Duration::from_nanos(last);
        }
        assert!(
            Instant::now() < deadline,
            "sinks hold {:?}, want {want}",
            sinks
                .iter()
                .map(|s| s.held.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let reps: usize = std::env::var("FERRY_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let singles: u32 = std::env::var("FERRY_BENCH_SINGLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let bin = std::env::var("FERRY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferry").into());
    let dir =
        tempfile::tempdir_in(std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| "target".into()))
            .expect("temp dir");
    let epoch = Instant::now();
    let sock = dir.path().join("ferry.sock");
    let mut config = Config {
        speaker: SpeakerConfig::new(
            Asn(65100),
            RouterId(Ipv4Addr::new(192, 0, 2, 1)),
            sock.clone(),
            dir.path().to_owned(),
        ),
        neighbors: Vec::new(),
        health_checks: Vec::new(),
    };
    let mut sinks = Vec::new();
    for i in 0..SINKS {
        let ip = Ipv4Addr::new(127, 0, 0, 10 + i as u8);
        let l = TcpListener::bind((ip, 0)).expect("bind sink");
        let port = l.local_addr().expect("addr").port();
        let mut n = NeighborConfig::new(ip.into(), Asn(65001));
        n.port = port;
        n.hold_time = HoldTime(240);
        n.connect_retry = Seconds(1);
        n.local_address = Some(Ipv4Addr::LOCALHOST.into());
        config.neighbors.push(n);
        let s = Arc::new(Sink::default());
        let s2 = s.clone();
        std::thread::spawn(move || sink(l, s2, epoch));
        sinks.push(s);
    }
    let config_path = dir.path().join("ferry.toml");
    speaker::write_config(&config_path, &config).expect("write config");
    let mut cmd = Command::new(&bin);
    cmd.env("FERRY_LOG", "warn");
    let speaker = SpeakerProcess::start(cmd, &config_path, &sock, None, Duration::from_secs(30))
        .expect("start ferry speaker");
    let pid = speaker.pid().expect("speaker running");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sinks
        .iter()
        .any(|s| s.established.load(Ordering::Relaxed) == 0)
    {
        assert!(Instant::now() < deadline, "sessions did not come up");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = ferry::api::Speaker::new(Endpoint::Unix(sock.clone()), None)
        .with_timeout(Duration::from_secs(120));
    let announce = |rs: Vec<Route>| rt.block_on(client.announce(rs)).expect("announce");
    let withdraw = |ps: Vec<IpNet>| rt.block_on(client.withdraw(ps)).expect("withdraw");
    let rss_start = status_kb(pid, "VmRSS:");

    // Fan-out of 10,000 prefixes to 50 peers.
    let n = 10_000u32;
    let bulk = routes(0..n);
    let (mut t_ann, mut t_wd, mut cpu_round, mut t_answer) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let cpu0 = cpu_secs(pid);
        let t0 = epoch.elapsed();
        let r = announce(bulk.clone());
        t_answer.push((epoch.elapsed() - t0).as_secs_f64() * 1e3);
        assert_eq!(r.changed, n as usize);
        let done = wait_all(&sinks, i64::from(n));
        t_ann.push(done.saturating_sub(t0).as_secs_f64() * 1e3);
        let t0 = epoch.elapsed();
        let r = withdraw(bulk.iter().map(|r| r.prefix).collect());
        assert_eq!(r.changed, n as usize);
        let done = wait_all(&sinks, 0);
        t_wd.push(done.saturating_sub(t0).as_secs_f64() * 1e3);
        cpu_round.push(cpu_secs(pid) - cpu0);
    }
    let rss_fanout = status_kb(pid, "VmRSS:");

    // Per-change cost with 100,000 routes installed.
    let big = 100_000u32;
    let cpu0 = cpu_secs(pid);
    let t0 = epoch.elapsed();
    announce(routes(0..big));
    let done = wait_all(&sinks, i64::from(big));
    let t_100k = done.saturating_sub(t0).as_secs_f64() * 1e3;
    let cpu_100k = cpu_secs(pid) - cpu0;
    std::thread::sleep(Duration::from_millis(300));
    let (mut first, mut last) = (Vec::new(), Vec::new());
    let cpu0 = cpu_secs(pid);
    for k in 0..singles {
        let want = i64::from(big + k + 1);
        let t0 = epoch.elapsed();
        announce(routes(big + k..big + k + 1));
        let done = wait_all(&sinks, want);
        let earliest = sinks
            .iter()
            .map(|s| s.changed_at.load(Ordering::Acquire))
            .min()
            .unwrap_or(0);
        first.push((Duration::from_nanos(earliest).saturating_sub(t0)).as_secs_f64() * 1e3);
        last.push(done.saturating_sub(t0).as_secs_f64() * 1e3);
    }
    let cpu_single = (cpu_secs(pid) - cpu0) / f64::from(singles.max(1));
    let rss_end = status_kb(pid, "VmRSS:");
    let hwm = status_kb(pid, "VmHWM:");

    println!("ferry fan-out quick harness: {SINKS} sinks, binary {bin}, {reps} reps");
    println!(
        "fan-out 10k announce -> last sink holds all: median {:.1} ms (all: {:?})",
        median(t_ann.clone()),
        t_ann.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    println!(
        "fan-out 10k withdraw -> last sink empty:     median {:.1} ms",
        median(t_wd)
    );
    println!(
        "bulk announce API answer (10k, fsync'd):     median {:.1} ms",
        median(t_answer)
    );
    println!(
        "speaker CPU per 10k announce+withdraw round: median {:.2} s",
        median(cpu_round)
    );
    println!("100k announce -> last sink holds all: {t_100k:.0} ms, speaker CPU {cpu_100k:.2} s");
    println!(
        "one more prefix with 100k installed: call -> first sink median {:.2} ms, -> last of {SINKS} sinks median {:.2} ms, speaker CPU per change {:.1} ms",
        median(first),
        median(last),
        cpu_single * 1e3
    );
    println!(
        "speaker RSS: start {} MiB, after 10k rounds {} MiB, after 100k {} MiB, peak {} MiB",
        rss_start / 1024,
        rss_fanout / 1024,
        rss_end / 1024,
        hwm / 1024
    );
    let updates: u64 = sinks
        .iter()
        .map(|s| s.updates.load(Ordering::Relaxed))
        .sum();
    println!("UPDATEs received by all sinks: {updates}");
}
