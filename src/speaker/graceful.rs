//! Graceful restart (RFC 4724) with the notification variant (RFC 8538): the decisions, as pure
//! functions and one small state per peer; the driver applies them to its session and
//! Adj-RIB-In.
//!
//! - [`local_capability`]: what we advertise. The N bit always (RFC 8538 §2); the R bit while
//!   the speaker has just restarted and re-announces its routes from `state_dir` (RFC 4724 §3:
//!   the peer must not wait for our End-of-RIB before sending its own routes); the F bit for
//!   every family, because what we "forward" is the desired routes, which survive a restart on
//!   disk, so a peer may keep our routes while we come back.
//! - [`down_is_graceful`]: whether the end of a session with a peer that advertised graceful
//!   restart keeps its routes as stale (helper mode, RFC 4724 §4.2): yes when the connection
//!   was lost without a NOTIFICATION (TCP failure, hold timer expiry); with the N bit
//!   negotiated also after any NOTIFICATION except Cease/Hard Reset (RFC 8538 §4); never when
//!   the operator stopped or reset the session here.
//! - [`Helper`]: the stale routes' timer. It starts at the peer's Restart Time when the session
//!   drops; when the session comes back it restarts once more for the peer's End-of-RIB (which
//!   sweeps per family in [`super::AdjRibIn::apply`]); when it fires, everything still stale is
//!   swept.
//!
//! Never does: touch sockets or clocks (callers pass `now`).

use std::time::{Duration, Instant};

use crate::session::DownReason;
use crate::wire::capability::{GracefulRestart, GracefulRestartFamily};
use crate::wire::notification::cease;
use crate::wire::{Family, Notification};

/// RFC 4724 §3 per-family flag: forwarding state preserved.
pub const FORWARDING_STATE: u8 = 0x80;

/// Our capability for `families`.
pub fn local_capability(
    restart_time: u16,
    families: &[Family],
    restarted: bool,
) -> GracefulRestart {
    let mut flags = GracefulRestart::NOTIFICATION;
    if restarted {
        flags |= GracefulRestart::RESTART_STATE;
    }
    let mut fams: Vec<GracefulRestartFamily> = Vec::new();
    for f in families {
        let fam = GracefulRestartFamily {
            afi: f.afi(),
            safi: f.safi(),
            flags: FORWARDING_STATE,
        };
        if !fams.contains(&fam) {
            fams.push(fam);
        }
    }
    GracefulRestart {
        flags,
        restart_time: restart_time.min(0x0fff),
        families: fams,
    }
}

/// Cease/Hard Reset (RFC 8538 §3).
pub fn is_hard_reset(n: &Notification) -> bool {
    n.code == cease::CODE && n.subcode == cease::HARD_RESET
}

/// Cease/Hard Reset wrapping Cease/Administrative Reset with a shutdown message (RFC 8538 §3:
/// the data is the inner code, subcode and data).
pub fn hard_reset(message: &str) -> Notification {
    let inner = Notification::cease_with_message(cease::ADMINISTRATIVE_RESET, message);
    let mut data = Vec::with_capacity(2 + inner.data.len());
    data.extend_from_slice(&[inner.code, inner.subcode]);
    data.extend_from_slice(&inner.data);
    Notification {
        code: cease::CODE,
        subcode: cease::HARD_RESET,
        data: data.into(),
    }
}

/// Does this end of an Established session keep the peer's routes as stale? `n_bit`: both
/// sides advertised the N bit (RFC 8538 §2).
pub fn down_is_graceful(
    reason: &DownReason,
    sent: Option<&Notification>,
    received: Option<&Notification>,
    n_bit: bool,
) -> bool {
    match reason {
        // The operator (or our own policy, e.g. max-prefix) ended it on purpose.
        DownReason::ManualStop | DownReason::LocalReset | DownReason::CollisionLost => false,
        DownReason::ConnectionFailed if sent.is_none() && received.is_none() => true,
        // RFC 4724 covers the loss of the transport; a silent peer is the same failure seen
        // from here, even though we send Hold Timer Expired.
        DownReason::HoldTimerExpired | DownReason::SendHoldTimerExpired => {
            !sent.is_some_and(is_hard_reset)
        }
        _ => n_bit && !sent.is_some_and(is_hard_reset) && !received.is_some_and(is_hard_reset),
    }
}

/// Helper-mode state for one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Helper {
    /// The peer's capability from the last Established session.
    pub peer: Option<GracefulRestart>,
    /// Both sides advertised the N bit on that session.
    pub n_bit: bool,
    /// When the stale routes are swept, if any are kept.
    pub deadline: Option<Instant>,
}

impl Helper {
    /// Session Established: remember the capability; returns the families whose stale routes
    /// must go now (RFC 4724 §4.2: not in the new capability, or without the F bit).
    pub fn established(
        &mut self,
        now: Instant,
        peer: Option<GracefulRestart>,
        n_bit: bool,
        families: &[Family],
    ) -> Vec<Family> {
        let drop: Vec<Family> = families
            .iter()
            .copied()
            .filter(|f| {
                !peer.as_ref().is_some_and(|gr| {
                    gr.families
                        .iter()
                        .any(|g| g.afi == f.afi() && g.safi == f.safi() && g.forwarding_state())
                })
            })
            .collect();
        if self.deadline.is_some() {
            // Wait for the End-of-RIB of the new session, bounded by the restart time again.
            let secs = peer.as_ref().map_or(0, |g| g.restart_time);
            self.deadline = Some(now + Duration::from_secs(u64::from(secs)));
        }
        self.peer = peer;
        self.n_bit = n_bit;
        drop
    }

    /// Session down: returns the families whose routes are kept as stale (empty: clear all).
    pub fn down(&mut self, now: Instant, graceful: bool) -> Vec<Family> {
        let Some(peer) = self.peer.take().filter(|g| graceful && g.restart_time > 0) else {
            self.deadline = None;
            return Vec::new();
        };
        let kept: Vec<Family> = peer
            .families
            .iter()
            .filter_map(|g| Family::from_afi_safi(g.afi, g.safi))
            .collect();
        if kept.is_empty() {
            self.deadline = None;
            return kept;
        }
        self.deadline = Some(now + Duration::from_secs(u64::from(peer.restart_time)));
        // Keep the capability: the timer and `ferry status` still refer to it.
        self.peer = Some(peer);
        kept
    }

    /// The timer fired or nothing is stale any more.
    pub fn done(&mut self) {
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Afi, Safi};

    fn peer_gr(restart_time: u16, flags: u8) -> GracefulRestart {
        GracefulRestart {
            flags: GracefulRestart::NOTIFICATION,
            restart_time,
            families: vec![GracefulRestartFamily {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
                flags,
            }],
        }
    }

    #[test]
    fn capability_sets_n_always_r_after_restart_f_per_family() {
        let fams = [
            Family::Ipv4Unicast,
            Family::Ipv6Unicast,
            Family::Ipv4Unicast,
        ];
        let gr = local_capability(90, &fams, false);
        assert!(gr.notification() && !gr.restart_state());
        assert_eq!(gr.restart_time, 90);
        assert_eq!(gr.families.len(), 2);
        assert!(gr
            .families
            .iter()
            .all(GracefulRestartFamily::forwarding_state));
        assert!(local_capability(90, &fams, true).restart_state());
    }

    #[test]
    fn hard_reset_wraps_administrative_reset() {
        let n = hard_reset("fenced");
        assert!(is_hard_reset(&n));
        let inner = n.hard_reset_inner().unwrap();
        assert_eq!(
            (inner.code, inner.subcode),
            (cease::CODE, cease::ADMINISTRATIVE_RESET)
        );
        assert_eq!(inner.shutdown_message().as_deref(), Some("fenced"));
    }

    #[test]
    fn which_session_ends_keep_routes() {
        let hard = hard_reset("x");
        let admin = Notification::cease_with_message(cease::ADMINISTRATIVE_SHUTDOWN, "bye");
        type Row<'a> = (
            DownReason,
            Option<&'a Notification>,
            Option<&'a Notification>,
            bool,
            bool,
        );
        let rows: [Row; 10] = [
            (DownReason::ConnectionFailed, None, None, false, true),
            (
                DownReason::HoldTimerExpired,
                Some(&admin),
                None,
                false,
                true,
            ),
            (
                DownReason::NotificationReceived,
                None,
                Some(&admin),
                false,
                false,
            ),
            (
                DownReason::NotificationReceived,
                None,
                Some(&admin),
                true,
                true,
            ),
            (
                DownReason::NotificationReceived,
                None,
                Some(&hard),
                true,
                false,
            ),
            (DownReason::ManualStop, Some(&admin), None, true, false),
            (DownReason::LocalReset, Some(&hard), None, true, false),
            (DownReason::LocalReset, Some(&admin), None, true, false),
            (
                DownReason::MalformedMessage { detail: "x".into() },
                Some(&admin),
                None,
                true,
                true,
            ),
            (
                DownReason::MalformedMessage { detail: "x".into() },
                Some(&admin),
                None,
                false,
                false,
            ),
        ];
        for (reason, sent, received, n_bit, want) in rows {
            assert_eq!(
                down_is_graceful(&reason, sent, received, n_bit),
                want,
                "{reason} sent {sent:?} received {received:?} n {n_bit}"
            );
        }
    }

    #[test]
    fn helper_keeps_the_peers_families_until_the_restart_time() {
        let t0 = Instant::now();
        let mut h = Helper::default();
        let fams = [Family::Ipv4Unicast, Family::Ipv6Unicast];
        assert!(h.established(t0, Some(peer_gr(30, 0x80)), true, &fams) == [Family::Ipv6Unicast]);
        assert_eq!(h.deadline, None, "nothing stale on a first session");
        assert_eq!(h.down(t0, true), [Family::Ipv4Unicast]);
        assert_eq!(h.deadline, Some(t0 + Duration::from_secs(30)));
        // Back after 10 s with F set: keep IPv4 until its End-of-RIB, timer restarted.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(
            h.established(t1, Some(peer_gr(30, 0x80)), true, &fams),
            [Family::Ipv6Unicast]
        );
        assert_eq!(h.deadline, Some(t1 + Duration::from_secs(30)));
        h.done();
        // Back without the F bit: stale IPv4 routes go at once.
        h.down(t1, true);
        assert_eq!(
            h.established(t1, Some(peer_gr(30, 0)), true, &fams),
            fams.to_vec()
        );
    }

    #[test]
    fn helper_clears_when_not_graceful_or_no_capability_or_zero_time() {
        let t0 = Instant::now();
        let fams = [Family::Ipv4Unicast];
        let mut h = Helper::default();
        h.established(t0, Some(peer_gr(30, 0x80)), true, &fams);
        assert!(h.down(t0, false).is_empty());
        assert_eq!(h.deadline, None);
        h.established(t0, None, false, &fams);
        assert!(h.down(t0, true).is_empty());
        h.established(t0, Some(peer_gr(0, 0x80)), true, &fams);
        assert!(h.down(t0, true).is_empty());
    }
}
