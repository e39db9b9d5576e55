//! Command-line interface: clap definitions and output. No business logic: each command calls
//! into the library (the API client, the speaker daemon, the decoder) and prints what it returns.
//!
//! Exit codes (docs/design.md, "Contracts users rely on"): 0 ok, 1 operation failed, 2 bad
//! usage or bad input, and for `ferry status` 3 ([`EXIT_NOT_ESTABLISHED`]): the listing was
//! printed, and at least one configured session that is not disabled (`ferry neighbor
//! disable`) is not Established (`--exit-zero` answers 0 for that).
//! `ferry withdraw --all` asks on a terminal; not confirmed is 1, no terminal and no `--yes` 2.

mod controller;
mod decode;
mod dns;
mod failover;
mod fence;
mod generate;
mod lab;
mod labdns;
mod monitor;
mod neighbor;
mod route_file;
mod routes;
mod speaker;
mod status;
mod table;

use clap::{Args, Parser, Subcommand};

use crate::api::speaker::SettingsError;
use crate::api::{blocking, Speaker, SpeakerError};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
/// `ferry status`: some configured session is not Established (scripts and health checks).
pub const EXIT_NOT_ESTABLISHED: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Moves a subnet between data-center sites by BGP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a BGP speaker in the foreground (logs to stderr).
    Speaker(speaker::SpeakerArgs),
    /// Announce prefixes (or change their attributes) at the speaker.
    Announce(routes::AnnounceArgs),
    /// Withdraw prefixes at the speaker.
    Withdraw(routes::WithdrawArgs),
    /// Show the speaker's neighbors and their sessions.
    Status(status::StatusArgs),
    /// Show the speaker's health checks (`[[health_check]]`) and their states.
    Health(status::HealthArgs),
    /// Show announced routes, or with --received the routes peers sent.
    Routes(routes::RoutesArgs),
    /// Follow the speaker's events as they happen (sessions, routes sent, changes, leases,
    /// health checks).
    Monitor(monitor::MonitorArgs),
    /// End a neighbor's session now (--hard: Cease/Hard Reset, peers drop our routes at once).
    Reset(status::ResetArgs),
    /// Take a neighbor down administratively (Cease with a message, kept down across
    /// restarts), or bring it back: `ferry neighbor disable|enable PEER`.
    Neighbor(neighbor::NeighborArgs),
    /// Make the speaker re-read its config file and apply what changed (as SIGHUP does).
    Reload(neighbor::ReloadArgs),
    /// Leased routes (fencing): renew their leases, or show them.
    Lease(routes::LeaseArgs),
    /// Show the fencing tokens the speaker holds (the highest per fence) and refusals.
    Fences(fence::FencesArgs),
    /// The FRR lab: three sites in network namespaces, failovers and their convergence (root).
    Lab(lab::LabArgs),
    /// Decode BGP messages (hex, raw bytes or a pcap) and print one JSON object per message.
    Decode(decode::DecodeArgs),
    /// Failover plans: `ferry plan check PLAN`.
    Plan(failover::PlanArgs),
    /// Run a failover plan (primary -> recovery), or manage its runs (status, resume, abort,
    /// keep, repair, history).
    Failover(failover::FailoverArgs),
    /// The plan's DNS entries: `ferry dns check --plan PLAN`.
    Dns(dns::DnsArgs),
    /// Run a failover plan backwards (recovery -> primary).
    Failback(failover::RunArgs),
    /// HA controllers sharing etcd: `ferry controller run --plan PLAN --store etcd://...`.
    Controller(controller::ControllerArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions(generate::CompletionsArgs),
    /// Print the man page, or write one per subcommand with --dir DIR.
    Man(generate::ManArgs),
}

/// How to reach a speaker's API.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Speaker API: a Unix socket path or http://HOST:PORT.
    #[arg(long, env = "FERRY_API", default_value = "/run/ferry/ferry.sock")]
    pub api: String,
    /// File with the bearer token for a TCP API.
    #[arg(long, env = "FERRY_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<std::path::PathBuf>,
}

impl ApiArgs {
    /// The client, or the error already printed for `command` and its exit code: bad
    /// `--api` or token file is a usage error, a client that cannot start a failure.
    pub fn client_for(&self, command: &str) -> Result<blocking::Speaker, i32> {
        let say = |e: String, code| {
            eprintln!("ferry {command}: {e}");
            code
        };
        let speaker =
            Speaker::from_settings(&self.api, self.api_token_file.as_deref()).map_err(|e| {
                let text = match e {
                    SettingsError::Api(e) => format!("--api: {e}"),
                    SettingsError::TokenFile { path, error } => {
                        format!("--api-token-file {}: {error}", path.display())
                    }
                };
                say(text, EXIT_USAGE)
            })?;
        blocking::Speaker::new(speaker).map_err(|e| say(e, EXIT_FAILED))
    }
}

/// Exit code for a failed API call: the speaker refusing bad input (400) is a usage error.
pub(crate) fn report(command: &str, e: &SpeakerError) -> i32 {
    if e.is_unreachable() {
        eprintln!("ferry {command}: {e}; --api or FERRY_API says where it listens");
    } else {
        eprintln!("ferry {command}: {e}");
    }
    if matches!(e, SpeakerError::Rejected { status: 400, .. }) {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Speaker(args) => speaker::run(args),
        Command::Announce(args) => routes::announce(args),
        Command::Withdraw(args) => routes::withdraw(args),
        Command::Status(args) => status::run(args),
        Command::Health(args) => status::health(args),
        Command::Routes(args) => routes::list(args),
        Command::Reset(args) => status::reset(args),
        Command::Monitor(args) => monitor::run(args),
        Command::Neighbor(args) => neighbor::run(args),
        Command::Reload(args) => neighbor::reload(args),
        Command::Lease(args) => routes::lease(args),
        Command::Fences(args) => fence::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Plan(args) => failover::plan(args),
        Command::Failover(args) => failover::failover(args),
        Command::Failback(args) => failover::failback(args),
        Command::Controller(args) => controller::run(args),
        Command::Dns(args) => dns::run(args),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    }
}
