//! Health-driven announcements: each `[[health_check]]` of the config probes a service on its
//! own task and governs the announced routes within its `prefixes`.
//!
//! Contract:
//! - A probe is a TCP connect, an HTTP(S) GET expecting 2xx ([`crate::controller::http`]) or a
//!   command that must exit 0 ([`crate::controller::hook::run_command`], killed with its
//!   process group at the deadline). Each runs off the async threads with `timeout_ms` as its
//!   deadline, so no check can block the API or the sessions; one check's probe never waits
//!   for another's.
//! - Results go through the [`machine::Machine`] (rise, fall, hold-down). While a check is not
//!   `up` (also before its first result), the routes it governs are withdrawn
//!   (`on_fall = "withdraw"`) or sent with the de-preference added (`prepend`, `med`,
//!   `community`): [`overlay`], applied where the desired routes are handed to the drivers,
//!   like the drain overlay; the stored routes never change. Routes announced later under a
//!   failing check get the same treatment.
//! - Each transition is logged as an audit line (caller `speaker: health check NAME`), sent as
//!   [`Event::HealthChanged`] and counted in `/metrics`; `GET /v1/health` shows the states.
//!
//! Never does: persist anything (a restarted speaker starts every check at `init`), or change
//! the desired routes in the store.

pub mod machine;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use self::machine::{Health, Machine};
use super::state::{lock, Shared};
use crate::api::{Caller, HealthStatus};
use crate::config::{HealthCheckConfig, OnFall};
use crate::speaker::Route;
use crate::wire::community::Community;

/// What a check that is not up does to its routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Degrade {
    Withdraw,
    Deprefer {
        prepend: u8,
        med: Option<u32>,
        community: Option<Community>,
    },
}

/// One check as the publisher and the API see it.
#[derive(Debug, Clone)]
pub struct Gate {
    pub name: String,
    pub kind: &'static str,
    pub target: String,
    pub prefixes: Vec<IpNet>,
    pub degrade: Degrade,
    pub state: Health,
    pub since: Instant,
    pub transitions: u64,
    pub last_error: Option<String>,
}

impl Gate {
    pub fn new(c: &HealthCheckConfig, now: Instant) -> Self {
        let (kind, target) = match (&c.tcp, &c.http, &c.command) {
            (Some(a), _, _) => ("tcp", a.to_string()),
            (_, Some(u), _) => ("http", u.clone()),
            (_, _, Some(argv)) => ("command", argv.join(" ")),
            _ => ("none", String::new()),
        };
        let degrade = match c.on_fall {
            OnFall::Withdraw => Degrade::Withdraw,
            OnFall::Deprefer => Degrade::Deprefer {
                prepend: c.prepend.unwrap_or(0),
                med: c.med,
                // Checked when the config was read.
                community: c.community.as_deref().and_then(|s| s.parse().ok()),
            },
        };
        Self {
            name: c.name.clone(),
            kind,
            target,
            prefixes: c.prefixes.clone(),
            degrade,
            state: Health::Init,
            since: now,
            transitions: 0,
            last_error: None,
        }
    }

    pub fn governs(&self, prefix: &IpNet) -> bool {
        self.prefixes.iter().any(|p| p.contains(prefix))
    }

    pub fn status(&self, now: Instant) -> HealthStatus {
        HealthStatus {
            name: self.name.clone(),
            kind: self.kind.into(),
            target: self.target.clone(),
            state: self.state.as_str().into(),
            prefixes: self.prefixes.clone(),
            on_fall: match self.degrade {
                Degrade::Withdraw => "withdraw".into(),
                Degrade::Deprefer { .. } => "deprefer".into(),
            },
            since_secs: now.saturating_duration_since(self.since).as_secs(),
            transitions: self.transitions,
            last_error: self.last_error.clone(),
        }
    }
}

/// The route as the peers get it under these checks: `None` when a failing check withdraws
/// it, de-preferred when a failing check says so, else unchanged.
pub fn overlay(gates: &[Gate], mut route: Route) -> Option<Route> {
    for g in gates {
        if g.state == Health::Up || !g.governs(&route.prefix) {
            continue;
        }
        match &g.degrade {
            Degrade::Withdraw => return None,
            Degrade::Deprefer {
                prepend,
                med,
                community,
            } => {
                route.prepend = route
                    .prepend
                    .saturating_add(*prepend)
                    .min(crate::speaker::route::MAX_PREPEND);
                if med.is_some() {
                    route.attrs.med = *med;
                }
                if let Some(c) = community {
                    if !route.attrs.communities.contains(c) {
                        route.attrs.communities.push(*c);
                    }
                }
            }
        }
    }
    Some(route)
}

/// [`overlay`] of a shared route: the same route back (not copied) when no failing check
/// governs its prefix, the common case.
pub fn overlay_shared(gates: &[Gate], route: Arc<Route>) -> Option<Arc<Route>> {
    if gates
        .iter()
        .all(|g| g.state == Health::Up || !g.governs(&route.prefix))
    {
        return Some(route);
    }
    overlay(gates, Route::clone(&route)).map(Arc::new)
}

/// One probe, blocking, bounded by `timeout`.
fn probe(c: &HealthCheckConfig, timeout: Duration) -> Result<(), String> {
    if let Some(addr) = c.tcp {
        return std::net::TcpStream::connect_timeout(&addr, timeout)
            .map(drop)
            .map_err(|e| format!("tcp {addr}: {e}"));
    }
    if let Some(url) = &c.http {
        let call = crate::controller::plan::HttpCall::get(url.clone(), None);
        return crate::controller::http::call(&call, timeout);
    }
    if let Some(argv) = &c.command {
        return crate::controller::hook::run_command(argv, &[], timeout, &|_| Ok(()));
    }
    Err("no probe configured".into())
}

/// Run check number `index` of `shared`'s gates for as long as the speaker runs.
pub async fn run(shared: Arc<Shared>, index: usize, config: HealthCheckConfig) {
    let interval = Duration::from_millis(config.interval_ms.0.into());
    let timeout = Duration::from_millis(config.timeout_ms.0.into());
    let mut machine = Machine::new(
        config.rise.0,
        config.fall.0,
        Duration::from_millis(config.hold_down_ms.into()),
    );
    let config = Arc::new(config);
    // One small string per configured check, for the life of the process (checks are set up
    // once, at start: a reload cannot add any).
    let caller = Caller::Speaker(Box::leak(
        format!("health check {}", config.name).into_boxed_str(),
    ));
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let c = config.clone();
        // The probe's own deadline bounds it; the outer one covers a stuck name lookup too.
        let result = tokio::time::timeout(
            timeout + Duration::from_millis(500),
            tokio::task::spawn_blocking(move || probe(&c, timeout)),
        )
        .await;
        let result = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("probe task failed: {e}")),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        let now = Instant::now();
        let changed = machine.observe(now, result.is_ok());
        let Some(to) = changed else {
            let mut gates = lock(&shared.health);
            if let Some(g) = gates.get_mut(index) {
                g.last_error = result.err();
            }
            continue;
        };
        shared.health_moved(index, to, result.err(), now, &caller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(prefix: &str, degrade: Degrade, state: Health) -> Gate {
        Gate {
            name: prefix.into(),
            kind: "tcp",
            target: String::new(),
            prefixes: vec![prefix.parse().unwrap()],
            degrade,
            state,
            since: Instant::now(),
            transitions: 0,
            last_error: None,
        }
    }

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    /// Only failing checks whose prefixes cover the route act on it; of two, a withdraw wins
    /// and de-preferences add up (prepend capped at MAX_PREPEND).
    #[test]
    fn the_overlay_of_failing_checks() {
        let deprefer = |prepend| Degrade::Deprefer {
            prepend,
            med: Some(7),
            community: None,
        };
        let r = route("198.51.100.0/25");
        let up = gate("198.51.100.0/24", Degrade::Withdraw, Health::Up);
        let elsewhere = gate("203.0.113.0/24", Degrade::Withdraw, Health::Down);
        assert_eq!(overlay(&[up, elsewhere], r.clone()), Some(r.clone()));
        let init = gate("198.51.100.0/24", Degrade::Withdraw, Health::Init);
        assert_eq!(
            overlay(std::slice::from_ref(&init), r.clone()),
            None,
            "init withholds"
        );
        let d = gate("198.51.100.0/24", deprefer(20), Health::Down);
        assert_eq!(
            overlay(&[d.clone(), init], r.clone()),
            None,
            "withdraw wins"
        );
        let both = overlay(&[d.clone(), d], r.clone()).unwrap();
        assert_eq!(both.prepend, crate::speaker::route::MAX_PREPEND);
        assert_eq!(both.attrs.med, Some(7));
        // A route wider than the check's prefix is not governed.
        let wide = route("198.51.100.0/23");
        let narrow = gate("198.51.100.0/24", Degrade::Withdraw, Health::Down);
        assert_eq!(overlay(&[narrow], wide.clone()), Some(wide));
    }
}
