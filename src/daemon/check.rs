//! `ferry speaker --check`: what the speaker checks before it starts anything, without
//! starting anything, and a summary of what would run.
//!
//! Checked beyond the file itself ([`Config::load`]): the TCP API's token file (owner-only,
//! long enough), the kernel's acceptance of each neighbor's MD5 key and GTSM option (on
//! scratch sockets, as at start), and `state_dir/neighbors.json` if it exists (a bad one
//! stops the speaker at start). Never does: bind, connect, take the state_dir lock, or write.

use std::fmt::Write as _;

use crate::config::Config;

/// The summary of a good config, or why the speaker would refuse it.
pub fn check(config: &Config) -> Result<String, String> {
    if let (Some(_), Some(file)) = (config.speaker.api_tcp, &config.speaker.api_token_file) {
        super::read_api_token(file).map_err(|e| format!("{e:#}"))?;
    }
    super::security::preflight(&config.neighbors).map_err(|e| e.to_string())?;
    let admin = if config.speaker.state_dir.exists() {
        Some(
            super::admin::AdminStates::load(&config.speaker.state_dir)
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let fences = if config.speaker.state_dir.exists() {
        super::fences::FenceTable::load(&config.speaker.state_dir)
            .map_err(|e| e.to_string())?
            .list()
    } else {
        Vec::new()
    };
    let s = &config.speaker;
    let mut out = String::new();
    let _ = writeln!(out, "speaker: AS {} router-id {}", s.asn.0, s.router_id.0);
    let _ = writeln!(
        out,
        "listen: {}",
        s.listen
            .map_or("none (outbound sessions only)".into(), |a| a.to_string())
    );
    let _ = writeln!(out, "api: {}", s.api.display());
    if let Some(a) = s.api_tcp {
        let _ = writeln!(out, "api_tcp: {a} (bearer token)");
    }
    let _ = writeln!(out, "state_dir: {}", s.state_dir.display());
    if s.require_fence || !fences.is_empty() {
        let held: Vec<String> = fences
            .iter()
            .map(|f| format!("{} token {}", f.fence, f.token))
            .collect();
        let _ = writeln!(
            out,
            "fencing: {}; held: {}",
            if s.require_fence {
                "required (calls without a token refused)"
            } else {
                "optional (calls without a token bypass it)"
            },
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(", ")
            }
        );
    }
    let _ = writeln!(out, "neighbors: {}", config.neighbors.len());
    for n in &config.neighbors {
        let families: Vec<String> = n
            .families
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        let mut flags = vec![if n.passive { "passive" } else { "active" }.to_string()];
        flags.push(format!("hold {}s", n.hold_time.0));
        flags.push(families.join("+"));
        if n.md5_password.is_some() {
            flags.push("md5".into());
        }
        if let Some(h) = n.ttl_security {
            flags.push(format!("ttl-security {}", h.0));
        }
        if n.graceful_restart {
            flags.push("graceful-restart".into());
        }
        if n.bfd.is_some() {
            flags.push("bfd".into());
        }
        if admin.as_ref().is_some_and(|a| a.get(n.address).is_some()) {
            flags.push("disabled by the operator".into());
        }
        let _ = writeln!(
            out,
            "  {} AS {}{}: {}",
            n.address,
            n.remote_as.0,
            n.description
                .as_deref()
                .map_or(String::new(), |d| format!(" {d:?}")),
            flags.join(", ")
        );
    }
    if !config.health_checks.is_empty() {
        let _ = writeln!(out, "health checks: {}", config.health_checks.len());
    }
    for h in &config.health_checks {
        let now = std::time::Instant::now();
        let g = super::health::Gate::new(h, now).status(now);
        let prefixes: Vec<String> = h.prefixes.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  {} {} {} every {} ms (rise {}, fall {}): {} {}",
            h.name,
            g.kind,
            g.target,
            h.interval_ms.0,
            h.rise.0,
            h.fall.0,
            g.on_fall,
            prefixes.join(",")
        );
    }
    Ok(out)
}
