//! What a leading controller's keeper sent to each site's speaker, so that an `[auto]`
//! failover waits for the primary's leases only as long as they can still run
//! ([`super::auto`]), not a whole lease counted from its own decision.
//!
//! Contract:
//! - The keeper brackets every renewal with [`Renewals::begin`] and [`Renewals::end`]. A
//!   renewal that may have reached the speaker (answered, or taken and never answered) may
//!   have moved that site's lease deadline to (when it ended) + `lease_secs`: the speaker
//!   sets the deadline at receipt, and receipt is before the attempt ended. One that took no
//!   connection moved nothing. An in-flight request is assumed to arrive within its timeout
//!   or never (docs/ha.md, "Lease arithmetic").
//! - [`Renewals::fence`] stops renewals to a site (a `begin` for it is refused until
//!   [`Renewals::release`]), waits for the one in flight, and returns when the site's leases
//!   have run out at the latest: the later of (this leadership's start + one renewal's
//!   timeout: an older leader renewed only while its own etcd lease was valid, which ended
//!   before this one began) and the last renewal that may have landed, plus `lease_secs`.
//!
//! Never does: renew, or say anything about renewals sent by another process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use super::journal::now_ms;

/// One leadership's renewals, per site.
#[derive(Debug)]
pub struct Renewals {
    /// When this leadership began, ms since the Unix epoch.
    leading_since_ms: u64,
    /// One renewal's timeout: how late a request sent by an older leader may still land.
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Sites with a renewal on its way.
    in_flight: BTreeSet<String>,
    /// Per site, when the last renewal that may have reached the speaker ended.
    landed_by: BTreeMap<String, u64>,
    /// Sites being fenced: no renewal may start.
    stopped: BTreeSet<String>,
}

impl Renewals {
    pub fn new(leading_since_ms: u64, timeout: Duration) -> Self {
        Self {
            leading_since_ms,
            timeout,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A renewal to `site` is about to be sent: `false` when the site is being fenced (then
    /// it must not be sent).
    pub fn begin(&self, site: &str) -> bool {
        let mut s = self.state();
        if s.stopped.contains(site) {
            return false;
        }
        s.in_flight.insert(site.to_owned());
        true
    }

    /// The renewal to `site` ended; `may_have_landed` unless it took no connection.
    pub fn end(&self, site: &str, may_have_landed: bool) {
        let mut s = self.state();
        s.in_flight.remove(site);
        if may_have_landed {
            let now = now_ms();
            let last = s.landed_by.entry(site.to_owned()).or_insert(now);
            *last = (*last).max(now);
        }
    }

    /// Stop renewing `site`, and say when its leases of `lease` have run out at the latest
    /// (ms since the Unix epoch). Waits for a renewal in flight, at most its timeout and a
    /// second more (a keeper that never ends one counts it as landed now).
    pub fn fence(&self, site: &str, lease: Duration) -> u64 {
        self.state().stopped.insert(site.to_owned());
        let give_up = std::time::Instant::now() + self.timeout + Duration::from_secs(1);
        loop {
            let s = self.state();
            let pending = s.in_flight.contains(site);
            if !pending || std::time::Instant::now() >= give_up {
                let landed = s.landed_by.get(site).copied().unwrap_or(0);
                let landed = if pending { now_ms() } else { landed };
                return self.deadline(landed, lease);
            }
            drop(s);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn deadline(&self, landed_by_ms: u64, lease: Duration) -> u64 {
        let older_leaders = self.leading_since_ms + self.timeout.as_millis() as u64;
        older_leaders.max(landed_by_ms) + lease.as_millis() as u64
    }

    /// Renew `site` again (the fencing run ended).
    pub fn release(&self, site: &str) {
        self.state().stopped.remove(site);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(3);

    #[test]
    fn a_renewal_that_took_no_connection_moves_no_deadline() {
        let r = Renewals::new(1_000, Duration::from_secs(1));
        assert!(r.begin("dc1"));
        r.end("dc1", false);
        // Only the older leaders' bound: leading since 1 s, their last renewal by 2 s.
        assert_eq!(r.fence("dc1", LEASE), 2_000 + 3_000);
    }

    #[test]
    fn the_last_renewal_that_may_have_landed_sets_the_deadline() {
        let r = Renewals::new(1_000, Duration::from_secs(1));
        assert!(r.begin("dc1"));
        let before = now_ms();
        r.end("dc1", true);
        let after = now_ms();
        assert!(r.begin("dc1"));
        r.end("dc1", false);
        let deadline = r.fence("dc1", LEASE);
        // `end` took its reading between these two.
        assert!(
            (before..=after).contains(&(deadline - 3_000)),
            "{deadline} {before} {after}"
        );
        // Another site's renewals are its own.
        assert!(r.begin("dc2"));
        r.end("dc2", true);
        assert_eq!(r.fence("dc1", LEASE), deadline);
    }

    #[test]
    fn a_fenced_site_is_not_renewed_until_released() {
        let r = Renewals::new(0, Duration::from_secs(1));
        r.fence("dc1", LEASE);
        assert!(!r.begin("dc1"));
        assert!(r.begin("dc2"));
        r.release("dc1");
        assert!(r.begin("dc1"));
    }

    #[test]
    fn fencing_waits_for_the_renewal_in_flight() {
        let r = std::sync::Arc::new(Renewals::new(0, Duration::from_secs(1)));
        assert!(r.begin("dc1"));
        let keeper = {
            let r = r.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                // Read before `end`, which takes its own reading: the renewal landed no
                // earlier than this (read after, it could be a millisecond later than `end`'s).
                let landed = now_ms();
                r.end("dc1", true);
                landed
            })
        };
        let deadline = r.fence("dc1", LEASE);
        let landed = keeper.join().unwrap();
        assert!(deadline >= landed + 3_000, "{deadline} {landed}");
    }

    #[test]
    fn a_renewal_that_never_ends_counts_as_landed_when_the_wait_gives_up() {
        let r = Renewals::new(0, Duration::from_millis(100));
        assert!(r.begin("dc1"));
        let before = now_ms();
        let deadline = r.fence("dc1", LEASE);
        assert!(deadline >= before + 1_100 + 3_000, "{deadline} {before}");
    }
}
