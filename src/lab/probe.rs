//! The prober (`ferry lab probe`, in the client's namespace) and the responder
//! (`ferry lab responder`, in each VM's namespace), and the lab's handle on a running prober.
//!
//! Wire format (UDP): a probe is `seq` (u64, big endian) then `sent_us` (i64, big endian,
//! microseconds since the Unix epoch); the answer is the same 16 octets followed by the
//! responder's tag (`primary`, `recovery`). The prober sends one probe per interval on an
//! absolute schedule (a late wake-up sends at once, it never drifts), until its stdin closes.
//! It prints live lines on stdout:
//! - `answer SEQ SENT_US TAG GAP`: the first answer after a change of tag or a gap of GAP
//!   unanswered probes;
//! - `tick SEQ LAST_ANSWERED_SEQ LAST_TAG` every 100 probes;
//! - `done N` after writing its record file: `seq,sent_us,recv_us,tag` per probe (`recv_us`
//!   and `tag` empty for a lost probe).

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proc;
use super::{now_us, LabError, Result};

/// Answers later than this after the stop are not waited for.
const LATE_ANSWER: Duration = Duration::from_millis(200);

/// One probe as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub seq: u64,
    pub sent_us: i64,
    pub recv_us: Option<i64>,
    pub tag: Option<String>,
}

/// `ferry lab probe`: runs until stdin closes, then writes `out`.
pub fn run_prober(target: SocketAddr, interval: Duration, out: &Path) -> std::io::Result<()> {
    let sock = Arc::new(UdpSocket::bind("0.0.0.0:0")?);
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Arc<Mutex<Vec<i64>>> = Arc::default();
    let answers: Arc<Mutex<Vec<(u64, i64, String)>>> = Arc::default();
    let last_answer = Arc::new(Mutex::new((0u64, String::new())));

    let sender = {
        let (sock, stop, sent, last) = (
            sock.clone(),
            stop.clone(),
            sent.clone(),
            last_answer.clone(),
        );
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start + interval * seq as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let t = now_us();
                let mut pkt = [0u8; 16];
                pkt[..8].copy_from_slice(&seq.to_be_bytes());
                pkt[8..].copy_from_slice(&t.to_be_bytes());
                let _ = sock.send_to(&pkt, target);
                sent.lock().map(|mut s| s.push(t)).ok();
                if seq.is_multiple_of(100) {
                    let (s, tag) = last.lock().map(|l| l.clone()).unwrap_or_default();
                    println!("tick {seq} {s} {}", if tag.is_empty() { "-" } else { &tag });
                }
                seq += 1;
            }
        })
    };
    let receiver = {
        let (sock, stop, answers, last) = (
            sock.clone(),
            stop.clone(),
            answers.clone(),
            last_answer.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 128];
            let mut prev: Option<(u64, String)> = None;
            let mut stopped_at: Option<Instant> = None;
            loop {
                if stop.load(Ordering::Relaxed) {
                    let t = *stopped_at.get_or_insert_with(Instant::now);
                    if t.elapsed() > LATE_ANSWER {
                        return;
                    }
                }
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let recv = now_us();
                if n < 16 {
                    continue;
                }
                let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                let sent_us = i64::from_be_bytes(buf[8..16].try_into().unwrap_or_default());
                let tag = String::from_utf8_lossy(&buf[16..n]).into_owned();
                let changed = match &prev {
                    None => Some(0),
                    Some((p, t)) if seq > p + 1 || *t != tag => Some(seq.saturating_sub(p + 1)),
                    _ => None,
                };
                if let Some(gap) = changed {
                    println!("answer {seq} {sent_us} {tag} {gap}");
                }
                if prev.as_ref().is_none_or(|(p, _)| seq > *p) {
                    prev = Some((seq, tag.clone()));
                    if let Ok(mut l) = last.lock() {
                        *l = (seq, tag.clone());
                    }
                }
                answers.lock().map(|mut a| a.push((seq, recv, tag))).ok();
            }
        })
    };
    // Until the lab closes our stdin (or dies).
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
        line.clear();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let _ = receiver.join();

    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let mut recv: Vec<Option<(i64, String)>> = vec![None; sent.len()];
    for (seq, at, tag) in answers.lock().map(|a| a.clone()).unwrap_or_default() {
        if let Some(slot) = recv.get_mut(seq as usize) {
            slot.get_or_insert((at, tag));
        }
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(f, "seq,sent_us,recv_us,tag")?;
    for (seq, (s, r)) in sent.iter().zip(&recv).enumerate() {
        match r {
            Some((at, tag)) => writeln!(f, "{seq},{s},{at},{tag}")?,
            None => writeln!(f, "{seq},{s},,")?,
        }
    }
    f.flush()?;
    println!("done {}", sent.len());
    Ok(())
}

/// `ferry lab responder`: answer every probe with `tag`, forever.
pub fn run_responder(port: u16, tag: &str) -> std::io::Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", port))?;
    println!("ready");
    let mut buf = [0u8; 64];
    let mut out = Vec::with_capacity(64);
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if n < 16 {
            continue;
        }
        out.clear();
        out.extend_from_slice(&buf[..16]);
        out.extend_from_slice(tag.as_bytes());
        let _ = sock.send_to(&out, from);
    }
}

/// Read a prober's record file.
pub fn read_records(path: &Path) -> Result<Vec<Probe>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LabError::step(format!("reading {}", path.display()), e))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            let seq = f.next()?.parse().ok()?;
            let sent_us = f.next()?.parse().ok()?;
            let recv_us = f.next()?.parse().ok();
            let tag = f.next().filter(|t| !t.is_empty()).map(str::to_owned);
            Some(Probe {
                seq,
                sent_us,
                recv_us,
                tag,
            })
        })
        .collect())
}

/// What the lab knows live about a running prober.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub sent_seq: u64,
    pub answered_seq: u64,
    pub tag: String,
    /// Since when (seq) answers have come from `tag` without a gap.
    pub steady_since: u64,
}

/// A prober running in the client namespace.
pub struct Prober {
    child: Child,
    /// Where the prober writes, as the client node sees it: inside the lab's runtime
    /// directory, which every runtime shows at the same path (a container does not see the
    /// host's `--out` directory).
    node_file: PathBuf,
    /// Where the records are copied when it stops (the report directory).
    pub out: PathBuf,
    pub live: Arc<Mutex<Live>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    /// Start it, writing `node_file` (a path under the lab's runtime directory), copied to
    /// `out` when it stops; `on_line` sees every live line (for progress output).
    pub fn start(
        rt: &dyn super::runtime::Runtime,
        ns: &str,
        target: SocketAddr,
        node_file: PathBuf,
        out: PathBuf,
        on_line: impl Fn(&str) + Send + 'static,
    ) -> Result<Self> {
        let mut cmd = rt.command(ns, &rt.ferry());
        cmd.args(["lab", "probe", "--target", &target.to_string(), "--out"])
            .arg(&node_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = proc::spawn(&mut cmd)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| LabError::step("prober", "no stdout"))?;
        let live: Arc<Mutex<Live>> = Arc::default();
        let l = live.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let Ok(mut live) = l.lock() {
                    match f.as_slice() {
                        ["tick", seq, ans, tag] => {
                            live.sent_seq = seq.parse().unwrap_or(live.sent_seq);
                            live.answered_seq = ans.parse().unwrap_or(live.answered_seq);
                            if *tag != "-" {
                                live.tag = (*tag).to_owned();
                            }
                        }
                        ["answer", seq, _, tag, _] => {
                            let seq = seq.parse().unwrap_or(0);
                            live.answered_seq = seq;
                            live.tag = (*tag).to_owned();
                            live.steady_since = seq;
                        }
                        _ => {}
                    }
                }
                on_line(&line);
            }
        });
        Ok(Self {
            child,
            node_file,
            out,
            live,
            reader: Some(reader),
        })
    }

    pub fn live(&self) -> Live {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Wait until answers come from `tag`, steadily for `steady` probes, and are current.
    pub fn wait_for(&self, tag: &str, steady: u64, timeout: Duration) -> bool {
        proc::poll(timeout, Duration::from_millis(5), || {
            let l = self.live();
            l.tag == tag
                && l.answered_seq >= l.steady_since + steady
                && l.sent_seq <= l.answered_seq + 150
        })
    }

    /// Close its stdin, wait for it to write its records, return them.
    pub fn finish(mut self) -> Result<Vec<Probe>> {
        drop(self.child.stdin.take());
        let pid = self.child.id();
        let ok = proc::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !ok {
            proc::signal(pid, "KILL");
            let _ = self.child.wait();
            return Err(LabError::step("prober", "did not stop within 10 s"));
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if self.node_file != self.out {
            std::fs::copy(&self.node_file, &self.out).map_err(|e| {
                LabError::step(
                    format!(
                        "copying {} to {}",
                        self.node_file.display(),
                        self.out.display()
                    ),
                    e,
                )
            })?;
        }
        read_records(&self.out)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
