//! A health check's transition applied to the shared state: the check's gate moves, the
//! routes it governs are published again through the health overlay, and the transition is
//! audited, sent as an event and kept for `GET /v1/health` and `/metrics`.
//!
//! Never does: run probes (see `daemon::health`) or change the stored routes.

use std::time::Instant;

use ipnet::IpNet;

use super::{audit, lock, Shared, AUDIT_PREFIXES};
use crate::api::{Caller, Event, HealthStatus};
use crate::daemon::health::machine::Health;

impl Shared {
    /// Check `index` moved to `to` (`error`: the failed probe's, if it failed).
    pub fn health_moved(
        &self,
        index: usize,
        to: Health,
        error: Option<String>,
        now: Instant,
        caller: &Caller,
    ) {
        let (name, from, governing) = {
            let mut gates = lock(&self.health);
            let Some(g) = gates.get_mut(index) else {
                return;
            };
            let from = g.state;
            g.state = to;
            g.since = now;
            g.transitions += 1;
            g.last_error.clone_from(&error);
            (g.name.clone(), from, g.prefixes.clone())
        };
        let store = lock(&self.store);
        let governed: Vec<IpNet> = store
            .routes()
            .keys()
            .filter(|p| governing.iter().any(|q| q.contains(*p)))
            .copied()
            .collect();
        // Events before the drivers act, as for the API's changes.
        self.emit(Event::HealthChanged {
            name: name.clone(),
            from: from.as_str().into(),
            to: to.as_str().into(),
            routes: governed.clone(),
            error: error.clone(),
        });
        self.publish(&store, governed.iter().copied());
        drop(store);
        let shown = crate::api::caller::shortlist(governed.iter().copied(), AUDIT_PREFIXES);
        let why = error.map(|e| format!("; {e}")).unwrap_or_default();
        audit(
            caller,
            "health",
            format_args!("{name} {from} -> {to}; routes [{shown}]{why}"),
        );
    }

    /// The checks' states, in config order.
    pub fn health_statuses(&self) -> Vec<HealthStatus> {
        let now = Instant::now();
        lock(&self.health).iter().map(|g| g.status(now)).collect()
    }
}
