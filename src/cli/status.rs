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
                        "LAST ERROR"
                    ],
                    &rows
                )
            );
            EXIT_OK
        }
        Err(e) => report("status", &e),
    }
}
