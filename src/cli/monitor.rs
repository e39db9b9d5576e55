//! `ferry monitor`: the speaker's events as they happen, one line each (`--json`: the API's
//! own JSON lines), until interrupted or the speaker goes away (exit 1, saying so).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use super::{ApiArgs, EXIT_FAILED};
use crate::api::Event;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// One JSON object per line, as `GET /v1/events` sends them.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub fn run(args: MonitorArgs) -> i32 {
    let client = match args.api.client_for("monitor") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut events = match client.events() {
        Ok(e) => e,
        Err(e) => return super::report("monitor", &e),
    };
    let mut out = std::io::stdout().lock();
    loop {
        let event = match events.next_within(Duration::from_secs(1)) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("ferry monitor: {e}");
                return EXIT_FAILED;
            }
        };
        let line = if args.json {
            serde_json::to_string(&event).unwrap_or_default()
        } else {
            format!("{} {}", clock(SystemTime::now()), describe(&event))
        };
        // A closed pipe (`ferry monitor | head`) ends the command quietly.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return 0;
        }
    }
}

/// `HH:MM:SS.mmm` UTC.
fn clock(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// One event in words.
fn describe(e: &Event) -> String {
    let list = |v: &[ipnet::IpNet]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    match e {
        Event::PeerState {
            peer,
            from,
            to,
            reason,
        } => match reason {
            Some(r) => format!("peer {peer}: {from} -> {to} ({r})"),
            None => format!("peer {peer}: {from} -> {to}"),
        },
        Event::RoutesSent {
            peer,
            announced,
            withdrawn,
        } => format!(
            "peer {peer}: sent {} announced, {} withdrawn{}{}",
            announced.len(),
            withdrawn.len(),
            if announced.is_empty() {
                String::new()
            } else {
                format!("; announced {}", list(announced))
            },
            if withdrawn.is_empty() {
                String::new()
            } else {
                format!("; withdrawn {}", list(withdrawn))
            },
        ),
        Event::DesiredChanged {
            generation,
            changed,
        } => format!("desired routes: {changed} changed, generation {generation}"),
        Event::LeaseExpired { prefixes } => {
            format!("lease expired, withdrawn: {}", list(prefixes))
        }
        Event::HealthChanged {
            name,
            from,
            to,
            routes,
            error,
        } => format!(
            "health check {name}: {from} -> {to}; routes {}{}",
            list(routes),
            error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        Event::Lagged { missed } => {
            format!("missed {missed} events (this monitor fell behind); check `ferry status`")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_utc_time_of_day() {
        // 2000-03-01T01:02:03.456Z
        let t = UNIX_EPOCH + Duration::from_millis(951_868_800_000 + 3_723_456);
        assert_eq!(clock(t), "01:02:03.456");
    }

    #[test]
    fn events_read_as_words() {
        let e: Event = serde_json::from_str(
            r#"{"event":"peer_state","peer":"192.0.2.2","from":"OpenConfirm","to":"Established","reason":null}"#,
        )
        .unwrap();
        assert_eq!(describe(&e), "peer 192.0.2.2: OpenConfirm -> Established");
        let e = Event::RoutesSent {
            peer: "192.0.2.2".parse().unwrap(),
            announced: vec!["198.51.100.0/24".parse().unwrap()],
            withdrawn: Vec::new(),
        };
        assert_eq!(
            describe(&e),
            "peer 192.0.2.2: sent 1 announced, 0 withdrawn; announced 198.51.100.0/24"
        );
        // As docs/api.md shows it on the wire.
        let e: Event = serde_json::from_str(
            r#"{"event": "health_changed", "name": "web", "from": "up", "to": "down", "routes": ["198.51.100.0/24"], "error": "tcp 127.0.0.1:443: Connection refused (os error 111)"}"#,
        )
        .unwrap();
        assert_eq!(
            describe(&e),
            "health check web: up -> down; routes 198.51.100.0/24 (tcp 127.0.0.1:443: Connection refused (os error 111))"
        );
    }
}
