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

/// The command line of this process, parsed. `ferry announce ...` and `ferry withdraw ...`
/// (what scripts run in a failover's critical path) are parsed by their own subcommand's
/// definition alone, the same one [`Cli`] holds: building the whole tree of subcommands cost
/// a one-line command more than the speaker's whole part of it (issue 19). Anything that
/// does not parse that way (`--help`, a usage error) is parsed again by [`Cli`], so help and
/// error messages are the full parser's.
pub fn parse() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os().collect())
}

/// [`parse`] of `args` (the program's name first).
pub fn parse_from(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    if let Some(command) = parse_quick(&args) {
        return Ok(Cli { command });
    }
    <Cli as Parser>::try_parse_from(args)
}

/// `announce`/`withdraw` by their own definition, or `None` when that is not all there is.
fn parse_quick(args: &[std::ffi::OsString]) -> Option<Command> {
    use clap::FromArgMatches as _;
    let name = args.get(1)?.to_str()?;
    let sub = match name {
        "announce" => <routes::AnnounceArgs as Args>::augment_args(clap::Command::new("announce")),
        "withdraw" => <routes::WithdrawArgs as Args>::augment_args(clap::Command::new("withdraw")),
        _ => return None,
    };
    // The subcommand's name is taken as the program name; `ferry` is not in the way.
    let matches = sub.try_get_matches_from(&args[1..]).ok()?;
    match name {
        "announce" => routes::AnnounceArgs::from_arg_matches(&matches)
            .ok()
            .map(Command::Announce),
        _ => routes::WithdrawArgs::from_arg_matches(&matches)
            .ok()
            .map(Command::Withdraw),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<std::ffi::OsString> {
        line.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn the_quick_parse_is_the_full_one_or_steps_aside() {
        let same = [
            "ferry announce 198.51.100.0/24",
            "ferry announce 198.51.100.0/24 2001:db8::/48 --api /tmp/x.sock --json",
            "ferry announce 198.51.100.0/24 --med 10 --community 65000:1 --community no-export --prepend 2 --lease 30",
            "ferry announce --file routes.txt --fence plan-a --fence-token 7 --api http://127.0.0.1:8179",
            "ferry withdraw 198.51.100.0/24",
            "ferry withdraw --all --yes --dry-run",
            "ferry withdraw --file - --graceful 5 --api-token-file /tmp/t",
        ];
        for line in same {
            let quick = parse_quick(&argv(line)).unwrap_or_else(|| panic!("{line}: not quick"));
            let full = <Cli as Parser>::try_parse_from(argv(line))
                .expect(line)
                .command;
            assert_eq!(format!("{quick:?}"), format!("{full:?}"), "{line}");
        }
        // Help, errors and other commands go to the full parser.
        for line in [
            "ferry announce --help",
            "ferry announce",
            "ferry announce 198.51.100.0/24 --file x",
            "ferry withdraw --fence a",
            "ferry withdraw --graceful 0 198.51.100.0/24",
            "ferry status",
            "ferry",
        ] {
            assert!(parse_quick(&argv(line)).is_none(), "{line}");
        }
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;

    /// The state options of `ferry failover ARGS --plan P`, completed from the plan.
    fn state(args: &str, plan: &crate::controller::Plan) -> failover::StateArgs {
        let line = format!("ferry failover --plan p.toml {args}");
        let argv: Vec<std::ffi::OsString> = line.split_whitespace().map(Into::into).collect();
        match <Cli as Parser>::try_parse_from(argv).unwrap().command {
            Command::Failover(f) => f.run.state.with_plan(plan),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn the_plans_store_table_is_used_unless_a_flag_says_otherwise() {
        let text = crate::controller::plan::tests::PLAN;
        let plain = crate::controller::Plan::parse(text).unwrap();
        let with = crate::controller::Plan::parse(&format!(
            "{text}[store]\netcd = [\"192.0.2.1:2379\", \"192.0.2.2:2379\"]\nttl_secs = 9\nuser = \"ferry\"\npassword_file = \"/etc/ferry/pw\"\n"
        ))
        .unwrap();
        // No table, no flag: the state directory.
        assert_eq!(state("", &plain).store, None);
        // The table.
        let s = state("", &with);
        assert_eq!(
            s.store.as_deref(),
            Some("etcd://192.0.2.1:2379,192.0.2.2:2379")
        );
        assert_eq!(s.etcd.etcd_ttl_secs, Some(9));
        assert_eq!(s.etcd.etcd_user.as_deref(), Some("ferry"));
        assert!(matches!(
            s.spec().unwrap(),
            crate::controller::store::StoreSpec::Etcd { ttl_secs: 9, .. }
        ));
        // A flag wins over its field; --store over the whole table.
        let s = state("--etcd-ttl-secs 4 --etcd-user ops", &with);
        assert_eq!(
            (s.etcd.etcd_ttl_secs, s.etcd.etcd_user.as_deref()),
            (Some(4), Some("ops"))
        );
        let s = state("--store etcd://198.51.100.1:2379", &with);
        assert_eq!(s.store.as_deref(), Some("etcd://198.51.100.1:2379"));
        assert_eq!(
            (s.etcd.etcd_ttl_secs, s.etcd.etcd_user.clone()),
            (None, None)
        );
    }
}
