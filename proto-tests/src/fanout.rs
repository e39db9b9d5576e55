//! Fan-out runs (benchmark `fanout`): one sender (Ferry, BIRD 2, GoBGP or FRR) with 50
//! established eBGP sessions to light raw sinks (`bgp_blaster sink`: one process, one session
//! per address, counting the distinct prefixes each session holds) announces N IPv6 prefixes;
//! the run measures the time from the announce command until the last session holds all N.
//!
//! Layout (fresh [`Lab`] each run): namespace `s` holds the sender (AS 65020,
//! `2001:db8:ff::100/64`, router id 192.0.2.100), namespace `k` the sinks (AS 65030,
//! `2001:db8:ff::1/64` ... `::50/64` on the veth, router ids 192.0.2.1 ...); all sessions are
//! passive on the sender's side, IPv6 unicast, hold time 90 s. Once the sink prints
//! `ALL_ESTABLISHED` the run waits 1 s (initial End-of-RIBs), then t0 is taken just before the
//! announce command:
//!
//! * Ferry: one `POST /v1/announce` with all N routes (persisted before the answer);
//! * BIRD: the config rewritten with a `protocol static` of the N routes, then `birdc
//!   configure`;
//! * GoBGP: `gobgp mrt inject global` of an MRT file of the N routes (written before t0; see
//!   [`crate::bench::write_mrt_ipv6`] for why the file repeats prefixes);
//! * FRR (`bgpd -Z`): one vtysh process with `configure terminal`, `router bgp`, `address-family
//!   ipv6 unicast` and N `network` commands.
//!
//! The end is the arrival of the sink's `DONE` line (timestamped by a reader thread here). The
//! sender's peak RSS (VmHWM; FRR: bgpd) and CPU seconds from t0 are read at the end.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bench::{http_unix, vm_hwm_kib, write_mrt_ipv6};
use crate::ferry::{write_config, FerryConfig};
use crate::ingest::{cpu_secs, spawn_ferry, spawn_line_reader, Bins};
use ferry::config::FamilyName;
use testkit::daemons::bird::{Bird, BirdConfig};
use testkit::daemons::frr::{Frr, FrrConfig};
use testkit::daemons::gobgp::{GoBgp, GoBgpConfig};
use testkit::daemons::{Family, Peer, Route};
use testkit::netns::{Lab, Netns};

pub const SENDER_AS: u32 = 65020;
pub const SINK_AS: u32 = 65030;
pub const SENDER_IP: &str = "2001:db8:ff::100";
const SENDER_ID: &str = "192.0.2.100";
const HOLD: u16 = 90;

/// Which implementation sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderKind {
    Ferry,
    /// Ferry driven by its CLI: `ferry announce --file F` / `ferry withdraw --file F` with a
    /// text file of one prefix a line (written before t0), as an operator's script would.
    FerryFile,
    Bird,
    GoBgp,
    Frr,
}

impl SenderKind {
    pub const ALL: [SenderKind; 5] = [
        SenderKind::Ferry,
        SenderKind::FerryFile,
        SenderKind::Bird,
        SenderKind::GoBgp,
        SenderKind::Frr,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SenderKind::Ferry => "ferry",
            SenderKind::FerryFile => "ferry-file",
            SenderKind::Bird => "bird",
            SenderKind::GoBgp => "gobgp",
            SenderKind::Frr => "frr",
        }
    }
    pub fn program(self, ferry_bin: &Path) -> String {
        match self {
            SenderKind::Ferry | SenderKind::FerryFile => ferry_bin.display().to_string(),
            SenderKind::Bird => "bird".into(),
            SenderKind::GoBgp => "gobgpd".into(),
            SenderKind::Frr => "/usr/lib/frr/bgpd".into(),
        }
    }
}

/// Address of sink `i` (0-based).
pub fn sink_ip(i: usize) -> String {
    format!("2001:db8:ff::{:x}", i + 1)
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct FanoutRun {
    /// t0 -> the announce command returned.
    pub command_secs: Option<f64>,
    /// t0 -> the last sink session holds all prefixes.
    pub secs: Option<f64>,
    pub rss_kib: Option<u64>,
    pub cpu_secs: Option<f64>,
    pub error: Option<String>,
}

/// A sender's own identity: AS, session address (IPv6), router id.
#[derive(Clone, Debug)]
pub struct Me {
    pub asn: u32,
    pub ip: String,
    pub id: String,
}

impl Me {
    /// The fan-out sender.
    pub fn fanout() -> Me {
        Me {
            asn: SENDER_AS,
            ip: SENDER_IP.into(),
            id: SENDER_ID.into(),
        }
    }
}

/// A running sender whose routes come from an announce command (not its start-up config).
pub struct CommandSender<'l> {
    me: Me,
    inner: Inner<'l>,
}

enum Inner<'l> {
    Ferry {
        pid: u32,
        api: std::path::PathBuf,
        /// The CLI and its routes file, for [`SenderKind::FerryFile`].
        cli: Option<(std::path::PathBuf, std::path::PathBuf)>,
    },
    Bird(Bird<'l>, BirdConfig),
    GoBgp(GoBgp<'l>),
    Frr(Frr<'l>),
}

fn peers(n: usize) -> Vec<Peer> {
    (0..n)
        .map(|i| {
            Peer::new(&sink_ip(i), SINK_AS)
                .passive()
                .local_address(SENDER_IP)
                .hold_time(HOLD)
                .families(&[Family::Ipv6])
        })
        .collect()
}

impl<'l> CommandSender<'l> {
    /// Starts `kind` in `ns` with `peers` (IPv6 unicast) and no routes.
    pub fn start(
        kind: SenderKind,
        lab: &'l Lab,
        ns: &Netns,
        bins: &Bins,
        me: &Me,
        peers: Vec<Peer>,
    ) -> Result<Self, String> {
        let (asn, ip, id) = (me.asn, &me.ip, &me.id);
        let inner = match kind {
            SenderKind::Ferry | SenderKind::FerryFile => {
                let dir = lab.tempdir("ferry-s");
                let mut fc = FerryConfig::new(asn, id).listen(&format!("[{ip}]:179"));
                fc.connect_retry = 5;
                fc.neighbors = peers.clone();
                let mut conf = fc.config(&dir);
                for n in &mut conf.neighbors {
                    n.local_address = None;
                    n.families = vec![FamilyName::Ipv6];
                }
                let path = write_config(&dir, &conf)?;
                let api = conf.speaker.api;
                let (pid, _log) = spawn_ferry(lab, ns, &bins.ferry, &path, &api, &dir)?;
                let cli = (kind == SenderKind::FerryFile)
                    .then(|| (bins.ferry.clone(), dir.join("routes.txt")));
                Inner::Ferry { pid, api, cli }
            }
            SenderKind::Bird => {
                let mut c = BirdConfig::new(asn, id);
                c.peers = peers;
                Inner::Bird(Bird::start(lab, ns, &c), c)
            }
            SenderKind::GoBgp => {
                let mut c = GoBgpConfig::new(asn, id);
                c.peers = peers;
                Inner::GoBgp(GoBgp::start(lab, ns, &c))
            }
            SenderKind::Frr => {
                let mut c = FrrConfig::new(asn, id);
                c.peers = peers;
                Inner::Frr(Frr::start(lab, ns, &c))
            }
        };
        Ok(CommandSender {
            me: me.clone(),
            inner,
        })
    }

    /// PID of the sending daemon (FRR: bgpd).
    pub fn pid(&self) -> u32 {
        match &self.inner {
            Inner::Ferry { pid, .. } => *pid,
            Inner::Bird(b, _) => b.pid(),
            Inner::GoBgp(g) => g.pid(),
            Inner::Frr(f) => *f.pids().last().unwrap_or(&0),
        }
    }

    /// Work done before t0 (files the command reads).
    pub fn prepare(&self, prefixes: &[String]) -> Result<(), String> {
        if let Inner::Ferry {
            cli: Some((_, file)),
            ..
        } = &self.inner
        {
            let mut text = String::with_capacity(prefixes.len() * 24);
            for p in prefixes {
                text.push_str(p);
                text.push('\n');
            }
            std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        if let Inner::GoBgp(g) = &self.inner {
            // the file lists every prefix, then repeats them (at least 50,000 entries in all):
            // gobgp 3.10's `mrt inject` can lose the records it sent last (see bench.rs)
            let pad = prefixes.len().max(50_000);
            let list: Vec<String> = prefixes
                .iter()
                .cloned()
                .chain(prefixes.iter().cycle().take(pad).cloned())
                .collect();
            let f = g.dir().join("routes.mrt");
            write_mrt_ipv6(&f, &list, &self.me.id, &self.me.ip, self.me.asn)
                .map_err(|e| format!("{}: {e}", f.display()))?;
        }
        Ok(())
    }

    /// The announce command; returns when it returned.
    pub fn announce(&self, prefixes: &[String]) -> Result<(), String> {
        match &self.inner {
            Inner::Ferry {
                api,
                cli: Some((bin, file)),
                ..
            } => ferry_file(bin, "announce", file, api),
            Inner::Ferry { api, .. } => {
                // What a client that holds the prefixes as text would send; a JSON value tree
                // of 100k objects would cost the client more than Ferry's parse.
                let body = json_body("routes", prefixes, "{\"prefix\":\"", "\"}");
                let (status, text) = http_unix(api, "POST", "/v1/announce", Some(&body))?;
                if status != 200 {
                    return Err(format!("POST /v1/announce: {status} {text}"));
                }
                Ok(())
            }
            Inner::Bird(b, c) => bird_routes(b, c, prefixes),
            Inner::GoBgp(g) => {
                let f = g.dir().join("routes.mrt");
                g.gobgp(&[
                    "mrt",
                    "inject",
                    "global",
                    "--no-ipv4",
                    &f.display().to_string(),
                ])
                .map(|_| ())
            }
            Inner::Frr(f) => frr_networks(f, self.me.asn, prefixes, ""),
        }
    }

    /// The withdraw command (every prefix of `prefixes`, which are all the sender announced);
    /// returns when it returned. Ferry: `POST /v1/withdraw` with `{"all": true}` (what
    /// `ferry withdraw --all` sends), or with the list of prefixes when `BENCH_FERRY_WITHDRAW`
    /// is `list`; BIRD: the config without the static routes and `birdc configure`; GoBGP:
    /// `gobgp global rib -a ipv6 del all`; FRR: N `no network` commands.
    pub fn withdraw(&self, prefixes: &[String]) -> Result<(), String> {
        match &self.inner {
            Inner::Ferry {
                api,
                cli: Some((bin, file)),
                ..
            } => ferry_file(bin, "withdraw", file, api),
            Inner::Ferry { api, .. } => {
                let body = if std::env::var("BENCH_FERRY_WITHDRAW").as_deref() == Ok("list") {
                    json_body("prefixes", prefixes, "\"", "\"")
                } else {
                    "{\"all\":true}".to_string()
                };
                let (status, text) = http_unix(api, "POST", "/v1/withdraw", Some(&body))?;
                if status != 200 {
                    return Err(format!("POST /v1/withdraw: {status} {text}"));
                }
                Ok(())
            }
            Inner::Bird(b, c) => bird_routes(b, c, &[]),
            Inner::GoBgp(g) => g
                .gobgp(&["global", "rib", "-a", "ipv6", "del", "all"])
                .map(|_| ()),
            Inner::Frr(f) => frr_networks(f, self.me.asn, prefixes, "no "),
        }
    }
}

/// `ferry COMMAND --file FILE --api API`, run here (the API is a Unix socket, reachable from
/// any namespace).
fn ferry_file(bin: &Path, command: &str, file: &Path, api: &Path) -> Result<(), String> {
    testkit::cmd::run(
        std::process::Command::new(bin)
            .arg(command)
            .arg("--file")
            .arg(file)
            .arg("--api")
            .arg(api),
    )
    .map(|_| ())
}

/// `{"KEY":[BEFORE prefix AFTER,...]}` (prefixes are plain text, no escaping), written into one
/// buffer as a careful client would: at 100k prefixes a `format!` per item took 10-16 ms, all
/// of it before the request left.
fn json_body(key: &str, prefixes: &[String], before: &str, after: &str) -> String {
    let per_item = before.len() + after.len() + 1;
    let len: usize = prefixes.iter().map(|p| p.len() + per_item).sum();
    let mut body = String::with_capacity(len + key.len() + 8);
    body.push_str("{\"");
    body.push_str(key);
    body.push_str("\":[");
    for (i, p) in prefixes.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(before);
        body.push_str(p);
        body.push_str(after);
    }
    body.push_str("]}");
    body
}

/// BIRD's config rewritten with `prefixes` as its static routes, then `birdc configure`.
fn bird_routes(b: &Bird, c: &BirdConfig, prefixes: &[String]) -> Result<(), String> {
    let mut c = c.clone();
    c.routes = prefixes.iter().map(|p| Route::new(p)).collect();
    let conf = b.dir().join("bird.conf");
    std::fs::write(&conf, c.render(testkit::daemons::BgpDaemon::log_path(b)))
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    let out = b.birdc(&["configure"])?;
    if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
        Ok(())
    } else {
        Err(format!("birdc configure: {out}"))
    }
}

/// One `vtysh -f FILE` (the argument list of 100,000 `-c` would pass ARG_MAX): the file holds
/// `router bgp AS`, `address-family ipv6 unicast`, then `{neg}network P` for each prefix; it is
/// written just before vtysh runs.
fn frr_networks(f: &Frr, asn: u32, prefixes: &[String], neg: &str) -> Result<(), String> {
    let mut text = format!("router bgp {asn}\n address-family ipv6 unicast\n");
    for p in prefixes {
        text.push_str(&format!("  {neg}network {p}\n"));
    }
    text.push_str(" exit-address-family\nexit\n");
    let file = f.dir().join("networks.conf");
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    let out = testkit::cmd::run(
        std::process::Command::new("vtysh")
            .arg("--vty_socket")
            .arg(f.dir())
            .arg("-f")
            .arg(&file),
    )?;
    if out.contains("% ") {
        return Err(format!("vtysh -f: {}", &out[..out.len().min(500)]));
    }
    Ok(())
}

/// The sink child, killed (by its own PID) on drop.
struct Sinks {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Sinks {
    fn wait_line(&mut self, what: &str, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, l)) if l == what => return Ok(t),
                Ok((_, l)) => last = l,
                Err(_) => {
                    let _ = self.child.kill();
                    let out = self.child.wait_with_output_stderr();
                    return Err(format!(
                        "sinks: no {what:?} within {timeout:?} (last line {last:?}); stderr: {out}"
                    ));
                }
            }
        }
    }
}

trait StderrText {
    fn wait_with_output_stderr(&mut self) -> String;
}

impl StderrText for Child {
    fn wait_with_output_stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s.trim().to_string()
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One fan-out run of `kind` to `sinks` sessions with `prefixes`.
pub fn fanout_once(
    kind: SenderKind,
    prefixes: &[String],
    sinks: usize,
    bins: &Bins,
    timeout: Duration,
) -> FanoutRun {
    let mut r = FanoutRun::default();
    if let Err(e) = fanout_inner(kind, prefixes, sinks, bins, timeout, &mut r) {
        r.error = Some(e);
    }
    r
}

fn fanout_inner(
    kind: SenderKind,
    prefixes: &[String],
    sinks: usize,
    bins: &Bins,
    timeout: Duration,
    r: &mut FanoutRun,
) -> Result<(), String> {
    let lab = Lab::new("fanout");
    let sns = lab.netns("s");
    let kns = lab.netns("k");
    let sink_addrs: Vec<String> = (0..sinks).map(|i| format!("{}/64", sink_ip(i))).collect();
    let refs: Vec<&str> = sink_addrs.iter().map(String::as_str).collect();
    lab.veth(&sns, &[&format!("{SENDER_IP}/64")], &kns, &refs)
        .wait_up(Duration::from_secs(5));
    let sender = CommandSender::start(kind, &lab, &sns, bins, &Me::fanout(), peers(sinks))?;
    let binds: Vec<String> = (0..sinks).map(sink_ip).collect();
    let mut c = kns.command(&bins.blaster.display().to_string());
    c.args([
        "sink",
        "--connect",
        &format!("[{SENDER_IP}]:179"),
        "--bind",
        &binds.join(","),
        "--asn",
        &SINK_AS.to_string(),
        "--router-id",
        "192.0.2.1",
        "--expect",
        &prefixes.len().to_string(),
    ]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("bgp_blaster sink: {e}"))?;
    let lines = spawn_line_reader(child.stdout.take().ok_or("no stdout")?);
    let mut sink = Sinks { child, lines };
    sink.wait_line("ALL_ESTABLISHED", Duration::from_secs(90))?;
    sender.prepare(prefixes)?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = sender.pid();
    let cpu0 = cpu_secs(pid).ok_or("sender CPU time unreadable")?;
    let t0 = Instant::now();
    sender.announce(prefixes)?;
    r.command_secs = Some(t0.elapsed().as_secs_f64());
    let done = sink.wait_line("DONE", timeout);
    r.rss_kib = vm_hwm_kib(pid);
    r.cpu_secs = cpu_secs(pid).map(|c| c - cpu0);
    let done = done?;
    r.secs = Some(done.duration_since(t0).as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_is_the_api_request() {
        let prefixes = vec!["2001:db8:1::/64".to_string(), "2001:db8:2::/64".to_string()];
        let announce = json_body("routes", &prefixes, "{\"prefix\":\"", "\"}");
        let v: serde_json::Value = serde_json::from_str(&announce).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"routes": [{"prefix": "2001:db8:1::/64"}, {"prefix": "2001:db8:2::/64"}]})
        );
        let withdraw = json_body("prefixes", &prefixes[..1], "\"", "\"");
        assert_eq!(withdraw, r#"{"prefixes":["2001:db8:1::/64"]}"#);
        assert_eq!(json_body("prefixes", &[], "\"", "\""), r#"{"prefixes":[]}"#);
    }
}
