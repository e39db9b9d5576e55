//! Ingest of a synthetic full IPv4 table by a receiving speaker: Ferry vs BIRD 2, and the
//! announce path of Ferry while one peer floods it.
//!
//! The table: N distinct IPv4 prefixes (default 800,000; /24-heavy length mix), N * 273/800
//! distinct attribute sets (AS paths of 2-6 4-octet ASNs, communities on half, MED on a
//! quarter, a large community on an eighth), one UPDATE per set (~2.9 prefixes each), then
//! End-of-RIB. It is generated with `ferry::wire` from a fixed seed and encoded before the
//! clock starts.
//!
//! Ingest run: a raw BGP peer on 127.0.0.2 connects to the receiver (passive, on 127.0.0.1),
//! completes the OPEN exchange, then writes the whole table in one go. The clock runs from
//! the first UPDATE octet until the receiver reports all N prefixes (Ferry: API `/v1/peers`
//! `prefixes_received`; BIRD: `birdc show route count`), polled every 10 ms. Reported: that
//! time, the receiver's peak RSS (VmHWM) and CPU seconds (utime+stime) over the run.
//!
//! Flood run (Ferry only): a second neighbor (the speaker connects to a raw peer on
//! 127.0.0.3) receives the UPDATEs of announce/withdraw API calls; the latency call -> UPDATE
//! at that peer is measured quiet and then while the first peer floods the table, in
//! `FERRY_INGEST_FLOODS` rounds (default 3; the flooder reconnects each round), reported per
//! round and pooled (median, p99, max; flood/quiet ratios).
//!
//! Environment: `FERRY_INGEST_N` (prefixes, default 800000), `FERRY_INGEST_RUNS` (default 1),
//! `FERRY_INGEST_ONLY` = ferry | bird | flood (default: all three), `FERRY_INGEST_CALLS`
//! (quiet latency samples per flood round, default 300), `FERRY_INGEST_FLOODS` (flood rounds,
//! default 3), `FERRY_INGEST_BIN` (another `ferry` binary to run, e.g. an older build for an
//! A/B comparison), `FERRY_INGEST_DUMP=FILE` (write the prefixes to FILE
//! and, if BIRD misses some, its `show route` to FILE.bird). BIRD's session is `multihop`
//! (loopback is no shared subnet); its next hop stays unresolved, as in Ferry, which resolves
//! none. Everything stays on loopback and stops by itself.
//! Run: `cargo bench --bench ingest`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferry::api::{Endpoint, PeerStatus, SessionState, Speaker};
use ferry::config::{Asn, Config, FamilyName, NeighborConfig, RouterId, Seconds, SpeakerConfig};
use ferry::speaker::Route;
use ferry::wire::{
    split_frame, AsPath, AttributeValue, Capability, Community, Context, Family, LargeCommunity,
    Message, Open, Origin, PathAttribute, Update, MAX_MESSAGE_LEN,
};
use ipnet::Ipv4Net;
use testkit::rng::Rng;
use testkit::speaker::{self, SpeakerProcess};

/// Every wait in this harness gives up after this long.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(10);
const PEER_ASN: u32 = 65001;
const LOCAL_ASN: u32 = 65100;

fn attribute_set(rng: &mut Rng) -> Vec<PathAttribute> {
    let hops = 2 + rng.below(5) as usize;
    // Public-looking ASNs: none private (BIRD drops paths with its own AS 65100 as loops)
    // and no AS_TRANS.
    let asns: Vec<u32> = (0..hops)
        .map(|_| match 1 + rng.below(400_000) as u32 {
            a @ (23456 | 64496..=65535) => a + 70_000,
            a => a,
        })
        .collect();
    let mut attrs = vec![
        PathAttribute::new(AttributeValue::Origin(Origin::Igp)),
        PathAttribute::new(AttributeValue::AsPath(AsPath::sequence(&asns))),
        PathAttribute::new(AttributeValue::NextHop(Ipv4Addr::new(127, 0, 0, 2))),
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

/// `n` distinct prefixes in 1.0.0.0-223.255.255.255 (127/8 left out) with a /24-heavy length mix.
fn prefixes(rng: &mut Rng, n: usize) -> Vec<Ipv4Net> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = match rng.below(10) {
            0..=5 => 24,
            6 => 22,
            7 => 23,
            8 => 20,
            _ => 16 + rng.below(8) as u8,
        };
        let addr = (0x0100_0000 + rng.below(0xdf00_0000) as u32) & !((1u32 << (32 - len)) - 1);
        let p = Ipv4Net::new(Ipv4Addr::from(addr), len).expect("length <= 32");
        // BIRD rejects 127.0.0.0/8 as martian.
        if addr >> 24 != 127 && seen.insert(p) {
            out.push(p);
        }
    }
    out
}

/// The encoded table (UPDATEs then End-of-RIB) and how many UPDATEs it has.
fn table(n: usize) -> (Vec<u8>, usize) {
    let sets = (n * 273 / 800).max(1);
    let mut rng = Rng::new(0x5eed_f0e5 ^ n as u64);
    let ctx = Context::default();
    let attr_sets: Vec<Vec<PathAttribute>> = (0..sets).map(|_| attribute_set(&mut rng)).collect();
    let mut by_set: Vec<Vec<Ipv4Net>> = vec![Vec::new(); sets];
    let all = prefixes(&mut rng, n);
    if let Ok(f) = std::env::var("FERRY_INGEST_DUMP") {
        let text: String = all.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(f, text).expect("dump");
    }
    for (i, p) in all.into_iter().enumerate() {
        by_set[i % sets].push(p);
    }
    let mut out = BytesMut::new();
    let mut updates = 0;
    for (attributes, nlri) in attr_sets.into_iter().zip(by_set) {
        // ~3 prefixes per set: one UPDATE each always fits 4096 octets.
        let m = Message::Update(Update {
            attributes,
            nlri,
            ..Update::default()
        });
        assert!(m.encoded_len(&ctx) <= MAX_MESSAGE_LEN);
        m.encode(&ctx, &mut out);
        updates += 1;
    }
    Message::Update(Update::end_of_rib(Family::Ipv4Unicast)).encode(&ctx, &mut out);
    (out.to_vec(), updates)
}

/// A child process killed (and reaped) on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// Peak RSS in KiB (VmHWM) of `pid`.
fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid` in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("addr")
        .port()
}

fn open_msg(router_id: Ipv4Addr) -> Vec<u8> {
    let caps = vec![
        Capability::Multiprotocol {
            afi: ferry::wire::Afi::Ipv4,
            safi: ferry::wire::Safi::Unicast,
        },
        Capability::RouteRefresh,
        Capability::FourOctetAs(PEER_ASN),
    ];
    let mut out = Message::Open(Open::new(PEER_ASN, 90, router_id, caps))
        .to_bytes(&Context::default())
        .to_vec();
    out.extend_from_slice(&Message::Keepalive.to_bytes(&Context::default()));
    out
}

/// Read messages until the peer's OPEN and a KEEPALIVE have arrived (so it is Established
/// once it reads our KEEPALIVE, which precedes everything we send next).
fn await_open_confirm(sock: &mut TcpStream) {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let (mut open, mut keepalive) = (false, false);
    while !(open && keepalive) {
        let n = sock.read(&mut chunk).expect("read from receiver");
        assert!(n > 0, "receiver closed during OPEN exchange");
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(frame)) = split_frame(&mut buf, MAX_MESSAGE_LEN) {
            match Message::decode(&frame, &Context::default()) {
                Ok(Message::Open(_)) => open = true,
                Ok(Message::Keepalive) => keepalive = open,
                Ok(Message::Notification(n)) => panic!("receiver sent NOTIFICATION {n:?}"),
                _ => {}
            }
        }
    }
    sock.set_read_timeout(None).expect("timeout");
}

/// Connect from 127.0.0.2 to `to`, complete the OPEN exchange, and keep draining what the
/// receiver sends (nothing is written back, so writes of the table never interleave).
fn raw_flooder(to: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sock = loop {
        let s = nix_free_connect(to);
        match s {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect to {to}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    sock.set_nodelay(true).ok();
    sock.write_all(&open_msg(Ipv4Addr::new(192, 0, 2, 2)))
        .expect("send OPEN");
    await_open_confirm(&mut sock);
    let mut rd = sock.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        while matches!(rd.read(&mut chunk), Ok(n) if n > 0) {}
    });
    sock
}

/// A TCP connection from 127.0.0.2 (the receiver knows its neighbor by that address).
fn nix_free_connect(to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind("127.0.0.2:0".parse().expect("addr"))?;
        let stream = tokio::time::timeout(Duration::from_secs(5), s.connect(to))
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??;
        let std = stream.into_std()?;
        std.set_nonblocking(false)?;
        Ok(std)
    })
}

struct Ferry {
    daemon: SpeakerProcess,
    api: PathBuf,
    listen: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Start `ferry speaker` with the flooding neighbor 127.0.0.2 (passive) and, with
/// `second_port`, a neighbor 127.0.0.3 the speaker connects to.
fn start_ferry(second_port: Option<u16>) -> Ferry {
    let dir =
        tempfile::tempdir_in(std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| "target".into()))
            .expect("temp dir");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let api = dir.path().join("api.sock");
    let mut flooder = NeighborConfig::new(IpAddr::from([127, 0, 0, 2]), Asn(PEER_ASN));
    flooder.passive = true;
    flooder.families = vec![FamilyName::Ipv4];
    flooder.max_prefixes = 2_000_000;
    let mut speaker = SpeakerConfig::new(
        Asn(LOCAL_ASN),
        RouterId(Ipv4Addr::new(192, 0, 2, 1)),
        api.clone(),
        dir.path().join("state"),
    );
    speaker.listen = Some(listen);
    let mut config = Config {
        speaker,
        neighbors: vec![flooder],
        health_checks: Vec::new(),
    };
    if let Some(port) = second_port {
        let mut n = NeighborConfig::new(IpAddr::from([127, 0, 0, 3]), Asn(PEER_ASN));
        n.port = port;
        n.local_address = Some(IpAddr::from([127, 0, 0, 1]));
        n.families = vec![FamilyName::Ipv4];
        n.connect_retry = Seconds(1);
        config.neighbors.push(n);
    }
    let config_path = dir.path().join("ferry.toml");
    speaker::write_config(&config_path, &config).expect("write config");
    let mut cmd = Command::new(
        std::env::var("FERRY_INGEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferry").into()),
    );
    cmd.env("FERRY_LOG", "warn");
    let daemon =
        SpeakerProcess::start(cmd, &config_path, &api, None, WAIT).expect("start ferry speaker");
    Ferry {
        daemon,
        api,
        listen,
        _dir: dir,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn ferry_received(rt: &tokio::runtime::Runtime, client: &Speaker) -> u64 {
    let peers: Vec<PeerStatus> = rt.block_on(client.peers()).expect("GET /v1/peers");
    peers
        .iter()
        .find(|p| p.address == Ipv4Addr::new(127, 0, 0, 2))
        .map(|p| p.prefixes_received)
        .unwrap_or(0)
}

struct Outcome {
    secs: f64,
    hwm_mib: f64,
    cpu: f64,
}

/// Write the table, poll `count` until it reports `n`.
fn flood_and_wait(
    sock: TcpStream,
    table: &Arc<Vec<u8>>,
    n: usize,
    pid: u32,
    mut count: impl FnMut() -> u64,
) -> Outcome {
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let bytes = table.clone();
    let writer = std::thread::spawn(move || {
        let mut sock = sock;
        sock.write_all(&bytes).expect("write table");
        sock
    });
    loop {
        if count() >= n as u64 {
            break;
        }
        assert!(t0.elapsed() < WAIT, "receiver did not get all {n} prefixes");
        std::thread::sleep(POLL);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    let _sock = writer.join().expect("writer");
    Outcome {
        secs,
        hwm_mib: vm_hwm_kib(pid) as f64 / 1024.0,
        cpu,
    }
}

fn run_ferry(table: &Arc<Vec<u8>>, n: usize) -> Outcome {
    let f = start_ferry(None);
    let sock = raw_flooder(f.listen);
    let rt = runtime();
    let client = Speaker::new(Endpoint::Unix(f.api.clone()), None);
    flood_and_wait(
        sock,
        table,
        n,
        f.daemon.pid().expect("speaker running"),
        || ferry_received(&rt, &client),
    )
}

fn run_bird(table: &Arc<Vec<u8>>, n: usize) -> Option<Outcome> {
    if Command::new("bird").arg("--version").output().is_err() {
        println!("bird: not installed, skipped");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let conf = dir.path().join("bird.conf");
    let ctl = dir.path().join("bird.ctl");
    std::fs::write(
        &conf,
        format!(
            "router id 192.0.2.1;\nprotocol device {{ }}\n\
             protocol bgp feed {{\n  local 127.0.0.1 port {port} as {LOCAL_ASN};\n\
             neighbor 127.0.0.2 as {PEER_ASN};\n  passive on;\n  multihop;\n\
             ipv4 {{ import all; export none; }};\n}}\n"
        ),
    )
    .expect("bird.conf");
    let daemon = Daemon(
        Command::new("bird")
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(dir.path().join("bird.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bird"),
    );
    let sock = raw_flooder(SocketAddr::from(([127, 0, 0, 1], port)));
    let count = || bird_count(&ctl);
    let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        flood_and_wait(sock, table, n, daemon.pid(), count)
    }));
    match o {
        Ok(o) => Some(o),
        Err(_) => {
            let out = Command::new("birdc")
                .arg("-s")
                .arg(&ctl)
                .args(["show", "protocols", "all", "feed"])
                .output()
                .expect("birdc");
            if let Ok(f) = std::env::var("FERRY_INGEST_DUMP") {
                let routes = Command::new("birdc")
                    .arg("-s")
                    .arg(&ctl)
                    .args(["show", "route"])
                    .output()
                    .expect("birdc");
                std::fs::write(format!("{f}.bird"), routes.stdout).expect("dump");
            }
            panic!("BIRD: {}", String::from_utf8_lossy(&out.stdout));
        }
    }
}

/// Routes in BIRD's master4 table (`birdc show route count`).
fn bird_count(ctl: &Path) -> u64 {
    let out = Command::new("birdc")
        .arg("-s")
        .arg(ctl)
        .args(["show", "route", "count"])
        .output()
        .expect("birdc");
    // "800000 of 800000 routes for 800000 networks in table master4"
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let first = w.next()?.parse::<u64>().ok()?;
            (w.next() == Some("of")).then_some(first)
        })
        .unwrap_or(0)
}

/// A raw peer listening on 127.0.0.3 that timestamps each UPDATE the speaker sends it.
fn latency_peer(listener: TcpListener, updates: mpsc::Sender<Instant>) {
    let (mut sock, _) = listener.accept().expect("speaker connects");
    sock.set_nodelay(true).ok();
    sock.write_all(&open_msg(Ipv4Addr::new(192, 0, 2, 3)))
        .expect("send OPEN");
    let ctx = Context::default();
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
                Ok(Message::Update(u))
                    if u.end_of_rib_family().is_none() && updates.send(now).is_err() =>
                {
                    return
                }
                Ok(Message::Keepalive) => {
                    let _ = sock.write_all(&Message::Keepalive.to_bytes(&ctx));
                }
                _ => {}
            }
        }
    }
}

/// One announce or withdraw of 198.51.100.0/24; the time until its UPDATE reached the peer.
fn one_call(
    rt: &tokio::runtime::Runtime,
    client: &Speaker,
    rx: &mpsc::Receiver<Instant>,
    announce: bool,
) -> Duration {
    let route = Route::new("198.51.100.0/24".parse().expect("prefix")).expect("route");
    let t0 = Instant::now();
    let resp = rt
        .block_on(async {
            if announce {
                client.announce(vec![route.clone()]).await
            } else {
                client.withdraw(vec![route.prefix]).await
            }
        })
        .expect("API call");
    assert_eq!(resp.changed, 1);
    let at = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("UPDATE within 30 s");
    at.saturating_duration_since(t0)
}

/// The flooding neighbor 127.0.0.2: its state and prefixes received.
fn flooder_status(rt: &tokio::runtime::Runtime, client: &Speaker) -> (String, u64) {
    let peers: Vec<PeerStatus> = rt.block_on(client.peers()).expect("GET /v1/peers");
    peers
        .iter()
        .find(|p| p.address == Ipv4Addr::new(127, 0, 0, 2))
        .map(|p| (p.state.to_string(), p.prefixes_received))
        .unwrap_or_default()
}

/// Latencies of one round, sorted; their median, p99 and max in ms.
fn summary(v: &mut [Duration]) -> (f64, f64, f64) {
    v.sort();
    let max = v.last().map(Duration::as_secs_f64).unwrap_or(0.0);
    (pct(v, 0.5) * 1e3, pct(v, 0.99) * 1e3, max * 1e3)
}

/// `rounds` times: `calls` quiet announce/withdraw calls, then calls while 127.0.0.2 floods
/// the table (until the speaker reports all `n`), then the flooder disconnects and the
/// speaker drops its routes. Quiet and flooded samples of all rounds are pooled, so both sit
/// under the same outside load.
fn run_flood_latency(table: &Arc<Vec<u8>>, n: usize, calls: usize, rounds: usize) {
    let listener = TcpListener::bind("127.0.0.3:0").expect("bind 127.0.0.3");
    let port = listener.local_addr().expect("addr").port();
    let f = start_ferry(Some(port));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || latency_peer(listener, tx));
    let rt = runtime();
    let client = Speaker::new(Endpoint::Unix(f.api.clone()), None);
    let deadline = Instant::now() + WAIT;
    loop {
        let peers: Vec<PeerStatus> = rt.block_on(client.peers()).expect("peers");
        if peers.iter().any(|p| {
            p.address == Ipv4Addr::new(127, 0, 0, 3) && p.state == SessionState::Established
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "second peer not Established");
        std::thread::sleep(POLL);
    }
    std::thread::sleep(Duration::from_millis(200));
    while rx.try_recv().is_ok() {}
    let (mut all_quiet, mut all_flooded, mut ingest) = (Vec::new(), Vec::new(), Vec::new());
    // Calls alternate announce and withdraw over all rounds (each must change the route).
    let mut k = 0usize;
    for round in 0..rounds {
        let mut quiet = Vec::new();
        for _ in 0..calls {
            quiet.push(one_call(&rt, &client, &rx, k.is_multiple_of(2)));
            k += 1;
        }
        let sock = raw_flooder(f.listen);
        let done = Arc::new(AtomicBool::new(false));
        let bytes = table.clone();
        let d = done.clone();
        let t0 = Instant::now();
        let writer = std::thread::spawn(move || {
            let mut sock = sock;
            sock.write_all(&bytes).expect("write table");
            d.store(true, Ordering::Release);
            sock
        });
        let mut flooded = Vec::new();
        while !done.load(Ordering::Acquire) || ferry_received(&rt, &client) < n as u64 {
            assert!(t0.elapsed() < WAIT, "flood did not finish");
            flooded.push(one_call(&rt, &client, &rx, k.is_multiple_of(2)));
            k += 1;
        }
        let flood_secs = t0.elapsed().as_secs_f64();
        let sock = writer.join().expect("writer");
        let (q, f_) = (summary(&mut quiet), summary(&mut flooded));
        println!(
            "round {round}: quiet median {:.3} ms p99 {:.3} max {:.3} (n={}); flood median {:.3} ms \
             p99 {:.3} max {:.3} (n={}); flood took {flood_secs:.2} s",
            q.0,
            q.1,
            q.2,
            quiet.len(),
            f_.0,
            f_.1,
            f_.2,
            flooded.len()
        );
        all_quiet.extend(quiet);
        all_flooded.extend(flooded);
        ingest.push(flood_secs);
        // Disconnect (the drain thread holds a clone of the socket) and wait until the
        // speaker has dropped the session and its routes and accepts a connection again.
        let _ = sock.shutdown(std::net::Shutdown::Both);
        drop(sock);
        let deadline = Instant::now() + WAIT;
        loop {
            let (state, received) = flooder_status(&rt, &client);
            if state == "Active" && received == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "flooder session did not end");
            std::thread::sleep(POLL);
        }
    }
    let (q, f_) = (summary(&mut all_quiet), summary(&mut all_flooded));
    ingest.sort_by(f64::total_cmp);
    println!(
        "announce -> UPDATE at second peer, {rounds} rounds: quiet median {:.3} ms (n={}, p99 {:.3} ms, \
         max {:.3} ms); during flood median {:.3} ms (n={}, p99 {:.3} ms, max {:.3} ms); \
         flood/quiet median {:.2}, p99 {:.2}; flood took {:.2} s (median of rounds)",
        q.0,
        all_quiet.len(),
        q.1,
        q.2,
        f_.0,
        all_flooded.len(),
        f_.1,
        f_.2,
        f_.0 / q.0,
        f_.1 / q.1,
        ingest[ingest.len() / 2]
    );
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("FERRY_INGEST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(800_000);
    let runs: usize = std::env::var("FERRY_INGEST_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let calls: usize = std::env::var("FERRY_INGEST_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let rounds: usize = std::env::var("FERRY_INGEST_FLOODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let only = std::env::var("FERRY_INGEST_ONLY").unwrap_or_default();
    let (bytes, updates) = table(n);
    println!(
        "table: {n} IPv4 prefixes, {updates} UPDATEs, {} sets, {:.1} MB",
        (n * 273 / 800).max(1),
        bytes.len() as f64 / 1e6
    );
    let table = Arc::new(bytes);
    for run in 0..runs {
        for who in ["ferry", "bird"] {
            if !only.is_empty() && only != who {
                continue;
            }
            let o = match who {
                "ferry" => Some(run_ferry(&table, n)),
                _ => run_bird(&table, n),
            };
            if let Some(o) = o {
                println!(
                    "run {run} {who:<5} {n} prefixes: {:.3} s to all received, peak RSS {:.1} MiB, CPU {:.2} s",
                    o.secs, o.hwm_mib, o.cpu
                );
            }
        }
    }
    if only.is_empty() || only == "flood" {
        run_flood_latency(&table, n, calls, rounds);
    }
}
