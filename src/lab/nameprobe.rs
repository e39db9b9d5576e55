//! The by-name prober (`ferry lab name-probe`, in the client's namespace) and the lab's handle
//! on it: before every probe the client asks its resolver for the name (as a stub resolver
//! does, recursion desired), then sends the probe to the address it got, so it follows DNS
//! only as fast as the resolver's cache lets it.
//!
//! Wire format of a probe and its answer: as [`super::probe`] (`seq`, `sent_us`; the answer
//! adds the responder's tag). Record file: `seq,sent_us,addr,recv_us,tag` per probe (`addr`
//! empty when resolution failed, `recv_us` and `tag` empty for an unanswered probe). Live
//! lines on stdout: `answer SEQ ADDR TAG` when the answering address or tag changes, `done N`
//! at the end. Runs until its stdin closes.
//!
//! Never does: cache an answer itself (the resolver does), or probe without a fresh lookup.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proc::{self, in_ns};
use super::{now_us, LabError, Result};
use crate::dns::client;

/// One probe as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameProbe {
    pub seq: u64,
    pub sent_us: i64,
    pub addr: Option<IpAddr>,
    pub recv_us: Option<i64>,
    pub tag: Option<String>,
}

/// `ferry lab name-probe`: runs until stdin closes, then writes `out`.
pub fn run(
    resolver: SocketAddr,
    name: &str,
    port: u16,
    interval: Duration,
    out: &Path,
) -> std::io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
                line.clear();
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    let mut probes: Vec<NameProbe> = Vec::new();
    let mut last: Option<(Option<IpAddr>, String)> = None;
    let start = Instant::now();
    let mut buf = [0u8; 128];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let sent_us = now_us();
        let addr = client::resolve(
            resolver,
            name,
            false,
            interval.max(Duration::from_millis(50)),
        )
        .ok()
        .and_then(|a| a.addrs.first().copied());
        if let Some(ip) = addr {
            let mut pkt = [0u8; 16];
            pkt[..8].copy_from_slice(&seq.to_be_bytes());
            pkt[8..].copy_from_slice(&sent_us.to_be_bytes());
            let _ = sock.send_to(&pkt, SocketAddr::new(ip, port));
        }
        probes.push(NameProbe {
            seq,
            sent_us,
            addr,
            recv_us: None,
            tag: None,
        });
        seq += 1;
        // Answers until the next probe is due.
        let next = start + interval * seq as u32;
        while let Some(wait) = next.checked_duration_since(Instant::now()) {
            sock.set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if n < 16 {
                continue;
            }
            let s = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
            let tag = String::from_utf8_lossy(&buf[16..n]).into_owned();
            if let Some(p) = probes.get_mut(s as usize) {
                if p.recv_us.is_none() {
                    p.recv_us = Some(now_us());
                    p.tag = Some(tag.clone());
                }
            }
            let now = (Some(from.ip()), tag);
            if last.as_ref() != Some(&now) {
                println!("answer {s} {} {}", from.ip(), now.1);
                last = Some(now);
            }
        }
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(f, "seq,sent_us,addr,recv_us,tag")?;
    for p in &probes {
        writeln!(
            f,
            "{},{},{},{},{}",
            p.seq,
            p.sent_us,
            p.addr.map(|a| a.to_string()).unwrap_or_default(),
            p.recv_us.map(|r| r.to_string()).unwrap_or_default(),
            p.tag.clone().unwrap_or_default()
        )?;
    }
    f.flush()?;
    println!("done {}", probes.len());
    Ok(())
}

/// Read a name prober's record file.
pub fn read_records(path: &Path) -> Result<Vec<NameProbe>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LabError::step(format!("reading {}", path.display()), e))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let [seq, sent, addr, recv, tag] = f.as_slice() else {
                return None;
            };
            Some(NameProbe {
                seq: seq.parse().ok()?,
                sent_us: sent.parse().ok()?,
                addr: addr.parse().ok(),
                recv_us: recv.parse().ok(),
                tag: (!tag.is_empty()).then(|| (*tag).to_owned()),
            })
        })
        .collect())
}

/// A name prober running in the client's namespace.
pub struct NameProber {
    child: Child,
    out: PathBuf,
    /// The last `answer` line: (seq, tag).
    live: Arc<Mutex<(u64, String)>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl NameProber {
    pub fn start(
        ns: &str,
        resolver: SocketAddr,
        name: &str,
        port: u16,
        interval: Duration,
        out: PathBuf,
    ) -> Result<Self> {
        let mut cmd = in_ns(ns, &super::ferry_exe());
        cmd.args(["lab", "name-probe", "--resolver"])
            .arg(resolver.to_string())
            .args(["--name", name, "--port"])
            .arg(port.to_string())
            .arg("--interval-ms")
            .arg(interval.as_millis().to_string())
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = proc::spawn(&mut cmd)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| LabError::step("name prober", "no stdout"))?;
        let live: Arc<Mutex<(u64, String)>> = Arc::default();
        let l = live.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let ["answer", seq, _, tag] = line.split_whitespace().collect::<Vec<_>>()[..] {
                    if let Ok(mut live) = l.lock() {
                        *live = (seq.parse().unwrap_or(0), tag.to_owned());
                    }
                }
            }
        });
        Ok(Self {
            child,
            out,
            live,
            reader: Some(reader),
        })
    }

    /// Wait until the answers come from `tag`.
    pub fn wait_for(&self, tag: &str, timeout: Duration) -> bool {
        proc::poll(timeout, Duration::from_millis(10), || {
            self.live.lock().is_ok_and(|l| l.1 == tag)
        })
    }

    /// Close its stdin, wait for its records, return them.
    pub fn finish(mut self) -> Result<Vec<NameProbe>> {
        drop(self.child.stdin.take());
        let ok = proc::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !ok {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(LabError::step("name prober", "did not stop within 10 s"));
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        read_records(&self.out)
    }
}

impl Drop for NameProber {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
