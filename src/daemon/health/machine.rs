//! The rise/fall/hold-down state machine of one health check; pure (the caller passes the
//! time), so its tests use a fake clock.
//!
//! - `Init` (no result yet) counts as failing: the governed routes are not announced as
//!   configured until the service has answered once. The first result decides at once.
//! - `Up`: `fall` failures in a row make it `Down`; a success resets the count.
//! - `Down`: `rise` successes in a row make it `Up`, but not before `hold_down` has passed since
//!   it went down (flap damping); a failure resets the count.
//!
//! Never does: run probes or touch routes.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Init,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Init => "init",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Machine {
    rise: u32,
    fall: u32,
    hold_down: Duration,
    state: Health,
    /// Successes (while down) or failures (while up) in a row.
    run: u32,
    down_since: Option<Instant>,
}

impl Machine {
    pub fn new(rise: u32, fall: u32, hold_down: Duration) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            hold_down,
            state: Health::Init,
            run: 0,
            down_since: None,
        }
    }

    pub fn state(&self) -> Health {
        self.state
    }

    /// Take one probe result; returns the new state when it changed.
    pub fn observe(&mut self, now: Instant, ok: bool) -> Option<Health> {
        let next = match (self.state, ok) {
            (Health::Init, true) => Health::Up,
            (Health::Init, false) => Health::Down,
            (Health::Up, true) | (Health::Down, false) => {
                self.run = 0;
                return None;
            }
            (Health::Up, false) => {
                self.run += 1;
                if self.run < self.fall {
                    return None;
                }
                Health::Down
            }
            (Health::Down, true) => {
                self.run = self.run.saturating_add(1);
                let held = self
                    .down_since
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.hold_down);
                if self.run < self.rise || !held {
                    return None;
                }
                Health::Up
            }
        };
        self.state = next;
        self.run = 0;
        if next == Health::Down {
            self.down_since = Some(now);
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed results one interval (1 s) apart; the states after each.
    fn run(m: &mut Machine, t0: Instant, results: &str) -> Vec<Health> {
        results
            .chars()
            .enumerate()
            .map(|(i, c)| {
                m.observe(t0 + Duration::from_secs(i as u64), c == '+');
                m.state()
            })
            .collect()
    }

    use Health::{Down as D, Up as U};

    #[test]
    fn the_first_result_decides() {
        let t0 = Instant::now();
        let mut m = Machine::new(3, 3, Duration::ZERO);
        assert_eq!(m.state(), Health::Init);
        assert_eq!(m.observe(t0, true), Some(U));
        let mut m = Machine::new(3, 3, Duration::ZERO);
        assert_eq!(m.observe(t0, false), Some(D));
    }

    #[test]
    fn fall_failures_in_a_row_take_it_down_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut m = Machine::new(2, 3, Duration::ZERO);
        assert_eq!(
            run(&mut m, t0, "+--+---"),
            vec![U, U, U, U, U, U, D],
            "two failures, a success, then three failures"
        );
    }

    #[test]
    fn rise_successes_in_a_row_bring_it_back() {
        let t0 = Instant::now();
        let mut m = Machine::new(2, 1, Duration::ZERO);
        assert_eq!(run(&mut m, t0, "-+-++"), vec![D, D, D, D, U]);
    }

    #[test]
    fn hold_down_keeps_it_down_however_many_successes() {
        let t0 = Instant::now();
        let mut m = Machine::new(1, 1, Duration::from_secs(5));
        // Down at t=1; successes at t=2..5 are inside the hold-down; t=6 is 5 s after.
        assert_eq!(run(&mut m, t0, "+-++++++"), vec![U, D, D, D, D, D, U, U]);
        // A second fall starts a new hold-down.
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(m.observe(t1, false), Some(D));
        assert_eq!(m.observe(t1 + Duration::from_secs(4), true), None);
        assert_eq!(m.observe(t1 + Duration::from_secs(5), true), Some(U));
    }

    #[test]
    fn a_flapping_service_stays_down_during_hold_down() {
        let t0 = Instant::now();
        let mut m = Machine::new(2, 1, Duration::from_secs(10));
        let states = run(&mut m, t0, "+-+-+-+-+");
        // The two successes in a row at t=8, t=9 would do (rise 2), but they are within
        // 10 s of the fall at t=1.
        assert_eq!(m.observe(t0 + Duration::from_secs(9), true), None);
        assert_eq!(states[1..], [D; 8]);
        assert_eq!(m.observe(t0 + Duration::from_secs(11), true), Some(U));
    }
}
