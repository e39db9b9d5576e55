//! `ferry dns check --plan P` and `ferry failover prestage --plan P [--restore]`: the plan's
//! `[[dns]]` entries against their servers. The work is done by [`crate::controller::dns`].
//!
//! Exit codes: 0 every entry checked (or pre-staged), 1 a server, key or record is not as the
//! plan says, 2 bad usage or a bad plan.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::controller::dns::{self, SystemDns};
use crate::controller::Plan;

#[derive(Debug, Args)]
pub struct DnsArgs {
    #[command(subcommand)]
    pub command: DnsCommand,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Check the plan's [[dns]] entries: the TSIG key file, every server answering for the
    /// zone, each record holding its primary or recovery address, and the zone taking
    /// updates signed with the key (a test update that changes nothing).
    Check {
        /// The plan file (TOML).
        #[arg(long)]
        plan: PathBuf,
    },
}

fn load(cmd: &str, path: &Path) -> Result<Plan, i32> {
    let p = Plan::load(path).map_err(|e| {
        eprintln!("ferry {cmd}: {e}");
        EXIT_USAGE
    })?;
    if p.dns.is_empty() {
        eprintln!("ferry {cmd}: plan {} has no [[dns]] entry", path.display());
        return Err(EXIT_USAGE);
    }
    Ok(p)
}

pub fn run(args: DnsArgs) -> i32 {
    let DnsCommand::Check { plan } = args.command;
    let p = match load("dns check", &plan) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut code = EXIT_OK;
    for e in &p.dns {
        match dns::check(&SystemDns, e) {
            Ok(lines) => {
                println!("dns {}: ok", e.name);
                for l in lines {
                    println!("  {l}");
                }
                match dns::not_prestaged(&SystemDns, e) {
                    Ok(Some(w)) => eprintln!("ferry dns check: warning: {w}"),
                    Ok(None) => println!("  pre-staged: TTL {} s or less", e.failover_ttl),
                    Err(err) => eprintln!("ferry dns check: {err}"),
                }
            }
            Err(err) => {
                eprintln!("ferry dns check: {err}");
                code = EXIT_FAILED;
            }
        }
    }
    code
}

/// `ferry failover prestage`: every entry's records get `failover_ttl` (`restore`: `ttl`).
pub fn prestage(plan: &Path, restore: bool) -> i32 {
    let cmd = "failover prestage";
    let p = match load(cmd, plan) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut code = EXIT_OK;
    for e in &p.dns {
        match dns::set_ttl(&SystemDns, e, restore) {
            Ok(lines) => {
                println!("dns {}: updated at {}", e.name, e.addrs[0]);
                for l in lines {
                    println!("  {l}");
                }
            }
            Err(err) => {
                eprintln!("ferry {cmd}: {err}");
                code = EXIT_FAILED;
            }
        }
    }
    if code == EXIT_OK && !restore {
        let longest = p.dns.iter().map(|e| e.ttl).max().unwrap_or(0);
        println!(
            "resolvers hold the old TTL up to {longest} s: a planned failover from then on follows within failover_ttl"
        );
    }
    code
}

/// `plan check`'s warnings: entries whose records still carry more than `failover_ttl`.
pub fn prestage_warnings(p: &Plan) -> Vec<String> {
    p.dns
        .iter()
        .filter_map(|e| match dns::not_prestaged(&SystemDns, e) {
            Ok(w) => w,
            Err(err) => Some(format!("dns {:?}: {err}", e.name)),
        })
        .collect()
}
