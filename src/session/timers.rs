//! The session's timers as a fixed table of deadlines (RFC 4271 §8 and §10, RFC 9687).
//!
//! Each [`Timer`] has one slot holding the instant it fires, or nothing when stopped. The
//! table never reads a clock: callers pass `now`, so the FSM is testable by advancing an
//! `Instant` by hand. [`TimerTable::next_deadline`] is what a driver sleeps until;
//! [`TimerTable::expired`] names the earliest timer due at `now`.
//!
//! Never does: decide what an expiry means (that is [`super::fsm`]), jitter (RFC 4271 §10
//! suggests it; a driver may add it to the durations it configures).

use std::fmt;
use std::time::{Duration, Instant};

/// The timers of RFC 4271 §8.1 plus the SendHoldTimer of RFC 9687 §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Retries an outbound connection in Connect/Active; in Idle it schedules the
    /// AutomaticStart after an error.
    ConnectRetry,
    /// Peer liveness: no KEEPALIVE or UPDATE within the negotiated hold time.
    Hold,
    /// Our KEEPALIVE cadence: hold time / 3.
    Keepalive,
    /// RFC 4271 §8.1.1 DelayOpen: wait for the peer's OPEN before sending ours.
    DelayOpen,
    /// RFC 9687: data waiting to be sent has made no progress for this long.
    SendHold,
}

impl Timer {
    pub const ALL: [Timer; 5] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::DelayOpen,
        Timer::SendHold,
    ];

    fn index(self) -> usize {
        match self {
            Self::ConnectRetry => 0,
            Self::Hold => 1,
            Self::Keepalive => 2,
            Self::DelayOpen => 3,
            Self::SendHold => 4,
        }
    }

    /// The RFC's name, as in "HoldTimer_Expires" without the suffix.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectRetry => "ConnectRetryTimer",
            Self::Hold => "HoldTimer",
            Self::Keepalive => "KeepaliveTimer",
            Self::DelayOpen => "DelayOpenTimer",
            Self::SendHold => "SendHoldTimer",
        }
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTable {
    deadlines: [Option<Instant>; 5],
}

impl TimerTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// (Re)start `timer` to fire `duration` after `now`.
    pub fn start(&mut self, timer: Timer, now: Instant, duration: Duration) {
        self.deadlines[timer.index()] = Some(now + duration);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; 5];
    }

    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    pub fn is_running(&self, timer: Timer) -> bool {
        self.deadline(timer).is_some()
    }

    /// The earliest deadline of any running timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The running timer with the earliest deadline at or before `now`; ties go to table
    /// order. The timer keeps running until the caller stops or restarts it, so a caller
    /// loops `while let Some(t) = table.expired(now) { table.stop(t); ... }` and each
    /// handler sees the effect of the previous one (a Hold expiry stops the Keepalive).
    pub fn expired(&self, now: Instant) -> Option<Timer> {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.deadline(t).filter(|d| *d <= now).map(|d| (d, t)))
            .min_by_key(|(d, _)| *d)
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn empty_table_has_no_deadline_and_nothing_expires() {
        let t = TimerTable::new();
        let now = Instant::now();
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.expired(now + 1000 * S), None);
    }

    #[test]
    fn next_deadline_is_the_earliest_running_timer() {
        let now = Instant::now();
        let mut t = TimerTable::new();
        t.start(Timer::Hold, now, 90 * S);
        t.start(Timer::Keepalive, now, 30 * S);
        assert_eq!(t.next_deadline(), Some(now + 30 * S));
        t.stop(Timer::Keepalive);
        assert_eq!(t.next_deadline(), Some(now + 90 * S));
        assert!(!t.is_running(Timer::Keepalive) && t.is_running(Timer::Hold));
    }

    #[test]
    fn expired_returns_earliest_due_and_nothing_before_its_deadline() {
        let now = Instant::now();
        let mut t = TimerTable::new();
        t.start(Timer::Hold, now, 9 * S);
        t.start(Timer::Keepalive, now, 3 * S);
        assert_eq!(t.expired(now + 2 * S), None);
        assert_eq!(t.expired(now + 3 * S), Some(Timer::Keepalive));
        // Both due: the earlier deadline first, then the next once the first is handled.
        assert_eq!(t.expired(now + 10 * S), Some(Timer::Keepalive));
        t.stop(Timer::Keepalive);
        assert_eq!(t.expired(now + 10 * S), Some(Timer::Hold));
        t.stop(Timer::Hold);
        assert_eq!(t.expired(now + 10 * S), None);
    }

    #[test]
    fn ties_go_to_table_order_and_restart_moves_the_deadline() {
        let now = Instant::now();
        let mut t = TimerTable::new();
        t.start(Timer::SendHold, now, 5 * S);
        t.start(Timer::ConnectRetry, now, 5 * S);
        assert_eq!(t.expired(now + 5 * S), Some(Timer::ConnectRetry));
        t.start(Timer::ConnectRetry, now + 5 * S, 5 * S);
        assert_eq!(t.expired(now + 5 * S), Some(Timer::SendHold));
        t.stop_all();
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn names_are_the_rfc_names() {
        assert_eq!(Timer::Hold.to_string(), "HoldTimer");
        assert_eq!(Timer::SendHold.to_string(), "SendHoldTimer");
    }
}
