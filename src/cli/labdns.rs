//! `ferry lab dns` and the hidden `ferry lab name-probe`: output and exit codes only; the
//! scenario is [`crate::lab::dnsrun`], the prober [`crate::lab::nameprobe`].
//!
//! Exit codes: 0 every check passed, 1 one failed (or the lab could not be built), 2 bad usage
//! (not root).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

pub fn dns(instance: &str, out: &Path, verbose: bool, json: bool) -> i32 {
    if json {
        crate::lab::human_to_stderr();
    }
    match crate::lab::dnsrun::run(instance, out, verbose) {
        Ok((outcomes, rep)) => {
            let failed = outcomes.iter().filter(|o| !o.passed).count();
            crate::lab::human(format_args!(
                "report: {}",
                out.join("dns-report.json").display()
            ));
            crate::lab::human(format_args!(
                "{} passed, {failed} failed",
                outcomes.len() - failed
            ));
            if json {
                let each: Vec<_> = outcomes
                    .iter()
                    .map(|o| serde_json::json!({"name": o.name, "passed": o.passed, "detail": o.detail}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "passed": outcomes.len() - failed,
                        "failed": failed,
                        "scenarios": each,
                        "report": rep,
                        "report_dir": out,
                    })
                );
            }
            if failed == 0 {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            eprintln!("ferry lab dns: {e}");
            if json {
                println!(
                    "{}",
                    serde_json::json!({"passed": 0, "failed": 1, "error": e.to_string(), "report_dir": out})
                );
            }
            if e.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            }
        }
    }
}

pub fn name_probe(
    resolver: SocketAddr,
    name: &str,
    port: u16,
    interval_ms: u64,
    out: &Path,
) -> i32 {
    if interval_ms == 0 || interval_ms > 10_000 {
        eprintln!("ferry lab name-probe: --interval-ms {interval_ms}: give 1 to 10000");
        return EXIT_USAGE;
    }
    match crate::lab::nameprobe::run(
        resolver,
        name,
        port,
        Duration::from_millis(interval_ms),
        out,
    ) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("ferry lab name-probe: {e}");
            EXIT_FAILED
        }
    }
}
