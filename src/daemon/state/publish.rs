//! Changing the desired routes and publishing them to the peer drivers.
//!
//! A change is checked by the store, handed to the drivers through the
//! [`DesiredLog`](crate::speaker::DesiredLog) (with the drain overlay of RFC 8326 applied) and
//! made durable, in the [`Order`] its caller needs; a change that cannot be written is
//! published back, so nothing unacknowledged stays announced. The route journal is compacted
//! later, off the drivers' way.
//!
//! Never does: touch leases (the caller holds the leases lock, see [`super::leases`]) or
//! answer the API itself (see [`super::backend`]).

use std::sync::Arc;

use ipnet::IpNet;

use super::{lock, write, Shared};
use crate::api::Caller;
use crate::api::{ApiError, ChangeResponse, DryRun, Event};
use crate::speaker::stamp::Stamp;
use crate::speaker::store::{Applied, Change, RouteStore, StoreError};
use crate::speaker::{Retired, Route};

/// The changed prefixes of an audit line, at most [`AUDIT_PREFIXES`] of each kind named.
struct AuditLine {
    announced: String,
    withdrawn: String,
}

use super::{audit, AUDIT_PREFIXES};

impl AuditLine {
    fn of(applied: &Applied) -> Self {
        use crate::api::caller::shortlist;
        Self {
            announced: shortlist(applied.announced.iter().map(|r| r.prefix), AUDIT_PREFIXES),
            withdrawn: shortlist(applied.withdrawn.iter(), AUDIT_PREFIXES),
        }
    }
}

impl Shared {
    /// Hand the changed `prefixes` to the drivers as they are now in `store`, with the drain
    /// overlay applied; O(changed), not O(table).
    pub(super) fn publish(&self, store: &RouteStore, prefixes: impl IntoIterator<Item = IpNet>) {
        drop(
            self.publish_routes(
                prefixes
                    .into_iter()
                    .map(|p| (p, store.get_shared(&p).cloned())),
            ),
        );
    }

    /// Hand these changes (the route as stored now, `None`: withdrawn) to the drivers, with
    /// the health overlay (a failing check withdraws or de-prefers) and the drain overlay
    /// applied; returns the routes the drivers no longer see, for the
    /// caller to free once that is off the drivers' way.
    /// A route no overlay changes is handed on as the store holds it (shared, not copied).
    fn publish_routes(
        &self,
        changes: impl IntoIterator<Item = (IpNet, Option<Arc<Route>>)>,
    ) -> Retired {
        let draining = lock(&self.draining);
        let health = lock(&self.health);
        let changes = changes.into_iter().map(|(p, route)| {
            let route = route
                .and_then(|r| crate::daemon::health::overlay_shared(&health, r))
                .map(|mut r| {
                    if draining.contains(&p) {
                        Arc::make_mut(&mut r).attrs.mark_graceful_shutdown();
                    }
                    r
                });
            (p, route)
        });
        let (version, retired) = write(&self.desired_log).apply_retiring(changes);
        self.desired.send_if_modified(|v| {
            let changed = *v != version;
            *v = version;
            changed
        });
        retired
    }

    /// Compact the route journal into a new snapshot if it is due. The daemon's compaction
    /// task calls this a moment after a change made it due, so the snapshot is not written
    /// while the drivers send that change; the journal is durable meanwhile.
    pub fn compact_journal(&self) {
        if let Err(e) = lock(&self.store).compact_if_due() {
            tracing::warn!(error = %e, "cannot compact the route journal; changes stay journaled");
        }
    }

    /// Apply a change: checked, handed to the drivers, made durable, then answered. The
    /// drivers get it before the store has written it, so the first UPDATEs are on the wire
    /// while the journal is written and synced; the answer still waits for the sync. Should
    /// the write fail, a second `desired_changed` (with the stored, earlier generation) says
    /// the change is taken back, the drivers get the stored routes of those prefixes back, and
    /// the call fails: nothing unacknowledged stays announced. A crash between the two leaves
    /// no trace of the change once the speaker is back.
    ///
    /// `caller` is recorded with the change (the route journal, the routes' stamps) and named
    /// in the audit line logged once it is durable.
    pub(super) fn change(
        &self,
        change: Change,
        caller: &Caller,
    ) -> Result<ChangeResponse, ApiError> {
        self.change_in_order(change, Order::PublishFirst, caller)
    }

    /// What `change` would do, checked as [`Shared::change`] checks it, changing nothing.
    pub(super) fn preview(&self, change: Change) -> Result<ChangeResponse, ApiError> {
        let store = lock(&self.store);
        let applied = store.prepare(change).map_err(refused)?;
        Ok(ChangeResponse {
            changed: applied.announced.len() + applied.withdrawn.len(),
            generation: applied.generation,
            dry_run: Some(DryRun {
                announce: applied.announced.iter().map(|r| r.prefix).collect(),
                withdraw: applied.withdrawn,
            }),
        })
    }

    pub(super) fn change_in_order(
        &self,
        change: Change,
        order: Order,
        caller: &Caller,
    ) -> Result<ChangeResponse, ApiError> {
        let action = match &change {
            Change::Announce(_) => "announce",
            Change::Withdraw(_) => "withdraw",
        };
        let mut store = lock(&self.store);
        let applied = store.prepare(change).map_err(refused)?;
        let changed = applied.announced.len() + applied.withdrawn.len();
        let generation = applied.generation;
        if changed == 0 {
            audit(
                caller,
                action,
                format_args!("nothing changed (generation {generation})"),
            );
            return Ok(ChangeResponse {
                changed,
                generation,
                dry_run: None,
            });
        }
        let stamp = Stamp::now(caller.to_string());
        let what = AuditLine::of(&applied);
        if order == Order::WriteFirst {
            let prefixes: Vec<IpNet> = applied.prefixes().collect();
            store
                .commit_by(applied, Some(stamp))
                .map_err(|f| not_written(&f.error))?;
            self.emit(Event::DesiredChanged {
                generation,
                changed,
            });
            self.publish(&store, prefixes);
        } else {
            // Emit before the drivers see the change, so that the events stream keeps causal
            // order: desired_changed, then the routes_sent it causes.
            self.emit(Event::DesiredChanged {
                generation,
                changed,
            });
            // `applied` holds the routes as they will be stored: no lookup in the store.
            let retired = self.publish_routes(applied_changes(&applied));
            let committed = store.commit_by(applied, Some(stamp));
            // Freed after the write: the drivers are sending meanwhile.
            drop(retired);
            if let Err(failed) = committed {
                // The events say it before the drivers act on it, as above: the state is
                // back at the stored generation.
                self.emit(Event::DesiredChanged {
                    generation: store.generation(),
                    changed,
                });
                self.publish(&store, failed.applied.prefixes());
                return Err(not_written(&failed.error));
            }
        }
        audit(
            caller,
            action,
            format_args!(
                "{changed} changed (generation {generation}); announced [{}]; withdrawn [{}]",
                what.announced, what.withdrawn
            ),
        );
        // Not now: a snapshot of a large table takes CPU the drivers need while they send
        // this change (see `compact_journal`).
        if store.compaction_due() {
            self.compact_wake.notify_one();
        }
        Ok(ChangeResponse {
            changed,
            generation,
            dry_run: None,
        })
    }
}

/// A change the store refused: bad input (400) or its own failure (500).
fn refused(e: StoreError) -> ApiError {
    if e.is_bad_input() {
        ApiError::BadRequest(e.to_string())
    } else {
        ApiError::Internal(e.to_string())
    }
}

/// When the peers hear of a change: before the store has written it (the API's changes: the
/// UPDATEs leave while the journal is synced) or after (lease expiry, retried every tick
/// while the write fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    PublishFirst,
    WriteFirst,
}

/// The API error for a change the store could not write.
fn not_written(error: &crate::speaker::store::StoreError) -> ApiError {
    tracing::error!(%error, "change refused: the desired routes could not be written");
    ApiError::Internal(format!(
        "{error}; the change was not applied (the peers got it and were told to forget it \
         again; should the state file hold it anyway, a restart loads it): check the state \
         directory's disk space and permissions, then retry"
    ))
}

/// What a batch changed, as the desired log takes it: the new routes, then the gone prefixes.
fn applied_changes(applied: &Applied) -> impl Iterator<Item = (IpNet, Option<Arc<Route>>)> + '_ {
    applied
        .announced
        .iter()
        .map(|r| (r.prefix, Some(Arc::clone(r))))
        .chain(applied.withdrawn.iter().map(|p| (*p, None)))
}

#[cfg(test)]
mod tests {
    /// The caller of the tests' changes.
    const T: Caller = Caller::Speaker("test");
    use std::sync::{Arc, Mutex, RwLock};

    use tokio::sync::{broadcast, watch};

    use super::super::read;
    use super::*;
    use crate::api::Control as _;
    use crate::speaker::lease::Leases;
    use crate::speaker::{DesiredLog, UpdateGroups};

    fn shared(dir: &std::path::Path) -> Shared {
        let store = RouteStore::load(dir).unwrap();
        let desired_log = DesiredLog::from_shared(store.routes().values().cloned());
        Shared {
            store: Mutex::new(store),
            desired: watch::channel(0).0,
            desired_log: RwLock::new(desired_log),
            groups: Mutex::new(UpdateGroups::default()),
            next_member: Default::default(),
            events: broadcast::channel(16).0,
            peer_list: RwLock::new(Vec::new()),
            draining: Default::default(),
            leases: Mutex::new(Leases::load(dir).unwrap()),
            lease_wake: tokio::sync::Notify::new(),
            compact_wake: tokio::sync::Notify::new(),
            lease_expiries: Default::default(),
            last_expiry: Mutex::new(None),
            admin: Mutex::new(crate::daemon::admin::AdminStates::load(dir).unwrap()),
            reloads: tokio::sync::mpsc::channel(1).0,
            allowed_prefixes: RwLock::new(None),
            health: Mutex::new(Vec::new()),
            fences: Mutex::new(crate::daemon::fences::FenceTable::load(dir).unwrap()),
            require_fence: Default::default(),
        }
    }

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    /// What the drivers are told, in prefix order.
    fn published(s: &Shared) -> Vec<IpNet> {
        read(&s.desired_log).routes().map(|r| r.prefix).collect()
    }

    /// A speaker with `a` announced and written, whose next write fails: the first change
    /// writes a snapshot, later ones append to the journal, and a directory where the journal
    /// goes makes that fail (as root too). Returns the journal's path, to unblock it.
    fn one_route_then_writes_fail() -> (tempfile::TempDir, Arc<Shared>, Route, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(shared(dir.path()));
        let a = route("198.51.100.0/24");
        s.announce(vec![Arc::new(a.clone())], &T).unwrap();
        assert_eq!(published(&s), vec![a.prefix]);
        let journal = dir.path().join(crate::speaker::store::JOURNAL_FILE);
        std::fs::create_dir(&journal).unwrap();
        (dir, s, a, journal)
    }

    /// The drivers get a change before it is written; when the write fails they get the
    /// stored routes back, the call fails, and the next change that can be written goes out.
    #[test]
    fn a_change_that_cannot_be_written_is_published_back_and_fails() {
        let (dir, s, a, journal) = one_route_then_writes_fail();
        let mut events = s.events.subscribe();
        let b = route("203.0.113.0/24");
        let err = s.announce(vec![Arc::new(b.clone())], &T).unwrap_err();
        assert!(format!("{err:?}").contains("not applied"), "{err:?}");
        assert_eq!(published(&s), vec![a.prefix], "b is taken back");
        let err = s.withdraw(vec![a.prefix], &T).unwrap_err();
        assert!(format!("{err:?}").contains("not applied"), "{err:?}");
        assert_eq!(published(&s), vec![a.prefix], "a is put back");
        assert_eq!(lock(&s.store).generation(), 1);
        // Each failed change: desired_changed for the change, then one for the undo.
        let mut generations = Vec::new();
        while let Ok(Event::DesiredChanged { generation, .. }) = events.try_recv() {
            generations.push(generation);
        }
        assert_eq!(generations, vec![2, 1, 2, 1]);
        // Both failures are counted where an operator looks.
        let m = super::super::metrics::text(&s);
        assert!(
            m.contains("ferry_state_write_failures_total{file=\"routes\"} 2"),
            "{m}"
        );

        std::fs::remove_dir(&journal).unwrap();
        s.announce(vec![Arc::new(b.clone())], &T).unwrap();
        assert_eq!(published(&s), vec![a.prefix, b.prefix]);
        drop(s);
        let reloaded = RouteStore::load(dir.path()).unwrap();
        assert_eq!(
            reloaded.routes().keys().copied().collect::<Vec<_>>(),
            vec![a.prefix, b.prefix]
        );
    }

    /// A lease expiry is written before the peers hear of it: while the write fails (it is
    /// retried every tick) the peers see nothing, not a withdraw and a re-announce each time.
    #[test]
    fn a_write_first_change_that_cannot_be_written_is_never_published() {
        let (_dir, s, a, journal) = one_route_then_writes_fail();
        let version = read(&s.desired_log).version();
        let mut events = s.events.subscribe();
        let err = s
            .change_in_order(Change::Withdraw(vec![a.prefix]), Order::WriteFirst, &T)
            .unwrap_err();
        assert!(format!("{err:?}").contains("not applied"), "{err:?}");
        assert_eq!(read(&s.desired_log).version(), version, "nothing published");
        assert_eq!(published(&s), vec![a.prefix]);
        assert!(events.try_recv().is_err(), "no event");
        std::fs::remove_dir(&journal).unwrap();
        s.change_in_order(Change::Withdraw(vec![a.prefix]), Order::WriteFirst, &T)
            .unwrap();
        assert!(published(&s).is_empty());
        assert!(matches!(
            events.try_recv(),
            Ok(Event::DesiredChanged {
                generation: 2,
                changed: 1
            })
        ));
    }

    /// A health check's transitions move its routes at the drivers (withdraw, or de-prefer),
    /// never the stored routes; a route outside its prefixes is untouched, and a route
    /// announced while the check fails gets the overlay too.
    #[test]
    fn health_transitions_withdraw_or_deprefer_the_governed_routes() {
        use crate::daemon::health::{machine::Health, Gate};
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(shared(dir.path()));
        let config = |extra: &str| {
            crate::config::Config::parse(&format!(
                "[speaker]\nasn = 65100\nrouter_id = \"192.0.2.1\"\napi = \"/x\"\nstate_dir = \"/y\"\n\
                 [[health_check]]\nname = \"web\"\nprefixes = [\"203.0.113.0/24\"]\ntcp = \"127.0.0.1:1\"\n{extra}"
            ))
            .unwrap()
            .health_checks
            .remove(0)
        };
        let now = std::time::Instant::now();
        *lock(&s.health) = vec![Gate::new(&config(""), now)];
        let web = route("203.0.113.0/25");
        let other = route("198.51.100.0/24");
        s.announce(vec![Arc::new(web.clone()), Arc::new(other.clone())], &T)
            .unwrap();
        assert_eq!(
            published(&s),
            vec![other.prefix],
            "init withholds the governed route"
        );
        let mut events = s.events.subscribe();
        s.health_moved(0, Health::Up, None, now, &T);
        assert_eq!(published(&s), vec![other.prefix, web.prefix]);
        s.health_moved(0, Health::Down, Some("tcp: refused".into()), now, &T);
        assert_eq!(published(&s), vec![other.prefix]);
        assert_eq!(lock(&s.store).len(), 2, "the store keeps both");
        let moved: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        assert_eq!(
            moved,
            vec![
                Event::HealthChanged {
                    name: "web".into(),
                    from: "init".into(),
                    to: "up".into(),
                    routes: vec![web.prefix],
                    error: None
                },
                Event::HealthChanged {
                    name: "web".into(),
                    from: "up".into(),
                    to: "down".into(),
                    routes: vec![web.prefix],
                    error: Some("tcp: refused".into())
                }
            ]
        );
        let st = s.health_statuses();
        assert_eq!((st[0].state.as_str(), st[0].transitions), ("down", 2));
        let m = super::super::metrics::text(&s);
        assert!(m.contains("ferry_health_check_up{check=\"web\"} 0"), "{m}");
        assert!(
            m.contains("ferry_health_check_transitions_total{check=\"web\"} 2"),
            "{m}"
        );

        // De-prefer: the route stays, with the prepend, MED and community added.
        let deprefer =
            config("on_fall = \"deprefer\"\nprepend = 2\nmed = 900\ncommunity = \"65000:666\"");
        *lock(&s.health) = vec![Gate::new(&deprefer, now)];
        s.health_moved(0, Health::Down, None, now, &T);
        let seen = |p: IpNet| {
            read(&s.desired_log)
                .routes()
                .find(|r| r.prefix == p)
                .cloned()
                .unwrap()
        };
        let d = seen(web.prefix);
        assert_eq!((d.prepend, d.attrs.med), (2, Some(900)));
        assert_eq!(d.attrs.communities, vec!["65000:666".parse().unwrap()]);
        assert_eq!(seen(other.prefix), other, "outside the check: untouched");
        // Announced while failing: de-preferred too.
        let late = route("203.0.113.128/25");
        s.announce(vec![Arc::new(late.clone())], &T).unwrap();
        assert_eq!(seen(late.prefix).attrs.med, Some(900));
        s.health_moved(0, Health::Up, None, now, &T);
        assert_eq!(seen(web.prefix), web);
        assert_eq!(seen(late.prefix), late);
    }
}
