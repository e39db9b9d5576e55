//! `ferry speaker --config FILE`: run the daemon in the foreground, or with `--check` only
//! check the config and print what would run (exit 0, or 2 with the error).

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
    /// Check the config (and what the speaker checks at start: token file, MD5/GTSM options,
    /// state_dir's neighbor states), print what would run and exit: 0 when good, 2 with the
    /// error otherwise. Starts nothing and writes nothing.
    #[arg(long)]
    pub check: bool,
    /// With --check: the outcome as one JSON object (`ok`, the summary's lines or the error).
    #[arg(long, requires = "check")]
    pub json: bool,
}

pub fn run(args: SpeakerArgs) -> i32 {
    let checked = Config::load(&args.config).map_err(|e| e.to_string());
    if args.check && args.json {
        let outcome = checked.and_then(|c| crate::daemon::check::check(&c));
        let v = match &outcome {
            Ok(summary) => serde_json::json!({
                "config": args.config, "ok": true, "summary": summary.lines().collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({"config": args.config, "ok": false, "error": e}),
        };
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return if outcome.is_ok() { EXIT_OK } else { EXIT_USAGE };
    }
    let config = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry speaker: {e}");
            return EXIT_USAGE;
        }
    };
    if args.check {
        return match crate::daemon::check::check(&config) {
            Ok(summary) => {
                println!("config {}: ok", args.config.display());
                print!("{summary}");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("ferry speaker: config {}: {e}", args.config.display());
                EXIT_USAGE
            }
        };
    }
    let log = init_logging(args.log_format, &crate::daemon::log_filter(&config));
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
    match runtime.block_on(crate::daemon::serve(config, args.config, log)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("ferry speaker: {e:#}");
            EXIT_FAILED
        }
    }
}

/// Logging to stderr with `filter`; the returned control sets another filter (a reload).
fn init_logging(format: LogFormat, filter: &str) -> crate::daemon::LogControl {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // Checked when the config was read; FERRY_LOG is not, and falls back to info.
    let initial = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(initial)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    fn control<L, S>(handle: tracing_subscriber::reload::Handle<L, S>) -> crate::daemon::LogControl
    where
        L: From<EnvFilter> + 'static + Send + Sync,
        S: 'static,
    {
        Box::new(move |f: &str| {
            let filter = EnvFilter::try_new(f).map_err(|e| format!("{f:?}: {e}"))?;
            handle.reload(filter).map_err(|e| e.to_string())
        })
    }
    match format {
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            control(handle)
        }
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            control(handle)
        }
    }
}
