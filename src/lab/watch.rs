//! Watching the lab while it moves: a kernel route monitor (`ip -ts monitor route` in a
//! router's namespace) and a subscriber to a speaker's event stream. Both stamp what
//! they see on the run's one clock ([`super::now_us`]) and keep it for the analysis.
//!
//! Never does: change anything; both only read.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::proc::{self, in_ns};
use super::topology::Site;
use super::{now_us, LabError, Result};
use crate::api::{blocking, Event};

/// One route change as `ip -ts monitor route` printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    pub at_us: i64,
    pub deleted: bool,
    pub prefix: String,
    pub via: Option<Ipv4Addr>,
    pub line: String,
}

/// `[2026-11-27T23:57:01.123456] 198.51.100.0/24 nhid 21 via 192.0.2.1 dev eth-r1 proto bgp`
pub fn parse_monitor_line(line: &str) -> Option<RouteChange> {
    let rest = line.strip_prefix('[')?;
    let (ts, rest) = rest.split_once("] ")?;
    let at_us = parse_utc(ts)?;
    let (deleted, rest) = match rest.strip_prefix("Deleted ") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut words = rest.split_whitespace();
    let prefix = words.next()?.to_owned();
    let mut via = None;
    while let Some(w) = words.next() {
        if w == "via" {
            via = words.next().and_then(|a| a.parse().ok());
            break;
        }
    }
    Some(RouteChange {
        at_us,
        deleted,
        prefix,
        via,
        line: line.to_owned(),
    })
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC; the lab runs `ip` and FRR with TZ=UTC) to Unix µs.
pub fn parse_utc(ts: &str) -> Option<i64> {
    let (date, time) = ts.split_once(['T', ' '])?;
    let mut d = date.split(['-', '/']).map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let frac_digits: String = frac.chars().take(6).collect();
    let micros = frac_digits.parse::<i64>().ok()? * 10i64.pow(6 - frac_digits.len() as u32);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + micros)
}

/// A change of a router's BGP table for a prefix, from a bgpd log line (`debug bgp updates in`
/// with `log timestamp precision 6`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BgpChange {
    pub at_us: i64,
    /// The neighbor the UPDATE came from.
    pub peer: String,
    /// `announce` or `withdraw`.
    pub change: &'static str,
}

/// A bgpd log line about `prefix` that changed the table: an accepted announcement
/// (`2026/11/28 01:06:08.123456 BGP: [YCKEM-GB33T] 192.0.2.9(r1) rcvd 198.51.100.0/24 IPv4
/// unicast`) or a withdrawal (`... [PAPP6-VDAWM] 192.0.2.10(r2) rcvd UPDATE about
/// 198.51.100.0/24 IPv4 unicast -- withdrawn`). Denied or duplicate announcements are not
/// changes; timestamps are UTC (FRR runs with TZ=UTC).
pub fn parse_bgpd_line(line: &str, prefix: &str) -> Option<BgpChange> {
    let (date, rest) = line.split_once(' ')?;
    let (time, rest) = rest.split_once(' ')?;
    let at_us = parse_utc(&format!("{date} {time}"))?;
    let rest = rest.strip_prefix("BGP: ")?;
    // `[UNIQUE-ID]` and, for some messages, `[EC n]`.
    let mut rest = rest;
    while rest.starts_with('[') {
        rest = rest.split_once(']')?.1;
    }
    let rest = rest.trim_start();
    let (peer, rest) = rest.split_once(' ')?;
    let peer = peer.split('(').next()?.to_owned();
    let change = if let Some(r) = rest.strip_prefix("rcvd UPDATE about ") {
        let (p, tail) = r.split_once(' ')?;
        if p != prefix || !tail.trim_end().ends_with("-- withdrawn") {
            return None;
        }
        "withdraw"
    } else if let Some(r) = rest.strip_prefix("rcvd ") {
        let (p, tail) = r.split_once(' ')?;
        if p != prefix || tail.contains("duplicate") || tail.contains("DENIED") {
            return None;
        }
        "announce"
    } else {
        return None;
    };
    Some(BgpChange {
        at_us,
        peer,
        change,
    })
}

/// Every table change for `prefix` in a bgpd log file (none if it cannot be read).
pub fn bgp_changes(log: &std::path::Path, prefix: &str) -> Vec<BgpChange> {
    std::fs::read_to_string(log)
        .map(|s| {
            s.lines()
                .filter_map(|l| parse_bgpd_line(l, prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// `ip -ts monitor route` in a namespace, for the life of this value.
pub struct RouteMonitor {
    child: Child,
    pub changes: Arc<Mutex<Vec<RouteChange>>>,
}

impl RouteMonitor {
    pub fn start(ns: &str, on_change: impl Fn(&RouteChange) + Send + 'static) -> Result<Self> {
        let mut cmd = in_ns(ns, "ip");
        cmd.args(["-ts", "monitor", "route"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = proc::spawn(&mut cmd)?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| LabError::step("ip monitor", "no stdout"))?;
        let changes: Arc<Mutex<Vec<RouteChange>>> = Arc::default();
        let c = changes.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if let Some(rc) = parse_monitor_line(&line) {
                    on_change(&rc);
                    c.lock().map(|mut v| v.push(rc)).ok();
                }
            }
        });
        // Let it subscribe before anything moves.
        std::thread::sleep(Duration::from_millis(100));
        Ok(Self { child, changes })
    }

    pub fn changes(&self) -> Vec<RouteChange> {
        self.changes.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An event from a speaker, stamped when the lab received it.
#[derive(Debug, Clone)]
pub struct SpeakerEvent {
    pub at_us: i64,
    pub site: Site,
    pub event: Event,
}

/// Subscribers to the speakers' event streams; they reconnect after a speaker restart.
pub struct EventWatcher {
    pub events: Arc<Mutex<Vec<SpeakerEvent>>>,
    stop: Arc<AtomicBool>,
}

impl EventWatcher {
    /// Subscribe to each `(site, api socket)`; returns once every stream is open (or 5 s).
    pub fn start(
        speakers: Vec<(Site, PathBuf)>,
        on_event: impl Fn(&SpeakerEvent) + Send + Sync + 'static,
    ) -> Result<Self> {
        let events: Arc<Mutex<Vec<SpeakerEvent>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let on_event = Arc::new(on_event);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let n = speakers.len();
        for (site, socket) in speakers {
            let (events, stop, on_event, ready) = (
                events.clone(),
                stop.clone(),
                on_event.clone(),
                ready_tx.clone(),
            );
            std::thread::spawn(move || {
                let Ok(speaker) = blocking::Speaker::unix(&socket) else {
                    return;
                };
                let speaker = speaker.with_timeout(Duration::from_secs(5));
                let mut ready = Some(ready);
                while !stop.load(Ordering::Relaxed) {
                    let _ = stream(&speaker, site, &events, &*on_event, &mut ready, &stop);
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        let mut opened = 0;
        while opened < n {
            match ready_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(()) => opened += 1,
                Err(_) => {
                    return Err(LabError::step(
                        "subscribing to speaker events",
                        "no stream within 5 s",
                    ))
                }
            }
        }
        Ok(Self { events, stop })
    }

    pub fn events(&self) -> Vec<SpeakerEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Read `site`'s events until the stream ends or `stop`; says `ready` once it is open.
fn stream(
    speaker: &blocking::Speaker,
    site: Site,
    events: &Mutex<Vec<SpeakerEvent>>,
    on_event: &(dyn Fn(&SpeakerEvent) + Send + Sync),
    ready: &mut Option<std::sync::mpsc::Sender<()>>,
    stop: &AtomicBool,
) -> std::result::Result<(), String> {
    let mut stream = speaker.events().map_err(|e| e.to_string())?;
    if let Some(r) = ready.take() {
        let _ = r.send(());
    }
    while !stop.load(Ordering::Relaxed) {
        let Some(event) = stream
            .next_within(Duration::from_millis(200))
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let e = SpeakerEvent {
            at_us: now_us(),
            site,
            event,
        };
        on_event(&e);
        events.lock().map(|mut v| v.push(e)).ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_parse() {
        let rc = parse_monitor_line(
            "[2026-11-27T23:57:01.123456] 198.51.100.0/24 nhid 21 via 192.0.2.5 dev eth-r2 proto bgp metric 20",
        )
        .unwrap();
        assert_eq!(rc.prefix, "198.51.100.0/24");
        assert_eq!(rc.via, Some("192.0.2.5".parse().unwrap()));
        assert!(!rc.deleted);
        assert_eq!(rc.at_us, 1_795_823_821_123_456);
        let rc = parse_monitor_line(
            "[2026-11-27T23:57:01.000001] Deleted 198.51.100.0/24 nhid 21 proto bgp metric 20",
        )
        .unwrap();
        assert!(rc.deleted && rc.via.is_none());
    }

    #[test]
    fn utc_parses_like_date() {
        // date -u -d 2000-03-01T00:00:00 +%s = 951868800
        assert_eq!(
            parse_utc("2000-03-01T00:00:00.5"),
            Some(951_868_800_500_000)
        );
        assert_eq!(parse_utc("1970-01-01T00:00:00.000000"), Some(0));
    }

    #[test]
    fn bgpd_lines_parse() {
        let p = "198.51.100.0/24";
        let w = parse_bgpd_line(
            "2026/11/28 01:06:08.123456 BGP: [PAPP6-VDAWM] 192.0.2.18(vm) rcvd UPDATE about 198.51.100.0/24 IPv4 unicast -- withdrawn",
            p,
        )
        .unwrap();
        assert_eq!(
            w,
            BgpChange {
                at_us: parse_utc("2026-11-28T01:06:08.123456").unwrap(),
                peer: "192.0.2.18".into(),
                change: "withdraw",
            }
        );
        let a = parse_bgpd_line(
            "2026/11/28 01:05:58.000042 BGP: [YCKEM-GB33T] 192.0.2.9(r1) rcvd 198.51.100.0/24 IPv4 unicast",
            p,
        )
        .unwrap();
        assert_eq!((a.peer.as_str(), a.change), ("192.0.2.9", "announce"));
        assert_eq!(a.at_us % 1_000_000, 42);
        // Not table changes: denied, duplicate, not found, another prefix, other messages.
        for l in [
            "2026/11/28 01:06:08.200001 BGP: [RZMGQ-A03CG] 192.0.2.2(vm) rcvd UPDATE about 198.51.100.0/24 IPv4 unicast -- DENIED due to: as-path contains our own AS;",
            "2026/11/28 01:06:04.000001 BGP: [NJYMB-R5FFH] 192.0.2.18(Unknown) rcvd 198.51.100.0/24 IPv4 unicast...duplicate ignored",
            "2026/11/28 01:06:08.300001 BGP: [PC71A-4RFD8] 192.0.2.10 Can't find the route 198.51.100.0/24 IPv4 unicast",
            "2026/11/28 01:05:58.400001 BGP: [YCKEM-GB33T] 192.0.2.1(r1) rcvd 203.0.113.0/24 IPv4 unicast",
            "2026/11/28 01:05:41.500001 BGP: [T83RR-8SM5G] bgpd 8.4.4 starting: vty@0, bgp@<all>:179",
        ] {
            assert_eq!(parse_bgpd_line(l, p), None, "{l}");
        }
    }
}
