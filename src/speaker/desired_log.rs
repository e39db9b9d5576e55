//! [`DesiredLog`]: the desired routes as the peer drivers see them (the drain overlay already
//! applied), with a version number and a bounded log of the recent changes, so that a consumer
//! applies only what changed after the log position it reached.
//!
//! Contract:
//! - [`DesiredLog::apply`] sets each given prefix to the given route (or removes it); a prefix
//!   set to what it already is is not a change. A call that changes anything increases the
//!   version by one and appends one log entry per changed prefix; the cost is O(k log n) for
//!   k changed prefixes (a sorted run of removals or of sets of an eighth of the table or
//!   more: one walk, O(n), at most 8k), never more. [`DesiredLog::apply_retiring`] hands the routes let go of back
//!   to the caller, to be freed once the consumers are on their way.
//! - Every log entry has a position (0, 1, 2, ... over the log's whole life);
//!   [`DesiredLog::changes_from`]`(pos)` yields the changes from position `pos` on, oldest
//!   first (a prefix changed twice appears twice; applying them in order gives the current
//!   state), so a consumer can also apply a long batch a part at a time
//!   ([`DesiredLog::log_end`] is the position after the newest entry). It answers `None` when
//!   the log no longer reaches back to `pos`: the consumer then resynchronises from
//!   [`DesiredLog::routes`].
//! - The log holds at most `max(MIN_LOG, routes, the last call's changes)` entries, so its
//!   memory is bounded by the table's (a withdrawal of the whole table stays in the log until
//!   the next change); the routes themselves are shared (`Arc`) between the table, the log and
//!   the [`super::RouteStore`] they came from (one copy of each route in the speaker).
//!
//! Never does: persist anything (the [`super::RouteStore`] does), or decide the overlay.

use ipnet::IpNet;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::route::Route;
use super::sorted_walk::{most_of, take_if_next, walk_beats_search};

/// The log keeps at least this many entries, however small the table.
pub const MIN_LOG: usize = 4096;

/// Ascending without duplicates, and an eighth of the table or more: one walk over the
/// table beats a search per prefix.
fn is_large_sorted_run(prefixes: &[IpNet], table: usize) -> bool {
    !prefixes.is_empty()
        && walk_beats_search(prefixes.len(), table)
        && prefixes.windows(2).all(|w| w[0] < w[1])
}

/// Routes a [`DesiredLog::apply_retiring`] let go of; they are freed when this is dropped.
#[derive(Debug, Default)]
#[must_use = "dropping it frees the routes now; drop it where that costs nothing"]
pub struct Retired(Vec<Arc<Route>>);

impl Retired {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct DesiredLog {
    routes: BTreeMap<IpNet, Arc<Route>>,
    version: u64,
    /// `(prefix, route after the change)`, oldest first.
    log: VecDeque<(IpNet, Option<Arc<Route>>)>,
    /// Position of `log[0]`.
    first_pos: u64,
}

impl DesiredLog {
    /// The table at version 0 (no log: every consumer starts from [`DesiredLog::routes`]).
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        Self::from_shared(routes.into_iter().map(Arc::new))
    }

    /// [`DesiredLog::new`] of routes shared with their owner (the store's table): no copy.
    pub fn from_shared(routes: impl IntoIterator<Item = Arc<Route>>) -> Self {
        Self {
            routes: routes.into_iter().map(|r| (r.prefix, r)).collect(),
            ..Self::default()
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Route> {
        self.routes.get(prefix).map(|r| &**r)
    }

    /// Every route, in prefix order.
    pub fn routes(&self) -> impl Iterator<Item = &Route> + '_ {
        self.routes.values().map(|r| &**r)
    }

    /// Log entries held now (for tests and metrics).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Apply the changes (`None` removes the prefix); returns the version after them.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = (IpNet, Option<Route>)>) -> u64 {
        self.apply_retiring(changes.into_iter().map(|(p, r)| (p, r.map(Arc::new))))
            .0
    }

    /// [`DesiredLog::apply`] of shared routes (the store's own, not copied), and hand back the
    /// routes it let go of (removed, replaced, or trimmed from the log) instead of freeing
    /// them: freeing 100,000 routes is milliseconds of cache misses, which the caller spends
    /// once the consumers are told of the change.
    pub fn apply_retiring(
        &mut self,
        changes: impl IntoIterator<Item = (IpNet, Option<Arc<Route>>)>,
    ) -> (u64, Retired) {
        let next = self.version + 1;
        let mut retired = Retired::default();
        // Removals and sets are gathered into runs and applied when the run ends, in their
        // place among the other changes, so that a long sorted run can take one walk.
        let mut gone: Vec<IpNet> = Vec::new();
        let mut sets: Vec<(IpNet, Arc<Route>)> = Vec::new();
        let mut changed = 0usize;
        // Entries older than this call still in the log.
        let mut old = self.log.len();
        for (prefix, route) in changes {
            match route {
                None => {
                    changed += self.set_run(&mut sets, &mut retired);
                    gone.push(prefix);
                }
                Some(r) => {
                    changed += self.remove(&mut gone, changed, &mut old, &mut retired);
                    sets.push((prefix, r));
                }
            }
        }
        changed += self.set_run(&mut sets, &mut retired);
        changed += self.remove(&mut gone, changed, &mut old, &mut retired);
        if changed > 0 {
            self.version = next;
            let cap = self.routes.len().max(MIN_LOG).max(changed);
            while self.log.len() > cap {
                if let Some((_, route)) = self.log.pop_front() {
                    retired.0.extend(route);
                    self.first_pos += 1;
                }
            }
        }
        (self.version, retired)
    }

    /// Set `prefix` to `route`; false if it already was.
    fn set(&mut self, prefix: IpNet, route: Arc<Route>, retired: &mut Retired) -> bool {
        let entry = match self.routes.entry(prefix) {
            Entry::Occupied(o) if Arc::ptr_eq(o.get(), &route) || **o.get() == *route => {
                return false
            }
            Entry::Occupied(mut o) => {
                retired.0.push(o.insert(route.clone()));
                route
            }
            Entry::Vacant(v) => v.insert(route).clone(),
        };
        self.log.push_back((prefix, Some(entry)));
        true
    }

    /// Set the run `sets` (emptied): for a long ascending run, one merge of the table and the
    /// run into a table built anew from the sorted result (full nodes, no search per route);
    /// a search per route otherwise. Returns how many changed.
    fn set_run(&mut self, sets: &mut Vec<(IpNet, Arc<Route>)>, retired: &mut Retired) -> usize {
        let ascending = sets.windows(2).all(|w| w[0].0 < w[1].0);
        if sets.is_empty() || !ascending || !walk_beats_search(sets.len(), self.routes.len()) {
            let mut changed = 0;
            for (p, r) in sets.drain(..) {
                changed += usize::from(self.set(p, r, retired));
            }
            return changed;
        }
        let before = self.log.len();
        let old = std::mem::take(&mut self.routes);
        let mut merged: Vec<(IpNet, Arc<Route>)> = Vec::with_capacity(old.len() + sets.len());
        let mut new = sets.drain(..).peekable();
        let log = &mut self.log;
        let mut add = |p: IpNet, r: Arc<Route>, merged: &mut Vec<_>| {
            log.push_back((p, Some(r.clone())));
            merged.push((p, r));
        };
        for (p, r) in old {
            while let Some((np, nr)) = new.next_if(|(np, _)| *np < p) {
                add(np, nr, &mut merged);
            }
            match new.next_if(|(np, _)| *np == p) {
                Some((_, nr)) if !Arc::ptr_eq(&r, &nr) && *r != *nr => {
                    retired.0.push(r);
                    add(p, nr, &mut merged);
                }
                _ => merged.push((p, r)),
            }
        }
        for (np, nr) in new {
            add(np, nr, &mut merged);
        }
        self.routes = merged.into_iter().collect();
        self.log.len() - before
    }

    /// Remove the run `gone` (emptied): one walk over the table for a long ascending run, a
    /// search per prefix otherwise. Returns how many were there.
    ///
    /// A run that takes half the table or more first drops the oldest entries (older than this
    /// call: `old` of them are left) that the trim after the call would drop, were this run
    /// the call's last change: a whole-table withdrawal after a whole-table announcement
    /// would otherwise hold both in the log at once, its memory doubled. (A later change in
    /// the same call may raise what that trim keeps; a consumer that needed an entry dropped
    /// here resynchronises, as after any trim.)
    fn remove(
        &mut self,
        gone: &mut Vec<IpNet>,
        changed: usize,
        old: &mut usize,
        retired: &mut Retired,
    ) -> usize {
        let before = self.log.len();
        if is_large_sorted_run(gone, self.routes.len()) && most_of(gone.len(), self.routes.len()) {
            let mut wanted = gone.iter().peekable();
            let removing = self
                .routes
                .keys()
                .filter(|p| take_if_next(&mut wanted, *p))
                .count();
            let kept_after = MIN_LOG
                .max(self.routes.len() - removing)
                .max(changed + removing);
            let excess = (self.log.len() + removing).saturating_sub(kept_after);
            for _ in 0..excess.min(*old) {
                if let Some((_, route)) = self.log.pop_front() {
                    retired.0.extend(route);
                    self.first_pos += 1;
                    *old -= 1;
                }
            }
            let before = self.log.len();
            // What stays is built anew (see `store::remove_sorted`).
            let mut wanted = gone.iter().peekable();
            let mut kept = Vec::with_capacity(self.routes.len().saturating_sub(gone.len()));
            for (p, route) in std::mem::take(&mut self.routes) {
                if take_if_next(&mut wanted, &p) {
                    self.log.push_back((p, None));
                    retired.0.push(route);
                } else {
                    kept.push((p, route));
                }
            }
            self.routes = kept.into_iter().collect();
            gone.clear();
            return self.log.len() - before;
        } else if is_large_sorted_run(gone, self.routes.len()) {
            let mut wanted = gone.iter().peekable();
            let removed = self
                .routes
                .extract_if(.., |p, _| take_if_next(&mut wanted, p));
            for (p, route) in removed {
                self.log.push_back((p, None));
                retired.0.push(route);
            }
        } else {
            for p in gone.iter() {
                if let Some(route) = self.routes.remove(p) {
                    self.log.push_back((*p, None));
                    retired.0.push(route);
                }
            }
        }
        gone.clear();
        self.log.len() - before
    }

    /// The position after the newest log entry.
    pub fn log_end(&self) -> u64 {
        self.first_pos + self.log.len() as u64
    }

    /// The changes from position `pos` on, oldest first; `None` when the log was trimmed
    /// past it or `pos` is beyond [`DesiredLog::log_end`] (resynchronise from
    /// [`DesiredLog::routes`]).
    pub fn changes_from(
        &self,
        pos: u64,
    ) -> Option<impl Iterator<Item = (IpNet, Option<&Route>)> + '_> {
        let start = usize::try_from(pos.checked_sub(self.first_pos)?).ok()?;
        if start > self.log.len() {
            return None;
        }
        Some(self.log.range(start..).map(|(p, r)| (*p, r.as_deref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    fn net(p: &str) -> IpNet {
        p.parse().unwrap()
    }

    #[test]
    fn versions_count_changes_and_noops_are_not_changes() {
        let mut d = DesiredLog::new([route("198.51.100.0/24")]);
        assert_eq!(d.version(), 0);
        assert_eq!(
            d.apply([(net("198.51.100.0/24"), Some(route("198.51.100.0/24")))]),
            0
        );
        assert_eq!(d.apply([(net("203.0.113.0/24"), None)]), 0);
        assert_eq!(
            d.apply([(net("203.0.113.0/24"), Some(route("203.0.113.0/24")))]),
            1
        );
        let mut r = route("203.0.113.0/24");
        r.attrs.med = Some(5);
        assert_eq!(
            d.apply([
                (net("203.0.113.0/24"), Some(r.clone())),
                (net("198.51.100.0/24"), None)
            ]),
            2
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d.get(&net("203.0.113.0/24")), Some(&r));
        // Version 1 logged one change (position 0), version 2 two (positions 1 and 2).
        assert_eq!(d.log_end(), 3);
        let since0: Vec<_> = d
            .changes_from(0)
            .unwrap()
            .map(|(p, r)| (p, r.cloned()))
            .collect();
        assert_eq!(
            since0,
            vec![
                (net("203.0.113.0/24"), Some(route("203.0.113.0/24"))),
                (net("203.0.113.0/24"), Some(r.clone())),
                (net("198.51.100.0/24"), None),
            ]
        );
        assert_eq!(d.changes_from(1).unwrap().count(), 2);
        assert_eq!(d.changes_from(3).unwrap().count(), 0);
        assert!(d.changes_from(4).is_none());
    }

    #[test]
    fn positions_let_a_consumer_take_a_batch_in_parts() {
        let mut d = DesiredLog::new([]);
        assert_eq!(d.log_end(), 0);
        let batch: Vec<(IpNet, Option<Route>)> = (0..10)
            .map(|i| {
                let p = format!("2001:db8:{i:x}::/48");
                (net(&p), Some(route(&p)))
            })
            .collect();
        d.apply(batch.clone());
        assert_eq!(d.log_end(), 10);
        let first: Vec<IpNet> = d.changes_from(0).unwrap().take(4).map(|(p, _)| p).collect();
        let rest: Vec<IpNet> = d.changes_from(4).unwrap().map(|(p, _)| p).collect();
        let all: Vec<IpNet> = first.into_iter().chain(rest).collect();
        assert_eq!(all, batch.iter().map(|(p, _)| *p).collect::<Vec<_>>());
        assert_eq!(d.changes_from(10).unwrap().count(), 0);
        assert!(d.changes_from(11).is_none());
    }

    /// A large sorted run of sets (one merge with the table) changes, logs and retires exactly
    /// what a search per prefix does: new routes added, changed ones replaced, equal ones no
    /// change.
    #[test]
    fn a_large_sorted_run_of_sets_merges_to_the_same_result() {
        let table: Vec<Route> = (0..100)
            .step_by(2)
            .map(|i| route(&format!("2001:db8:{i:x}::/48")))
            .collect();
        let mut sets: Vec<(IpNet, Option<Arc<Route>>)> = (0..100)
            .map(|i| {
                let mut r = route(&format!("2001:db8:{i:x}::/48"));
                if i % 4 == 0 {
                    r.attrs.med = Some(7); // a change of a route in the table
                }
                (r.prefix, Some(Arc::new(r)))
            })
            .collect();
        sets.sort_by_key(|(p, _)| *p);
        let mut merged = DesiredLog::new(table.clone());
        let mut searched = DesiredLog::new(table);
        let (version, retired) = merged.apply_retiring(sets.clone());
        assert_eq!(version, 1);
        assert_eq!(retired.len(), 25, "the replaced routes");
        for one in sets {
            drop(searched.apply_retiring([one]));
        }
        let routes = |d: &DesiredLog| d.routes().cloned().collect::<Vec<_>>();
        assert_eq!(routes(&merged), routes(&searched));
        assert_eq!(merged.len(), 100);
        let log = |d: &DesiredLog| {
            let mut l: Vec<_> = d
                .changes_from(0)
                .unwrap()
                .map(|(p, r)| (p, r.cloned()))
                .collect();
            l.sort_by_key(|(p, _)| *p);
            l
        };
        // 50 new, 25 replaced; the 25 equal ones are no change.
        assert_eq!(log(&merged).len(), 75);
        assert_eq!(log(&merged), log(&searched));
    }

    /// A large sorted removal (one walk over the table: the table built anew when half of it
    /// goes, entries taken out of it otherwise) changes, logs and retires exactly what a search
    /// per prefix does; prefixes not in the table are no change.
    #[test]
    fn a_large_sorted_removal_walks_to_the_same_result() {
        let table: Vec<Route> = (0..100)
            .map(|i| route(&format!("2001:db8:{i:x}::/48")))
            .collect();
        // Every second route (rebuilt) and every fourth (taken out).
        for (step, removed) in [(2, 50), (4, 25)] {
            let mut gone: Vec<IpNet> = (0..100)
                .step_by(step)
                .map(|i| net(&format!("2001:db8:{i:x}::/48")))
                .collect();
            gone.extend((0..5).map(|i| net(&format!("2001:db8:{i:x}:1::/64"))));
            gone.sort();
            assert!(is_large_sorted_run(&gone, table.len()));
            assert_eq!(most_of(gone.len(), table.len()), step == 2);
            let mut walked = DesiredLog::new(table.clone());
            let mut searched = DesiredLog::new(table.clone());
            let (version, retired) = walked.apply_retiring(gone.iter().map(|p| (*p, None)));
            assert_eq!(version, 1);
            assert_eq!(retired.len(), removed);
            for p in &gone {
                // One prefix per call: never the walk.
                drop(searched.apply_retiring([(*p, None)]));
            }
            let routes = |d: &DesiredLog| d.routes().map(|r| r.prefix).collect::<Vec<_>>();
            assert_eq!(routes(&walked), routes(&searched));
            assert_eq!(walked.len(), 100 - removed);
            let log = |d: &DesiredLog| {
                d.changes_from(0)
                    .unwrap()
                    .map(|(p, r)| (p, r.is_some()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(log(&walked), log(&searched));
            assert_eq!(walked.log_end(), removed as u64);
        }
    }

    /// A whole-table withdrawal after a whole-table announcement never holds both in the log:
    /// the announcement's entries go before the withdrawal's are added (what the trim after
    /// the call would leave anyway), and a consumer at the log's end applies the withdrawal
    /// as a delta while one from before it resynchronises.
    #[test]
    fn a_large_withdrawal_drops_the_entries_it_outdates_first() {
        let n = MIN_LOG * 2;
        let routes: Vec<Route> = (0..n)
            .map(|i| route(&format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff)))
            .collect();
        let mut d = DesiredLog::new([]);
        d.apply(routes.iter().map(|r| (r.prefix, Some(r.clone()))));
        assert_eq!(d.log_len(), n);
        let at_end = d.log_end();
        let (_, retired) = d.apply_retiring(routes.iter().map(|r| (r.prefix, None)));
        assert_eq!(d.log_len(), n, "only the withdrawal's entries");
        assert!(d.log.capacity() < 2 * n, "the log never held both");
        // The table's routes and the announcement's log entries (the same routes, shared).
        assert_eq!(retired.len(), 2 * n);
        assert_eq!(d.changes_from(at_end).unwrap().count(), n);
        assert!(d.changes_from(0).is_none());
        assert!(d.is_empty());
    }

    /// Withdrawing a table larger than `MIN_LOG` keeps the whole withdrawal in the log, so a
    /// consumer applies it as a delta instead of resynchronising.
    #[test]
    fn a_large_withdrawal_stays_in_the_log_whole() {
        let n = MIN_LOG + 100;
        let prefixes: Vec<IpNet> = (0..n)
            .map(|i| net(&format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff)))
            .collect();
        let mut d = DesiredLog::new([]);
        d.apply(prefixes.iter().map(|p| (*p, Some(Route::new(*p).unwrap()))));
        let pos = d.log_end();
        d.apply(prefixes.iter().map(|p| (*p, None)));
        assert!(d.is_empty());
        assert_eq!(d.changes_from(pos).unwrap().count(), n);
        // The next change trims it back to MIN_LOG.
        d.apply([(prefixes[0], Some(Route::new(prefixes[0]).unwrap()))]);
        assert!(d.changes_from(pos).is_none());
        assert_eq!(d.log_len(), MIN_LOG);
    }

    #[test]
    fn the_log_is_bounded_and_says_when_it_no_longer_reaches_back() {
        let mut d = DesiredLog::new([]);
        // Flap one prefix more often than the log holds.
        let p = net("198.51.100.0/24");
        for i in 0..(MIN_LOG + 10) {
            let want = (i % 2 == 0).then(|| route("198.51.100.0/24"));
            d.apply([(p, want)]);
        }
        assert_eq!(d.log_len(), MIN_LOG);
        assert!(d.changes_from(0).is_none());
        assert!(d.changes_from(9).is_none());
        assert_eq!(d.changes_from(10).unwrap().count(), MIN_LOG);
        let last = d.log_end();
        assert_eq!(d.changes_from(last - 1).unwrap().count(), 1);
    }
}
