//! `ferry neighbor disable|enable PEER [--message TEXT]` and `ferry reload`: the speaker's
//! neighbors taken down and brought back by the operator, and its config re-read.

use std::net::IpAddr;

use clap::{Args, Subcommand};

use super::{report, ApiArgs, EXIT_OK, EXIT_USAGE};
use crate::api::neighbor_types::check_shutdown_message;

#[derive(Debug, Args)]
pub struct NeighborArgs {
    #[command(subcommand)]
    pub command: NeighborCommand,
}

#[derive(Debug, Subcommand)]
pub enum NeighborCommand {
    /// Close the session with Cease/Administrative Shutdown (RFC 9003 message) and keep it
    /// down, also across speaker restarts, until `enable`.
    Disable {
        /// The neighbor's address.
        peer: IpAddr,
        /// Shutdown communication the peer logs (at most 255 octets of UTF-8).
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// Print the speaker's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Start a disabled neighbor's session again.
    Enable {
        /// The neighbor's address.
        peer: IpAddr,
        /// Print the speaker's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(args: NeighborArgs) -> i32 {
    let (result, json) = match args.command {
        NeighborCommand::Disable {
            peer,
            message,
            json,
            api,
        } => {
            if let Some(m) = &message {
                if let Err(e) = check_shutdown_message(m) {
                    eprintln!("ferry neighbor disable: --message: {e}");
                    return EXIT_USAGE;
                }
            }
            let client = match api.client_for("neighbor disable") {
                Ok(c) => c,
                Err(code) => return code,
            };
            (client.disable(peer, message), json)
        }
        NeighborCommand::Enable { peer, json, api } => {
            let client = match api.client_for("neighbor enable") {
                Ok(c) => c,
                Err(code) => return code,
            };
            (client.enable(peer), json)
        }
    };
    match result {
        Ok(r) if json => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            EXIT_OK
        }
        Ok(r) if r.disabled => {
            match &r.message {
                Some(m) => println!(
                    "{}: disabled (session was {}; Cease sent with \"{m}\")",
                    r.peer, r.state
                ),
                None => println!("{}: disabled (session was {})", r.peer, r.state),
            }
            EXIT_OK
        }
        Ok(r) => {
            println!("{}: enabled (session starting)", r.peer);
            EXIT_OK
        }
        Err(e) => report("neighbor", &e),
    }
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Print the speaker's answer (what was added, removed, reset, updated) as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `ferry reload`: exit 0 when applied, 2 when the speaker refused the config (it keeps the
/// running one), 1 when it could not be asked.
pub fn reload(args: ReloadArgs) -> i32 {
    let client = match args.api.client_for("reload") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.reload() {
        Ok(r) if args.json => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            EXIT_OK
        }
        Ok(r) => {
            println!("reloaded {}", r.config);
            let list = |v: &[IpAddr]| {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !r.added.is_empty() {
                println!("  added: {}", list(&r.added));
            }
            if !r.removed.is_empty() {
                println!("  removed: {}", list(&r.removed));
            }
            for n in &r.reset {
                println!("  reset: {} ({} changed)", n.peer, n.keys.join(", "));
            }
            for n in &r.updated {
                println!("  updated: {} ({} changed)", n.peer, n.keys.join(", "));
            }
            if !r.speaker.is_empty() {
                println!("  speaker: {} changed", r.speaker.join(", "));
            }
            println!("  unchanged: {} neighbor(s)", r.unchanged);
            EXIT_OK
        }
        Err(e) => report("reload", &e),
    }
}
