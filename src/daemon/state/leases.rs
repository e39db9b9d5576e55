//! Lease expiry (fencing): leased routes whose lease ran out are withdrawn, and the report of
//! the leases the API shows.
//!
//! An expiry is written before the peers hear of it ([`Order::WriteFirst`]), so a write that
//! fails and is retried every tick never withdraws and re-announces the routes each time.
//! Lock order: `leases`, then `store`.
//!
//! Never does: renew leases (an announce or the API's renew does, in [`super::backend`]).

use std::sync::atomic::Ordering;
use std::time::Instant;

use ipnet::IpNet;

use super::publish::Order;
use super::{lock, Shared};
use crate::api::{ApiError, Caller, ChangeResponse, Event, LeaseInfo, LeaseReport};
use crate::speaker::lease::{now_ms, Leases};
use crate::speaker::store::Change;

impl Shared {
    /// Withdraw the leased routes whose lease ran out; returns the next deadline (Unix ms).
    /// `at_start`: the speaker was down meanwhile (logged as such).
    pub fn expire_leases(&self, at_start: bool) -> Option<u64> {
        let mut leases = lock(&self.leases);
        let now = now_ms();
        let expired = leases.expired(lock(&self.store).routes().values().map(|r| &**r), now);
        if !expired.is_empty() {
            // Written before the peers hear of it: a failed write retried every tick must not
            // withdraw and re-announce the routes to every peer each time.
            let by = Caller::Speaker(if at_start {
                "lease ran out while the speaker was down"
            } else {
                "lease not renewed in time"
            });
            match self.change_in_order(Change::Withdraw(expired.clone()), Order::WriteFirst, &by) {
                Ok(_) => {
                    if let Err(e) = leases.forget(&expired) {
                        tracing::error!(error = %e, "cannot persist leases");
                    }
                    let n = expired.len() as u64;
                    self.lease_expiries.fetch_add(n, Ordering::Relaxed);
                    for p in &expired {
                        if at_start {
                            tracing::warn!(prefix = %p, "lease ran out while the speaker was down: route withdrawn");
                        } else {
                            tracing::warn!(prefix = %p, "lease not renewed in time: route withdrawn");
                        }
                    }
                    *lock(&self.last_expiry) = Some((expired.clone(), Instant::now()));
                    self.emit(Event::LeaseExpired { prefixes: expired });
                }
                // Retried at the next tick; the route stays announced meanwhile.
                Err(e) => tracing::error!(error = %e, "cannot withdraw routes whose lease expired"),
            }
        }
        leases.next_deadline()
    }

    pub(super) fn lease_report(&self, leases: &Leases) -> LeaseReport {
        let now = now_ms();
        let store = lock(&self.store);
        let last = lock(&self.last_expiry).clone();
        LeaseReport {
            leases: store
                .routes()
                .values()
                .filter_map(|r| {
                    Some(LeaseInfo {
                        prefix: r.prefix,
                        lease_secs: r.lease_secs?,
                        expires_in_ms: leases.until(&r.prefix).map_or(0, |u| u.saturating_sub(now)),
                    })
                })
                .collect(),
            expiries_total: self.lease_expiries.load(Ordering::Relaxed),
            last_expired_secs_ago: last.as_ref().map(|(_, t)| t.elapsed().as_secs()),
            last_expired: last.map(|(p, _)| p).unwrap_or_default(),
        }
    }

    /// Withdraw `prefixes` with the leases lock held (as every change of the desired routes
    /// is made), then forget their leases.
    pub(super) fn withdraw_holding(
        &self,
        leases: &mut Leases,
        prefixes: Vec<IpNet>,
        caller: &Caller,
    ) -> Result<ChangeResponse, ApiError> {
        // Without leases there is nothing to forget: the prefixes move into the change uncopied.
        let forget = (!leases.is_empty()).then(|| prefixes.clone());
        let resp = self.change(Change::Withdraw(prefixes), caller)?;
        if let Err(e) = forget.map_or(Ok(()), |p| leases.forget(&p)) {
            // Harmless: a lease of a route that is gone is never looked at.
            tracing::warn!(error = %e, "cannot persist leases");
        }
        Ok(resp)
    }
}
