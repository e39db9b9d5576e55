//! Which fencing token an HA controller puts on its speaker calls (issue 17, item 3;
//! Kleppmann's fencing tokens), so that a paused or cut-off old leader cannot undo what a
//! newer one did at a speaker.
//!
//! Contract:
//! - The fence is the plan's name; the token is an etcd revision, larger for every later
//!   holder: a run's calls carry the revision at which its runner took the plan lock
//!   ([`under_lock`]), the leader's keeper the larger of the revision at which it won the
//!   leadership and every token a run of the plan offered or offers now ([`keeper_token`]),
//!   since a speaker refuses any token lower than the highest it has seen for the fence.
//! - The token is recorded with the holder in the run's journal (`run_started` and `resumed`
//!   records carry [`Holder::fence_token`]), so a leader elected later still knows the
//!   tokens that finished runs raised the speakers to.
//! - With the state directory (one controller host) calls carry no fence, as before.
//!
//! Never does: decide whether a token is fresh (the speaker does), or hold a lock.

use super::lock::Holder;
use super::runs::RunSummary;
use super::sites::ApiSites;
use super::store::PlanLock;
use crate::api::Fence;

/// The fence of `plan` at `token`; a plan name that cannot name a fence is an error naming it.
pub fn fence(plan: &str, token: u64) -> Result<Fence, String> {
    Fence::new(plan, token).map_err(|e| format!("plan name {plan:?} as fence: {e}"))
}

/// `sites` and `me` for a run of `plan` under `lock`: with the lock's token on every call and
/// in the journal when the lock is etcd's, unchanged otherwise.
pub fn under_lock(
    sites: ApiSites,
    plan: &str,
    lock: &PlanLock,
    me: Holder,
) -> Result<(ApiSites, Holder), String> {
    match lock.token() {
        Some(t) => Ok((sites.with_fence(fence(plan, t)?), me.fenced(t))),
        None => Ok((sites, me)),
    }
}

/// The keeper's token: never lower than its own leadership's, the lock holder's now, or any
/// a run of the plan offered (its start and its takeovers), so the keeper's renewals are
/// not refused after a run raised the speaker, and a stale leader's are.
pub fn keeper_token(leader: u64, lock: Option<u64>, runs: &[RunSummary]) -> u64 {
    runs.iter()
        .flat_map(|r| std::iter::once(&r.by).chain(&r.takeovers))
        .filter_map(|h| h.fence_token)
        .chain(lock)
        .fold(leader, u64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::journal::{Direction, Mode, Phase};

    fn run(by: Option<u64>, takeovers: &[Option<u64>]) -> RunSummary {
        let h = |t: Option<u64>| Holder {
            fence_token: t,
            ..Holder::me("test")
        };
        RunSummary {
            path: "etcd:x".into(),
            run_id: "1-web-failover".into(),
            plan: "web".into(),
            direction: Direction::Failover,
            mode: Mode::Planned,
            by: h(by),
            started_ms: 0,
            last_ms: 0,
            phase: Phase::Forward {
                next: 0,
                open: None,
            },
            active: None,
            steps: Vec::new(),
            step_count: 1,
            takeovers: takeovers.iter().map(|t| h(*t)).collect(),
            plan_text: String::new(),
            damaged: None,
        }
    }

    #[test]
    fn the_keeper_offers_the_highest_token_it_knows() {
        assert_eq!(keeper_token(7, None, &[]), 7);
        assert_eq!(keeper_token(7, Some(9), &[]), 9);
        // A finished run by an operator raised the speakers to 12, a takeover to 15.
        let runs = [run(Some(12), &[None, Some(15)]), run(None, &[])];
        assert_eq!(keeper_token(7, None, &runs), 15);
        assert_eq!(keeper_token(20, Some(9), &runs), 20);
    }

    #[test]
    fn bad_plan_names_are_named() {
        let e = fence("my plan", 3).unwrap_err();
        assert!(e.contains("\"my plan\""), "{e}");
        assert_eq!(fence("web", 3).unwrap().token, 3);
    }
}
