//! `ferry speaker --config FILE`: run the daemon in the foreground.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Config;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct SpeakerArgs {
    /// The speaker's TOML config ([speaker] and [[neighbor]] tables; examples/ has some).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Log lines on stderr as text, or as one JSON object per line (level from FERRY_LOG).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

pub fn run(args: SpeakerArgs) -> i32 {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry speaker: {e}");
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry speaker: cannot start the runtime: {e}");
            return EXIT_FAILED;
        }
    };
    match runtime.block_on(crate::daemon::serve(config)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("ferry speaker: {e:#}");
            EXIT_FAILED
        }
    }
}
