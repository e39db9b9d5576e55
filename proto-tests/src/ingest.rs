//! Full-table ingest runs (benchmark `ingest_full` and the CI guard `tests/ingest_guard.rs`):
//! one receiver (Ferry, BIRD 2, FRR or GoBGP) takes a pre-encoded synthetic table
//! ([`crate::fulltable`]) from `bgp_blaster`, a raw BGP peer, and the run measures how long it
//! takes until the receiver reports every prefix, its peak RSS and its CPU time.
//!
//! Layout of one run (fresh [`Lab`] each time): namespace `r` holds the receiver (AS 65001,
//! `192.0.2.1/24`, the session passive on its side), namespace `s` the blaster (AS 65010,
//! `192.0.2.2/24`), one veth between them. The blaster connects, completes the OPEN exchange
//! and prints `ESTABLISHED`; the receiver's CPU time is read, then t0 is taken just before `GO`
//! is written to the blaster, which writes the whole table (UPDATEs, then End-of-RIB) in one go.
//! The run ends at the first poll that sees all prefixes:
//!
//! * Ferry (`ferry speaker`, `FERRY_LOG=warn`): `GET /v1/peers` `prefixes_received`, over the
//!   API's Unix socket from this process, every 5 ms;
//! * BIRD: `show protocols all fit_p1` `Routes: N imported` over the control socket from this
//!   process (no birdc process), every 5 ms;
//! * FRR (`bgpd -Z`: no zebra, nothing installed in a kernel, route-map FIT-ALL in):
//!   `vtysh show bgp ipv4 unicast summary json` `pfxRcd`, every 50 ms (each poll is a vtysh
//!   process);
//! * GoBGP: `gobgp neighbor 192.0.2.2 -j` `state.adj_table.received` (accepted when present),
//!   every 50 ms.
//!
//! Peak RSS is `VmHWM` of the receiver's process at the end (FRR: bgpd, the only FRR process
//! running); CPU is the change of utime+stime (`/proc/<pid>/stat`, all threads) from just before
//! t0 to the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bench::vm_hwm_kib;
use crate::ferry::{write_config, FerryConfig};
use ferry::api::blocking::Speaker;
use testkit::cmd::run;
use testkit::daemons::bird::{Bird, BirdConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::gobgp::{GoBgp, GoBgpConfig};
use testkit::daemons::{Family, Peer};
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;

pub const RECEIVER_AS: u32 = 65001;
pub const BLASTER_AS: u32 = 65010;
pub const RECEIVER_IP: &str = "192.0.2.1";
pub const BLASTER_IP: &str = "192.0.2.2";
const HOLD: u16 = 90;

/// The binaries a run needs: the Ferry receiver and this package's `bgp_blaster` (tests and
/// benches pass `env!("CARGO_BIN_EXE_bgp_blaster")`, which cargo builds for them).
#[derive(Clone, Debug)]
pub struct Bins {
    pub ferry: PathBuf,
    pub blaster: PathBuf,
}

impl Bins {
    /// `FERRY_BIN`, or the workspace's release build of ferry; `blaster` is the bench's own
    /// `bgp_blaster` (`CARGO_BIN_EXE_bgp_blaster`).
    pub fn from_env(blaster: &str) -> Bins {
        Bins {
            ferry: std::env::var_os("FERRY_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/ferry")
                }),
            blaster: PathBuf::from(blaster),
        }
    }

    /// The kinds of `all` named in the environment variable `var` (comma-separated; every
    /// kind when it is unset or empty). Panics naming the programs of the chosen kinds that
    /// are not there.
    pub fn selected<K: Copy>(
        &self,
        var: &str,
        all: &[K],
        name: impl Fn(K) -> &'static str,
        program: impl Fn(K, &Path) -> String,
    ) -> Vec<K> {
        let wanted = std::env::var(var).unwrap_or_default();
        let kinds: Vec<K> = all
            .iter()
            .copied()
            .filter(|k| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == name(*k)))
            .collect();
        let missing: Vec<String> = kinds
            .iter()
            .map(|k| program(*k, &self.ferry))
            .filter(|p| !testkit::root::program_exists(p))
            .collect();
        assert!(
            missing.is_empty(),
            "missing: {missing:?} (build Ferry with `cargo build --release --bin ferry` or set FERRY_BIN)"
        );
        kinds
    }
}

/// Which implementation receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverKind {
    Ferry,
    Bird,
    Frr,
    GoBgp,
}

impl ReceiverKind {
    pub const ALL: [ReceiverKind; 4] = [
        ReceiverKind::Ferry,
        ReceiverKind::Bird,
        ReceiverKind::Frr,
        ReceiverKind::GoBgp,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ReceiverKind::Ferry => "ferry",
            ReceiverKind::Bird => "bird",
            ReceiverKind::Frr => "frr",
            ReceiverKind::GoBgp => "gobgp",
        }
    }
    /// The program that must exist for this receiver.
    pub fn program(self, ferry_bin: &Path) -> String {
        match self {
            ReceiverKind::Ferry => ferry_bin.display().to_string(),
            ReceiverKind::Bird => "bird".into(),
            ReceiverKind::Frr => "/usr/lib/frr/bgpd".into(),
            ReceiverKind::GoBgp => "gobgpd".into(),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct IngestRun {
    /// t0 -> the poll that saw every prefix (seconds).
    pub secs: Option<f64>,
    /// t0 -> the blaster's last write returned (seconds, the blaster's clock).
    pub sent_secs: Option<f64>,
    pub rss_kib: Option<u64>,
    pub cpu_secs: Option<f64>,
    pub error: Option<String>,
}

/// utime + stime of `pid` (all threads) in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after "(comm)": state is field 3, utime 14, stime 15
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        run(Command::new("getconf").arg("CLK_TCK"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// One command over BIRD's control socket (what birdc does, without a process): the reply's
/// text lines, up to the final line (a 4-digit code followed by a space).
pub fn bird_ctl(sock: &Path, cmd: &str) -> Result<String, String> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("bird greeting: {e}"))?;
    if !line.starts_with("0001 ") {
        return Err(format!("bird greeting: {line:?}"));
    }
    s.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| format!("bird {cmd:?}: {e}"))?;
    let mut out = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)
            .map_err(|e| format!("bird {cmd:?}: {e}"))?
            == 0
        {
            return Err(format!("bird {cmd:?}: connection closed"));
        }
        let b = line.as_bytes();
        let coded = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
        if coded && b[4] == b' ' {
            out.push_str(&line[5..]);
            return Ok(out);
        }
        out.push_str(if coded {
            &line[5..]
        } else {
            line.trim_start_matches(' ')
        });
    }
}

/// `Routes:         N imported, ...` of `show protocols all` output.
pub fn bird_imported(text: &str) -> Option<u64> {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Routes:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Prefixes accepted (or received) from the neighbor in `gobgp neighbor X -j`: the sum over
/// `afi_safis[].state` (GoBGP 3), or `state.adj_table` (older releases).
pub fn gobgp_received(v: &Value) -> Option<u64> {
    let pick = |t: &Value| {
        t.get("accepted")
            .or_else(|| t.get("received"))
            .and_then(Value::as_u64)
    };
    if let Some(afs) = v.get("afi_safis").and_then(Value::as_array) {
        let counts: Vec<u64> = afs
            .iter()
            .filter_map(|a| a.get("state").and_then(pick))
            .collect();
        if !counts.is_empty() {
            return Some(counts.iter().sum());
        }
    }
    v.pointer("/state/adj_table").and_then(pick)
}

/// A running receiver.
enum Receiver<'l> {
    Ferry {
        pid: u32,
        api: Speaker,
        log: PathBuf,
    },
    Bird(Bird<'l>),
    Frr(Frr<'l>),
    GoBgp(GoBgp<'l>),
}

impl<'l> Receiver<'l> {
    fn start(
        kind: ReceiverKind,
        lab: &'l Lab,
        ns: &Netns,
        ferry_bin: &Path,
    ) -> Result<Self, String> {
        let peer = Peer::new(BLASTER_IP, BLASTER_AS)
            .passive()
            .local_address(RECEIVER_IP)
            .hold_time(HOLD)
            .families(&[Family::Ipv4]);
        let id = RECEIVER_IP;
        Ok(match kind {
            ReceiverKind::Ferry => {
                let dir = lab.tempdir("ferry-r");
                let mut fc =
                    FerryConfig::new(RECEIVER_AS, id).listen(&format!("{RECEIVER_IP}:179"));
                fc.connect_retry = 5;
                fc.neighbors = vec![Peer {
                    local_address: None,
                    ..peer
                }];
                let conf = fc.config(&dir);
                let path = write_config(&dir, &conf)?;
                let api = conf.speaker.api;
                let (pid, log) = spawn_ferry(lab, ns, ferry_bin, &path, &api, &dir)?;
                let api = Speaker::unix(&api)?;
                Receiver::Ferry { pid, api, log }
            }
            ReceiverKind::Bird => Receiver::Bird(Bird::start(
                lab,
                ns,
                &BirdConfig::new(RECEIVER_AS, id).peer(peer),
            )),
            ReceiverKind::Frr => Receiver::Frr(Frr::start(
                lab,
                ns,
                &FrrConfig::new(RECEIVER_AS, id).peer(peer),
            )),
            ReceiverKind::GoBgp => Receiver::GoBgp(GoBgp::start(
                lab,
                ns,
                &GoBgpConfig::new(RECEIVER_AS, id).peer(peer),
            )),
        })
    }

    fn pid(&self) -> u32 {
        match self {
            Receiver::Ferry { pid, .. } => *pid,
            Receiver::Bird(b) => b.pid(),
            Receiver::Frr(f) => *f.pids().last().unwrap_or(&0),
            Receiver::GoBgp(g) => g.pid(),
        }
    }

    fn poll_interval(&self) -> Duration {
        match self {
            Receiver::Ferry { .. } | Receiver::Bird(_) => Duration::from_millis(5),
            _ => Duration::from_millis(50),
        }
    }

    /// Prefixes received from the blaster, as the receiver reports them.
    fn count(&self) -> Result<u64, String> {
        match self {
            Receiver::Ferry { api, .. } => {
                let peers = api.peers().map_err(|e| e.to_string())?;
                peers
                    .first()
                    .map(|p| p.prefixes_received)
                    .ok_or_else(|| "the receiving speaker has no neighbor".to_string())
            }
            Receiver::Bird(b) => {
                let out = bird_ctl(&b.dir().join("bird.ctl"), "show protocols all fit_p1")?;
                Ok(bird_imported(&out).unwrap_or(0))
            }
            Receiver::Frr(f) => {
                let v = f.vtysh_json("show bgp ipv4 unicast summary json")?;
                Ok(crate::bench::parse_summary(&v, BLASTER_IP).received)
            }
            Receiver::GoBgp(g) => {
                let v = g.gobgp_json(&["neighbor", BLASTER_IP])?;
                gobgp_received(&v).ok_or_else(|| format!("no prefix count in {v}"))
            }
        }
    }

    fn log_tail(&self) -> String {
        use testkit::daemons::BgpDaemon;
        match self {
            Receiver::Ferry { log, .. } => testkit::daemons::tail_file(log, 10),
            Receiver::Bird(b) => b.log_tail(10),
            Receiver::Frr(f) => f.log_tail(10),
            Receiver::GoBgp(g) => g.log_tail(10),
        }
    }
}

/// The blaster child with its stdout lines arriving on a channel; killed (by its own PID) on
/// drop.
struct Blaster {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Blaster {
    fn start(ns: &Netns, blaster: &Path, table: &Path) -> Result<Blaster, String> {
        let mut c = ns.command(&blaster.display().to_string());
        c.args([
            "blast",
            "--connect",
            &format!("{RECEIVER_IP}:179"),
            "--bind",
            BLASTER_IP,
            "--asn",
            &BLASTER_AS.to_string(),
            "--router-id",
            BLASTER_IP,
            "--table",
        ])
        .arg(table);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("bgp_blaster: {e}"))?;
        let lines = spawn_line_reader(child.stdout.take().ok_or("no stdout")?);
        Ok(Blaster { child, lines })
    }

    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<(Instant, String), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, l)) if l.starts_with(prefix) => return Ok((t, l)),
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    return Err(format!(
                        "bgp_blaster: no {prefix:?} line within {timeout:?}; stderr: {}",
                        err.trim()
                    ));
                }
            }
        }
    }

    fn go(&mut self) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        stdin
            .write_all(b"GO\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("bgp_blaster stdin: {e}"))
    }
}

impl Drop for Blaster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `out` line by line on a thread; each line with the instant it arrived.
pub fn spawn_line_reader(out: impl Read + Send + 'static) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Writes the table for `prefixes` to `path` (generated once per process and size).
pub fn write_table(path: &Path, prefixes: usize) -> Result<crate::fulltable::Table, String> {
    let spec = if prefixes == crate::fulltable::TableSpec::FULL.prefixes {
        crate::fulltable::TableSpec::FULL
    } else {
        crate::fulltable::TableSpec::scaled(prefixes)
    };
    let ip: Ipv4Addr = BLASTER_IP.parse().map_err(|_| "BLASTER_IP")?;
    let t = crate::fulltable::generate(spec, BLASTER_AS, ip)?;
    std::fs::write(path, &t.wire).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(t)
}

/// One ingest run of `kind` (fresh lab `fit-<lab_name>-<pid>-*`): `table` holds `n` prefixes.
pub fn ingest_once(
    lab_name: &str,
    kind: ReceiverKind,
    table: &Path,
    n: u64,
    bins: &Bins,
    timeout: Duration,
) -> IngestRun {
    let mut r = IngestRun::default();
    if let Err(e) = ingest_inner(lab_name, kind, table, n, bins, timeout, &mut r) {
        r.error = Some(e);
    }
    r
}

fn ingest_inner(
    lab_name: &str,
    kind: ReceiverKind,
    table: &Path,
    n: u64,
    bins: &Bins,
    timeout: Duration,
    r: &mut IngestRun,
) -> Result<(), String> {
    let lab = Lab::new(lab_name);
    let rns = lab.netns("r");
    let sns = lab.netns("s");
    lab.veth(
        &rns,
        &[&format!("{RECEIVER_IP}/24")],
        &sns,
        &[&format!("{BLASTER_IP}/24")],
    )
    .wait_up(Duration::from_secs(5));
    let receiver = Receiver::start(kind, &lab, &rns, &bins.ferry)?;
    let pid = receiver.pid();
    let mut blaster = Blaster::start(&sns, &bins.blaster, table)?;
    blaster
        .wait_line("ESTABLISHED", Duration::from_secs(40))
        .map_err(|e| format!("{e}\n--- receiver log ---\n{}", receiver.log_tail()))?;
    let cpu0 = cpu_secs(pid).ok_or("receiver CPU time unreadable")?;
    let t0 = Instant::now();
    blaster.go()?;
    let interval = receiver.poll_interval();
    loop {
        let last = receiver.count();
        if last == Ok(n) {
            r.secs = Some(t0.elapsed().as_secs_f64());
            break;
        }
        if t0.elapsed() > timeout {
            r.rss_kib = vm_hwm_kib(pid);
            return Err(format!(
                "timeout after {timeout:?}: receiver reports {last:?} of {n}\n--- log ---\n{}",
                receiver.log_tail()
            ));
        }
        std::thread::sleep(interval);
    }
    r.cpu_secs = cpu_secs(pid).map(|c| c - cpu0);
    r.rss_kib = vm_hwm_kib(pid);
    if let Ok((_, l)) = blaster.wait_line("SENT", Duration::from_secs(5)) {
        r.sent_secs = l.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    }
    Ok(())
}

/// Start `ferry speaker --config config` in `ns` (log `dir/ferry.log`, `FERRY_LOG` from
/// `BENCH_FERRY_LOG`, default warn) and wait up to 10 s until its API at `api` answers.
/// Returns its pid and log path; an error carries the log's tail.
pub fn spawn_ferry(
    lab: &Lab,
    ns: &Netns,
    ferry_bin: &Path,
    config: &Path,
    api: &Path,
    dir: &Path,
) -> Result<(u32, PathBuf), String> {
    let filter = std::env::var("BENCH_FERRY_LOG").unwrap_or_else(|_| "warn".into());
    spawn_ferry_logging(lab, ns, ferry_bin, config, api, dir, &filter)
}

/// [`spawn_ferry`] with the log filter `filter` (`FERRY_LOG`).
pub fn spawn_ferry_logging(
    lab: &Lab,
    ns: &Netns,
    ferry_bin: &Path,
    config: &Path,
    api: &Path,
    dir: &Path,
    filter: &str,
) -> Result<(u32, PathBuf), String> {
    let log = dir.join("ferry.log");
    let mut c = ns.command(&ferry_bin.display().to_string());
    c.args(["speaker", "--config"]).arg(config);
    c.env("FERRY_LOG", filter);
    let pid = lab.spawn("ferry", c, &log);
    let up = poll(Duration::from_secs(10), || {
        if !lab.is_running(pid) {
            return Some(false);
        }
        Speaker::unix(api).ok()?.peers().ok().map(|_| true)
    });
    if up != Some(true) {
        return Err(format!(
            "ferry did not come up\n{}",
            testkit::daemons::tail_file(&log, 20)
        ));
    }
    Ok((pid, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bird_protocol_routes() {
        let text = "fit_p1     BGP        ---        up     01:02:03.456  Established\n\
                    \x20 BGP state:          Established\n\
                    \x20   Routes:         800000 imported, 0 exported, 800000 preferred\n";
        assert_eq!(bird_imported(text), Some(800_000));
        assert_eq!(bird_imported("no routes line"), None);
    }

    #[test]
    fn parses_gobgp_adj_table() {
        let v: Value =
            serde_json::from_str(r#"{"state":{"adj_table":{"received":7,"accepted":5}}}"#).unwrap();
        assert_eq!(gobgp_received(&v), Some(5));
        let v: Value = serde_json::from_str(r#"{"state":{"adj_table":{"received":7}}}"#).unwrap();
        assert_eq!(gobgp_received(&v), Some(7));
        let v: Value = serde_json::from_str(
            r#"{"afi_safis":[{"state":{"family":{"afi":1},"received":9,"accepted":8}}]}"#,
        )
        .unwrap();
        assert_eq!(gobgp_received(&v), Some(8));
    }

    #[test]
    fn cpu_time_of_this_process() {
        let c = cpu_secs(std::process::id()).expect("own /proc stat");
        assert!(c >= 0.0);
    }
}
