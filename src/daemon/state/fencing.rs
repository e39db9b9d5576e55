//! Admission of a change by its fencing token: the one place the speaker decides whether an
//! API change may go ahead given `speaker.require_fence` and the tokens held
//! ([`crate::daemon::fences`]).
//!
//! Contract:
//! - A caller with a fence ([`Caller::Fenced`]) is admitted when its token is at least the one
//!   held (a higher one is persisted first); a lower one is refused with
//!   [`ApiError::Fenced`] (HTTP 409) and an audit line, and the change is not made.
//! - A caller without a fence is admitted unless `require_fence` is on (then
//!   [`ApiError::FenceRequired`], HTTP 428); the speaker's own changes ([`Caller::Speaker`]:
//!   lease expiry, the drain at shutdown) are never fenced.
//! - The caller of [`Shared::admit`] holds the leases lock, and the fence table's lock is held
//!   until the change is made ([`Admitted`]), so admissions and changes happen in one order.
//!
//! Never does: parse headers (the API server does) or change routes.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use super::{audit, lock, Shared};
use crate::api::fence::{FENCE_HEADER, TOKEN_HEADER};
use crate::api::{ApiError, Caller};
use crate::daemon::fences::FenceTable;
use crate::speaker::lease::now_ms;

/// A change admitted: the fence table stays locked until this is dropped, after the change.
pub(super) struct Admitted<'a> {
    _table: Option<MutexGuard<'a, FenceTable>>,
}

impl Shared {
    /// Whether `caller` may make the change `action`; see the module's contract.
    pub(super) fn admit(&self, caller: &Caller, action: &str) -> Result<Admitted<'_>, ApiError> {
        let Some(fence) = caller.fence() else {
            let internal = matches!(caller, Caller::Speaker(_));
            if !internal && self.require_fence.load(Ordering::SeqCst) {
                audit(
                    caller,
                    action,
                    format_args!("refused: no fence and speaker.require_fence is on"),
                );
                return Err(ApiError::FenceRequired(format!(
                    "speaker.require_fence is on: {action} needs the headers {FENCE_HEADER} and {TOKEN_HEADER} (ferry {action} --fence NAME --fence-token N); nothing was changed"
                )));
            }
            return Ok(Admitted { _table: None });
        };
        let mut table = lock(&self.fences);
        match table.admit(fence, now_ms()) {
            Ok(Ok(())) => Ok(Admitted {
                _table: Some(table),
            }),
            Ok(Err(refused)) => {
                audit(
                    caller,
                    action,
                    format_args!(
                        "refused: fence {} holds token {}, offered {}",
                        refused.fence, refused.held, refused.offered
                    ),
                );
                Err(ApiError::Fenced {
                    fence: refused.fence,
                    held: refused.held,
                    offered: refused.offered,
                })
            }
            Err(e @ crate::daemon::fences::FenceError::Full(_)) => Err(ApiError::Invalid {
                field: FENCE_HEADER.into(),
                message: format!("header {FENCE_HEADER}: {e}"),
            }),
            Err(e) => {
                tracing::error!(error = %e, "fence token not persisted; change refused");
                Err(ApiError::Internal(format!("{e}; nothing was changed")))
            }
        }
    }
}
