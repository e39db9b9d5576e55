//! Pieces of the sender benchmark (`benches/announce_100k.rs`): many documentation prefixes,
//! one sender (Ferry, BIRD 2, GoBGP, ExaBGP) with all of them loaded before its session comes
//! up, a receiving FRR whose `show bgp ipv6 unicast summary json` is polled, and the sender's
//! peak RSS.
//!
//! Layout of one run (fresh [`Lab`] each time): namespace `r` runs the receiver FRR (`bgpd -Z`,
//! AS 65001, `2001:db8:ffff::1/64`) which starts with `neighbor X shutdown`; namespace `s` runs
//! the sender (AS 65002, `2001:db8:ffff::2/64`), passive, IPv6 unicast only. Enabling the
//! neighbor on FRR (t0) makes FRR connect at once. Prefixes are `2001:db8:H:L::/64` with
//! `H` from 1 (the link uses `2001:db8:ffff::/64`).

use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ferry::{write_config, FerryConfig};
use ferry::api::blocking::Speaker;
use testkit::cmd::run;
use testkit::daemons::bird::{Bird, BirdConfig};
use testkit::daemons::frr::{BgpdVty, Frr, FrrConfig};
use testkit::daemons::gobgp::{GoBgp, GoBgpConfig};
use testkit::daemons::{BgpDaemon, Family, Peer, Route};
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;

pub const RECEIVER_AS: u32 = 65001;
pub const SENDER_AS: u32 = 65002;
pub const RECEIVER_IP: &str = "2001:db8:ffff::1";
pub const SENDER_IP: &str = "2001:db8:ffff::2";
pub const RECEIVER_ID: &str = "192.0.2.1";
pub const SENDER_ID: &str = "192.0.2.2";
/// Hold time of every session (long, so a sender busy with 100k routes never expires it).
pub const HOLD: u16 = 90;

/// `n` distinct IPv6 /64s inside 2001:db8::/32: `2001:db8:H:L::/64`, H = 1 + i / 65536.
pub fn prefixes(n: usize) -> Vec<String> {
    assert!(n <= 0xfffe * 0x10000, "too many prefixes for 2001:db8::/32");
    (0..n)
        .map(|i| format!("2001:db8:{:x}:{:x}::/64", 1 + (i >> 16), i & 0xffff))
        .collect()
}

/// Median of a non-empty slice (mean of the middle two for an even count).
/// A benchmark's numeric setting from the environment (`BENCH_ROUNDS=5`); `default` when unset
/// or not a number.
pub fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}

/// Peak resident set size (`VmHWM`) of `pid` in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The receiving FRR: `neighbor SENDER_IP shutdown` until [`Receiver::enable`].
pub struct Receiver<'l> {
    pub frr: Frr<'l>,
    /// Opened at the first count and kept (see [`BgpdVty`]); reopened after an error.
    vty: RefCell<Option<BgpdVty>>,
}

/// What FRR's summary says about the sender.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCount {
    pub state: String,
    pub received: u64,
}

impl<'l> Receiver<'l> {
    pub fn start(lab: &'l Lab, ns: &Netns) -> Receiver<'l> {
        let config = FrrConfig::new(RECEIVER_AS, RECEIVER_ID)
            .peer(
                Peer::new(SENDER_IP, SENDER_AS)
                    .local_address(RECEIVER_IP)
                    .hold_time(HOLD)
                    .families(&[Family::Ipv6]),
            )
            .extra_router(&format!("neighbor {SENDER_IP} shutdown"))
            // FRR processes route-map changes 5 s after the last one (the delay timer),
            // loading the config included; for a peer with an inbound route-map that means a
            // ROUTE-REFRESH, and the sender sends its whole table again. Seen in the capture
            // of announce_scale: the resend landed in whatever was being timed then and cost
            // FRR about a second of CPU at 100k. 0: route-maps apply as configured, no timer.
            .extra_global("bgp route-map delay-timer 0")
            // zebra: without it (`bgpd -Z`) FRR has no interfaces and withdraws every route
            // whose MP_REACH_NLRI carries a link-local next hop besides the global one (what
            // BIRD and Ferry send on a shared link): "sent a v6 LL next-hop and there's no
            // peer interface information"
            .with_zebra();
        Receiver {
            frr: Frr::start(lab, ns, &config),
            vty: RefCell::new(None),
        }
    }

    /// `no neighbor SENDER_IP shutdown`: FRR connects to the sender.
    pub fn enable(&self) -> Result<(), String> {
        self.frr.enable_peer(SENDER_IP)
    }

    /// State and prefixes received from the sender (`show bgp ipv6 unicast summary json`, over
    /// one kept vty connection).
    pub fn count(&self) -> Result<PeerCount, String> {
        const CMD: &str = "show bgp ipv6 unicast summary json";
        let mut vty = self.vty.borrow_mut();
        if vty.is_none() {
            *vty = Some(self.frr.bgpd_vty()?);
        }
        let answer = vty.as_mut().map(|v| v.json(CMD));
        match answer {
            Some(Ok(v)) => Ok(parse_summary(&v, SENDER_IP)),
            Some(Err(e)) => {
                *vty = None;
                Err(e)
            }
            None => Err("no vty".into()),
        }
    }

    /// Polls every `interval` until the sender's count is `target` (and the session is
    /// Established). Returns (time of the first poll that saw Established, time it saw
    /// `target`), both from `t0`; Err on timeout (saying what was seen last).
    pub fn wait_count(
        &self,
        t0: Instant,
        target: u64,
        interval: Duration,
        timeout: Duration,
    ) -> Result<(Option<Duration>, Duration), String> {
        let mut established = None;
        let mut last = PeerCount::default();
        loop {
            match self.count() {
                Ok(c) => {
                    let now = t0.elapsed();
                    if c.state == "Established" && established.is_none() {
                        established = Some(now);
                    }
                    if c.state == "Established" && c.received == target {
                        return Ok((established, now));
                    }
                    last = c;
                }
                Err(e) => last.state = format!("(vtysh: {e})"),
            }
            if t0.elapsed() >= timeout {
                return Err(format!(
                    "timeout after {timeout:?}: FRR shows state {} with {} prefixes, waiting for {target}",
                    last.state, last.received
                ));
            }
            std::thread::sleep(interval);
        }
    }
}

/// The sender's entry in `show bgp ipv6 unicast summary json` (top level `peers`, or under
/// `ipv6Unicast` as `show bgp summary json` has it).
pub fn parse_summary(v: &Value, peer: &str) -> PeerCount {
    let p = v
        .pointer("/peers")
        .or_else(|| v.pointer("/ipv6Unicast/peers"))
        .and_then(|p| p.get(peer));
    let Some(p) = p else {
        return PeerCount {
            state: "(not in summary)".into(),
            received: 0,
        };
    };
    PeerCount {
        state: p
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        received: p.get("pfxRcd").and_then(Value::as_u64).unwrap_or(0),
    }
}

/// The two namespaces and their link (`r`: receiver, `s`: sender).
pub fn topology(lab: &Lab) -> (Netns, Netns) {
    let r = lab.netns("r");
    let s = lab.netns("s");
    let v = lab.veth(
        &r,
        &[&format!("{RECEIVER_IP}/64")],
        &s,
        &[&format!("{SENDER_IP}/64")],
    );
    v.wait_up(Duration::from_secs(5));
    (r, s)
}

/// Which implementation sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderKind {
    Ferry,
    Bird,
    GoBgp,
    ExaBgp,
}

impl SenderKind {
    pub const ALL: [SenderKind; 4] = [
        SenderKind::Ferry,
        SenderKind::Bird,
        SenderKind::GoBgp,
        SenderKind::ExaBgp,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SenderKind::Ferry => "ferry",
            SenderKind::Bird => "bird",
            SenderKind::GoBgp => "gobgp",
            SenderKind::ExaBgp => "exabgp",
        }
    }
}

/// A running sender with all prefixes loaded (not yet peered: FRR's neighbor is shut down).
pub enum Sender<'l> {
    Ferry {
        pid: u32,
        api: PathBuf,
        log: PathBuf,
    },
    Bird(Bird<'l>),
    GoBgp(GoBgp<'l>),
    ExaBgp {
        pid: u32,
        dir: PathBuf,
        log: PathBuf,
    },
}

/// How long a sender may take to load its routes before t0.
const LOAD_TIMEOUT: Duration = Duration::from_secs(300);

impl<'l> Sender<'l> {
    /// Starts `kind` in `ns` with `prefixes` loaded, and waits until they are.
    pub fn start(
        kind: SenderKind,
        lab: &'l Lab,
        ns: &Netns,
        prefixes: &[String],
        ferry_bin: &Path,
    ) -> Result<Sender<'l>, String> {
        match kind {
            SenderKind::Ferry => start_ferry(lab, ns, prefixes, ferry_bin),
            SenderKind::Bird => start_bird(lab, ns, prefixes),
            SenderKind::GoBgp => start_gobgp(lab, ns, prefixes),
            SenderKind::ExaBgp => start_exabgp(lab, ns, prefixes),
        }
    }

    /// PID of the sending daemon (for its peak RSS).
    pub fn pid(&self) -> u32 {
        match self {
            Sender::Ferry { pid, .. } | Sender::ExaBgp { pid, .. } => *pid,
            Sender::Bird(b) => b.pid(),
            Sender::GoBgp(g) => g.pid(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        match self {
            Sender::Ferry { log, .. } | Sender::ExaBgp { log, .. } => log.clone(),
            Sender::Bird(b) => b.log_path().to_path_buf(),
            Sender::GoBgp(g) => g.log_path().to_path_buf(),
        }
    }

    /// Starts withdrawing every prefix: Ferry `POST /v1/withdraw` of all of them, BIRD
    /// `birdc disable` of the static protocol, GoBGP `gobgp global rib -a ipv6 del all`,
    /// ExaBGP one `withdraw route` API line per prefix. Returns when the command returned.
    pub fn withdraw_all(&self, prefixes: &[String]) -> Result<(), String> {
        match self {
            Sender::Ferry { api, .. } => {
                let body = serde_json::json!({ "prefixes": prefixes }).to_string();
                let (status, text) = http_unix(api, "POST", "/v1/withdraw", Some(&body))?;
                if status != 200 {
                    return Err(format!("POST /v1/withdraw: {status} {text}"));
                }
                Ok(())
            }
            Sender::Bird(b) => {
                let out = b.birdc(&["disable", "fit_static_ipv6"])?;
                if out.contains("disabled") {
                    Ok(())
                } else {
                    Err(format!("birdc disable: {out}"))
                }
            }
            Sender::GoBgp(g) => g
                .gobgp(&["global", "rib", "-a", "ipv6", "del", "all"])
                .map(|_| ()),
            Sender::ExaBgp { dir, .. } => {
                let mut text = String::with_capacity(prefixes.len() * 64);
                for p in prefixes {
                    text.push_str(&format!("withdraw route {p} next-hop {SENDER_IP}\n"));
                }
                let path = dir.join("exabgp.cmd");
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                f.write_all(text.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

fn start_ferry<'l>(
    lab: &'l Lab,
    ns: &Netns,
    prefixes: &[String],
    ferry_bin: &Path,
) -> Result<Sender<'l>, String> {
    let dir = lab.tempdir("ferry");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let routes: Vec<Value> = prefixes
        .iter()
        .map(|p| serde_json::json!({ "prefix": p }))
        .collect();
    let file = serde_json::json!({"version": 1, "generation": 1, "routes": routes});
    std::fs::write(state.join("routes.json"), file.to_string()).map_err(|e| e.to_string())?;
    let mut fc = FerryConfig::new(SENDER_AS, SENDER_ID).listen(&format!("[{SENDER_IP}]:179"));
    fc.connect_retry = 5;
    fc.neighbors = vec![Peer::new(RECEIVER_IP, RECEIVER_AS)
        .passive()
        .hold_time(HOLD)
        .families(&[Family::Ipv6])];
    let mut config = fc.config(&dir);
    config.speaker.api = dir.join("ferry.sock");
    let api = config.speaker.api.clone();
    let conf = write_config(&dir, &config)?;
    let log = dir.join("ferry.log");
    let mut c = ns.command(&ferry_bin.display().to_string());
    c.args(["speaker", "--config"]).arg(&conf);
    c.env(
        "FERRY_LOG",
        std::env::var("BENCH_FERRY_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let pid = lab.spawn("ferry", c, &log);
    // up once the API answers with the loaded routes
    let loaded = poll(LOAD_TIMEOUT, || {
        if !lab.is_running(pid) {
            return Some(Err(format!(
                "ferry exited: {:?}\n{}",
                lab.exit_status(pid),
                testkit::daemons::tail_file(&log, 20)
            )));
        }
        let n = Speaker::unix(&api).ok()?.announced().ok()?.len();
        (n == prefixes.len()).then_some(Ok(()))
    });
    match loaded {
        Some(Ok(())) => Ok(Sender::Ferry { pid, api, log }),
        Some(Err(e)) => Err(e),
        None => Err(format!(
            "ferry API did not list {} routes after {LOAD_TIMEOUT:?}\n{}",
            prefixes.len(),
            testkit::daemons::tail_file(&log, 20)
        )),
    }
}

/// BIRD with extended messages (RFC 8654) on, like Ferry and the FRR receiver by default.
fn start_bird<'l>(lab: &'l Lab, ns: &Netns, prefixes: &[String]) -> Result<Sender<'l>, String> {
    let mut config = BirdConfig::new(SENDER_AS, SENDER_ID).peer(
        Peer::new(RECEIVER_IP, RECEIVER_AS)
            .passive()
            .local_address(SENDER_IP)
            .hold_time(HOLD)
            .extended_messages(),
    );
    config.routes = prefixes.iter().map(|p| Route::new(p)).collect();
    let bird = Bird::start(lab, ns, &config);
    let want = format!("{} of {} routes", prefixes.len(), prefixes.len());
    let ok = poll(LOAD_TIMEOUT, || {
        bird.birdc(&["show", "route", "count", "protocol", "fit_static_ipv6"])
            .ok()
            .filter(|o| o.contains(&want))
    });
    match ok {
        Some(_) => Ok(Sender::Bird(bird)),
        None => Err(format!(
            "bird: static routes not loaded: {:?}",
            bird.birdc(&["show", "route", "count"])
        )),
    }
}

fn start_gobgp<'l>(lab: &'l Lab, ns: &Netns, prefixes: &[String]) -> Result<Sender<'l>, String> {
    let config = GoBgpConfig::new(SENDER_AS, SENDER_ID).peer(
        Peer::new(RECEIVER_IP, RECEIVER_AS)
            .passive()
            .local_address(SENDER_IP)
            .hold_time(HOLD),
    );
    let g = GoBgp::start(lab, ns, &config);
    let mrt = g.dir().join("routes.mrt");
    // gobgp 3.10's `mrt inject` exits after its last Send without closing the gRPC stream, so
    // the last records can be lost: the file lists every prefix, then at least 50,000 of them
    // again (idempotent padding); the injection is repeated (alternating with a file in the
    // reverse order) until the RIB holds all of them.
    let padded = |order: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        let first: Vec<String> = order.cloned().collect();
        let pad = first.len().max(50_000);
        let tail: Vec<String> = first.iter().cycle().take(pad).cloned().collect();
        first.into_iter().chain(tail).collect()
    };
    let forward = padded(&mut prefixes.iter());
    let backward = padded(&mut prefixes.iter().rev());
    let mrt_rev = g.dir().join("routes-reversed.mrt");
    for (file, list) in [(&mrt, &forward), (&mrt_rev, &backward)] {
        write_mrt_ipv6(file, list, SENDER_ID, SENDER_IP, SENDER_AS)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let want = format!("Destination: {},", prefixes.len());
    let mut ok = None;
    for attempt in 0..4 {
        let m = if attempt % 2 == 0 { &mrt } else { &mrt_rev };
        g.gobgp(&[
            "mrt",
            "inject",
            "global",
            "--no-ipv4",
            &m.display().to_string(),
        ])?;
        ok = poll(Duration::from_secs(10), || {
            g.gobgp(&["global", "rib", "summary", "-a", "ipv6"])
                .ok()
                .filter(|o| o.contains(&want))
        });
        if ok.is_some() {
            break;
        }
    }
    match ok {
        Some(_) => Ok(Sender::GoBgp(g)),
        None => Err(format!(
            "gobgp: injected routes not in the RIB: {:?}",
            g.gobgp(&["global", "rib", "summary", "-a", "ipv6"])
        )),
    }
}

/// ExaBGP 4.2 with the routes as `static` routes, `group-updates true` (its default; the
/// interop harness turns it off) and no packet logging; one API process relays
/// `DIR/exabgp.cmd` (for the withdrawals).
fn start_exabgp<'l>(lab: &'l Lab, ns: &Netns, prefixes: &[String]) -> Result<Sender<'l>, String> {
    let dir = lab.tempdir("exabgp");
    let log = dir.join("exabgp.log");
    let cmd = dir.join("exabgp.cmd");
    std::fs::write(&cmd, "").map_err(|e| e.to_string())?;
    let mut conf = format!(
        "process fit-ctl {{\n  run /usr/bin/tail -n +1 -F {};\n  encoder text;\n}}\n\
         neighbor {RECEIVER_IP} {{\n  router-id {SENDER_ID};\n  local-address {SENDER_IP};\n  \
         local-as {SENDER_AS};\n  peer-as {RECEIVER_AS};\n  hold-time {HOLD};\n  \
         group-updates true;\n  passive true;\n  family {{\n    ipv6 unicast;\n  }}\n  static {{\n",
        cmd.display()
    );
    for p in prefixes {
        conf.push_str(&format!(
            "    route {p} next-hop {SENDER_IP} as-path [ {SENDER_AS} ];\n"
        ));
    }
    conf.push_str("  }\n  api {\n    processes [ fit-ctl ];\n  }\n}\n");
    let path = dir.join("exabgp.conf");
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let mut c = ns.command("env");
    c.args([
        "exabgp.api.cli=false",
        "exabgp.daemon.user=root",
        "exabgp.daemon.drop=false",
        "exabgp.daemon.daemonize=false",
        &format!("exabgp.daemon.pid={}", dir.join("exabgp.pid").display()),
        "exabgp.log.destination=stdout",
        "exabgp.log.level=INFO",
        "exabgp.log.packets=false",
        &format!("exabgp.tcp.bind={SENDER_IP}"),
        "exabgp.tcp.port=179",
        "exabgp",
    ])
    .arg(&path);
    let pid = lab.spawn("exabgp", c, &log);
    let ok = poll(LOAD_TIMEOUT, || {
        if !lab.is_running(pid) {
            return Some(false);
        }
        std::fs::read_to_string(&log)
            .ok()
            .filter(|s| s.contains("loaded new configuration successfully"))
            .map(|_| true)
    });
    match ok {
        Some(true) => Ok(Sender::ExaBgp { pid, dir, log }),
        _ => Err(format!(
            "exabgp did not load its configuration\n{}",
            testkit::daemons::tail_file(&log, 20)
        )),
    }
}

/// Writes an MRT TABLE_DUMP_V2 file (RFC 6396): a PEER_INDEX_TABLE with one peer
/// (`peer_id`, `peer_ip`, `peer_as`) and one RIB_IPV6_UNICAST record per prefix with ORIGIN
/// IGP, an empty AS_PATH and a full MP_REACH_NLRI (next hop `peer_ip`). `gobgp mrt inject
/// global FILE` loads it.
pub fn write_mrt_ipv6(
    path: &Path,
    prefixes: &[String],
    peer_id: &str,
    peer_ip: &str,
    peer_as: u32,
) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let id: std::net::Ipv4Addr = peer_id.parse().map_err(|_| bad(peer_id))?;
    let ip: std::net::Ipv6Addr = peer_ip.parse().map_err(|_| bad(peer_ip))?;
    let mut out = Vec::with_capacity(prefixes.len() * 64);
    let record = |out: &mut Vec<u8>, subtype: u16, body: &[u8]| {
        out.extend_from_slice(&0u32.to_be_bytes()); // timestamp
        out.extend_from_slice(&13u16.to_be_bytes()); // TABLE_DUMP_V2
        out.extend_from_slice(&subtype.to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    };
    // PEER_INDEX_TABLE: collector id, empty view name, 1 peer (type: IPv6 address, AS4)
    let mut b = Vec::new();
    b.extend_from_slice(&id.octets());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.push(0x03);
    b.extend_from_slice(&id.octets());
    b.extend_from_slice(&ip.octets());
    b.extend_from_slice(&peer_as.to_be_bytes());
    record(&mut out, 1, &b);
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&[0x40, 1, 1, 0]); // ORIGIN IGP
    attrs.extend_from_slice(&[0x40, 2, 0]); // AS_PATH (empty; the sender prepends its AS)
    for (seq, p) in prefixes.iter().enumerate() {
        let (addr, len) = p.split_once('/').ok_or_else(|| bad(p))?;
        let addr: std::net::Ipv6Addr = addr.parse().map_err(|_| bad(p))?;
        let len: u8 = len.parse().map_err(|_| bad(p))?;
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&(seq as u32).to_be_bytes());
        b.push(len);
        b.extend_from_slice(&addr.octets()[..usize::from(len).div_ceil(8)]);
        b.extend_from_slice(&1u16.to_be_bytes()); // one entry
        b.extend_from_slice(&0u16.to_be_bytes()); // peer index
        b.extend_from_slice(&0u32.to_be_bytes()); // originated time
                                                  // MP_REACH_NLRI in full (AFI 2, SAFI 1, next hop, reserved, the prefix): GoBGP 3.10
                                                  // does not read the abbreviated form (next hop only) of RFC 6396 §4.3.4
        let nlri = &addr.octets()[..usize::from(len).div_ceil(8)];
        let mp_len = 2 + 1 + 1 + 16 + 1 + 1 + nlri.len();
        b.extend_from_slice(&((attrs.len() + 3 + mp_len) as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
        b.extend_from_slice(&[0x80, 14, mp_len as u8]);
        b.extend_from_slice(&[0, 2, 1, 16]);
        b.extend_from_slice(&ip.octets());
        b.push(0);
        b.push(len);
        b.extend_from_slice(nlri);
        record(&mut out, 4, &b);
    }
    std::fs::write(path, out)
}

/// One HTTP/1.1 request over a Unix socket (`Connection: close`); (status, body). Only for the
/// timed bulk calls of the comparisons, whose body is built as text the way a client holding
/// the prefixes as text would (the typed client would add its own parse and encode of 100,000
/// routes to Ferry's figure); everything else uses `ferry::api::blocking::Speaker`.
pub fn http_unix(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP response: {head}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `dpkg-query` version of a package ("?" when unknown).
pub fn package_version(pkg: &str) -> String {
    run(Command::new("dpkg-query").args(["-W", "-f", "${Version}", pkg]))
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_distinct_documentation_64s() {
        let p = prefixes(100_000);
        assert_eq!(p[0], "2001:db8:1:0::/64");
        assert_eq!(p[65536], "2001:db8:2:0::/64");
        let set: std::collections::HashSet<_> = p.iter().collect();
        assert_eq!(set.len(), 100_000);
        for s in &p {
            let net: ipnet::Ipv6Net = s.parse().unwrap();
            assert!("2001:db8::/32"
                .parse::<ipnet::Ipv6Net>()
                .unwrap()
                .contains(&net));
            assert_eq!(net.prefix_len(), 64);
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn summary_parsing() {
        let v: Value = serde_json::from_str(
            r#"{"routerId":"192.0.2.1","peers":{"2001:db8:ffff::2":{"state":"Established","pfxRcd":42}}}"#,
        )
        .unwrap();
        assert_eq!(
            parse_summary(&v, SENDER_IP),
            PeerCount {
                state: "Established".into(),
                received: 42
            }
        );
        assert_eq!(parse_summary(&v, "2001:db8::9").received, 0);
    }

    #[test]
    fn mrt_record_layout() {
        let dir = std::env::temp_dir().join(format!("fit-mrt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.mrt");
        write_mrt_ipv6(&f, &prefixes(2), SENDER_ID, SENDER_IP, SENDER_AS).unwrap();
        let b = std::fs::read(&f).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // header of the peer index table: type 13, subtype 1, body 4+2+2+1+4+16+4 = 33
        assert_eq!(&b[4..12], &[0, 13, 0, 1, 0, 0, 0, 33]);
        let rib = &b[12 + 33..];
        assert_eq!(&rib[4..8], &[0, 13, 0, 4]);
        // sequence 0, /64, 8 prefix octets 2001:0db8:0001:0000
        assert_eq!(&rib[12..21], &[0, 0, 0, 0, 64, 0x20, 0x01, 0x0d, 0xb8]);
    }
}
