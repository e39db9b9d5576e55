//! [`AdjRibOut`]: per peer, the single truth of what the peer has been told, and the queue of
//! changes still to tell it, packed into as few UPDATEs as fit.
//!
//! Contract:
//! - `sent` holds what the peer was told; a change enters `sent` only when
//!   [`AdjRibOut::next_messages`] has produced the message carrying it. The caller writes every
//!   produced message before asking for more (or drops the whole RIB-Out on session down:
//!   [`AdjRibOut::reset`]).
//! - Pending changes are kept per prefix, so only the latest intent for a prefix is sent:
//!   a route announced then withdrawn before it was sent produces nothing, and a withdraw of a
//!   prefix the peer was never told produces nothing.
//! - [`AdjRibOut::sync`] recomputes the pending diff against the desired routes: new or changed
//!   routes are announced, routes gone (or no longer exportable) are withdrawn. It walks the
//!   whole table; [`AdjRibOut::update`] does the same for one prefix (O(log n)), for callers
//!   that know what changed, [`AdjRibOut::update_sorted`] for a sorted run of changed routes
//!   (what an update group applies) and [`AdjRibOut::withdraw_sorted`] for a sorted run of
//!   prefixes gone (one walk beside `sent` where that beats a search per prefix). All leave the
//!   same pending changes for the same resulting table.
//! - Packing (RFC 4271 §4.3, §9.2; RFC 4760 §3-4): each UPDATE is at most
//!   `ctx.max_message_len()` octets. Withdrawals first: IPv4 in the Withdrawn Routes field,
//!   IPv6 in MP_UNREACH_NLRI. Then announcements, one UPDATE per attribute set with as many
//!   of its prefixes as fit (IPv6 inside MP_REACH_NLRI). Order is deterministic: prefixes in
//!   `IpNet` order, attribute sets in [`AttrSet`] order (IPv4 first).
//! - Flow control: one call produces messages until their total size reaches `max_bytes`
//!   (so at most `max_bytes` plus one message); the caller calls again when its socket drained.
//! - End-of-RIB (RFC 4724 §2): the initial sync is complete once [`AdjRibOut::sync`] ran and
//!   nothing is pending; [`AdjRibOut::take_end_of_rib`] then yields each negotiated family once
//!   per session.
//! - Route refresh (RFC 2918 §4): [`AdjRibOut::mark_all_for_refresh`] queues every sent route
//!   again; the next calls re-send them, also those that a change meanwhile took away and
//!   brought back as they were.
//!
//! Attribute sets are interned: every route with the same exported attributes holds the same
//! `Arc<AttrSet>`; sets no route uses are dropped at the next `sync` (and by `update` and
//! `update_sorted` once the interned sets doubled since the last sweep). A clone (an update group splitting off a
//! member) shares the sets.
//!
//! Never does: I/O, timers, or deciding what is desired.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::export::{AttrSet, ExportError, PeerExport};
use super::route::Route;
use super::seeded_hash::SeededHasher;
use super::sorted_walk::{take_if_next, walk_beats_search, walk_budget};
use crate::wire::attribute::PathAttribute;
use crate::wire::mp::MpNlri;
use crate::wire::prefix::{ipv4_len, ipv6_len};
use crate::wire::{AttributeValue, Context, Family, Message, MpUnreach, Update, HEADER_LEN};

/// Withdrawn Routes Length plus Total Path Attribute Length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;

/// Attribute header (flags, type, length) for a value of `len` octets: the Extended Length
/// form only when the value needs it (RFC 4271 §4.3).
fn attr_header(len: usize) -> usize {
    if len > 255 {
        4
    } else {
        3
    }
}

/// Add `batch` (ascending) to `queue`: built in one pass and merged when it is large next to
/// the queue (an empty queue takes it whole), else inserted one by one. One already queued
/// (a withdrawal queued again) stays once.
fn queue_sorted<T: Ord>(queue: &mut BTreeSet<T>, batch: Vec<T>) {
    if walk_beats_search(batch.len(), queue.len()) {
        let mut batch: BTreeSet<T> = batch.into_iter().collect();
        queue.append(&mut batch);
    } else {
        queue.extend(batch);
    }
}

/// What one `sync` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Routes left out for this peer, with why (logged by the driver).
    pub skipped: Vec<(IpNet, ExportError)>,
    /// Prefixes pending after the sync, announcements and withdrawals.
    pub pending: usize,
}

#[derive(Debug, Default, Clone)]
pub struct AdjRibOut {
    sent: BTreeMap<IpNet, Arc<AttrSet>>,
    /// A prefix has at most one pending intent: an announcement (here, and in `announce`
    /// under its set) or a withdrawal (in `withdraw_v4` / `withdraw_v6`; only of a prefix in
    /// `sent`). Announcements are looked up once or twice per change and never walked in
    /// order (`announce` is), so hashed.
    pending: HashMap<IpNet, Arc<AttrSet>, SeededHasher>,
    // The queues the packer takes from, in prefix order.
    withdraw_v4: BTreeSet<Ipv4Net>,
    withdraw_v6: BTreeSet<Ipv6Net>,
    announce: BTreeMap<Arc<AttrSet>, BTreeSet<IpNet>>,
    /// Prefixes a route refresh asked for that have not been announced again yet: a change
    /// that ends where the peer already is must still send them (RFC 2918 §4).
    refresh: HashSet<IpNet, SeededHasher>,
    interned: HashSet<Arc<AttrSet>, SeededHasher>,
    families: Vec<Family>,
    synced: bool,
    end_of_rib_sent: BTreeSet<Family>,
    /// `interned.len()` after the last sweep.
    interned_swept: usize,
    /// The set the last route [`AdjRibOut::update`] exported got, for the next route with the
    /// same attributes (a batch mostly shares them): no set built and hashed per route.
    last_export: Option<LastExport>,
}

#[derive(Debug, Clone)]
struct LastExport {
    export: PeerExport,
    route: Route,
    set: Arc<AttrSet>,
}

impl AdjRibOut {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget everything: the session went down, the next one starts from an empty peer.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// What the peer has been told, in prefix order.
    pub fn sent(&self) -> &BTreeMap<IpNet, Arc<AttrSet>> {
        &self.sent
    }

    /// How many prefixes the peer has been told about.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Prefixes with a change not yet sent.
    pub fn pending_len(&self) -> usize {
        self.pending.len() + self.withdraw_v4.len() + self.withdraw_v6.len()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.withdraw_v4.is_empty() || !self.withdraw_v6.is_empty()
    }

    /// Whether `prefix` has a change not yet sent.
    fn is_pending(&self, prefix: &IpNet) -> bool {
        self.pending.contains_key(prefix)
            || match prefix {
                IpNet::V4(p) => self.withdraw_v4.contains(p),
                IpNet::V6(p) => self.withdraw_v6.contains(p),
            }
    }

    /// `prefix` is queued to be announced with `set`.
    fn queued(&self, prefix: &IpNet, set: &Arc<AttrSet>) -> bool {
        self.pending.get(prefix) == Some(set)
    }

    /// Distinct attribute sets in use (sent or pending; and the one `update` exported last,
    /// until the next sweep).
    pub fn attribute_sets(&self) -> usize {
        self.interned.len()
    }

    fn intern(&mut self, set: AttrSet) -> Arc<AttrSet> {
        if let Some(a) = self.interned.get(&set) {
            return a.clone();
        }
        let a = Arc::new(set);
        self.interned.insert(a.clone());
        a
    }

    /// `route` as exported to this peer, interned; `None`: not for this peer's families.
    fn export_interned(
        &mut self,
        route: &Route,
        export: &PeerExport,
    ) -> Result<Option<Arc<AttrSet>>, ExportError> {
        if let Some(last) = &self.last_export {
            if last.route.same_attributes(route) && last.export == *export {
                return Ok(Some(last.set.clone()));
            }
        }
        let Some(set) = export.export(route)? else {
            return Ok(None);
        };
        let set = self.intern(set);
        self.last_export = Some(LastExport {
            export: export.clone(),
            route: route.clone(),
            set: set.clone(),
        });
        Ok(Some(set))
    }

    /// Drop the interned sets no route uses (the remembered last export lets go of its set
    /// first).
    fn sweep_interned(&mut self) {
        self.last_export = None;
        self.interned.retain(|a| Arc::strong_count(a) > 1);
        self.interned_swept = self.interned.len();
    }

    /// The peer was told `prefix` with `set`, which is what it should have: drop a pending
    /// change, unless a route refresh still waits for it (then announce it again).
    fn keep_told(&mut self, prefix: IpNet, set: Arc<AttrSet>) {
        if !self.refresh.is_empty() && self.refresh.contains(&prefix) {
            self.set_pending(prefix, Some(set));
        } else {
            self.clear_pending(&prefix);
        }
    }

    /// Drop a queued announcement of `prefix`, if any.
    fn clear_announce(&mut self, prefix: &IpNet) {
        // Checked first: during a bulk withdrawal nothing is queued to be announced, and an
        // empty map answers without hashing.
        if self.pending.is_empty() {
            return;
        }
        if let Some(set) = self.pending.remove(prefix) {
            if let Some(group) = self.announce.get_mut(&set) {
                group.remove(prefix);
                if group.is_empty() {
                    self.announce.remove(&set);
                }
            }
        }
    }

    fn clear_pending(&mut self, prefix: &IpNet) {
        self.clear_announce(prefix);
        match prefix {
            IpNet::V4(p) if !self.withdraw_v4.is_empty() => {
                self.withdraw_v4.remove(p);
            }
            IpNet::V6(p) if !self.withdraw_v6.is_empty() => {
                self.withdraw_v6.remove(p);
            }
            _ => {}
        }
    }

    fn set_pending(&mut self, prefix: IpNet, want: Option<Arc<AttrSet>>) {
        match want {
            None => {
                self.clear_announce(&prefix);
                match prefix {
                    IpNet::V4(p) => self.withdraw_v4.insert(p),
                    IpNet::V6(p) => self.withdraw_v6.insert(p),
                };
            }
            Some(set) => {
                self.clear_pending(&prefix);
                self.announce.entry(set.clone()).or_default().insert(prefix);
                self.pending.insert(prefix, set);
            }
        }
    }

    /// Make the pending changes those that bring the peer from `sent` to `desired` as exported
    /// by `export`. Call on session establishment and after every store change.
    pub fn sync(&mut self, desired: &BTreeMap<IpNet, Route>, export: &PeerExport) -> SyncReport {
        self.sync_routes(desired.values(), export)
    }

    /// [`AdjRibOut::sync`] from the routes in prefix order.
    pub fn sync_routes<'a>(
        &mut self,
        desired: impl IntoIterator<Item = &'a Route>,
        export: &PeerExport,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        let mut target: BTreeMap<IpNet, Arc<AttrSet>> = BTreeMap::new();
        for route in desired {
            match export.export(route) {
                Ok(Some(set)) => {
                    let set = self.intern(set);
                    target.insert(route.prefix, set);
                }
                Ok(None) => {}
                Err(e) => report.skipped.push((route.prefix, e)),
            }
        }
        let gone: Vec<IpNet> = self
            .sent
            .keys()
            .filter(|p| !target.contains_key(p))
            .copied()
            .collect();
        for p in gone {
            self.set_pending(p, None);
        }
        let never_sent: Vec<IpNet> = self
            .pending
            .keys()
            .filter(|p| !target.contains_key(p) && !self.sent.contains_key(p))
            .copied()
            .collect();
        for p in never_sent {
            self.clear_pending(&p);
        }
        self.announce_sorted(target.into_iter().collect());
        self.sweep_interned();
        self.families = export.families.clone();
        self.synced = true;
        report.pending = self.pending_len();
        report
    }

    /// One prefix of the desired routes changed to `want` (`None`: gone): queue what brings
    /// the peer there, exactly as a [`AdjRibOut::sync`] with the new table would. An
    /// unexportable route is withdrawn if it was sent, and its error returned. The update
    /// group applies runs with [`AdjRibOut::update_sorted`]; this per-prefix form is the one
    /// its tests hold those runs to.
    pub fn update(
        &mut self,
        prefix: IpNet,
        want: Option<&Route>,
        export: &PeerExport,
    ) -> Result<(), ExportError> {
        let (target, result) = match want.map(|r| self.export_interned(r, export)) {
            None | Some(Ok(None)) => (None, Ok(())),
            Some(Ok(Some(set))) => (Some(set), Ok(())),
            Some(Err(e)) => (None, Err(e)),
        };
        match target {
            None => {
                if self.sent.contains_key(&prefix) {
                    self.set_pending(prefix, None);
                } else {
                    self.clear_pending(&prefix);
                }
            }
            Some(set) => {
                let told = self.sent.get(&prefix) == Some(&set);
                let queued = self.queued(&prefix, &set);
                if told && !queued {
                    self.keep_told(prefix, set);
                } else if !told && !queued {
                    self.set_pending(prefix, Some(set));
                }
            }
        }
        if self.interned.len() > 2 * self.interned_swept + 64 {
            self.sweep_interned();
        }
        result
    }

    /// Routes of the desired table that changed, ascending by prefix and without duplicates
    /// (a run of one batch of the desired log): the same pending changes as
    /// [`AdjRibOut::update`] per route, with one walk beside `sent` and the announcements
    /// queued per attribute set at once. Returns the routes that could not be exported
    /// (withdrawn if they were sent), with why.
    pub fn update_sorted(
        &mut self,
        routes: &[&Route],
        export: &PeerExport,
    ) -> Vec<(IpNet, ExportError)> {
        debug_assert!(
            routes.windows(2).all(|w| w[0].prefix < w[1].prefix),
            "not ascending"
        );
        let mut skipped = Vec::new();
        let mut run = Vec::with_capacity(routes.len());
        for route in routes {
            match self.export_interned(route, export) {
                Ok(Some(set)) => run.push((route.prefix, set)),
                // Not for this peer: gone for it (the order among distinct prefixes is free).
                Ok(None) => self.withdraw_one(route.prefix),
                Err(e) => {
                    self.withdraw_one(route.prefix);
                    skipped.push((route.prefix, e));
                }
            }
        }
        self.announce_sorted(run);
        if self.interned.len() > 2 * self.interned_swept + 64 {
            self.sweep_interned();
        }
        skipped
    }

    /// `update(prefix, None)`'s queueing.
    fn withdraw_one(&mut self, prefix: IpNet) {
        if self.sent.contains_key(&prefix) {
            self.set_pending(prefix, None);
        } else {
            self.clear_pending(&prefix);
        }
    }

    /// Each prefix (ascending, distinct) is to be announced with its set: queue it unless the
    /// peer was told exactly that (and no route refresh waits for it) or it is queued so
    /// already. What `update` does per prefix, with the queue inserts done per set.
    fn announce_sorted(&mut self, run: Vec<(IpNet, Arc<AttrSet>)>) {
        let told: Vec<bool> = self
            .sent_sorted(run.iter().map(|(p, _)| p))
            .into_iter()
            .zip(&run)
            .map(|(sent, (_, set))| sent == Some(set))
            .collect();
        // Per set (a batch mostly shares one), its prefixes in ascending order.
        let mut queue: Vec<(Arc<AttrSet>, Vec<IpNet>)> = Vec::new();
        for ((prefix, set), told) in run.into_iter().zip(told) {
            if !self.pending.is_empty() {
                match self.pending.get(&prefix) {
                    Some(queued) if *queued == set => continue,
                    Some(_) => self.clear_announce(&prefix),
                    None => {}
                }
            }
            match prefix {
                IpNet::V4(p) if !self.withdraw_v4.is_empty() => {
                    self.withdraw_v4.remove(&p);
                }
                IpNet::V6(p) if !self.withdraw_v6.is_empty() => {
                    self.withdraw_v6.remove(&p);
                }
                _ => {}
            }
            if told && (self.refresh.is_empty() || !self.refresh.contains(&prefix)) {
                continue;
            }
            match queue.iter_mut().rev().find(|(s, _)| Arc::ptr_eq(s, &set)) {
                Some((_, prefixes)) => prefixes.push(prefix),
                None => queue.push((set, vec![prefix])),
            }
        }
        for (set, prefixes) in queue {
            self.pending.reserve(prefixes.len());
            for p in &prefixes {
                self.pending.insert(*p, set.clone());
            }
            queue_sorted(self.announce.entry(set).or_default(), prefixes);
        }
    }

    /// Prefixes of the desired routes gone, ascending and without duplicates (one batch of
    /// the desired log): the same pending changes as [`AdjRibOut::update`] with `None` for
    /// each, in less time for a long run.
    pub fn withdraw_sorted(&mut self, prefixes: &[IpNet]) {
        debug_assert!(prefixes.windows(2).all(|w| w[0] < w[1]), "not ascending");
        let told = self.told_sorted(prefixes);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (p, told) in prefixes.iter().zip(told) {
            // A prefix never told has no withdrawal queued, at most an announcement.
            self.clear_announce(p);
            if told {
                match p {
                    IpNet::V4(p) => v4.push(*p),
                    IpNet::V6(p) => v6.push(*p),
                }
            }
        }
        queue_sorted(&mut self.withdraw_v4, v4);
        queue_sorted(&mut self.withdraw_v6, v6);
    }

    /// For each of `prefixes` (ascending), whether the peer was told it: one walk over the
    /// part of `sent` they span, or a search per prefix once that walk proves long (the
    /// prefixes are a sparse part of a large table).
    fn told_sorted(&self, prefixes: &[IpNet]) -> Vec<bool> {
        self.sent_sorted(prefixes.iter())
            .into_iter()
            .map(|s| s.is_some())
            .collect()
    }

    /// For each of `prefixes` (ascending), the set the peer was told it with: as
    /// [`AdjRibOut::told_sorted`], one walk or a search per prefix.
    fn sent_sorted<'a>(
        &self,
        prefixes: impl ExactSizeIterator<Item = &'a IpNet> + Clone,
    ) -> Vec<Option<&Arc<AttrSet>>> {
        let (Some(first), Some(last)) = (prefixes.clone().next(), prefixes.clone().last()) else {
            return Vec::new();
        };
        let mut steps_left = walk_budget(prefixes.len());
        let mut sent = self.sent.range(*first..=*last).peekable();
        let mut told = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            while steps_left > 0 && sent.next_if(|(s, _)| *s < p).is_some() {
                steps_left -= 1;
            }
            told.push(if steps_left > 0 {
                sent.next_if(|(s, _)| *s == p).map(|(_, set)| set)
            } else {
                self.sent.get(p)
            });
        }
        told
    }

    /// Remove `gone` (ascending, all in `sent`: just packed into a withdrawal) from `sent`:
    /// by cutting the tree when they are all of it from one end on, by one walk over the part
    /// of the tree they span when that part is mostly them (a count of it, up to the budget,
    /// tells), else by a search per prefix.
    fn forget_sent(&mut self, gone: impl ExactSizeIterator<Item = IpNet> + Clone) {
        let (Some(first), Some(last)) = (gone.clone().next(), gone.clone().last()) else {
            return;
        };
        if !self.refresh.is_empty() {
            for p in gone.clone() {
                self.refresh.remove(&p);
            }
        }
        let budget = walk_budget(gone.len());
        let spanned = self.sent.range(first..=last).take(budget + 1).count();
        let at_head = self
            .sent
            .first_key_value()
            .is_some_and(|(p, _)| *p == first);
        let at_tail = self.sent.last_key_value().is_some_and(|(p, _)| *p == last);
        if spanned == gone.len() && (at_head || at_tail) {
            // The run is all of `sent` from one end to `last` or from `first` (what a large
            // withdrawal packs, UPDATE after UPDATE): cut the tree there instead of removing
            // entry by entry.
            if at_head {
                let mut keep = self.sent.split_off(&last);
                keep.pop_first();
                self.sent = keep;
            } else {
                self.sent.split_off(&first);
            }
        } else if spanned <= budget {
            let mut wanted = gone.peekable();
            self.sent
                .extract_if(first..=last, |p, _| take_if_next(&mut wanted, p))
                .for_each(drop);
        } else {
            for p in gone {
                self.sent.remove(&p);
            }
        }
    }

    /// Route refresh (RFC 2918): queue every route the peer was told again.
    pub fn mark_all_for_refresh(&mut self) {
        self.mark_for_refresh(None);
    }

    /// Route refresh of one family (the ROUTE-REFRESH message names an AFI/SAFI).
    pub fn mark_family_for_refresh(&mut self, family: Family) {
        self.mark_for_refresh(Some(family));
    }

    fn mark_for_refresh(&mut self, family: Option<Family>) {
        // Also those with a change pending: should it be undone before it is sent, the
        // refresh still sends them (`keep_told`).
        let asked: Vec<IpNet> = self
            .sent
            .iter()
            .filter(|(_, s)| family.is_none_or(|f| s.family == f))
            .map(|(p, _)| *p)
            .collect();
        self.refresh.extend(asked);
        let again: Vec<(IpNet, Arc<AttrSet>)> = self
            .sent
            .iter()
            .filter(|(p, s)| !self.is_pending(p) && family.is_none_or(|f| s.family == f))
            .map(|(p, s)| (*p, s.clone()))
            .collect();
        for (p, s) in again {
            self.set_pending(p, Some(s));
        }
    }

    /// True once the first `sync` ran and everything it queued has been produced.
    pub fn initial_sync_complete(&self) -> bool {
        self.synced && !self.has_pending()
    }

    /// The families whose End-of-RIB is due now (each once per session); the driver sends
    /// `Update::end_of_rib(family)` for each, after the messages already produced.
    pub fn take_end_of_rib(&mut self) -> Vec<Family> {
        if !self.initial_sync_complete() {
            return Vec::new();
        }
        let due: Vec<Family> = self
            .families
            .iter()
            .filter(|f| !self.end_of_rib_sent.contains(f))
            .copied()
            .collect();
        self.end_of_rib_sent.extend(due.iter().copied());
        due
    }

    /// Pop pending changes as UPDATEs of at most `ctx.max_message_len()` octets each, until
    /// their total reaches `max_bytes` or nothing is pending. Produced changes count as sent.
    pub fn next_messages(&mut self, ctx: &Context, max_bytes: usize) -> Vec<Message> {
        let max_len = ctx.max_message_len();
        let mut out = Vec::new();
        let mut produced = 0;
        while produced < max_bytes {
            let update = if !self.withdraw_v4.is_empty() {
                self.pack_withdraw_v4(max_len)
            } else if !self.withdraw_v6.is_empty() {
                self.pack_withdraw_v6(max_len)
            } else if let Some(set) = self.announce.keys().next().cloned() {
                match self.pack_announce(&set, ctx, max_len) {
                    Some(u) => u,
                    None => continue,
                }
            } else {
                break;
            };
            let msg = Message::Update(update);
            produced += msg.encoded_len(ctx);
            debug_assert!(msg.encoded_len(ctx) <= max_len);
            out.push(msg);
        }
        out
    }

    fn pack_withdraw_v4(&mut self, max_len: usize) -> Update {
        let mut len = UPDATE_FIXED;
        let mut stop = None;
        for p in &self.withdraw_v4 {
            if len + ipv4_len(p) > max_len {
                stop = Some(*p);
                break;
            }
            len += ipv4_len(p);
        }
        // The packed prefixes are the queue's head: split it off whole (no search per prefix).
        let rest = stop.map_or_else(BTreeSet::new, |p| self.withdraw_v4.split_off(&p));
        let withdrawn: Vec<Ipv4Net> = std::mem::replace(&mut self.withdraw_v4, rest)
            .into_iter()
            .collect();
        self.forget_sent(withdrawn.iter().map(|p| IpNet::V4(*p)));
        Update {
            withdrawn,
            ..Update::default()
        }
    }

    fn pack_withdraw_v6(&mut self, max_len: usize) -> Update {
        let mut value = 3;
        let mut stop = None;
        for p in &self.withdraw_v6 {
            let v = value + ipv6_len(p);
            if UPDATE_FIXED + attr_header(v) + v > max_len {
                stop = Some(*p);
                break;
            }
            value = v;
        }
        let rest = stop.map_or_else(BTreeSet::new, |p| self.withdraw_v6.split_off(&p));
        let prefixes: Vec<Ipv6Net> = std::mem::replace(&mut self.withdraw_v6, rest)
            .into_iter()
            .collect();
        self.forget_sent(prefixes.iter().map(|p| IpNet::V6(*p)));
        let family = Family::Ipv6Unicast;
        Update {
            attributes: vec![PathAttribute::new(AttributeValue::MpUnreach(MpUnreach {
                afi: family.afi(),
                safi: family.safi(),
                withdrawn: MpNlri::Ipv6(prefixes),
            }))],
            ..Update::default()
        }
    }

    /// One UPDATE of `set`'s pending prefixes; `None` if not even one prefix fits (cannot
    /// happen with validated routes: the prefixes are dropped rather than looping forever).
    fn pack_announce(
        &mut self,
        set: &Arc<AttrSet>,
        ctx: &Context,
        max_len: usize,
    ) -> Option<Update> {
        let mut group = self.announce.remove(set)?;
        let mut taken: Vec<IpNet> = Vec::new();
        // The first prefix that did not fit: it and all after it stay queued.
        let mut stop = None;
        let update = match set.family {
            Family::Ipv4Unicast => {
                let attributes = set.path_attributes(Vec::new());
                let mut len = UPDATE_FIXED
                    + attributes
                        .iter()
                        .map(|a| a.encoded_len(ctx.four_octet_as))
                        .sum::<usize>();
                let mut nlri = Vec::new();
                for p in &group {
                    let IpNet::V4(v4) = p else { continue };
                    if len + ipv4_len(v4) > max_len {
                        stop = Some(*p);
                        break;
                    }
                    len += ipv4_len(v4);
                    nlri.push(*v4);
                    taken.push(*p);
                }
                Update {
                    attributes,
                    nlri,
                    ..Update::default()
                }
            }
            Family::Ipv6Unicast => {
                let mut attributes = set.path_attributes(Vec::new());
                let (mut mp_value, others) =
                    attributes.iter().fold((0, 0), |(mp, o), a| match &a.value {
                        AttributeValue::MpReach(m) => (m.value_len(), o),
                        _ => (mp, o + a.encoded_len(ctx.four_octet_as)),
                    });
                let mut nlri = Vec::new();
                for p in &group {
                    let IpNet::V6(v6) = p else { continue };
                    let v = mp_value + ipv6_len(v6);
                    if UPDATE_FIXED + others + attr_header(v) + v > max_len {
                        stop = Some(*p);
                        break;
                    }
                    mp_value = v;
                    nlri.push(*v6);
                    taken.push(*p);
                }
                for a in &mut attributes {
                    if let AttributeValue::MpReach(m) = &mut a.value {
                        m.nlri = MpNlri::Ipv6(std::mem::take(&mut nlri));
                    }
                }
                Update {
                    attributes,
                    ..Update::default()
                }
            }
        };
        let rest = stop.map_or_else(BTreeSet::new, |p| group.split_off(&p));
        for p in &taken {
            self.pending.remove(p);
        }
        if walk_beats_search(taken.len(), self.sent.len()) {
            // Built in one pass (the prefixes are ascending) and merged in one walk.
            let mut told: BTreeMap<IpNet, Arc<AttrSet>> =
                taken.iter().map(|p| (*p, set.clone())).collect();
            self.sent.append(&mut told);
        } else {
            for p in &taken {
                self.sent.insert(*p, set.clone());
            }
        }
        if !self.refresh.is_empty() {
            for p in &taken {
                self.refresh.remove(p);
            }
        }
        // Prefixes of another family under this set cannot happen (a set has one family);
        // should one be there, it can never be packed with it, so it leaves the queue.
        debug_assert_eq!(group.len(), taken.len(), "{set:?} queues another family");
        if group.len() != taken.len() {
            for p in group.iter().filter(|p| taken.binary_search(p).is_err()) {
                self.pending.remove(p);
            }
        }
        debug_assert!(
            !taken.is_empty(),
            "attribute set {set:?} leaves no room for a prefix"
        );
        if taken.is_empty() {
            // An attribute set too large for one prefix: drop its prefixes from the queue.
            for p in &rest {
                self.pending.remove(p);
            }
            return None;
        }
        if !rest.is_empty() {
            self.announce.insert(set.clone(), rest);
        }
        Some(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speaker::DEFAULT_LOCAL_PREF;
    use crate::wire::Community;

    fn ebgp() -> PeerExport {
        PeerExport {
            local_asn: 65100,
            peer_asn: 65001,
            local_v4: Some("192.0.2.1".parse().unwrap()),
            local_v6: Some("2001:db8::1".parse().unwrap()),
            local_v6_link_local: Some("fe80::1".parse().unwrap()),
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        }
    }

    fn route(p: &str) -> Route {
        Route::new(p.parse().unwrap()).unwrap()
    }

    fn desired(routes: &[Route]) -> BTreeMap<IpNet, Route> {
        routes.iter().map(|r| (r.prefix, r.clone())).collect()
    }

    fn drain(rib: &mut AdjRibOut, ctx: &Context) -> Vec<Message> {
        rib.next_messages(ctx, usize::MAX)
    }

    fn hex_of(msgs: &[Message], ctx: &Context) -> Vec<String> {
        msgs.iter().map(|m| hex::encode(m.to_bytes(ctx))).collect()
    }

    const MARKER: &str = "ffffffffffffffffffffffffffffffff";

    #[test]
    fn ipv4_announce_and_withdraw_exact_bytes() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        let d = desired(&[route("198.51.100.0/24"), route("203.0.113.0/24")]);
        rib.sync(&d, &ebgp());
        let msgs = drain(&mut rib, &ctx);
        // 19 header + 2 + 2 + 20 attributes + 8 NLRI = 51 octets.
        let want = format!(
            "{MARKER}0033{}",
            concat!(
                "02",                  // UPDATE
                "0000",                // no withdrawn routes
                "0014",                // 20 octets of attributes
                "40010100",            // ORIGIN IGP
                "4002060201 0000fe4c", // AS_PATH: AS_SEQUENCE of 1: 65100
                "400304c0000201",      // NEXT_HOP 192.0.2.1
                "18c63364",            // 198.51.100.0/24
                "18cb0071",            // 203.0.113.0/24
            )
            .replace(' ', "")
        );
        assert_eq!(hex_of(&msgs, &ctx), vec![want]);
        assert_eq!(rib.sent().len(), 2);
        assert!(!rib.has_pending());

        rib.sync(&BTreeMap::new(), &ebgp());
        let msgs = drain(&mut rib, &ctx);
        let want = format!("{MARKER}001f02000818c6336418cb00710000");
        assert_eq!(hex_of(&msgs, &ctx), vec![want]);
        assert!(rib.sent().is_empty());
    }

    #[test]
    fn ipv6_goes_in_mp_reach_with_link_local_exact_bytes() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        let d = desired(&[route("2001:db8:1::/48")]);
        rib.sync(&d, &ebgp());
        let msgs = drain(&mut rib, &ctx);
        let want = format!(
            "{MARKER}0053{}",
            concat!(
                "02",
                "0000",
                "003c",                             // 60 octets of attributes
                "40010100",                         // ORIGIN IGP
                "40020602010000fe4c",               // AS_PATH 65100
                "800e2c",                           // MP_REACH_NLRI, 44 octets
                "000201",                           // AFI 2 SAFI 1
                "20",                               // next hop length 32
                "20010db8000000000000000000000001", // 2001:db8::1
                "fe800000000000000000000000000001", // fe80::1
                "00",                               // reserved
                "3020010db80001",                   // 2001:db8:1::/48
            )
        );
        assert_eq!(hex_of(&msgs, &ctx), vec![want]);

        rib.sync(&BTreeMap::new(), &ebgp());
        let msgs = drain(&mut rib, &ctx);
        // MP_UNREACH_NLRI: AFI 2, SAFI 1, the prefix; 19 + 4 + 13 = 36 octets.
        let want = format!(
            "{MARKER}0024{}",
            concat!("02", "0000", "000d", "800f0a", "000201", "3020010db80001")
        );
        assert_eq!(hex_of(&msgs, &ctx), vec![want]);
    }

    #[test]
    fn withdraw_of_unknown_and_announce_then_withdraw_produce_nothing() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        rib.sync(&BTreeMap::new(), &ebgp());
        assert!(drain(&mut rib, &ctx).is_empty());
        rib.sync(&desired(&[route("198.51.100.0/24")]), &ebgp());
        assert_eq!(rib.pending_len(), 1);
        rib.sync(&BTreeMap::new(), &ebgp());
        assert_eq!(rib.pending_len(), 0);
        assert!(drain(&mut rib, &ctx).is_empty());
        assert_eq!(rib.attribute_sets(), 0);
    }

    #[test]
    fn unchanged_routes_are_not_resent_and_changed_ones_are_reannounced() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        let a = route("198.51.100.0/24");
        let b = route("203.0.113.0/24");
        rib.sync(&desired(&[a.clone(), b.clone()]), &ebgp());
        drain(&mut rib, &ctx);
        assert_eq!(
            rib.sync(&desired(&[a.clone(), b.clone()]), &ebgp()).pending,
            0
        );
        let mut b2 = b.clone();
        b2.attrs.communities = vec![Community::new(65001, 7)];
        rib.sync(&desired(&[a, b2]), &ebgp());
        let msgs = drain(&mut rib, &ctx);
        assert_eq!(msgs.len(), 1);
        let Message::Update(u) = &msgs[0] else {
            panic!()
        };
        assert!(u.withdrawn.is_empty());
        assert_eq!(u.nlri, vec!["203.0.113.0/24".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(u.communities(), &[Community::new(65001, 7)]);
        // Two distinct sets now, each interned once.
        assert_eq!(rib.attribute_sets(), 2);
        let sets: Vec<_> = rib.sent().values().collect();
        assert!(!Arc::ptr_eq(sets[0], sets[1]));
    }

    /// `update` reuses the previous route's set only for a route that exports the same: the
    /// same attributes, the same family, the same peer settings.
    #[test]
    fn update_reuses_the_last_set_only_for_the_same_attributes() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        rib.sync(&BTreeMap::new(), &ebgp());
        let a = route("198.51.100.0/24");
        let b = route("203.0.113.0/24");
        let mut c = route("192.0.2.0/24");
        c.attrs.communities = vec![Community::new(65001, 7)];
        let v6 = route("2001:db8:1::/48");
        for r in [&a, &b, &c, &v6] {
            rib.update(r.prefix, Some(r), &ebgp()).unwrap();
        }
        let mut ibgp = ebgp();
        ibgp.peer_asn = ibgp.local_asn;
        let d = route("198.51.100.128/25");
        rib.update(d.prefix, Some(&d), &ibgp).unwrap();
        drain(&mut rib, &ctx);
        let sent = rib.sent();
        let set = |p: &str| sent[&p.parse::<IpNet>().unwrap()].clone();
        assert!(Arc::ptr_eq(&set("198.51.100.0/24"), &set("203.0.113.0/24")));
        assert_eq!(
            set("192.0.2.0/24").attrs.communities,
            vec![Community::new(65001, 7)]
        );
        assert!(set("198.51.100.0/24").attrs.communities.is_empty());
        assert_eq!(set("2001:db8:1::/48").family, Family::Ipv6Unicast);
        assert_eq!(
            set("198.51.100.128/25").attrs.local_pref,
            Some(DEFAULT_LOCAL_PREF)
        );
        assert_eq!(set("198.51.100.0/24").attrs.local_pref, None);
        assert_eq!(rib.attribute_sets(), 4);
    }

    #[test]
    fn identical_sets_share_one_arc_and_group_into_one_update() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        let mut with_med = route("192.0.2.128/25");
        with_med.attrs.med = Some(10);
        let routes = [
            route("198.51.100.0/24"),
            with_med,
            route("203.0.113.0/24"),
            route("2001:db8:1::/48"),
            route("2001:db8:2::/48"),
        ];
        rib.sync(&desired(&routes), &ebgp());
        assert_eq!(rib.attribute_sets(), 3);
        let msgs = drain(&mut rib, &ctx);
        assert_eq!(msgs.len(), 3);
        let updates: Vec<&Update> = msgs
            .iter()
            .map(|m| match m {
                Message::Update(u) => u,
                _ => panic!(),
            })
            .collect();
        // AttrSet order: IPv4 without MED, IPv4 with MED, then IPv6.
        assert_eq!(updates[0].nlri.len(), 2);
        assert_eq!(updates[1].nlri.len(), 1);
        assert_eq!(updates[2].mp_reach().unwrap().nlri.strings().len(), 2);
        let sent = rib.sent();
        let a = &sent[&"198.51.100.0/24".parse::<IpNet>().unwrap()];
        let b = &sent[&"203.0.113.0/24".parse::<IpNet>().unwrap()];
        assert!(Arc::ptr_eq(a, b));
    }

    /// Decode every message back, check its size, and collect the announced prefixes.
    fn announced(msgs: &[Message], ctx: &Context) -> Vec<IpNet> {
        let mut seen = Vec::new();
        for m in msgs {
            let bytes = m.to_bytes(ctx);
            assert!(
                bytes.len() <= ctx.max_message_len(),
                "{} octets",
                bytes.len()
            );
            let Message::Update(u) = Message::decode(&bytes, ctx).unwrap() else {
                panic!()
            };
            assert!(u.issues.is_empty(), "{:?}", u.issues);
            seen.extend(u.nlri.iter().map(|p| IpNet::V4(*p)));
            if let Some(r) = u.mp_reach() {
                if let MpNlri::Ipv6(v) = &r.nlri {
                    seen.extend(v.iter().map(|p| IpNet::V6(*p)));
                }
            }
        }
        seen
    }

    fn many_v6(n: u32) -> Vec<Route> {
        (0..n)
            .map(|i| {
                let p = Ipv6Net::new(
                    std::net::Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0),
                    64,
                )
                .unwrap();
                Route::new(IpNet::V6(p)).unwrap()
            })
            .collect()
    }

    /// A sorted run through `update_sorted` leaves what `update` per route does: among the
    /// routes, ones the peer has as they are, ones changed, ones new, ones queued with the
    /// same or another set, ones queued for withdrawal, ones a route refresh waits for, and
    /// ones this peer cannot take (IPv4 with no IPv4 next hop); a dense run and a sparse one.
    #[test]
    fn update_sorted_queues_what_update_per_route_would() {
        let ctx = Context::default();
        let told: BTreeMap<IpNet, Route> = desired(&many_v6(3_000));
        let with_med = |r: &Route, med: u32| {
            let mut r = r.clone();
            r.attrs.med = Some(med);
            r
        };
        let all: Vec<&Route> = told.values().collect();
        let mut no_v4 = ebgp();
        no_v4.local_v4 = None;
        for (name, step) in [("dense", 1), ("sparse", 37)] {
            let mut base = AdjRibOut::new();
            base.sync(&told, &ebgp());
            drain(&mut base, &ctx);
            // Queued: 200 with another set, 100 for withdrawal; a route refresh of the first
            // 100, of which 50 then changed to another set.
            base.mark_all_for_refresh();
            for r in all.iter().skip(100) {
                base.refresh.remove(&r.prefix);
                base.clear_pending(&r.prefix);
            }
            for r in all
                .iter()
                .skip(50)
                .take(50)
                .chain(all.iter().skip(500).take(200))
            {
                base.update(r.prefix, Some(&with_med(r, 9)), &ebgp())
                    .unwrap();
            }
            for r in all.iter().skip(800).take(100) {
                base.update(r.prefix, None, &ebgp()).unwrap();
            }
            let mut run: Vec<Route> = Vec::new();
            for (i, r) in all.iter().enumerate().step_by(step) {
                run.push(match i % 5 {
                    0 => (*r).clone(),
                    1 => with_med(r, 7),
                    2 => with_med(r, 9),
                    _ => (*r).clone(),
                });
            }
            run.extend(many_v6(3_400).split_off(3_100)); // new prefixes
            run.push(route("198.51.100.0/24"));
            run.sort_by_key(|r| r.prefix);
            for export in [ebgp(), no_v4.clone()] {
                let mut by_run = base.clone();
                let mut by_route = base.clone();
                let mut skipped_run: Vec<IpNet> = by_run
                    .update_sorted(&run.iter().collect::<Vec<_>>(), &export)
                    .into_iter()
                    .map(|(p, _)| p)
                    .collect();
                let mut skipped_route = Vec::new();
                for r in &run {
                    if by_route.update(r.prefix, Some(r), &export).is_err() {
                        skipped_route.push(r.prefix);
                    }
                }
                skipped_run.sort();
                assert_eq!(skipped_run, skipped_route, "{name}");
                assert_eq!(by_run.pending_len(), by_route.pending_len(), "{name}");
                assert_eq!(by_run.pending, by_route.pending, "{name}");
                assert_eq!(by_run.announce, by_route.announce, "{name}");
                assert_eq!(
                    drain(&mut by_run, &ctx),
                    drain(&mut by_route, &ctx),
                    "{name}"
                );
                assert_eq!(by_run.sent(), by_route.sent(), "{name}");
            }
        }
    }

    /// A withdrawal of one prefix leaves `sent` empty, so announcing it again sends it again.
    #[test]
    fn a_single_withdrawal_forgets_the_prefix_and_it_can_come_back() {
        let ctx = Context::default();
        for p in ["198.51.100.0/24", "2001:db8:1::/48"] {
            let r = route(p);
            let mut rib = AdjRibOut::new();
            rib.sync(&BTreeMap::new(), &ebgp());
            for round in 0..3 {
                rib.update(r.prefix, Some(&r), &ebgp()).unwrap();
                assert_eq!(
                    announced(&drain(&mut rib, &ctx), &ctx),
                    vec![r.prefix],
                    "{p} {round}"
                );
                rib.withdraw_sorted(&[r.prefix]);
                assert_eq!(drain(&mut rib, &ctx).len(), 1, "{p} {round}");
                assert!(rib.is_empty(), "{p} {round}: still in sent");
            }
        }
    }

    /// A sorted run through `withdraw_sorted` leaves what `update(p, None)` per prefix does,
    /// for a dense run (one walk) and a sparse one (the walks give up and search), with
    /// prefixes never told and ones whose announcement is still queued among them.
    #[test]
    fn withdraw_sorted_queues_what_update_per_prefix_would() {
        let ctx = Context::default();
        let mut table: Vec<Route> = many_v6(2_000);
        table.extend(
            (0..200u32).map(|i| route(&format!("198.51.{}.{}/32", 100 + i / 100, i % 100))),
        );
        let told = desired(&table);
        let queued: Vec<Route> = many_v6(2_100).split_off(2_000);
        let cases: Vec<(&str, Vec<IpNet>)> = vec![
            ("dense", told.keys().take(1_500).copied().collect()),
            (
                "dense at the end",
                told.keys().skip(1_700).copied().collect(),
            ),
            ("all", told.keys().copied().collect()),
            ("sparse", told.keys().step_by(97).copied().collect()),
            (
                "with untold and queued",
                told.keys()
                    .skip(150)
                    .take(300)
                    .copied()
                    .chain(queued.iter().map(|r| r.prefix))
                    .chain(["2001:db8:ffff::/48".parse().unwrap()])
                    .collect(),
            ),
        ];
        for (name, mut gone) in cases {
            gone.sort();
            let mut by_run = AdjRibOut::new();
            by_run.sync(&told, &ebgp());
            drain(&mut by_run, &ctx);
            for r in &queued {
                by_run.update(r.prefix, Some(r), &ebgp()).unwrap();
            }
            let mut by_prefix = by_run.clone();
            by_run.withdraw_sorted(&gone);
            for p in &gone {
                by_prefix.update(*p, None, &ebgp()).unwrap();
            }
            assert_eq!(by_run.pending_len(), by_prefix.pending_len(), "{name}");
            assert_eq!(
                drain(&mut by_run, &ctx),
                drain(&mut by_prefix, &ctx),
                "{name}"
            );
            assert_eq!(by_run.sent(), by_prefix.sent(), "{name}");
            let left: BTreeSet<IpNet> = told
                .keys()
                .copied()
                .chain(queued.iter().map(|r| r.prefix))
                .filter(|p| !gone.contains(p))
                .collect();
            let sent: BTreeSet<IpNet> = by_run.sent().keys().copied().collect();
            assert_eq!(sent, left, "{name}");
        }
    }

    #[test]
    fn ten_thousand_prefixes_pack_into_the_fewest_full_updates() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        let routes = many_v6(10_000);
        rib.sync(&desired(&routes), &ebgp());
        let msgs = drain(&mut rib, &ctx);
        // Fixed part: 19 header + 4 lengths + ORIGIN 4 + AS_PATH 9 + MP_REACH header 4
        // (extended length) + AFI/SAFI/next hop length 4 + next hop 32 + reserved 1 = 77.
        // Each /64 takes 9 octets: (4096 - 77) / 9 = 446 prefixes per UPDATE.
        let per = (4096 - 77) / 9;
        assert_eq!(per, 446);
        assert_eq!(msgs.len(), 10_000_usize.div_ceil(per));
        for m in &msgs[..msgs.len() - 1] {
            // Full: one more /64 would not fit.
            assert!(m.encoded_len(&ctx) + 9 > 4096, "{}", m.encoded_len(&ctx));
        }
        let mut seen = announced(&msgs, &ctx);
        assert_eq!(seen.len(), 10_000);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10_000);
        assert_eq!(rib.sent().len(), 10_000);

        // Withdrawing them all: MP_UNREACH, fixed part 19 + 4 + 4 + 3 = 30.
        rib.sync(&BTreeMap::new(), &ebgp());
        let msgs = drain(&mut rib, &ctx);
        assert_eq!(msgs.len(), 10_000_usize.div_ceil((4096 - 30) / 9));
        let withdrawn: usize = msgs
            .iter()
            .map(|m| match m {
                Message::Update(u) => u.mp_unreach().unwrap().withdrawn.strings().len(),
                _ => panic!(),
            })
            .sum();
        assert_eq!(withdrawn, 10_000);
        assert!(rib.sent().is_empty());
    }

    #[test]
    fn ipv4_of_mixed_lengths_packs_within_the_limit() {
        // Every prefix of length 24-32 inside the three documentation /24s: 3 x 511.
        let mut routes = Vec::new();
        for base in ["192.0.2.0", "198.51.100.0", "203.0.113.0"] {
            let base: std::net::Ipv4Addr = base.parse().unwrap();
            for len in 24..=32u8 {
                let net = Ipv4Net::new(base, 24).unwrap();
                for sub in net.subnets(len).unwrap() {
                    routes.push(Route::new(IpNet::V4(sub)).unwrap());
                }
            }
        }
        assert_eq!(routes.len(), 1533);
        for extended in [false, true] {
            let ctx = Context {
                extended_message: extended,
                ..Context::default()
            };
            let mut rib = AdjRibOut::new();
            rib.sync(&desired(&routes), &ebgp());
            let msgs = drain(&mut rib, &ctx);
            let nlri_octets: usize = routes
                .iter()
                .map(|r| match r.prefix {
                    IpNet::V4(p) => ipv4_len(&p),
                    _ => 0,
                })
                .sum();
            // 19 + 4 + ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 = 43 fixed; prefixes are 4-5 octets, so
            // greedy packing wastes at most 4 octets per message.
            let room = ctx.max_message_len() - 43;
            assert!(
                msgs.len() <= nlri_octets.div_ceil(room - 4),
                "{}",
                msgs.len()
            );
            let mut seen = announced(&msgs, &ctx);
            assert_eq!(seen.len(), 1533);
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 1533);
            if extended {
                assert_eq!(msgs.len(), 1);
            }
        }
    }

    #[test]
    fn budget_bounds_each_call_and_loses_nothing() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        rib.sync(&desired(&many_v6(10_000)), &ebgp());
        let mut all = Vec::new();
        let mut calls = 0;
        loop {
            let msgs = rib.next_messages(&ctx, 3 * 4096);
            if msgs.is_empty() {
                break;
            }
            calls += 1;
            let total: usize = msgs.iter().map(|m| m.encoded_len(&ctx)).sum();
            assert!(total < 3 * 4096 + 4096, "{total}");
            assert!(msgs.len() <= 4);
            all.extend(msgs);
        }
        assert!(calls >= 6, "{calls}");
        assert_eq!(all.len(), 23);
        assert_eq!(announced(&all, &ctx).len(), 10_000);
        assert!(rib.next_messages(&ctx, 0).is_empty());
    }

    #[test]
    fn route_refresh_resends_everything() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        let routes = [
            route("198.51.100.0/24"),
            route("203.0.113.0/24"),
            route("2001:db8:1::/48"),
        ];
        rib.sync(&desired(&routes), &ebgp());
        let first = drain(&mut rib, &ctx);
        assert!(drain(&mut rib, &ctx).is_empty());
        rib.mark_all_for_refresh();
        // A sync with nothing changed keeps the queued refresh.
        rib.sync(&desired(&routes), &ebgp());
        assert_eq!(drain(&mut rib, &ctx), first);
        rib.mark_family_for_refresh(Family::Ipv6Unicast);
        assert_eq!(drain(&mut rib, &ctx), first[1..]);
        assert_eq!(rib.sent().len(), 3);
    }

    /// A refresh asked for a route; before it went out the route was withdrawn and announced
    /// again as it was: the peer still gets it again (found in review of 0156692).
    #[test]
    fn a_refresh_survives_a_withdraw_and_reannounce_before_it_is_sent() {
        let ctx = Context::default();
        let r = route("198.51.100.0/24");
        let mut rib = AdjRibOut::new();
        rib.sync(&desired(std::slice::from_ref(&r)), &ebgp());
        drain(&mut rib, &ctx);
        rib.mark_all_for_refresh();
        rib.withdraw_sorted(&[r.prefix]);
        rib.update(r.prefix, Some(&r), &ebgp()).unwrap();
        assert_eq!(announced(&drain(&mut rib, &ctx), &ctx), vec![r.prefix]);
        // Sent once: a later change back and forth is no refresh any more.
        rib.withdraw_sorted(&[r.prefix]);
        rib.update(r.prefix, Some(&r), &ebgp()).unwrap();
        assert!(drain(&mut rib, &ctx).is_empty());
    }

    #[test]
    fn end_of_rib_is_due_once_after_the_initial_sync() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        assert!(rib.take_end_of_rib().is_empty());
        rib.sync(&desired(&[route("198.51.100.0/24")]), &ebgp());
        assert!(!rib.initial_sync_complete());
        assert!(rib.take_end_of_rib().is_empty());
        drain(&mut rib, &ctx);
        assert!(rib.initial_sync_complete());
        assert_eq!(
            rib.take_end_of_rib(),
            vec![Family::Ipv4Unicast, Family::Ipv6Unicast]
        );
        assert!(rib.take_end_of_rib().is_empty());
        rib.reset();
        rib.sync(&BTreeMap::new(), &ebgp());
        assert_eq!(rib.take_end_of_rib().len(), 2);
    }

    #[test]
    fn update_per_prefix_queues_what_a_full_sync_would() {
        let ctx = Context::default();
        let mut with_med = route("203.0.113.0/24");
        with_med.attrs.med = Some(3);
        let steps: Vec<(IpNet, Option<Route>)> = vec![
            (
                "198.51.100.0/24".parse().unwrap(),
                Some(route("198.51.100.0/24")),
            ),
            (
                "203.0.113.0/24".parse().unwrap(),
                Some(route("203.0.113.0/24")),
            ),
            (
                "2001:db8:1::/48".parse().unwrap(),
                Some(route("2001:db8:1::/48")),
            ),
            // Changed before anything was sent: only the last intent counts.
            ("203.0.113.0/24".parse().unwrap(), Some(with_med.clone())),
            ("2001:db8:1::/48".parse().unwrap(), None),
        ];
        let mut table = BTreeMap::new();
        let mut by_sync = AdjRibOut::new();
        let mut by_update = AdjRibOut::new();
        by_sync.sync(&table, &ebgp());
        by_update.sync(&table, &ebgp());
        for (i, (p, r)) in steps.iter().enumerate() {
            match r {
                Some(r) => table.insert(*p, r.clone()),
                None => table.remove(p),
            };
            by_sync.sync(&table, &ebgp());
            by_update.update(*p, r.as_ref(), &ebgp()).unwrap();
            assert_eq!(by_sync.pending_len(), by_update.pending_len(), "step {i}");
            if i == 2 {
                // Send what is queued, so later steps change routes the peer has.
                assert_eq!(drain(&mut by_sync, &ctx), drain(&mut by_update, &ctx));
            }
        }
        assert_eq!(drain(&mut by_sync, &ctx), drain(&mut by_update, &ctx));
        assert_eq!(by_sync.sent(), by_update.sent());
        // Withdraw of a prefix never sent queues nothing; of a sent one, a withdrawal.
        by_update
            .update("192.0.2.0/24".parse().unwrap(), None, &ebgp())
            .unwrap();
        assert!(!by_update.has_pending());
        by_update
            .update("198.51.100.0/24".parse().unwrap(), None, &ebgp())
            .unwrap();
        let msgs = drain(&mut by_update, &ctx);
        let Message::Update(u) = &msgs[0] else {
            panic!()
        };
        assert_eq!(
            u.withdrawn,
            vec!["198.51.100.0/24".parse::<Ipv4Net>().unwrap()]
        );
        // An unexportable route is an error and queues nothing new.
        let mut no_v4 = ebgp();
        no_v4.local_v4 = None;
        let r = route("192.0.2.0/24");
        assert!(by_update.update(r.prefix, Some(&r), &no_v4).is_err());
        assert!(!by_update.has_pending());
    }

    #[test]
    fn unexportable_routes_are_reported_and_withdrawn_if_sent() {
        let ctx = Context::default();
        let mut rib = AdjRibOut::new();
        let d = desired(&[route("198.51.100.0/24")]);
        rib.sync(&d, &ebgp());
        drain(&mut rib, &ctx);
        let mut no_v4 = ebgp();
        no_v4.local_v4 = None;
        let report = rib.sync(&d, &no_v4);
        assert_eq!(report.skipped.len(), 1);
        let msgs = drain(&mut rib, &ctx);
        let Message::Update(u) = &msgs[0] else {
            panic!()
        };
        assert_eq!(u.withdrawn.len(), 1);
    }
}
