//! The API's reload and neighbor disable/enable, answered from the shared state.
//!
//! A reload is handed to the speaker's main task ([`Shared::reloads`]), which applies one at a
//! time, and waited for. Disable and enable are persisted first ([`crate::daemon::admin`]),
//! then sent to the neighbor's driver, so an acknowledged disable survives a crash.
//!
//! Never does: apply a reload itself, or touch a session other than through its driver.

use std::net::IpAddr;

use super::{lock, Shared};
use crate::api::{AdminDown, AdminResponse, ApiError, ReloadResponse};
use crate::daemon::admin::Disabled;
use crate::daemon::peer::PeerInput;
use crate::speaker::lease::now_ms;

impl Shared {
    /// `ferry status`'s view of a disabled neighbor.
    pub fn admin_down(&self, peer: IpAddr) -> Option<AdminDown> {
        lock(&self.admin).get(peer).map(|d| AdminDown {
            message: d.message.clone(),
            since: crate::controller::runs::utc(d.since_ms),
        })
    }

    /// Ask the main task to reload and wait for its answer (call off the async workers).
    pub fn ask_reload(&self) -> Result<ReloadResponse, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.reloads
            .blocking_send(tx)
            .map_err(|_| ApiError::Unavailable("the speaker is stopping; not reloading".into()))?;
        match rx.blocking_recv() {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(why)) => Err(ApiError::Invalid {
                field: "config".into(),
                message: format!("reload refused: {why}"),
            }),
            Err(_) => Err(ApiError::Unavailable(
                "the speaker stopped before the reload was applied".into(),
            )),
        }
    }

    /// Disable (`Some(message)`) or enable (`None`) a configured neighbor: persisted, then
    /// sent to its driver.
    pub fn set_admin_state(
        &self,
        peer: IpAddr,
        disable: Option<Option<String>>,
    ) -> Result<AdminResponse, ApiError> {
        let p = self.peer(peer).ok_or_else(|| {
            ApiError::NotFound(format!("peer {peer} is not a configured neighbor"))
        })?;
        let state = lock(&p.status).state;
        let entry = disable.clone().map(|message| Disabled {
            message,
            since_ms: now_ms(),
        });
        lock(&self.admin)
            .set(peer, entry)
            .map_err(|e| ApiError::Internal(format!("cannot persist the neighbor's state: {e}")))?;
        let (input, disabled, message) = match disable {
            Some(message) => (
                PeerInput::Disable {
                    message: message.clone(),
                },
                true,
                message,
            ),
            None => (PeerInput::Enable, false, None),
        };
        tracing::info!(%peer, disabled, message = message.as_deref().unwrap_or(""), "neighbor admin state set by the operator (persisted)");
        p.input.blocking_send(input).map_err(|_| {
            ApiError::Internal(format!(
                "peer {peer}: its driver is gone (persisted: applies at the next start)"
            ))
        })?;
        Ok(AdminResponse {
            peer,
            disabled,
            message,
            state,
        })
    }
}
