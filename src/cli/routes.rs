//! `ferry announce`, `ferry withdraw`, `ferry routes`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use ipnet::IpNet;

use super::{report, route_file, table, ApiArgs, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::api::{ChangeResponse, LeaseReport, WithdrawRequest};
use crate::speaker::route::{parse_origin, parse_prefix};
use crate::speaker::{Attributes, Route};
use crate::wire::{Community, LargeCommunity};

#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// Prefixes to announce, e.g. 198.51.100.0/24 or 2001:db8:100::/64.
    #[arg(required_unless_present = "file")]
    pub prefixes: Vec<String>,
    /// A file of routes, announced in one atomic change: one prefix a line with optional
    /// KEY=VALUE columns (`198.51.100.0/24 next_hop=192.0.2.1 med=10 communities=65000:1`),
    /// a JSON array of prefixes or route objects (docs/api.md), or JSON lines; `-` is stdin.
    #[arg(long, value_name = "FILE", conflicts_with = "prefixes")]
    pub file: Option<PathBuf>,
    /// Next hop (default: the session's own address).
    #[arg(long, value_name = "IP")]
    pub next_hop: Option<String>,
    /// Standard community A:B or a well-known name (graceful-shutdown, no-export, ...); repeatable.
    #[arg(long, value_name = "A:B")]
    pub community: Vec<String>,
    /// Large community A:B:C; repeatable.
    #[arg(long, value_name = "A:B:C")]
    pub large_community: Vec<String>,
    /// MULTI_EXIT_DISC (MED), 0-4294967295: lower is preferred by the peers.
    #[arg(long, value_name = "N")]
    pub med: Option<u32>,
    /// LOCAL_PREF, sent to iBGP peers only.
    #[arg(long, value_name = "N")]
    pub local_pref: Option<u32>,
    /// Extra copies of our ASN in the AS path.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub prepend: u8,
    /// ORIGIN: igp, egp or incomplete.
    #[arg(long, default_value = "igp")]
    pub origin: String,
    /// Lease (fencing): the speaker withdraws the route by itself unless `ferry lease renew`
    /// (or POST /v1/lease/renew) renews it within this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub lease: Option<u32>,
    /// Print what would change (checked by the speaker as a real announce is), change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the speaker's answer (the change and what it did) as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub fence: super::fence::FenceArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// Prefixes to withdraw, e.g. 198.51.100.0/24.
    #[arg(required_unless_present_any = ["file", "all"])]
    pub prefixes: Vec<String>,
    /// Withdraw every announced route, in one atomic change (e.g. to empty a site).
    #[arg(long, conflicts_with_all = ["prefixes", "file"])]
    pub all: bool,
    /// A file of prefixes, withdrawn in one atomic change: any format `announce --file` takes
    /// (only each entry's prefix is used, so the same file works); `-` is stdin.
    #[arg(long, value_name = "FILE", conflicts_with = "prefixes")]
    pub file: Option<PathBuf>,
    /// Graceful shutdown (RFC 8326): re-announce with GRACEFUL_SHUTDOWN (65535:0), wait this
    /// many seconds (1-3600), then withdraw; returns when the withdrawal is done.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub graceful: Option<u32>,
    /// Print what would be withdrawn, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --all: do not ask for confirmation (required when not run from a terminal).
    #[arg(long, requires = "all")]
    pub yes: bool,
    /// Print the speaker's answer (the change and what it did) as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub fence: super::fence::FenceArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct RoutesArgs {
    /// Routes received from peers (Adj-RIB-In) instead of the announced ones.
    #[arg(long)]
    pub received: bool,
    /// Only routes received from this peer (with --received).
    #[arg(long, requires = "received")]
    pub peer: Option<IpAddr>,
    /// Print the routes as JSON (the API's objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Build the routes from the command line; errors name the argument and the value.
fn routes_from_args(args: &AnnounceArgs) -> Result<Vec<Route>, String> {
    if let Some(path) = &args.file {
        return route_file::read_path(path);
    }
    let communities = args
        .community
        .iter()
        .map(|c| {
            c.parse::<Community>()
                .map_err(|e| format!("--community: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let large = args
        .large_community
        .iter()
        .map(|c| {
            c.parse::<LargeCommunity>()
                .map_err(|e| format!("--large-community: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let origin = parse_origin(&args.origin).map_err(|e| format!("--origin: {e}"))?;
    let next_hop = match args.next_hop.as_deref() {
        None | Some("self") => None,
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| format!("--next-hop {s:?} is not an IP address"))?,
        ),
    };
    args.prefixes
        .iter()
        .map(|p| {
            let mut route = Route::new(parse_prefix(p).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            route.next_hop = next_hop;
            route.attrs = Attributes {
                origin,
                med: args.med,
                local_pref: args.local_pref,
                communities: communities.clone(),
                large_communities: large.clone(),
            };
            route.prepend = args.prepend;
            route.lease_secs = args.lease;
            route.validate().map_err(|e| e.to_string())?;
            Ok(route)
        })
        .collect()
}

fn print_change(json: bool, verb: &str, resp: &ChangeResponse) {
    if json {
        println!("{}", serde_json::to_string(resp).unwrap_or_default());
    } else if let Some(d) = &resp.dry_run {
        println!("{}", dry_run_text(d, resp));
    } else {
        println!(
            "{verb}: {} prefix(es) changed (desired-state generation {})",
            resp.changed, resp.generation
        );
    }
}

/// A dry run in words: each prefix that would be announced or withdrawn, then the count.
fn dry_run_text(d: &crate::api::DryRun, resp: &ChangeResponse) -> String {
    let mut s = String::new();
    for p in &d.announce {
        s.push_str(&format!("would announce {p}\n"));
    }
    for p in &d.withdraw {
        s.push_str(&format!("would withdraw {p}\n"));
    }
    s.push_str(&format!(
        "dry run: {} prefix(es) would change (to desired-state generation {}); nothing was changed",
        resp.changed, resp.generation
    ));
    s
}

pub fn announce(args: AnnounceArgs) -> i32 {
    let routes = match routes_from_args(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry announce: {e}");
            return EXIT_USAGE;
        }
    };
    let client = match args
        .api
        .client_for("announce")
        .and_then(|c| args.fence.apply("announce", c))
    {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = if args.dry_run {
        client.announce_dry_run(routes)
    } else {
        client.announce(routes)
    };
    match result {
        Ok(resp) => {
            print_change(args.json, "announced", &resp);
            EXIT_OK
        }
        Err(e) => report("announce", &e),
    }
}

pub fn withdraw(args: WithdrawArgs) -> i32 {
    let parsed = match &args.file {
        Some(path) => route_file::read_path(path),
        None if args.all => Ok(Vec::new()),
        None => args
            .prefixes
            .iter()
            .map(|p| parse_prefix(p).map_err(|e| e.to_string()))
            .collect::<Result<Vec<IpNet>, _>>(),
    };
    let prefixes = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry withdraw: {e}");
            return EXIT_USAGE;
        }
    };
    // A graceful withdrawal answers after its wait.
    let wait = std::time::Duration::from_secs(args.graceful.map_or(0, u64::from));
    let client = match args
        .api
        .client_for("withdraw")
        .and_then(|c| args.fence.apply("withdraw", c))
    {
        Ok(c) => c.with_timeout(crate::api::speaker::DEFAULT_TIMEOUT + wait),
        Err(code) => return code,
    };
    let req = WithdrawRequest {
        prefixes,
        all: args.all,
        graceful_secs: args.graceful,
        dry_run: args.dry_run,
    };
    if args.all && !args.dry_run && !args.yes {
        if let Err(code) = confirm_withdraw_all(&client, &req) {
            return code;
        }
    }
    match client.change(req) {
        Ok(resp) => {
            print_change(args.json, "withdrawn", &resp);
            EXIT_OK
        }
        Err(e) => report("withdraw", &e),
    }
}

/// `withdraw --all` without `--yes`: on a terminal, say what would go and ask; otherwise
/// refuse. `Err` is the exit code (nothing was changed).
fn confirm_withdraw_all(
    client: &crate::api::blocking::Speaker,
    req: &WithdrawRequest,
) -> Result<(), i32> {
    use std::io::{IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "ferry withdraw: --all withdraws every announced route; not a terminal to ask on: confirm with --yes (or see what would go with --dry-run)"
        );
        return Err(EXIT_USAGE);
    }
    let preview = WithdrawRequest {
        dry_run: true,
        ..req.clone()
    };
    let n = match client.change(preview) {
        Ok(r) => r.changed,
        Err(e) => return Err(report("withdraw", &e)),
    };
    print!(
        "withdraw all {n} announced route(s) at {}? [y/N] ",
        client.endpoint()
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        eprintln!("ferry withdraw: not confirmed; nothing was withdrawn");
        Err(EXIT_FAILED)
    }
}

#[derive(Debug, Args)]
pub struct LeaseArgs {
    #[command(subcommand)]
    pub command: LeaseCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LeaseCommand {
    /// Renew the leases of these prefixes (none given: every leased route).
    Renew {
        /// Leased prefixes to renew, e.g. 198.51.100.0/24 (none: every leased route).
        prefixes: Vec<String>,
        /// Print the lease report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        fence: super::fence::FenceArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show the leased routes, their deadlines and the expiries so far.
    Status {
        /// Print the lease report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `ferry lease renew|status`.
pub fn lease(args: LeaseArgs) -> i32 {
    let no_fence = super::fence::FenceArgs::default();
    let (json, api, renew, fence) = match &args.command {
        LeaseCommand::Renew {
            prefixes,
            json,
            fence,
            api,
        } => (*json, api, Some(prefixes), fence),
        LeaseCommand::Status { json, api } => (*json, api, None, &no_fence),
    };
    let client = match api
        .client_for("lease")
        .and_then(|c| fence.apply("lease renew", c))
    {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = match renew {
        Some(prefixes) => {
            let prefixes = match prefixes
                .iter()
                .map(|p| parse_prefix(p))
                .collect::<Result<Vec<IpNet>, _>>()
            {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("ferry lease renew: {e}");
                    return EXIT_USAGE;
                }
            };
            client.renew(prefixes)
        }
        None => client.leases(),
    };
    match result {
        Ok(r) if json => print_json(&r),
        Ok(r) => {
            let rows = r
                .leases
                .iter()
                .map(|l| {
                    vec![
                        l.prefix.to_string(),
                        format!("{}s", l.lease_secs),
                        format!("{:.1}s", l.expires_in_ms as f64 / 1000.0),
                    ]
                })
                .collect::<Vec<_>>();
            println!(
                "{}",
                table::render(&["PREFIX", "LEASE", "EXPIRES IN"], &rows)
            );
            println!("{}", lease_summary(&r));
            EXIT_OK
        }
        Err(e) => report("lease", &e),
    }
}

/// One line: leased routes, next expiry, expiries so far.
pub(crate) fn lease_summary(r: &LeaseReport) -> String {
    let next = r
        .leases
        .iter()
        .map(|l| l.expires_in_ms)
        .min()
        .map_or(String::new(), |ms| {
            format!(", next expiry in {:.1}s", ms as f64 / 1000.0)
        });
    let last = match (r.last_expired.is_empty(), r.last_expired_secs_ago) {
        (false, Some(ago)) => format!(
            " (last: {} {ago}s ago)",
            r.last_expired
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        _ => String::new(),
    };
    format!(
        "leases: {} route(s){next}; {} expired since start{last}",
        r.leases.len(),
        r.expiries_total
    )
}

/// The MED, COMMUNITIES and LARGE cells of a route's row.
fn attr_cells(a: &Attributes) -> [String; 3] {
    let words = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(" ");
    [
        a.med.map(|m| m.to_string()).unwrap_or_default(),
        words(&mut a.communities.iter().map(ToString::to_string)),
        words(&mut a.large_communities.iter().map(ToString::to_string)),
    ]
}

pub fn list(args: RoutesArgs) -> i32 {
    let client = match args.api.client_for("routes") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.received {
        return match client.received(args.peer) {
            Ok(routes) if args.json => print_json(&routes),
            Ok(routes) => {
                let rows = routes
                    .iter()
                    .map(|r| {
                        vec![
                            r.peer.to_string(),
                            r.prefix.to_string(),
                            r.next_hop.map(|a| a.to_string()).unwrap_or_default(),
                            r.as_path.clone(),
                        ]
                        .into_iter()
                        .chain(attr_cells(&r.attrs))
                        .collect()
                    })
                    .collect::<Vec<_>>();
                println!(
                    "{}",
                    table::render(
                        &[
                            "PEER",
                            "PREFIX",
                            "NEXT HOP",
                            "AS PATH",
                            "MED",
                            "COMMUNITIES",
                            "LARGE"
                        ],
                        &rows
                    )
                );
                EXIT_OK
            }
            Err(e) => report("routes", &e),
        };
    }
    match client.announced_changes() {
        Ok(routes) if args.json => print_json(&routes),
        Ok(changes) => {
            // Best effort: a speaker without leases answers with none.
            let leases = client.leases().unwrap_or_default();
            let lease_cell = |r: &Route| match r.lease_secs {
                None => "-".to_owned(),
                Some(secs) => leases
                    .leases
                    .iter()
                    .find(|l| l.prefix == r.prefix)
                    .map_or(format!("{secs}s"), |l| {
                        format!("{secs}s ({:.1}s left)", l.expires_in_ms as f64 / 1000.0)
                    }),
            };
            let rows = changes
                .iter()
                .map(|a| {
                    let r = &a.route;
                    let [med, communities, large] = attr_cells(&r.attrs);
                    vec![
                        r.prefix.to_string(),
                        r.next_hop.map_or("self".into(), |n| n.to_string()),
                        med,
                        r.prepend.to_string(),
                        communities,
                        large,
                        lease_cell(r),
                        a.changed
                            .as_ref()
                            .map_or("-".into(), |c| format!("{} by {}", c.at_text(), c.by)),
                    ]
                })
                .collect::<Vec<_>>();
            println!(
                "{}",
                table::render(
                    &[
                        "PREFIX",
                        "NEXT HOP",
                        "MED",
                        "PREPEND",
                        "COMMUNITIES",
                        "LARGE",
                        "LEASE",
                        "CHANGED"
                    ],
                    &rows
                )
            );
            EXIT_OK
        }
        Err(e) => report("routes", &e),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> i32 {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("ferry: cannot render JSON: {e}");
            EXIT_FAILED
        }
    }
}
