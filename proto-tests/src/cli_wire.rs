//! Issue 19 item 1: how long an operator's one-line command takes to put its UPDATE on the
//! wire. One sender per kind (Ferry's `ferry announce P` / `ferry withdraw P`, GoBGP's `gobgp
//! global rib add|del`, ExaBGP's `exabgpcli` and ExaBGP's named pipe written directly), each
//! in its own [`Lab`] with the same receiver ([`Receiver`]: FRR bgpd + zebra, AS 65001) and the
//! same addresses; the senders alternate inside each round.
//!
//! The clock: `tcpdump` in the sender's namespace captures the sender's UPDATEs (a BPF filter
//! on the type octet of the first BGP message in each segment from port 179) with nanosecond
//! kernel timestamps (`CLOCK_REALTIME`); t0 is `SystemTime::now()` just before the command's
//! process is spawned (from a thread that has entered the sender's namespace, so no `ip netns
//! exec` runs in between). "update" is t0 -> the first captured UPDATE, "return" t0 -> the
//! command's exit. The pipe variant writes one line into `exabgp.in` itself (no process: what
//! a script's shell builtin `echo` does), the lower bound of ExaBGP's command path.
//!
//! Every announce is checked at FRR (the prefix counted) before the withdraw, and every
//! withdraw before the next round, so each command starts from a settled session.
//!
//! Never: touches addresses outside the lab's namespaces, or kills a process it did not start
//! (the [`Lab`] stops the daemons; `tcpdump` is killed by its own PID on drop).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bench::{topology, Receiver, RECEIVER_AS, RECEIVER_IP, SENDER_AS, SENDER_ID, SENDER_IP};
use crate::ferry::{write_config, FerryConfig};
use crate::ingest::spawn_ferry_logging;
use ferry::config::FamilyName;
use testkit::daemons::gobgp::{GoBgp, GoBgpConfig};
use testkit::daemons::{Family, Peer};
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;

/// The prefix every sender announces and withdraws.
pub const PREFIX: &str = "2001:db8:77::/48";

/// Which command path is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ferry announce P` / `ferry withdraw P` (a new process, API over the Unix socket).
    Ferry,
    /// The same with another build of Ferry (`FERRY_BIN_BEFORE`), to compare two builds in
    /// one run; only when named in `BENCH_SENDERS`.
    FerryBefore,
    /// `gobgp global rib -a ipv6 add|del P` (a new process, gRPC to gobgpd on 127.0.0.1).
    GoBgp,
    /// `exabgpcli announce|withdraw route P next-hop self` (a new Python process, named pipes).
    ExaBgpCli,
    /// One line written into ExaBGP's `exabgp.in` by this process (no new process).
    ExaBgpPipe,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Ferry, Kind::GoBgp, Kind::ExaBgpCli, Kind::ExaBgpPipe];
    /// A [`Lab`] name unique to the kind (labs keep 10 alphanumerics of their name, and
    /// two labs of one process with the same ones would share namespaces).
    pub fn lab_name(self) -> &'static str {
        match self {
            Kind::Ferry => "cwferry",
            Kind::FerryBefore => "cwbefore",
            Kind::GoBgp => "cwgobgp",
            Kind::ExaBgpCli => "cwexacli",
            Kind::ExaBgpPipe => "cwexapipe",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ferry => "ferry",
            Kind::FerryBefore => "ferry-before",
            Kind::GoBgp => "gobgp",
            Kind::ExaBgpCli => "exabgpcli",
            Kind::ExaBgpPipe => "exabgp-pipe",
        }
    }
    /// The kinds named in `BENCH_SENDERS` (comma-separated), all when unset; unknown names
    /// are an error naming them.
    pub fn from_env() -> Result<Vec<Kind>, String> {
        let v = std::env::var("BENCH_SENDERS").unwrap_or_default();
        if v.trim().is_empty() {
            return Ok(Kind::ALL.to_vec());
        }
        v.split(',')
            .map(|n| {
                Kind::ALL
                    .into_iter()
                    .chain([Kind::FerryBefore])
                    .find(|k| k.name() == n.trim())
                    .ok_or_else(|| {
                        format!("BENCH_SENDERS: unknown sender {n:?} (ferry, ferry-before, gobgp, exabgpcli, exabgp-pipe)")
                    })
            })
            .collect()
    }
}

/// One command's timing, in milliseconds from t0.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub update_ms: f64,
    pub return_ms: f64,
    /// Ferry: from the speaker's audit line of the change (logged as soon as the journal's
    /// fdatasync returned) to the command's exit.
    pub after_fsync_ms: Option<f64>,
}

/// Runs closures on a thread that has entered a namespace: processes spawned there start in
/// it (a child inherits its creating thread's network namespace).
pub struct NsThread {
    tx: Option<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl NsThread {
    pub fn enter(ns: &Netns) -> Result<NsThread, String> {
        let path = Path::new("/run/netns").join(ns.name());
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let entered = std::fs::File::open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|f| {
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("setns {}: {e}", path.display()))
                });
            let ok = entered.is_ok();
            let _ = ready_tx.send(entered);
            if ok {
                for job in rx {
                    job();
                }
            }
        });
        ready_rx
            .recv()
            .map_err(|_| "the namespace thread ended".to_string())??;
        Ok(NsThread {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Runs `f` on the namespace's thread and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.tx
            .as_ref()
            .expect("namespace thread")
            .send(job)
            .expect("the namespace thread ended");
        rx.recv().expect("the namespace thread ended")
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `tcpdump` in the sender's namespace, printing one line per UPDATE the sender writes.
pub struct Capture {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// The BPF filter: IPv6 segments from `SENDER_IP` port 179 whose TCP payload is longer than
/// a KEEPALIVE (19 octets): once the session is up (OPEN, End-of-RIB before the clock), the
/// sender writes nothing else but UPDATEs. IPv6 payload length `ip6[4:2]` less the TCP
/// header's `(ip6[52] >> 4) * 4`.
fn update_filter() -> String {
    format!(
        "ip6 and src host {SENDER_IP} and tcp src port 179 and ip6[4:2] - ((ip6[52] & 0xf0) >> 2) > 19"
    )
}

impl Capture {
    pub fn start(ns: &Netns) -> Result<Capture, String> {
        let mut c = ns.command("tcpdump");
        c.args([
            "-i",
            "any",
            "-n",
            "-l",
            "-q",
            "-tt",
            "--time-stamp-precision=nano",
            "-s",
            "128",
            "-B",
            "4096",
        ])
        .arg(update_filter());
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("tcpdump: {e}"))?;
        let stdout = child.stdout.take().ok_or("tcpdump: no stdout")?;
        let stderr = BufReader::new(child.stderr.take().ok_or("tcpdump: no stderr")?);
        // tcpdump says "listening on ..." once the filter is in place (after other notes,
        // e.g. "verbose output suppressed"); its stderr is read on a thread so that a
        // tcpdump that never says it cannot hold us past the timeout.
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            let mut said = false;
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if !said {
                    if line.contains("listening on") {
                        said = true;
                        let _ = ready_tx.send(Ok(()));
                    } else {
                        seen.push_str(&line);
                        seen.push('\n');
                    }
                }
            }
            if !said {
                let _ = ready_tx.send(Err(seen));
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                let said = match outcome {
                    Ok(Err(text)) => text,
                    _ => "(nothing within 10 s)".into(),
                };
                return Err(format!("tcpdump did not start: {said}"));
            }
        }
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Capture { child, lines })
    }

    /// Drop what was captured so far (the session's own UPDATEs, End-of-RIB).
    pub fn clear(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// The capture time of the first UPDATE at or after `t0`, waiting at most `timeout`.
    pub fn first_update_after(
        &self,
        t0: SystemTime,
        timeout: Duration,
    ) -> Result<SystemTime, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("no UPDATE captured within {timeout:?}"))?;
            let t = parse_stamp(&line)?;
            if t >= t0 {
                return Ok(t);
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `1733350000.123456789 IP6 ...` -> that time.
pub fn parse_stamp(line: &str) -> Result<SystemTime, String> {
    let bad = || format!("tcpdump line without a time stamp: {line:?}");
    let stamp = line.split_whitespace().next().ok_or_else(bad)?;
    let (s, ns) = stamp.split_once('.').ok_or_else(bad)?;
    let s: u64 = s.parse().map_err(|_| bad())?;
    if ns.len() != 9 {
        return Err(format!(
            "tcpdump time stamp {stamp:?} is not in nanoseconds"
        ));
    }
    let ns: u32 = ns.parse().map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::new(s, ns))
}

/// The sender daemon of one kind (both ExaBGP kinds use one ExaBGP).
pub enum Daemon<'l> {
    Ferry {
        api: PathBuf,
        bin: PathBuf,
        dir: PathBuf,
        /// The speaker's log, with its audit lines.
        log: PathBuf,
    },
    GoBgp(GoBgp<'l>),
    ExaBgp(ExaPipes),
}

/// ExaBGP's named pipes (`/run/exabgp/NAME.in|out`, removed on drop) and its pipe name.
pub struct ExaPipes {
    name: String,
    dir: PathBuf,
}

impl ExaPipes {
    fn path(&self, end: &str) -> PathBuf {
        self.dir.join(format!("{}.{end}", self.name))
    }
}

impl Drop for ExaPipes {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path("in"));
        let _ = std::fs::remove_file(self.path("out"));
    }
}

/// The sender's one peer: FRR at `RECEIVER_IP`, which connects (the sender is passive).
fn frr_peer() -> Peer {
    Peer::new(RECEIVER_IP, RECEIVER_AS)
        .passive()
        .local_address(SENDER_IP)
        .hold_time(crate::bench::HOLD)
        .families(&[Family::Ipv6])
}

/// One sender, its receiver, capture and namespace thread, ready for commands.
pub struct Bench<'l> {
    pub kind: Kind,
    receiver: Receiver<'l>,
    daemon: Daemon<'l>,
    capture: Capture,
    ns: NsThread,
}

impl<'l> Bench<'l> {
    pub fn start(kind: Kind, lab: &'l Lab, ferry_bin: &Path) -> Result<Bench<'l>, String> {
        let (r, s) = topology(lab);
        let receiver = Receiver::start(lab, &r);
        let daemon = match kind {
            Kind::Ferry | Kind::FerryBefore => {
                let dir = lab.tempdir("ferry-s");
                let mut fc =
                    FerryConfig::new(SENDER_AS, SENDER_ID).listen(&format!("[{SENDER_IP}]:179"));
                fc.neighbors = vec![frr_peer()];
                let mut conf = fc.config(&dir);
                for n in &mut conf.neighbors {
                    n.local_address = None;
                    n.families = vec![FamilyName::Ipv6];
                }
                let path = write_config(&dir, &conf)?;
                let api = conf.speaker.api;
                // The audit line of each change is logged just after its journal write.
                let (_, log) = spawn_ferry_logging(
                    lab,
                    &s,
                    ferry_bin,
                    &path,
                    &api,
                    &dir,
                    "warn,ferry::audit=info",
                )?;
                Daemon::Ferry {
                    api,
                    bin: ferry_bin.to_path_buf(),
                    dir,
                    log,
                }
            }
            Kind::GoBgp => {
                let c = GoBgpConfig::new(SENDER_AS, SENDER_ID).peer(frr_peer());
                Daemon::GoBgp(GoBgp::start(lab, &s, &c))
            }
            Kind::ExaBgpCli | Kind::ExaBgpPipe => Daemon::ExaBgp(start_exabgp(lab, &s)?),
        };
        receiver.enable()?;
        receiver.wait_count(
            Instant::now(),
            0,
            Duration::from_millis(20),
            Duration::from_secs(60),
        )?;
        let capture = Capture::start(&s)?;
        let ns = NsThread::enter(&s)?;
        Ok(Bench {
            kind,
            receiver,
            daemon,
            capture,
            ns,
        })
    }

    /// The program and arguments of the announce (`true`) or withdraw command; None for the
    /// pipe variant.
    fn command(&self, announce: bool) -> Option<Command> {
        match (&self.daemon, self.kind) {
            (Daemon::Ferry { api, bin, .. }, _) => {
                let mut c = Command::new(bin);
                c.arg(if announce { "announce" } else { "withdraw" })
                    .arg(PREFIX)
                    .arg("--api")
                    .arg(api);
                Some(c)
            }
            (Daemon::GoBgp(_), _) => {
                let mut c = Command::new("gobgp");
                c.args([
                    "-u",
                    "127.0.0.1",
                    "-p",
                    "50051",
                    "global",
                    "rib",
                    "-a",
                    "ipv6",
                ])
                .arg(if announce { "add" } else { "del" })
                .arg(PREFIX);
                Some(c)
            }
            (Daemon::ExaBgp(p), Kind::ExaBgpCli) => {
                let mut c = Command::new("exabgpcli");
                c.env("exabgp.api.pipename", &p.name)
                    .arg(if announce { "announce" } else { "withdraw" })
                    .args(["route", PREFIX, "next-hop", "self"]);
                Some(c)
            }
            _ => None,
        }
    }

    /// One command: t0 -> UPDATE captured, t0 -> command returned; then waits until FRR holds
    /// the prefix (announce) or not (withdraw).
    pub fn once(&self, announce: bool) -> Result<Timing, String> {
        self.capture.clear();
        let (t0, returned) = match self.command(announce) {
            Some(mut c) => self.ns.run(move || {
                c.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let t0 = SystemTime::now();
                let start = Instant::now();
                let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
                let took = start.elapsed();
                if !out.status.success() {
                    return Err(format!(
                        "{c:?}: {} {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                Ok((t0, took))
            })?,
            None => {
                let Daemon::ExaBgp(p) = &self.daemon else {
                    return Err("the pipe variant needs ExaBGP".into());
                };
                pipe_write(p, announce)?
            }
        };
        let at = self
            .capture
            .first_update_after(t0, Duration::from_secs(10))?;
        let update = at.duration_since(t0).unwrap_or_default();
        let after_fsync_ms = match &self.daemon {
            Daemon::Ferry { log, .. } => {
                let written = last_audit(log, if announce { "announce" } else { "withdraw" })?;
                let end = t0 + returned;
                Some(match end.duration_since(written) {
                    Ok(d) => d.as_secs_f64() * 1e3,
                    Err(e) => -e.duration().as_secs_f64() * 1e3,
                })
            }
            _ => None,
        };
        let want = u64::from(announce);
        self.receiver
            .wait_count(
                Instant::now(),
                want,
                Duration::from_millis(5),
                Duration::from_secs(10),
            )
            .map_err(|e| {
                format!(
                    "{} {}: FRR: {e}",
                    self.kind.name(),
                    if announce { "announce" } else { "withdraw" }
                )
            })?;
        Ok(Timing {
            update_ms: update.as_secs_f64() * 1e3,
            return_ms: returned.as_secs_f64() * 1e3,
            after_fsync_ms,
        })
    }
}

/// The time stamp of the last `audit: ACTION` line in the speaker's log (text format,
/// `2026-12-04T23:57:41.915573Z  INFO ferry::audit: audit: announce by ...`).
fn last_audit(log: &Path, action: &str) -> Result<SystemTime, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let needle = format!("audit: {action} by");
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(&needle))
        .ok_or_else(|| format!("{}: no {needle:?} line", log.display()))?;
    let stamp = line.split_whitespace().next().unwrap_or("");
    parse_rfc3339(stamp).ok_or_else(|| format!("{}: time stamp {stamp:?}", log.display()))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` (UTC) -> that time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|v| v.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|v| v.parse::<u64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || frac.len() > 9 {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    // Days from 1970-01-01 (the civil-from-days inverse, proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(UNIX_EPOCH + Duration::new(days * 86_400 + hh * 3600 + mm * 60 + ss, nanos))
}

/// Where a Ferry command's time goes, one sample of each part (milliseconds).
#[derive(Clone, Copy, Debug, Default)]
pub struct FerryParts {
    /// Spawn and reap `/bin/true` from the namespace thread: the floor of any new process.
    pub exec_true: f64,
    /// `ferry --version`: Ferry's own process start (loading, relocation) and clap.
    pub ferry_version: f64,
    /// `Cli::try_parse_from` of the announce command line (the whole tree), in this process.
    pub clap: f64,
    /// `ferry::cli::parse_from` of the same line (the subcommand's definition alone).
    pub clap_quick: f64,
    /// A current-thread tokio runtime built and dropped, in this process: what the client
    /// built for every command before it spoke HTTP over std sockets.
    pub runtime: f64,
    /// The blocking client (connect, HTTP over std sockets) called in this process: call ->
    /// UPDATE captured. The speaker's part plus the client's.
    pub api_update: f64,
    /// The same call -> its answer (the speaker answers after the journal's fdatasync).
    pub api_answer: f64,
    /// One line appended and fdatasync'd next to the speaker's state (the journal's cost).
    pub fsync: f64,
}

impl Bench<'_> {
    /// One sample of each of [`FerryParts`], announcing (`true`) or withdrawing `PREFIX`
    /// through the library client for the API parts (FRR checked as in [`Bench::once`]).
    pub fn ferry_parts(&self, announce: bool) -> Result<FerryParts, String> {
        let (Daemon::Ferry { api, bin, dir, .. }, Kind::Ferry) = (&self.daemon, self.kind) else {
            return Err("ferry_parts needs the Ferry sender".into());
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let spawn_wait = |mut c: Command| {
            self.ns.run(move || {
                c.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                let t = Instant::now();
                let st = c.status().map_err(|e| format!("{c:?}: {e}"))?;
                if !st.success() {
                    return Err(format!("{c:?}: {st}"));
                }
                Ok(t.elapsed())
            })
        };
        let exec_true = ms(spawn_wait(Command::new("/bin/true"))?);
        let mut v = Command::new(bin);
        v.arg("--version");
        let ferry_version = ms(spawn_wait(v)?);
        let args = [
            "ferry",
            if announce { "announce" } else { "withdraw" },
            PREFIX,
            "--api",
            &api.display().to_string(),
        ]
        .map(str::to_string);
        let t = Instant::now();
        let parsed = <ferry::cli::Cli as clap::Parser>::try_parse_from(&args);
        let clap = ms(t.elapsed());
        parsed.map_err(|e| format!("clap: {e}"))?;
        let os_args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let t = Instant::now();
        let parsed = ferry::cli::parse_from(os_args);
        let clap_quick = ms(t.elapsed());
        parsed.map_err(|e| format!("clap: {e}"))?;
        let t = Instant::now();
        drop(ferry::api::blocking::runtime()?);
        let runtime = ms(t.elapsed());
        self.capture.clear();
        let api = api.clone();
        let prefix: ipnet::IpNet = PREFIX.parse().map_err(|e| format!("{PREFIX}: {e}"))?;
        let (t0, answered) = self.ns.run(move || {
            let t0 = SystemTime::now();
            let start = Instant::now();
            let client = ferry::api::blocking::Speaker::unix(&api)?;
            let r = if announce {
                client.announce(vec![
                    ferry::speaker::Route::new(prefix).map_err(|e| e.to_string())?
                ])
            } else {
                client.withdraw(vec![prefix])
            };
            let took = start.elapsed();
            r.map_err(|e| e.to_string())?;
            Ok::<_, String>((t0, took))
        })?;
        let at = self
            .capture
            .first_update_after(t0, Duration::from_secs(10))?;
        let want = u64::from(announce);
        self.receiver.wait_count(
            Instant::now(),
            want,
            Duration::from_millis(5),
            Duration::from_secs(10),
        )?;
        let fsync = {
            use std::io::Write;
            let p = dir.join("fsync-probe");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            let t = Instant::now();
            f.write_all(
                b"{\"probe\":\"a journal line of about this length, 100 octets or so......\"}\n",
            )
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("{}: {e}", p.display()))?;
            ms(t.elapsed())
        };
        Ok(FerryParts {
            exec_true,
            ferry_version,
            clap,
            clap_quick,
            runtime,
            api_update: ms(at.duration_since(t0).unwrap_or_default()),
            api_answer: ms(answered),
            fsync,
        })
    }
}

/// Writes the command line into `exabgp.in` (what `echo ... > exabgp.in` does) with a reader
/// of `exabgp.out` open meanwhile, so that ExaBGP's answer ("done") has somewhere to go.
fn pipe_write(p: &ExaPipes, announce: bool) -> Result<(SystemTime, Duration), String> {
    use std::io::Read;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let out_path = p.path("out");
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&out_path)
        .map_err(|e| format!("{}: {e}", out_path.display()))?;
    let line = format!(
        "{} route {PREFIX} next-hop self\n",
        if announce { "announce" } else { "withdraw" }
    );
    let in_path = p.path("in");
    let t0 = SystemTime::now();
    let start = Instant::now();
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(&in_path)
        .map_err(|e| format!("{}: {e}", in_path.display()))?;
    w.write_all(line.as_bytes())
        .map_err(|e| format!("{}: {e}", in_path.display()))?;
    drop(w);
    let took = start.elapsed();
    // Read the answer (at most 2 s) so that it does not wait in the pipe for the next reader.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut answer = Vec::new();
    while Instant::now() < deadline && !answer.ends_with(b"done\n") {
        let mut buf = [0u8; 256];
        match out.read(&mut buf) {
            Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    Ok((t0, took))
}

/// ExaBGP in `ns`, passive on `SENDER_IP`:179 with FRR as its neighbor and its CLI's named
/// pipes in `/run/exabgp` under a name unique to the lab.
fn start_exabgp(lab: &Lab, ns: &Netns) -> Result<ExaPipes, String> {
    let dir = lab.daemon_dir("exabgp", ns);
    let pipes = ExaPipes {
        name: format!("{}-exa", lab.prefix()),
        dir: PathBuf::from("/run/exabgp"),
    };
    std::fs::create_dir_all(&pipes.dir).map_err(|e| format!("/run/exabgp: {e}"))?;
    for end in ["in", "out"] {
        let p = pipes.path(end);
        let _ = std::fs::remove_file(&p);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("mkfifo {}: {e}", p.display()))?;
    }
    let conf = dir.join("exabgp.conf");
    let text = format!(
        "neighbor {RECEIVER_IP} {{\n  router-id {SENDER_ID};\n  local-address {SENDER_IP};\n  \
         local-as {SENDER_AS};\n  peer-as {RECEIVER_AS};\n  hold-time {};\n  passive true;\n  \
         group-updates false;\n  family {{\n    ipv6 unicast;\n  }}\n}}\n",
        crate::bench::HOLD
    );
    std::fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
    let log = dir.join("exabgp.log");
    let mut c = ns.command("env");
    c.args([
        "exabgp.api.cli=true",
        &format!("exabgp.api.pipename={}", pipes.name),
        "exabgp.daemon.user=root",
        "exabgp.daemon.drop=false",
        "exabgp.daemon.daemonize=false",
        &format!("exabgp.daemon.pid={}", dir.join("exabgp.pid").display()),
        "exabgp.log.destination=stdout",
        "exabgp.log.level=INFO",
        &format!("exabgp.tcp.bind={SENDER_IP}"),
        "exabgp.tcp.port=179",
        "exabgp",
    ])
    .arg(&conf);
    let pid = lab.spawn("exabgp", c, &log);
    let ok = poll(Duration::from_secs(15), || {
        if !lab.is_running(pid) {
            return Some(false);
        }
        std::fs::read_to_string(&log)
            .ok()?
            .contains("loaded new configuration successfully")
            .then_some(true)
    });
    if ok != Some(true) {
        return Err(format!(
            "exabgp did not come up\n{}",
            testkit::daemons::tail_file(&log, 20)
        ));
    }
    Ok(pipes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_parse_to_the_nanosecond() {
        let t = parse_stamp("1733350000.123456789 IP6 2001:db8:ffff::2.179 > x: tcp 45").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::new(1_733_350_000, 123_456_789));
        assert!(parse_stamp("1733350000.123456 IP6")
            .unwrap_err()
            .contains("nanoseconds"));
        assert!(parse_stamp("listening on any").is_err());
    }

    #[test]
    fn log_stamps_parse() {
        let t = parse_rfc3339("2024-12-04T23:57:41.915573Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::new(1_733_356_661, 915_573_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert!(parse_rfc3339("2024-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-12-04 23:57:41").is_none());
    }

    #[test]
    fn senders_from_names() {
        assert_eq!(
            Kind::ALL.map(Kind::name),
            ["ferry", "gobgp", "exabgpcli", "exabgp-pipe"]
        );
    }
}
