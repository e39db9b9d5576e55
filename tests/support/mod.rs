//! Shared helpers of the speaker integration tests: the real `ferry` binary, real sockets.
//!
//! - [`Speaker`]: `ferry speaker --config FILE` as a child process (the test kit's
//!   `SpeakerProcess`) with a typed config ([`SpeakerSpec::config`]) written in a temp dir (API
//!   socket, state_dir and log live there). Start waits for the API socket; Drop kills it with
//!   SIGKILL and removes the dir (printing its log if the test failed).
//! - [`CliOut`]: what `ferry ARGS` printed and its exit code ([`ferry_cli`], with `FERRY_API`
//!   set or unset).
//! - [`lab`]: the FRR lab of a lab test ([`lab::LabUp`]): brought up (a second time when the
//!   first `up` fails), taken down on drop.
//! - [`RawPeer`]: a BGP peer written with `ferry::wire` only, on 127.0.0.0/8: it listens on a free
//!   port (the speaker connects to it, `port = N`) or connects to the speaker's `listen`
//!   address from its own 127.x address. It sends OPEN (4-octet AS, multiprotocol IPv4 and IPv6,
//!   route refresh) and KEEPALIVEs, records every message it receives with its arrival time,
//!   can send arbitrary bytes, and every wait has a timeout that panics with what arrived.
//!
//! Each test picks its ports by binding port 0, so parallel test processes do not collide.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferry::config::{Asn, Config, HoldTime, NeighborConfig, RouterId, Seconds, SpeakerConfig};
use ferry::wire::{
    split_frame, Afi, Capability, Context, Message, Notification, Open, Safi, Update,
    MAX_EXTENDED_MESSAGE_LEN,
};
use testkit::speaker::{self, SpeakerProcess};

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
/// The speaker's AS in every test.
pub const LOCAL_ASN: u32 = 65100;
/// The raw peers' AS (eBGP).
pub const PEER_ASN: u32 = 65001;
/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Whether the FRR lab can run here (root and FRR installed). CI sets FIT_REQUIRE=1
/// (scripts/test.sh) so the lab tests cannot be skipped silently there.
#[allow(unused_imports)] // each test binary uses a different subset
pub use testkit::root::lab_can_run;

/// The FRR lab of a test: its instance, brought up and taken down on drop.
pub mod lab;

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// A port that was free a moment ago on `ip` (for addresses the speaker binds itself).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

// ---------------------------------------------------------------------------------------------
// Speaker
// ---------------------------------------------------------------------------------------------

/// One `[[neighbor]]` of the generated config.
#[derive(Debug, Clone)]
pub struct NeighborSpec {
    pub address: IpAddr,
    pub remote_as: u32,
    pub port: Option<u16>,
    pub passive: bool,
    pub hold_time: u16,
    pub connect_retry: u32,
    pub max_prefixes: Option<u32>,
    /// The speaker's source address for this session (127.0.0.1 unless a test needs another).
    pub local_address: IpAddr,
    /// Raw TOML lines appended to the table.
    pub extra: String,
}

impl NeighborSpec {
    /// The speaker connects to a raw peer listening on `peer`.
    pub fn active(peer: SocketAddr) -> Self {
        Self {
            address: peer.ip(),
            remote_as: PEER_ASN,
            port: Some(peer.port()),
            passive: false,
            hold_time: 9,
            connect_retry: 1,
            max_prefixes: None,
            local_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            extra: String::new(),
        }
    }

    /// The speaker waits for a raw peer connecting from `address`.
    pub fn passive(address: Ipv4Addr) -> Self {
        Self {
            address: IpAddr::V4(address),
            port: None,
            passive: true,
            ..Self::active(SocketAddr::new(IpAddr::V4(address), 179))
        }
    }
}

/// What the generated config holds.
#[derive(Debug, Clone, Default)]
pub struct SpeakerSpec {
    pub listen: Option<SocketAddr>,
    pub neighbors: Vec<NeighborSpec>,
    /// `api_tcp` address and the token written to `api_token_file`.
    pub api_tcp: Option<(SocketAddr, String)>,
    /// BGP identifier (192.0.2.1 when absent); speakers peering with each other over iBGP need
    /// distinct ones (RFC 6286 §2.2).
    pub router_id: Option<Ipv4Addr>,
    /// A command the speaker runs under, e.g. `["prlimit", "--nofile=128:128", "--"]`.
    pub wrapper: Vec<String>,
}

impl SpeakerSpec {
    pub fn with(neighbors: Vec<NeighborSpec>) -> Self {
        Self {
            neighbors,
            ..Self::default()
        }
    }

    /// The typed config: API socket and state_dir in `dir`, each neighbor's `extra` keys
    /// set on it.
    pub fn config(&self, dir: &Path) -> Config {
        let mut speaker = SpeakerConfig::new(
            Asn(LOCAL_ASN),
            RouterId(self.router_id.unwrap_or(Ipv4Addr::new(192, 0, 2, 1))),
            dir.join("api.sock"),
            dir.join("state"),
        );
        speaker.listen = self.listen;
        if let Some((addr, _)) = &self.api_tcp {
            speaker.api_tcp = Some(*addr);
            speaker.api_token_file = Some(dir.join("token"));
        }
        let neighbors = self
            .neighbors
            .iter()
            .map(|n| {
                let mut c = NeighborConfig::new(n.address, Asn(n.remote_as));
                c.hold_time = HoldTime(n.hold_time);
                c.connect_retry = Seconds(n.connect_retry);
                c.local_address = Some(n.local_address);
                c.passive = n.passive;
                if let Some(p) = n.port {
                    c.port = p;
                }
                if let Some(m) = n.max_prefixes {
                    c.max_prefixes = m;
                }
                speaker::with_keys(&c, &n.extra).unwrap_or_else(|e| panic!("neighbor extra: {e}"))
            })
            .collect();
        Config {
            speaker,
            neighbors,
            health_checks: Vec::new(),
        }
    }
}

/// A running `ferry speaker`; SIGKILLed and its dir removed on drop.
pub struct Speaker {
    pub dir: tempfile::TempDir,
    process: Option<SpeakerProcess>,
    pub spec: SpeakerSpec,
}

impl Speaker {
    /// Write the config and start the speaker; returns once its API socket answers.
    pub fn start(spec: SpeakerSpec) -> Self {
        let mut s = Self::prepare(spec);
        s.spawn();
        s
    }

    /// Write the config (and token file, 0600 as the speaker requires) without starting the
    /// speaker, for tests that set up its directories first; [`Speaker::spawn`] starts it.
    pub fn prepare(spec: SpeakerSpec) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ferry-it-")
            .tempdir()
            .expect("temp dir");
        let s = Self {
            dir,
            process: None,
            spec,
        };
        speaker::write_config(&s.config_path(), &s.spec.config(s.dir.path()))
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some((_, token)) = &s.spec.api_tcp {
            write_private(&s.dir.path().join("token"), &format!("{token}\n"));
        }
        s
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ferry.toml")
    }

    pub fn api(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("speaker.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .and_then(SpeakerProcess::pid)
            .expect("speaker running")
    }

    /// Start the process (again) with the same config and state_dir.
    pub fn spawn(&mut self) {
        assert!(self.process.is_none(), "speaker already running");
        let cmd = match self.spec.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(FERRY);
                c
            }
            None => Command::new(FERRY),
        };
        let p = SpeakerProcess::start(
            cmd,
            &self.config_path(),
            &self.api(),
            Some(&self.log_path()),
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.process = Some(p);
    }

    /// SIGKILL (no NOTIFICATION, no clean-up), and reap.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// SIGTERM; the speaker keeps running until it has closed its sessions.
    pub fn sigterm(&self) {
        self.process.as_ref().expect("speaker running").sigterm();
    }

    /// Wait for the process to exit (after SIGTERM).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let p = self.process.as_mut().expect("speaker running");
        let status = p.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "speaker still running {timeout:?} after the signal:\n{}",
                p.log()
            )
        });
        self.process = None;
        status
    }

    /// `ferry ARGS` with `FERRY_API` pointing at this speaker.
    pub fn cli(&self, args: &[&str]) -> CliOut {
        ferry_cli(args, Some(&self.api().to_string_lossy()))
    }

    /// `ferry ARGS`, asserting exit 0.
    pub fn cli_ok(&self, args: &[&str]) -> CliOut {
        let out = self.cli(args);
        assert_eq!(out.code, 0, "ferry {args:?} failed: {out:?}");
        out
    }

    /// `ferry status --json` parsed; its exit code must say whether every session that is not
    /// disabled (`ferry neighbor disable`) is Established (0) or not (3).
    pub fn status(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["status", "--json"]);
        let peers: Vec<serde_json::Value> =
            serde_json::from_str(&out.stdout).expect("status --json is JSON");
        let all_up = peers
            .iter()
            .all(|p| p["state"] == "Established" || p.get("admin_down").is_some());
        assert_eq!(
            out.code,
            if all_up { 0 } else { 3 },
            "ferry status: exit code does not match the sessions: {out:?}"
        );
        peers
    }

    /// Wait until every neighbor's state is `state` per `ferry status --json`.
    pub fn wait_state(&self, peer: IpAddr, state: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.status();
            let p = all
                .iter()
                .find(|p| p["address"] == peer.to_string())
                .unwrap_or_else(|| panic!("{peer} not in status: {all:?}"));
            if p["state"] == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{peer} not {state} within {WAIT:?}: {p}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.kill9();
        if thread::panicking() {
            eprintln!(
                "---- speaker log ({}) ----\n{}",
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// Write a file only its owner may read (mode 0600), as the speaker requires of files that
/// hold secrets (token files, configs with `md5_password`).
pub fn write_private(path: &Path, text: &str) {
    speaker::write_private(path, text).unwrap_or_else(|e| panic!("{e}"));
}

/// Run `ferry speaker --config` on a config text and wait for it to exit (it must not start).
pub fn speaker_must_fail(config: &str, state_dir_files: &[(&str, &str)]) -> CliOut {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = config
        .replace("@API@", &dir.path().join("api.sock").to_string_lossy())
        .replace("@STATE@", &dir.path().join("state").to_string_lossy());
    std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
    for (name, content) in state_dir_files {
        std::fs::write(dir.path().join("state").join(name), content).expect("state file");
    }
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, text).expect("config");
    speaker_must_exit(&path)
}

/// Run `ferry speaker --config PATH` and wait for it to exit on its own (it must refuse to
/// start, or to run beside another speaker); panics if it still runs after [`WAIT`].
pub fn speaker_must_exit(path: &Path) -> CliOut {
    let mut child = Command::new(FERRY)
        .arg("speaker")
        .arg("--config")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry speaker");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "ferry speaker {} kept running; it should have refused to:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output").into()
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

/// What a command printed and its exit code (-1 when a signal ended it).
#[derive(Debug, Clone)]
pub struct CliOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for CliOut {
    fn from(out: std::process::Output) -> Self {
        CliOut {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The whole output, for a failed assertion's message.
impl std::fmt::Display for CliOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `ferry ARGS` with `FERRY_API` set to `api` (or unset).
pub fn ferry_cli(args: &[&str], api: Option<&str>) -> CliOut {
    let mut cmd = Command::new(FERRY);
    cmd.args(args).stdin(Stdio::null());
    cmd.env_remove("FERRY_API")
        .env_remove("FERRY_API_TOKEN_FILE");
    if let Some(api) = api {
        cmd.env("FERRY_API", api);
    }
    cmd.output().expect("run ferry").into()
}

// ---------------------------------------------------------------------------------------------
// Raw BGP peer
// ---------------------------------------------------------------------------------------------

/// One message as the raw peer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub bytes: Vec<u8>,
    pub msg: Result<Message, String>,
}

impl Received {
    pub fn update(&self) -> Option<&Update> {
        match &self.msg {
            Ok(Message::Update(u)) => Some(u),
            _ => None,
        }
    }

    pub fn is_keepalive(&self) -> bool {
        matches!(self.msg, Ok(Message::Keepalive))
    }

    fn short(&self) -> String {
        match &self.msg {
            Ok(m) => format!("{m:?}"),
            Err(e) => format!("undecodable {} ({e})", hex::encode(&self.bytes)),
        }
    }
}

#[derive(Default)]
struct Inbox {
    items: Vec<Received>,
    /// When the speaker closed the connection (EOF or error).
    closed: Option<Instant>,
}

type Shared = Arc<(Mutex<Inbox>, Condvar)>;

/// The messages of one connection, with a read cursor.
struct Connection {
    stream: TcpStream,
    inbox: Shared,
    keepalive_stop: Arc<AtomicBool>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.keepalive_stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

pub struct RawPeer {
    pub ip: Ipv4Addr,
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    listener: Option<TcpListener>,
    conn: Option<Connection>,
    /// Index of the next message of the current connection not yet consumed.
    cursor: usize,
}

impl RawPeer {
    fn new(ip: Ipv4Addr, listener: Option<TcpListener>) -> Self {
        let o = ip.octets();
        Self {
            ip,
            asn: PEER_ASN,
            router_id: Ipv4Addr::new(192, 0, 2, 100 + o[3]),
            hold_time: 9,
            listener,
            conn: None,
            cursor: 0,
        }
    }

    /// A peer listening on `ip` with a free port; the speaker connects to it.
    pub fn listen(ip: Ipv4Addr) -> Self {
        let l = TcpListener::bind((ip, 0)).expect("bind raw peer");
        l.set_nonblocking(true).expect("nonblocking");
        Self::new(ip, Some(l))
    }

    /// A peer that will connect from `ip` (to a passive speaker).
    pub fn at(ip: Ipv4Addr) -> Self {
        Self::new(ip, None)
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener
            .as_ref()
            .expect("listening peer")
            .local_addr()
            .expect("local addr")
    }

    /// Accept the speaker's connection (the previous one, if any, is dropped).
    pub fn accept(&mut self) {
        let l = self.listener.as_ref().expect("listening peer");
        let deadline = Instant::now() + WAIT;
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).expect("blocking");
                    self.adopt(s);
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "raw peer {}: no connection from the speaker within {WAIT:?}",
                        self.ip
                    );
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// Connect from our address to the speaker's `listen` address.
    pub fn connect(&mut self, to: SocketAddr) {
        let from = SocketAddr::new(IpAddr::V4(self.ip), 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let stream = rt
            .block_on(async {
                let s = tokio::net::TcpSocket::new_v4()?;
                s.bind(from)?;
                let stream = tokio::time::timeout(WAIT, s.connect(to))
                    .await
                    .map_err(|_| std::io::Error::other("connect timed out"))??;
                stream.into_std()
            })
            .unwrap_or_else(|e| panic!("raw peer {}: connect to {to}: {e}", self.ip));
        stream.set_nonblocking(false).expect("blocking");
        self.adopt(stream);
    }

    fn adopt(&mut self, stream: TcpStream) {
        stream.set_nodelay(true).expect("nodelay");
        let inbox: Shared = Arc::default();
        let mut rd = stream.try_clone().expect("clone stream");
        let sink = inbox.clone();
        thread::spawn(move || {
            let mut buf = BytesMut::new();
            let mut chunk = [0u8; 65536];
            loop {
                match rd.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                let at = Instant::now();
                let (lock, cv) = &*sink;
                let mut inbox = lock.lock().unwrap();
                loop {
                    match split_frame(&mut buf, MAX_EXTENDED_MESSAGE_LEN) {
                        Ok(Some(frame)) => {
                            let msg = Message::decode(&frame, &Context::default())
                                .map_err(|e| e.to_string());
                            inbox.items.push(Received {
                                at,
                                bytes: frame.to_vec(),
                                msg,
                            });
                        }
                        Ok(None) => break,
                        Err(e) => {
                            inbox.items.push(Received {
                                at,
                                bytes: buf.to_vec(),
                                msg: Err(format!("framing: {e}")),
                            });
                            buf.clear();
                            break;
                        }
                    }
                }
                cv.notify_all();
            }
            let (lock, cv) = &*sink;
            lock.lock().unwrap().closed = Some(Instant::now());
            cv.notify_all();
        });
        self.conn = Some(Connection {
            stream,
            inbox,
            keepalive_stop: Arc::new(AtomicBool::new(false)),
        });
        self.cursor = 0;
    }

    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("raw peer has no connection")
    }

    /// The OPEN this peer sends: 4-octet AS, multiprotocol IPv4 and IPv6 unicast, route refresh.
    pub fn open(&self) -> Open {
        Open::new(
            self.asn,
            self.hold_time,
            self.router_id,
            vec![
                Capability::Multiprotocol {
                    afi: Afi::Ipv4,
                    safi: Safi::Unicast,
                },
                Capability::Multiprotocol {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(self.asn),
            ],
        )
    }

    pub fn send(&self, msg: &Message) {
        self.send_raw(&msg.to_bytes(&Context::default()));
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        (&self.conn().stream)
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("raw peer {}: write: {e}", self.ip));
    }

    /// [`Self::send_raw`] for a peer that expects the speaker to close the connection on it.
    pub fn try_send_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        (&self.conn().stream).write_all(bytes)
    }

    /// Exchange OPEN and KEEPALIVE; returns the speaker's OPEN once both sides are Established.
    /// From then on a thread sends a KEEPALIVE every hold_time / 3 seconds.
    pub fn handshake(&mut self) -> Open {
        self.send(&Message::Open(self.open()));
        let open = match self.next().msg {
            Ok(Message::Open(o)) => o,
            other => panic!("expected the speaker's OPEN, got {other:?}"),
        };
        self.send(&Message::Keepalive);
        let r = self.next();
        assert!(r.is_keepalive(), "expected KEEPALIVE, got {}", r.short());
        self.start_keepalives();
        open
    }

    fn start_keepalives(&self) {
        let c = self.conn();
        let stop = c.keepalive_stop.clone();
        let mut s = c.stream.try_clone().expect("clone stream");
        let every = Duration::from_secs(u64::from(self.hold_time.max(3) / 3));
        let ka = Message::Keepalive.to_bytes(&Context::default());
        thread::spawn(move || loop {
            let until = Instant::now() + every;
            while Instant::now() < until {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            if s.write_all(&ka).is_err() {
                return;
            }
        });
    }

    /// Stop sending KEEPALIVEs (the connection stays open).
    pub fn stop_keepalives(&self) {
        self.conn().keepalive_stop.store(true, Ordering::Relaxed);
    }

    /// Close our side of the connection.
    pub fn disconnect(&mut self) {
        self.conn = None;
        self.cursor = 0;
    }

    /// Everything received on the current connection so far.
    pub fn received(&self) -> Vec<Received> {
        self.conn().inbox.0.lock().unwrap().items.clone()
    }

    fn dump(items: &[Received]) -> String {
        items
            .iter()
            .map(|r| format!("  {}\n", r.short()))
            .collect::<String>()
    }

    /// Wait for the next unconsumed message that `want` accepts, consuming it and everything
    /// before it. Panics after `timeout` with what arrived.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut want: impl FnMut(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + timeout;
        let shared = self.conn().inbox.clone();
        let (lock, cv) = &*shared;
        let mut inbox = lock.lock().unwrap();
        loop {
            while self.cursor < inbox.items.len() {
                let r = &inbox.items[self.cursor];
                self.cursor += 1;
                if want(r) {
                    return r.clone();
                }
            }
            let now = Instant::now();
            if now >= deadline || inbox.closed.is_some() {
                panic!(
                    "raw peer {}: no {what} within {timeout:?}{}; received on this connection:\n{}",
                    self.ip,
                    if inbox.closed.is_some() {
                        " (connection closed by the speaker)"
                    } else {
                        ""
                    },
                    Self::dump(&inbox.items)
                );
            }
            inbox = cv.wait_timeout(inbox, deadline - now).unwrap().0;
        }
    }

    /// The next message of any kind.
    pub fn next(&mut self) -> Received {
        self.wait_for("message", WAIT, |_| true)
    }

    /// The next UPDATE (KEEPALIVEs skipped; anything else fails the test).
    pub fn next_update(&mut self) -> Received {
        let r = self.wait_for("UPDATE", WAIT, |r| !r.is_keepalive());
        assert!(
            r.update().is_some(),
            "expected an UPDATE, got {}",
            r.short()
        );
        r
    }

    /// UPDATEs until both End-of-RIB markers have arrived; returns the UPDATEs before them.
    pub fn initial_sync(&mut self, families: usize) -> Vec<Update> {
        let mut routes = Vec::new();
        let mut eors = 0;
        while eors < families {
            let r = self.next_update();
            let u = r.update().unwrap().clone();
            if u.end_of_rib_family().is_some() {
                eors += 1;
            } else {
                routes.push(u);
            }
        }
        routes
    }

    /// The next message other than KEEPALIVE and UPDATE must be a NOTIFICATION.
    pub fn expect_notification(&mut self) -> (Notification, Vec<u8>) {
        let r = self.wait_for("NOTIFICATION", WAIT, |r| {
            !r.is_keepalive() && r.update().is_none()
        });
        match r.msg {
            Ok(Message::Notification(n)) => (n, r.bytes),
            _ => panic!("expected a NOTIFICATION, got {}", r.short()),
        }
    }

    /// Assert that nothing but KEEPALIVEs arrives for `d`.
    pub fn expect_quiet(&mut self, d: Duration) {
        thread::sleep(d);
        let shared = self.conn().inbox.clone();
        let (lock, _) = &*shared;
        let inbox = lock.lock().unwrap();
        let extra: Vec<_> = inbox.items[self.cursor..]
            .iter()
            .filter(|r| !r.is_keepalive())
            .cloned()
            .collect();
        assert!(
            extra.is_empty(),
            "raw peer {}: expected nothing within {d:?}, got:\n{}",
            self.ip,
            Self::dump(&extra)
        );
        assert!(
            inbox.closed.is_none(),
            "raw peer {}: the speaker closed the connection",
            self.ip
        );
        self.cursor = inbox.items.len();
    }

    /// Wait until the speaker closes the connection.
    pub fn wait_closed(&self) -> Instant {
        let shared = self.conn().inbox.clone();
        let (lock, cv) = &*shared;
        let deadline = Instant::now() + WAIT;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(t) = inbox.closed {
                return t;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "raw peer {}: the speaker did not close the connection within {WAIT:?}; received:\n{}",
                self.ip,
                Self::dump(&inbox.items)
            );
            inbox = cv.wait_timeout(inbox, deadline - now).unwrap().0;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.conn().inbox.0.lock().unwrap().closed.is_some()
    }
}

/// A speaker with one raw peer it connects to, both Established and the initial (empty) sync
/// done: End-of-RIB for IPv4 and IPv6 consumed.
pub fn established_pair(ip: Ipv4Addr) -> (Speaker, RawPeer) {
    established_pair_with(ip, "")
}

/// [`established_pair`] with `extra` TOML lines in the speaker's neighbor table.
pub fn established_pair_with(ip: Ipv4Addr, extra: &str) -> (Speaker, RawPeer) {
    let mut peer = RawPeer::listen(ip);
    let mut neighbor = NeighborSpec::active(peer.addr());
    neighbor.extra = extra.to_string();
    let speaker = Speaker::start(SpeakerSpec::with(vec![neighbor]));
    peer.accept();
    peer.handshake();
    let routes = peer.initial_sync(2);
    assert!(routes.is_empty(), "unexpected routes: {routes:?}");
    (speaker, peer)
}

// ---------------------------------------------------------------------------------------------
// HTTP (raw hyper) for requests the API client cannot make: bad bodies, streams, headers
// ---------------------------------------------------------------------------------------------

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Where a raw HTTP request goes.
pub enum Target<'a> {
    Unix(&'a Path),
    Tcp(SocketAddr),
}

/// One HTTP/1.1 request; returns status and body text.
pub fn http(
    target: Target<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    runtime().block_on(async {
        let req = {
            let mut b = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(Full::new(bytes::Bytes::from(body.to_owned())))
                .expect("request")
        };
        let resp = match target {
            Target::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.expect("connect");
                let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                tx.send_request(req).await.expect("request")
            }
            Target::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await.expect("connect");
                let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                tx.send_request(req).await.expect("request")
            }
        };
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(WAIT, resp.into_body().collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

// ---------------------------------------------------------------------------------------------
// A small disk that fills up
// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted on a directory of the test's (a state directory, say), unmounted (lazily)
/// when dropped: the library's own test helper, the one copy. Needs root: without it the test
/// is skipped with a message, or fails under FIT_REQUIRE=1 (CI).
#[path = "../../src/test_fs.rs"]
mod test_fs;
#[allow(unused_imports)] // each test binary uses a different subset
pub use test_fs::TinyFs;
