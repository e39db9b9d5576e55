//! `ferry status`: the speaker's neighbors, one line each.

use clap::Args;

use super::{report, table, ApiArgs, EXIT_NOT_ESTABLISHED, EXIT_OK};
use crate::api::PeerStatus;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the neighbors as JSON (the API's objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 even when a session is not Established (the default then is 3).
    #[arg(long)]
    pub exit_zero: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

fn uptime(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Graceful restart: "-" when not configured, else the state, with the stale routes and the
/// seconds left while helping a restarting peer.
fn gr_cell(p: &PeerStatus) -> String {
    match &p.graceful_restart {
        None => "-".into(),
        Some(g) => match g.stale_timer_secs {
            Some(t) => format!("{} ({} stale, {t}s)", g.state, g.stale_routes),
            None => g.state.clone(),
        },
    }
}

/// Session security: "on"/"off" for TCP MD5 (never the key), GTSM hops ("-" when off) and the
/// send hold time ("off" when 0).
fn security_cells(p: &PeerStatus) -> [String; 3] {
    [
        if p.md5 { "on" } else { "off" }.into(),
        p.ttl_security.map_or_else(
            || "-".into(),
            |h| format!("{h} hop{}", if h == 1 { "" } else { "s" }),
        ),
        p.send_hold_time_secs
            .map_or_else(|| "off".into(), |s| format!("{s}s")),
    ]
}

/// BFD: "-" when not configured, else the state, with the interval and detection time when Up.
fn bfd_cell(p: &PeerStatus) -> String {
    match &p.bfd {
        None => "-".into(),
        Some(b) => match b.detection_time_ms {
            Some(d) if b.state == "Up" => format!("Up {}ms/{d}ms", b.tx_interval_ms),
            _ => b.state.clone(),
        },
    }
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The neighbor's address.
    pub peer: std::net::IpAddr,
    /// Cease/Hard Reset (RFC 8538): the peer drops our routes at once even with graceful restart.
    #[arg(long)]
    pub hard: bool,
    /// Print the speaker's answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `ferry reset PEER [--hard]`.
pub fn reset(args: ResetArgs) -> i32 {
    let client = match args.api.client_for("reset") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.reset(args.peer, args.hard) {
        Ok(r) if args.json => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            EXIT_OK
        }
        Ok(r) => {
            let kind = if r.hard { "hard reset" } else { "reset" };
            println!("{}: {kind} sent (session was {})", r.peer, r.state);
            EXIT_OK
        }
        Err(e) => report("reset", &e),
    }
}

pub fn run(args: StatusArgs) -> i32 {
    let client = match args.api.client_for("status") {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The listing is printed either way; the code says whether every session is up. A
    // neighbor the operator disabled (`ferry neighbor disable`) is down on purpose: not counted.
    let health = |peers: &[PeerStatus]| {
        let down = peers
            .iter()
            .filter(|p| p.state != crate::api::SessionState::Established && p.admin_down.is_none())
            .count();
        if down > 0 && !args.exit_zero {
            eprintln!(
                "ferry status: {down} of {} session(s) not Established (exit {EXIT_NOT_ESTABLISHED})",
                peers.len()
            );
            EXIT_NOT_ESTABLISHED
        } else {
            EXIT_OK
        }
    };
    match client.peers() {
        Ok(peers) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&peers).unwrap_or_default()
            );
            health(&peers)
        }
        Ok(peers) => {
            let rows = peers
                .iter()
                .map(|p| {
                    let [md5, ttl, send_hold] = security_cells(p);
                    vec![
                        p.address.to_string(),
                        p.remote_as.to_string(),
                        match p.admin_down {
                            Some(_) => format!("{} (disabled)", p.state),
                            None => p.state.to_string(),
                        },
                        uptime(p.uptime_secs),
                        p.prefixes_sent.to_string(),
                        p.prefixes_received.to_string(),
                        gr_cell(p),
                        bfd_cell(p),
                        md5,
                        ttl,
                        send_hold,
                        p.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>();
            println!(
                "{}",
                table::render(
                    &[
                        "NEIGHBOR",
                        "AS",
                        "STATE",
                        "UP",
                        "SENT",
                        "RCVD",
                        "GR",
                        "BFD",
                        "MD5",
                        "TTL-SEC",
                        "SEND-HOLD",
                        "LAST ERROR"
                    ],
                    &rows
                )
            );
            for p in &peers {
                if let Some(d) = &p.admin_down {
                    let why = d
                        .message
                        .as_deref()
                        .map_or(String::new(), |m| format!(": \"{m}\""));
                    println!(
                        "{} disabled by the operator since {}{why}",
                        p.address, d.since
                    );
                }
            }
            if let Ok(leases) = client.leases() {
                if !leases.leases.is_empty() || leases.expiries_total > 0 {
                    println!("{}", super::routes::lease_summary(&leases));
                }
            }
            if let Ok(checks) = client.health() {
                if !checks.is_empty() {
                    println!("{}", health_table(&checks));
                }
            }
            health(&peers)
        }
        Err(e) => report("status", &e),
    }
}

/// The health checks as a table (`ferry status`, `ferry health`).
fn health_table(checks: &[crate::api::HealthStatus]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let prefixes: Vec<String> = c.prefixes.iter().map(ToString::to_string).collect();
            vec![
                c.name.clone(),
                format!("{} {}", c.kind, c.target),
                c.state.clone(),
                uptime(Some(c.since_secs)),
                c.on_fall.clone(),
                prefixes.join(","),
                c.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::render(
        &[
            "HEALTH CHECK",
            "PROBE",
            "STATE",
            "FOR",
            "ON FALL",
            "PREFIXES",
            "LAST ERROR",
        ],
        &rows,
    )
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Print the checks as JSON (the API's objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `ferry health`: the speaker's health checks; exit 0 (the states are data, not an error).
pub fn health(args: HealthArgs) -> i32 {
    let client = match args.api.client_for("health") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.health() {
        Ok(checks) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&checks).unwrap_or_default()
            );
            EXIT_OK
        }
        Ok(checks) if checks.is_empty() => {
            println!("no health checks configured");
            EXIT_OK
        }
        Ok(checks) => {
            println!("{}", health_table(&checks));
            EXIT_OK
        }
        Err(e) => report("health", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_cell_shows_state_interval_and_detection_time() {
        let mut p: PeerStatus = serde_json::from_value(serde_json::json!({
            "address": "192.0.2.2", "remote_as": 65001, "description": null, "state": "Idle",
            "uptime_secs": null, "prefixes_sent": 0, "prefixes_received": 0, "last_error": null
        }))
        .unwrap();
        assert_eq!(bfd_cell(&p), "-");
        p.bfd = Some(crate::api::BfdStatus {
            state: "Up".into(),
            remote_state: "Up".into(),
            local_discriminator: 1,
            remote_discriminator: 2,
            diagnostic: "no diagnostic".into(),
            remote_diagnostic: "no diagnostic".into(),
            min_tx_ms: 100,
            min_rx_ms: 100,
            multiplier: 3,
            tx_interval_ms: 100,
            detection_time_ms: Some(300),
            transitions: 2,
        });
        assert_eq!(bfd_cell(&p), "Up 100ms/300ms");
        if let Some(b) = p.bfd.as_mut() {
            b.state = "Down".into();
        }
        assert_eq!(bfd_cell(&p), "Down");
    }

    #[test]
    fn security_cells_show_md5_gtsm_and_send_hold() {
        let mut p: PeerStatus = serde_json::from_value(serde_json::json!({
            "address": "192.0.2.2", "remote_as": 65001, "description": null, "state": "Idle",
            "uptime_secs": null, "prefixes_sent": 0, "prefixes_received": 0, "last_error": null
        }))
        .unwrap();
        // Fields absent in JSON (an older speaker) read as off.
        assert_eq!(security_cells(&p), ["off", "-", "off"]);
        p.md5 = true;
        p.ttl_security = Some(1);
        p.send_hold_time_secs = Some(480);
        assert_eq!(security_cells(&p), ["on", "1 hop", "480s"]);
        p.ttl_security = Some(2);
        assert_eq!(security_cells(&p)[1], "2 hops");
    }
}
