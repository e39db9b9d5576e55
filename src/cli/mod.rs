//! Command-line interface: clap definitions and output. No business logic: each command calls
//! into the library and prints what it returns.
//!
//! Exit codes (DESIGN.md): 0 ok, 1 operation failed, 2 bad usage or bad input.

mod decode;

use clap::{Parser, Subcommand};

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
    /// Decode BGP messages (hex, raw bytes or a pcap) and print one JSON object per message.
    Decode(decode::DecodeArgs),
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Decode(args) => decode::run(args),
    }
}
