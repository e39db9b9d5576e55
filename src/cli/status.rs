//! `ferry status`: the speaker's neighbors, one line each.

use clap::Args;

use super::{block_on, report, table, ApiArgs, EXIT_OK};
use crate::api::PeerStatus;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
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

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The neighbor's address.
    pub peer: std::net::IpAddr,
    /// Cease/Hard Reset (RFC 8538): the peer drops our routes at once even with graceful restart.
    #[arg(long)]
    pub hard: bool,
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
    let path = format!("/v1/peers/{}/reset", args.peer);
    let req = crate::api::ResetRequest { hard: args.hard };
    match block_on(client.post::<_, crate::api::ResetResponse>(&path, &req)) {
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
    match block_on(client.get::<Vec<PeerStatus>>("/v1/peers")) {
        Ok(peers) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&peers).unwrap_or_default()
            );
            EXIT_OK
        }
        Ok(peers) => {
            let rows = peers
                .iter()
                .map(|p| {
                    vec![
                        p.address.to_string(),
                        p.remote_as.to_string(),
                        p.state.clone(),
                        uptime(p.uptime_secs),
                        p.prefixes_sent.to_string(),
                        p.prefixes_received.to_string(),
                        gr_cell(p),
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
                        "LAST ERROR"
                    ],
                    &rows
                )
            );
            if let Ok(leases) = block_on(client.get::<crate::api::LeaseReport>("/v1/leases")) {
                if !leases.leases.is_empty() || leases.expiries_total > 0 {
                    println!("{}", super::routes::lease_summary(&leases));
                }
            }
            EXIT_OK
        }
        Err(e) => report("status", &e),
    }
}
