//! The API's backend: [`Control`] answered from the shared state.
//!
//! Reads (peers, routes, leases) take each lock only for a short copy; changes go through
//! [`super::publish`] under the leases lock, as every change of the desired routes does.
//!
//! Never does: hold state of its own, or format the metrics (see [`super::metrics`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use tokio::sync::broadcast;

use super::{audit, lock, Shared, AUDIT_PREFIXES};
use crate::api::caller::shortlist;
use crate::api::{
    AnnouncedRoute, ApiError, Caller, ChangeResponse, Control, Event, GracefulRestartStatus,
    LeaseReport, PeerStatus, ReceivedRoute, ResetResponse,
};
use crate::config::NeighborConfig;
use crate::speaker::lease::now_ms;
use crate::speaker::store::Change;
use crate::speaker::Route;

impl Shared {
    /// Drain every announced route (SIGTERM with `shutdown_graceful_secs`); returns how many.
    pub fn drain_all(&self) -> usize {
        self.drain(
            self.announced_prefixes(),
            true,
            &Caller::Speaker("shutting down (shutdown_graceful_secs)"),
        )
        .unwrap_or(0)
    }

    /// `speaker.allowed_prefixes`: every route must lie within one of them. The error names
    /// the first route outside, its place in the request and the list.
    fn check_allowed(&self, routes: &[Arc<Route>]) -> Result<(), ApiError> {
        let allowed = crate::daemon::state::read(&self.allowed_prefixes);
        let Some(list) = allowed.as_ref() else {
            return Ok(());
        };
        let Some((i, r)) = routes
            .iter()
            .enumerate()
            .find(|(_, r)| !list.iter().any(|a| a.contains(&r.prefix)))
        else {
            return Ok(());
        };
        let list_text = list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(ApiError::Invalid {
            field: format!("routes[{i}].prefix"),
            message: format!(
                "prefix {} is outside speaker.allowed_prefixes [{list_text}]; nothing was announced",
                r.prefix
            ),
        })
    }

    /// The prefixes of the desired routes, in order.
    fn announced_prefixes(&self) -> Vec<IpNet> {
        lock(&self.store).routes().keys().copied().collect()
    }
}

impl Control for Shared {
    fn peers(&self) -> Vec<PeerStatus> {
        self.peers()
            .iter()
            .map(|p| {
                let s = lock(&p.status);
                let graceful_restart = s.gr.local.then(|| {
                    let stale = lock(&p.rib_in).stale_count() as u64;
                    GracefulRestartStatus {
                        peer_capable: s.gr.peer,
                        notification: s.gr.notification,
                        state: if s.gr.stale_until.is_some() {
                            "helping"
                        } else if s.gr.peer {
                            "ready"
                        } else {
                            "off"
                        }
                        .into(),
                        stale_routes: stale,
                        stale_timer_secs: s
                            .gr
                            .stale_until
                            .map(|t| t.saturating_duration_since(Instant::now()).as_secs()),
                    }
                });
                PeerStatus {
                    address: p.config.address,
                    remote_as: p.config.remote_as.0,
                    description: lock(&p.description).clone(),
                    state: s.state,
                    uptime_secs: s.established_at.map(|t| t.elapsed().as_secs()),
                    prefixes_sent: s.prefixes_sent,
                    prefixes_received: lock(&p.rib_in).len() as u64,
                    last_error: s.last_error.clone(),
                    graceful_restart,
                    bfd: p.bfd.as_ref().map(|b| bfd_status(&p.config, &b.snapshot())),
                    md5: p.config.md5_password.is_some(),
                    ttl_security: p.config.ttl_security.map(|h| h.0),
                    send_hold_time_secs: (p.config.send_hold_time.0 > 0)
                        .then_some(p.config.send_hold_time.0),
                    admin_down: self.admin_down(p.config.address),
                }
            })
            .collect()
    }

    fn announced(&self) -> Vec<Route> {
        lock(&self.store)
            .routes()
            .values()
            .map(|r| Route::clone(r))
            .collect()
    }

    fn announced_changes(&self) -> Vec<AnnouncedRoute> {
        let store = lock(&self.store);
        store
            .routes()
            .values()
            .map(|r| AnnouncedRoute {
                route: Route::clone(r),
                changed: store.stamp(&r.prefix).cloned(),
            })
            .collect()
    }

    fn received(&self, peer: Option<IpAddr>) -> Result<Vec<ReceivedRoute>, ApiError> {
        if let Some(addr) = peer {
            if !self.peers().iter().any(|p| p.config.address == addr) {
                return Err(ApiError::NotFound(format!(
                    "peer {addr} is not a configured neighbor"
                )));
            }
        }
        let mut out = Vec::new();
        for p in self
            .peers()
            .iter()
            .filter(|p| peer.is_none_or(|a| a == p.config.address))
        {
            out.extend(lock(&p.rib_in).routes().into_iter().map(|r| ReceivedRoute {
                peer: p.config.address,
                prefix: r.prefix,
                next_hop: r.next_hop,
                as_path: r.as_path.to_string(),
                attrs: r.attrs,
                stale: r.stale,
            }));
        }
        Ok(out)
    }

    fn dry_run(
        &self,
        routes: Option<Vec<Arc<Route>>>,
        prefixes: Vec<IpNet>,
        all: bool,
    ) -> Result<ChangeResponse, ApiError> {
        match routes {
            Some(routes) => {
                self.check_allowed(&routes)?;
                self.preview(Change::Announce(routes))
            }
            None if all => self.preview(Change::Withdraw(self.announced_prefixes())),
            None => self.preview(Change::Withdraw(prefixes)),
        }
    }

    fn announce(
        &self,
        routes: Vec<Arc<Route>>,
        caller: &Caller,
    ) -> Result<ChangeResponse, ApiError> {
        self.check_allowed(&routes)?;
        // Under the leases lock, so the lease task never sees a new leased route without
        // its deadline. An announce (even an unchanged one) starts or renews the lease.
        let mut leases = lock(&self.leases);
        let admitted = self.admit(caller, "announce")?;
        let any_leased = routes.iter().any(|r| r.lease_secs.is_some());
        // Without a lease before or after, renewing changes nothing.
        let renewal = (any_leased || !leases.is_empty()).then(|| routes.clone());
        let resp = self.change(Change::Announce(routes), caller)?;
        if let Some(routes) = renewal {
            leases.renew(routes.iter().map(|r| &**r), now_ms()).map_err(|e| {
                tracing::error!(error = %e, "routes announced, but their leases could not be written");
                ApiError::Internal(format!("routes announced, but leases not persisted: {e}"))
            })?;
        }
        drop(admitted);
        drop(leases);
        // Only a leased route can move the next deadline earlier; waking the lease task for
        // others would walk the whole table on every change.
        if any_leased {
            self.lease_wake.notify_one();
        }
        Ok(resp)
    }

    fn withdraw(&self, prefixes: Vec<IpNet>, caller: &Caller) -> Result<ChangeResponse, ApiError> {
        let mut leases = lock(&self.leases);
        let _admitted = self.admit(caller, "withdraw")?;
        self.withdraw_holding(&mut leases, prefixes, caller)
    }

    fn withdraw_all(&self, caller: &Caller) -> Result<ChangeResponse, ApiError> {
        // Listed under the leases lock, which every change of the desired routes holds: the
        // list is the table as the change finds it.
        let mut leases = lock(&self.leases);
        let _admitted = self.admit(caller, "withdraw")?;
        self.withdraw_holding(&mut leases, self.announced_prefixes(), caller)
    }

    fn health(&self) -> Vec<crate::api::HealthStatus> {
        self.health_statuses()
    }

    fn fences(&self) -> Vec<crate::api::HeldFence> {
        lock(&self.fences).list()
    }

    fn leases(&self) -> LeaseReport {
        self.lease_report(&lock(&self.leases))
    }

    fn renew_leases(&self, prefixes: Vec<IpNet>, caller: &Caller) -> Result<LeaseReport, ApiError> {
        let mut leases = lock(&self.leases);
        let _admitted = self.admit(caller, "lease renew")?;
        let routes: Vec<Route> = {
            let store = lock(&self.store);
            if prefixes.is_empty() {
                store
                    .routes()
                    .values()
                    .filter(|r| r.lease_secs.is_some())
                    .map(|r| Route::clone(r))
                    .collect()
            } else {
                let missing: Vec<String> = prefixes
                    .iter()
                    .filter(|p| store.get(p).is_none_or(|r| r.lease_secs.is_none()))
                    .map(ToString::to_string)
                    .collect();
                if !missing.is_empty() {
                    return Err(ApiError::NotFound(format!(
                        "no leased route for {}: expired or never announced with a lease; announce it again",
                        missing.join(", ")
                    )));
                }
                prefixes
                    .iter()
                    .filter_map(|p| store.get(p).cloned())
                    .collect()
            }
        };
        leases
            .renew(routes.iter(), now_ms())
            .map_err(|e| ApiError::Internal(format!("cannot persist leases: {e}")))?;
        let renewed: Vec<IpNet> = routes.iter().map(|r| r.prefix).collect();
        audit(
            caller,
            "lease renew",
            format_args!(
                "{} renewed [{}]",
                renewed.len(),
                shortlist(renewed.iter(), AUDIT_PREFIXES)
            ),
        );
        Ok(self.lease_report(&leases))
    }

    fn drain(&self, prefixes: Vec<IpNet>, on: bool, caller: &Caller) -> Result<usize, ApiError> {
        // The drain of a graceful withdraw is its first change: fenced like the withdrawal
        // (its end never is, so a drain never outlives a refused withdrawal).
        let leases = on.then(|| lock(&self.leases));
        let _admitted = match &leases {
            Some(_) => Some(self.admit(caller, "withdraw")?),
            None => None,
        };
        let store = lock(&self.store);
        let present = prefixes.iter().filter(|p| store.get(p).is_some()).count();
        {
            let mut draining = lock(&self.draining);
            for p in prefixes.iter().copied() {
                if on {
                    draining.insert(p);
                } else {
                    draining.remove(&p);
                }
            }
        }
        if on {
            tracing::info!(
                routes = present,
                "graceful shutdown: announcing with GRACEFUL_SHUTDOWN"
            );
        }
        let action = if on { "drain" } else { "drain end" };
        audit(
            caller,
            action,
            format_args!(
                "{present} announced of [{}]",
                shortlist(prefixes.iter(), AUDIT_PREFIXES)
            ),
        );
        self.publish(&store, prefixes);
        Ok(present)
    }

    fn reset_peer(
        &self,
        peer: IpAddr,
        hard: bool,
        caller: &Caller,
    ) -> Result<ResetResponse, ApiError> {
        let p = self.peer(peer).ok_or_else(|| {
            ApiError::NotFound(format!("peer {peer} is not a configured neighbor"))
        })?;
        let state = lock(&p.status).state;
        p.input
            .try_send(crate::daemon::peer::PeerInput::Reset { hard })
            .map_err(|e| ApiError::Internal(format!("peer {peer}: driver busy or gone: {e}")))?;
        let action = if hard { "hard reset" } else { "reset" };
        audit(
            caller,
            action,
            format_args!("peer {peer} (session was {state})"),
        );
        Ok(ResetResponse { peer, hard, state })
    }

    fn reload(&self, caller: &Caller) -> Result<crate::api::ReloadResponse, ApiError> {
        let result = self.ask_reload();
        match &result {
            Ok(r) => audit(caller, "reload", format_args!("{} applied", r.config)),
            Err(e) => audit(caller, "reload", format_args!("refused: {e}")),
        }
        result
    }

    fn set_admin(
        &self,
        peer: IpAddr,
        disable: Option<Option<String>>,
        caller: &Caller,
    ) -> Result<crate::api::AdminResponse, ApiError> {
        let action = if disable.is_some() {
            "disable"
        } else {
            "enable"
        };
        let what = match &disable {
            Some(Some(message)) => format!("peer {peer} (message {message:?})"),
            _ => format!("peer {peer}"),
        };
        let result = self.set_admin_state(peer, disable);
        if result.is_ok() {
            audit(caller, action, format_args!("{what}"));
        }
        result
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// `ferry status`'s view of a BFD session.
fn bfd_status(config: &NeighborConfig, s: &crate::bfd::Snapshot) -> crate::api::BfdStatus {
    let (min_tx_ms, min_rx_ms, multiplier) = config.bfd.map_or((0, 0, 0), |b| {
        (b.min_tx_ms.0, b.min_rx_ms.0, b.multiplier.0)
    });
    crate::api::BfdStatus {
        state: s.state.to_string(),
        remote_state: s.remote_state.to_string(),
        local_discriminator: s.local_discriminator,
        remote_discriminator: s.remote_discriminator,
        diagnostic: s.local_diag.to_string(),
        remote_diagnostic: s.remote_diag.to_string(),
        min_tx_ms,
        min_rx_ms,
        multiplier,
        tx_interval_ms: s.tx_interval.as_millis() as u64,
        detection_time_ms: s.detection_time.map(|d| d.as_millis() as u64),
        transitions: s.transitions,
    }
}
