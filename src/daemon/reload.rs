//! What a reload (SIGHUP, `ferry reload`) of the speaker's config changes: [`plan`] compares
//! the running config with the new one and says which neighbors start, stop, are reset or are
//! updated in place, or refuses the new config with the reason. Applying the plan is the
//! daemon's (`super::Running::reload`); this module is pure.
//!
//! The rules (docs/api.md, "Reload"):
//! - `[speaker]` keys `asn`, `router_id`, `listen`, `api`, `api_tcp`, `api_token_file`,
//!   `api_group`, `metrics_listen` and `state_dir` need a restart: a new config that changes
//!   any of them is refused, naming the keys, and nothing changes. `shutdown_graceful_secs`,
//!   `log_level`, `allowed_prefixes` and `require_fence` apply at once.
//! - A neighbor added is started, one removed is stopped (Cease/Administrative Shutdown) and
//!   forgotten. A neighbor whose session parameters changed (any key but `description`) is
//!   reset: its session is closed with Cease/Administrative Shutdown naming the changed keys
//!   (RFC 9003) and started again with the new settings; a `description` change applies
//!   without touching the session. Every other session is left alone.
//! - `[[health_check]]` entries need a restart: a new config that adds, removes or changes one
//!   is refused (the running checks and their states stay).
//! - BFD sessions cannot be stopped while the speaker runs: removing or resetting a neighbor
//!   that has `bfd` needs a restart and is refused (adding one, or adding `bfd` to a neighbor,
//!   is fine).
//!
//! Never does: read files, touch sessions, or print secrets (changed keys are named, values
//! are not).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::config::{Config, NeighborConfig};

/// Speaker keys a reload cannot change.
pub const RESTART_KEYS: &[&str] = &[
    "asn",
    "router_id",
    "listen",
    "api",
    "api_tcp",
    "api_token_file",
    "api_group",
    "metrics_listen",
    "state_dir",
];

/// Neighbor keys that change without a session reset.
const IN_PLACE_KEYS: &[&str] = &["description"];

/// What a new config changes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub added: Vec<NeighborConfig>,
    pub removed: Vec<NeighborConfig>,
    /// The new settings of each neighbor to reset, with the keys that changed.
    pub reset: Vec<(NeighborConfig, Vec<String>)>,
    /// The new settings of each neighbor updated in place, with the keys that changed.
    pub updated: Vec<(NeighborConfig, Vec<String>)>,
    /// Speaker keys that changed (all of them reloadable).
    pub speaker: Vec<String>,
    pub unchanged: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.reset.is_empty()
            && self.updated.is_empty()
            && self.speaker.is_empty()
    }
}

/// The keys whose values differ between `a` and `b` (a key absent from one counts), in order.
fn changed_keys<T: Serialize>(a: &T, b: &T) -> Vec<String> {
    let (Ok(a), Ok(b)) = (toml::Table::try_from(a), toml::Table::try_from(b)) else {
        // Every config type serializes (config.rs tests); should one not, nothing is assumed
        // unchanged.
        return vec!["(all)".into()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Compare the running config `old` with `new`; Err names what needs a restart.
pub fn plan(old: &Config, new: &Config) -> Result<Plan, String> {
    let speaker = changed_keys(&old.speaker, &new.speaker);
    let restart: Vec<&str> = speaker
        .iter()
        .map(String::as_str)
        .filter(|k| RESTART_KEYS.contains(k) || *k == "(all)")
        .collect();
    if !restart.is_empty() {
        return Err(format!(
            "speaker.{} changed: this needs a restart of the speaker (reload applies neighbors, shutdown_graceful_secs and log_level); nothing was changed",
            restart.join(", speaker.")
        ));
    }
    if old.health_checks != new.health_checks {
        return Err(
            "health_check changed: health checks need a restart of the speaker (their probes and states are set up at start); nothing was changed"
                .into(),
        );
    }
    let find = |list: &[NeighborConfig], a: IpAddr| list.iter().find(|n| n.address == a).cloned();
    let mut p = Plan {
        speaker,
        ..Plan::default()
    };
    for n in &old.neighbors {
        match find(&new.neighbors, n.address) {
            None => p.removed.push(n.clone()),
            Some(m) => {
                let keys = changed_keys(n, &m);
                if keys.is_empty() {
                    p.unchanged += 1;
                } else if keys.iter().all(|k| IN_PLACE_KEYS.contains(&k.as_str())) {
                    p.updated.push((m, keys));
                } else {
                    p.reset.push((m, keys));
                }
            }
        }
    }
    for m in &new.neighbors {
        if find(&old.neighbors, m.address).is_none() {
            p.added.push(m.clone());
        }
    }
    let stopped = p
        .removed
        .iter()
        .map(|n| (n.address, "removing"))
        .chain(p.reset.iter().map(|(n, _)| (n.address, "resetting")));
    for (address, what) in stopped {
        if find(&old.neighbors, address).is_some_and(|n| n.bfd.is_some()) {
            return Err(format!(
                "neighbor {address} has bfd: {what} it needs a restart of the speaker (a running BFD session cannot be stopped); nothing was changed"
            ));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Asn, HoldTime, RouterId, Seconds, SpeakerConfig};

    fn n(addr: &str) -> NeighborConfig {
        NeighborConfig::new(addr.parse().unwrap(), Asn(65002))
    }

    fn config(neighbors: Vec<NeighborConfig>) -> Config {
        Config {
            speaker: SpeakerConfig::new(
                Asn(65100),
                RouterId("192.0.2.1".parse().unwrap()),
                "/run/ferry/ferry.sock".into(),
                "/var/lib/ferry".into(),
            ),
            neighbors,
            health_checks: Vec::new(),
        }
    }

    #[test]
    fn a_changed_health_check_needs_a_restart() {
        let old = config(vec![n("192.0.2.2")]);
        let mut new = old.clone();
        new.health_checks = crate::config::Config::parse(
            r#"
[speaker]
asn = 65100
router_id = "192.0.2.1"
api = "/run/ferry/ferry.sock"
state_dir = "/var/lib/ferry"
[[health_check]]
name = "web"
prefixes = ["203.0.113.0/24"]
tcp = "127.0.0.1:80"
"#,
        )
        .unwrap()
        .health_checks;
        let err = plan(&old, &new).unwrap_err();
        assert!(err.contains("health_check changed"), "{err}");
        assert!(err.contains("restart"), "{err}");
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let c = config(vec![n("192.0.2.2"), n("192.0.2.3")]);
        let p = plan(&c, &c.clone()).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.unchanged, 2);
    }

    #[test]
    fn neighbors_added_removed_reset_and_updated_in_place() {
        let old = config(vec![n("192.0.2.2"), n("192.0.2.3"), n("192.0.2.4")]);
        let mut changed = n("192.0.2.3");
        changed.hold_time = HoldTime(30);
        changed.md5_password = Some("s3cret".to_string().try_into().unwrap());
        let mut described = n("192.0.2.4");
        described.description = Some("site b".into());
        let new = config(vec![changed.clone(), described.clone(), n("2001:db8::2")]);
        let p = plan(&old, &new).unwrap();
        assert_eq!(p.removed, vec![n("192.0.2.2")]);
        assert_eq!(p.added, vec![n("2001:db8::2")]);
        assert_eq!(
            p.reset,
            vec![(changed, vec!["hold_time".into(), "md5_password".into()])]
        );
        assert_eq!(p.updated, vec![(described, vec!["description".into()])]);
        assert_eq!(p.unchanged, 0);
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn speaker_keys_that_need_a_restart_refuse_the_reload() {
        let old = config(vec![n("192.0.2.2")]);
        let mut new = old.clone();
        new.speaker.router_id = RouterId("192.0.2.9".parse().unwrap());
        new.speaker.listen = Some("192.0.2.1:179".parse().unwrap());
        new.neighbors.push(n("192.0.2.3"));
        let e = plan(&old, &new).unwrap_err();
        assert!(
            e.contains("speaker.listen, speaker.router_id changed") && e.contains("restart"),
            "{e}"
        );
        let mut new = old.clone();
        new.speaker.shutdown_graceful_secs = Some(Seconds(5));
        new.speaker.log_level = Some(crate::config::LogLevel("debug".into()));
        let p = plan(&old, &new).unwrap();
        assert_eq!(p.speaker, vec!["log_level", "shutdown_graceful_secs"]);
        assert_eq!(p.unchanged, 1);
    }

    #[test]
    fn a_neighbor_with_bfd_is_neither_removed_nor_reset() {
        let mut with_bfd = n("192.0.2.2");
        with_bfd.bfd = Some(crate::config::BfdConfig {
            min_tx_ms: crate::config::BfdInterval(300),
            min_rx_ms: crate::config::BfdInterval(300),
            multiplier: crate::config::BfdMultiplier(3),
        });
        let old = config(vec![with_bfd.clone()]);
        let e = plan(&old, &config(vec![])).unwrap_err();
        assert!(e.contains("192.0.2.2 has bfd: removing"), "{e}");
        let mut changed = with_bfd.clone();
        changed.hold_time = HoldTime(30);
        let e = plan(&old, &config(vec![changed])).unwrap_err();
        assert!(e.contains("resetting"), "{e}");
        // Adding bfd to a neighbor without it, or a neighbor with it, is fine.
        let p = plan(&config(vec![n("192.0.2.2")]), &old).unwrap();
        assert_eq!(p.reset.len(), 1);
        let mut other = with_bfd.clone();
        other.address = "192.0.2.3".parse().unwrap();
        let p = plan(&old, &config(vec![with_bfd, other])).unwrap();
        assert_eq!(p.added.len(), 1);
    }
}
