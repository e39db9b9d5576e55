//! [`UpdateGroups`]: sessions whose UPDATEs would be byte-identical share one Adj-RIB-Out and
//! one encoding of every message (`bytes::Bytes`, reference-counted), instead of each session
//! exporting, packing and encoding the same routes again.
//!
//! Contract:
//! - Grouping: two members share a group only if their [`GroupKey`]s are equal: the export
//!   settings ([`PeerExport::group_key`]: local addresses and next hops, local ASN, iBGP or
//!   eBGP, negotiated families) and the encoding context (4-octet AS, Extended Message). Ferry
//!   negotiates no ADD-PATH, so no key carries it.
//! - A group holds an [`AdjRibOut`] (all the [`AdjRibOut`] rules hold per group: only the
//!   latest intent per prefix is sent, withdrawals first, packing by attribute set up to the
//!   maximum message length) and a log of produced messages, each encoded once. Each member
//!   has a cursor into the log; [`UpdateGroups::pull`] hands it the next messages (clones of
//!   the same `Bytes`) up to a byte budget. Messages are produced only when a member asks and
//!   has taken everything before, at most `Limits::produce` octets per call; a message leaves
//!   the log once every member took it.
//! - Flow control: a member that is slow does not hold the others back (they keep pulling and
//!   producing). Once it lags more than `Limits::lag` octets behind the newest message it is
//!   split off into a group of its own: a copy of the group's Adj-RIB-Out and the messages it
//!   had not taken yet (shared, not re-encoded). So a group's log never exceeds `lag` plus two
//!   productions (`produce` plus one message each), and a split member's log never grows
//!   beyond what it had.
//! - Joining: a new session joins a group with its key whose log still holds everything since
//!   the group began (it takes it all from the start: the full table, then End-of-RIB);
//!   otherwise it gets a group of its own with a full sync.
//! - Merging back: a group whose members took everything, with nothing pending and its
//!   End-of-RIB produced, moves its members into another group with the same key that is at
//!   the same desired-log position with nothing pending: both have then told their members
//!   the same routes, so the moved members continue at the end of the other group's log.
//! - End-of-RIB (RFC 4724 §2): a group produces it once, after its initial sync; every member
//!   takes it from the log (members that join later from the start of the log, too), so each
//!   session gets it exactly once, after its full table.
//! - Route refresh (RFC 2918 §4): [`UpdateGroups::refresh`] splits the member off (if it
//!   shares its group) and queues its routes of that family again.
//! - Desired routes come from a [`DesiredLog`]: a group applies only the changes after the
//!   log position it reached, or resynchronises fully if the log no longer reaches back. It
//!   applies at most `Limits::catch_up` changes per [`UpdateGroups::pull`] (per 4,096 octets
//!   of maximum message length: 16 times as many with extended messages), so the first
//!   UPDATEs of a large batch are on the wire while the rest is still being applied (a peer
//!   such as FRR starts on them at once) instead of after the whole batch. So "only the
//!   latest intent" holds per applied part: a prefix changed again in a later part is sent
//!   again. A pull returns no message while changes wait only when none of them produce one.
//!
//! Never does: I/O, locking, timers. The daemon holds the registry behind one lock; a member's
//! waker is called (under that lock, so it must only signal) when new messages wait for it.

use bytes::Bytes;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::adj_rib_out::AdjRibOut;
use super::desired_log::DesiredLog;
use super::export::{ExportError, PeerExport};
use super::route::Route;
use crate::wire::{Context, Family, Message, MpNlri, Update, MAX_MESSAGE_LEN};

/// Identifies one session's membership (the driver takes a new id per session).
pub type MemberId = u64;
type GroupId = u64;
/// Called when messages wait for a member that had taken everything.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What makes two sessions' UPDATEs identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub export: PeerExport,
    pub four_octet_as: bool,
    pub extended_message: bool,
}

impl GroupKey {
    pub fn new(export: &PeerExport, ctx: &Context) -> Self {
        Self {
            export: export.group_key(),
            four_octet_as: ctx.four_octet_as,
            extended_message: ctx.extended_message,
        }
    }

    fn context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            extended_message: self.extended_message,
        }
    }
}

/// One produced message, shared by every member that sends it.
#[derive(Debug)]
pub struct Out {
    pub bytes: Bytes,
    /// Prefixes this UPDATE announces and withdraws (for the events stream); shared, as every
    /// member's pull hands the same message over.
    pub announced: Arc<[IpNet]>,
    pub withdrawn: Arc<[IpNet]>,
    /// Set when this is an End-of-RIB marker.
    pub end_of_rib: Option<Family>,
    /// Prefixes a member has been told once it sent the batch this message belongs to.
    pub told: usize,
}

/// Memory and work bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Octets encoded per production step.
    pub produce: usize,
    /// A member further behind the newest message than this is split off.
    pub lag: usize,
    /// Desired-route changes a group applies per pull, per 4,096 octets of its maximum
    /// message length: a group with extended messages (RFC 8654, 65,535) applies 16 times as
    /// many, so that a part still fills maximum-size UPDATEs.
    pub catch_up: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            produce: 64 * 1024,
            lag: 1024 * 1024,
            catch_up: 1024,
        }
    }
}

/// What one [`UpdateGroups::pull`] hands a member.
#[derive(Debug, Default)]
pub struct Pull {
    pub msgs: Vec<Arc<Out>>,
    /// More is ready or can be produced: pull again once the socket has room.
    pub more: bool,
    /// Routes the group could not export (logged by the caller), found while catching up.
    pub skipped: Vec<(IpNet, ExportError)>,
}

/// Counters for tests and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub groups: usize,
    pub messages_encoded: u64,
    pub splits: u64,
    pub merges: u64,
}

struct Entry {
    /// Octets produced by the group before this message.
    start: u64,
    out: Arc<Out>,
}

struct Group {
    key: GroupKey,
    export: PeerExport,
    ctx: Context,
    rib: AdjRibOut,
    /// Position in the desired log up to which the rib has applied the changes.
    pos: u64,
    /// Changes after `pos` were waiting at the last catch-up.
    behind: bool,
    log: VecDeque<Entry>,
    /// Sequence number of `log[0]`.
    first: u64,
    /// Octets ever produced (the end offset of the log).
    produced: u64,
    /// Member -> sequence number of the next message it takes.
    members: BTreeMap<MemberId, u64>,
    eor_done: bool,
}

impl Group {
    fn new(key: GroupKey, desired: &DesiredLog) -> (Self, Vec<(IpNet, ExportError)>) {
        let export = key.export.clone();
        let mut rib = AdjRibOut::new();
        let report = rib.sync_routes(desired.routes(), &export);
        let g = Self {
            ctx: key.context(),
            key,
            export,
            rib,
            pos: desired.log_end(),
            behind: false,
            log: VecDeque::new(),
            first: 0,
            produced: 0,
            members: BTreeMap::new(),
            eor_done: false,
        };
        (g, report.skipped)
    }

    fn end(&self) -> u64 {
        self.first + self.log.len() as u64
    }

    /// Octets produced before message `seq`.
    fn offset(&self, seq: u64) -> u64 {
        usize::try_from(seq - self.first)
            .ok()
            .and_then(|i| self.log.get(i))
            .map_or(self.produced, |e| e.start)
    }

    /// Apply up to `max` desired changes after `pos` (all of them when resynchronising).
    fn catch_up(&mut self, desired: &DesiredLog, max: usize) -> Vec<(IpNet, ExportError)> {
        let mut skipped = Vec::new();
        let end = desired.log_end();
        if self.pos == end {
            self.behind = false;
            return skipped;
        }
        match desired.changes_from(self.pos) {
            Some(changes) => {
                // Changes come in ascending runs (a batch is applied in prefix order): each
                // run of withdrawals, and each of announcements, goes to the RIB-Out at once,
                // in its place among the other changes.
                let mut gone: Vec<IpNet> = Vec::new();
                let mut changed: Vec<&Route> = Vec::new();
                for (prefix, route) in changes.take(max) {
                    match route {
                        None if changed.is_empty()
                            && gone.last().is_none_or(|last| *last < prefix) =>
                        {
                            gone.push(prefix)
                        }
                        Some(r)
                            if gone.is_empty()
                                && changed.last().is_none_or(|last| last.prefix < prefix) =>
                        {
                            changed.push(r)
                        }
                        _ => {
                            self.rib.withdraw_sorted(&gone);
                            gone.clear();
                            skipped.extend(self.rib.update_sorted(&changed, &self.export));
                            changed.clear();
                            match route {
                                None => gone.push(prefix),
                                Some(r) => changed.push(r),
                            }
                        }
                    }
                    self.pos += 1;
                }
                self.rib.withdraw_sorted(&gone);
                skipped.extend(self.rib.update_sorted(&changed, &self.export));
            }
            None => {
                skipped = self.rib.sync_routes(desired.routes(), &self.export).skipped;
                self.pos = end;
            }
        }
        self.behind = self.pos < end;
        skipped
    }

    /// Nothing to produce now or later (until the desired routes change or a refresh).
    fn idle(&self) -> bool {
        !self.behind && !self.rib.has_pending() && self.eor_done
    }

    /// Encode up to `budget` octets of pending changes (then End-of-RIB when due) into the
    /// log; returns how many messages were added.
    fn produce(&mut self, budget: usize, stats: &mut Stats) -> usize {
        let msgs = self.rib.next_messages(&self.ctx, budget);
        let mut outs: Vec<Out> = msgs
            .iter()
            .map(|m| {
                let (announced, withdrawn) = match m {
                    Message::Update(u) => prefixes_of(u),
                    _ => (Arc::default(), Arc::default()),
                };
                Out {
                    bytes: m.to_bytes(&self.ctx).freeze(),
                    announced,
                    withdrawn,
                    end_of_rib: None,
                    told: 0,
                }
            })
            .collect();
        if !self.rib.has_pending() {
            // RFC 4724 §2: End-of-RIB once the initial routes of a family are all out.
            for family in self.rib.take_end_of_rib() {
                let m = Message::Update(Update::end_of_rib(family));
                outs.push(Out {
                    bytes: m.to_bytes(&self.ctx).freeze(),
                    announced: Arc::default(),
                    withdrawn: Arc::default(),
                    end_of_rib: Some(family),
                    told: 0,
                });
            }
            self.eor_done = self.rib.initial_sync_complete();
        }
        let told = self.rib.len();
        let n = outs.len();
        for mut out in outs {
            out.told = told;
            let start = self.produced;
            self.produced += out.bytes.len() as u64;
            self.log.push_back(Entry {
                start,
                out: Arc::new(out),
            });
        }
        stats.messages_encoded += n as u64;
        n
    }

    /// Drop the messages every member took.
    fn trim(&mut self) {
        let min = self.members.values().copied().min().unwrap_or(self.end());
        while self.first < min && self.log.pop_front().is_some() {
            self.first += 1;
        }
    }
}

fn prefixes_of(u: &Update) -> (Arc<[IpNet]>, Arc<[IpNet]>) {
    fn mp(n: &MpNlri) -> Vec<IpNet> {
        match n {
            MpNlri::Ipv4(v) => v.iter().map(|p| IpNet::V4(*p)).collect(),
            MpNlri::Ipv6(v) => v.iter().map(|p| IpNet::V6(*p)).collect(),
            MpNlri::Raw(_) => Vec::new(),
        }
    }
    let mut announced: Vec<IpNet> = u.nlri.iter().map(|p| IpNet::V4(*p)).collect();
    if let Some(r) = u.mp_reach() {
        announced.extend(mp(&r.nlri));
    }
    let mut withdrawn: Vec<IpNet> = u.withdrawn.iter().map(|p| IpNet::V4(*p)).collect();
    if let Some(r) = u.mp_unreach() {
        withdrawn.extend(mp(&r.withdrawn));
    }
    (announced.into(), withdrawn.into())
}

/// All groups of one speaker.
pub struct UpdateGroups {
    groups: HashMap<GroupId, Group>,
    by_key: HashMap<GroupKey, BTreeSet<GroupId>>,
    member_group: HashMap<MemberId, GroupId>,
    wakers: HashMap<MemberId, Waker>,
    next_group: GroupId,
    limits: Limits,
    stats: Stats,
}

impl Default for UpdateGroups {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl UpdateGroups {
    pub fn new(limits: Limits) -> Self {
        Self {
            groups: HashMap::new(),
            by_key: HashMap::new(),
            member_group: HashMap::new(),
            wakers: HashMap::new(),
            next_group: 1,
            limits,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            groups: self.groups.len(),
            ..self.stats
        }
    }

    /// The members sharing `member`'s group (itself included), in id order.
    pub fn group_of(&self, member: MemberId) -> Vec<MemberId> {
        self.member_group
            .get(&member)
            .and_then(|g| self.groups.get(g))
            .map(|g| g.members.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Octets of produced messages `member` has not taken yet.
    pub fn backlog(&self, member: MemberId) -> u64 {
        self.member_group
            .get(&member)
            .and_then(|g| self.groups.get(g))
            .and_then(|g| Some(g.produced - g.offset(*g.members.get(&member)?)))
            .unwrap_or(0)
    }

    /// Octets held in the logs of all groups.
    pub fn log_bytes(&self) -> u64 {
        self.groups
            .values()
            .map(|g| g.produced - g.log.front().map_or(g.produced, |e| e.start))
            .sum()
    }

    fn insert_group(&mut self, g: Group) -> GroupId {
        let id = self.next_group;
        self.next_group += 1;
        self.by_key.entry(g.key.clone()).or_default().insert(id);
        for m in g.members.keys() {
            self.member_group.insert(*m, id);
        }
        self.groups.insert(id, g);
        id
    }

    fn remove_group(&mut self, id: GroupId) -> Option<Group> {
        let g = self.groups.remove(&id)?;
        if let Some(set) = self.by_key.get_mut(&g.key) {
            set.remove(&id);
            if set.is_empty() {
                self.by_key.remove(&g.key);
            }
        }
        Some(g)
    }

    /// A session came up: put it in a group. Returns the routes its group cannot export.
    pub fn join(
        &mut self,
        member: MemberId,
        export: &PeerExport,
        ctx: &Context,
        waker: Waker,
        desired: &DesiredLog,
    ) -> Vec<(IpNet, ExportError)> {
        self.leave(member);
        let key = GroupKey::new(export, ctx);
        self.wakers.insert(member, waker);
        // A group whose log still starts at its beginning: replaying it is a full table.
        let whole = self.by_key.get(&key).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|id| self.groups.get(id).is_some_and(|g| g.first == 0))
        });
        if let Some(id) = whole {
            if let Some(g) = self.groups.get_mut(&id) {
                g.members.insert(member, 0);
                self.member_group.insert(member, id);
                return Vec::new();
            }
        }
        let (mut g, skipped) = Group::new(key, desired);
        g.members.insert(member, 0);
        self.insert_group(g);
        skipped
    }

    /// The session went down (or stopped): forget the member.
    pub fn leave(&mut self, member: MemberId) {
        self.wakers.remove(&member);
        let Some(id) = self.member_group.remove(&member) else {
            return;
        };
        let empty = match self.groups.get_mut(&id) {
            Some(g) => {
                g.members.remove(&member);
                g.trim();
                g.members.is_empty()
            }
            None => false,
        };
        if empty {
            self.remove_group(id);
        }
    }

    /// The next messages for `member`, up to about `budget` octets (at least one message
    /// when any is ready). Produces new messages when the member took everything.
    pub fn pull(&mut self, member: MemberId, budget: usize, desired: &DesiredLog) -> Pull {
        let mut pull = Pull::default();
        let Some(&id) = self.member_group.get(&member) else {
            return pull;
        };
        let limits = self.limits;
        let mut wake = Vec::new();
        let mut laggards = Vec::new();
        let quiet;
        {
            let Some(g) = self.groups.get_mut(&id) else {
                return pull;
            };
            let mut cursor = g.members.get(&member).copied().unwrap_or(g.end());
            let per_pull = limits.catch_up * g.ctx.max_message_len().div_ceil(MAX_MESSAGE_LEN);
            // Until there is a message to hand over or nothing is left to apply: a part of a
            // batch can produce nothing (changes this group does not export, or that cancel).
            loop {
                pull.skipped.extend(g.catch_up(desired, per_pull));
                if cursor == g.end() && !g.idle() {
                    let before = g.end();
                    if g.produce(limits.produce, &mut self.stats) > 0 {
                        wake.extend(
                            g.members
                                .iter()
                                .filter(|(m, c)| **m != member && **c == before)
                                .map(|(m, _)| *m),
                        );
                    }
                }
                if cursor < g.end() || !g.behind {
                    break;
                }
            }
            let mut taken = 0;
            while cursor < g.end() && taken < budget {
                let Some(e) = usize::try_from(cursor - g.first)
                    .ok()
                    .and_then(|i| g.log.get(i))
                else {
                    break;
                };
                taken += e.out.bytes.len();
                pull.msgs.push(e.out.clone());
                cursor += 1;
            }
            g.members.insert(member, cursor);
            pull.more = cursor < g.end() || !g.idle();
            g.trim();
            let newest = g.produced;
            for (m, c) in &g.members {
                if newest - g.offset(*c) > limits.lag as u64 {
                    laggards.push(*m);
                }
            }
            quiet = g.idle() && g.members.values().all(|c| *c == g.end());
        }
        for m in wake {
            if let Some(w) = self.wakers.get(&m) {
                w();
            }
        }
        for m in laggards {
            self.split(m);
        }
        if quiet {
            self.merge(id);
        }
        pull
    }

    /// Move `member` into a group of its own that continues exactly where it is.
    fn split(&mut self, member: MemberId) -> Option<GroupId> {
        let id = *self.member_group.get(&member)?;
        let g = self.groups.get_mut(&id)?;
        if g.members.len() < 2 {
            return Some(id);
        }
        let cursor = g.members.remove(&member)?;
        let skip = usize::try_from(cursor.saturating_sub(g.first)).unwrap_or(usize::MAX);
        let log: VecDeque<Entry> = g
            .log
            .iter()
            .skip(skip)
            .map(|e| Entry {
                start: e.start,
                out: e.out.clone(),
            })
            .collect();
        let alone = Group {
            key: g.key.clone(),
            export: g.export.clone(),
            ctx: g.ctx,
            rib: g.rib.clone(),
            pos: g.pos,
            behind: g.behind,
            log,
            first: cursor.max(g.first),
            produced: g.produced,
            members: BTreeMap::from([(member, cursor.max(g.first))]),
            eor_done: g.eor_done,
        };
        g.trim();
        self.stats.splits += 1;
        Some(self.insert_group(alone))
    }

    /// `id` is quiet: move its members into another group of the same key in the same state.
    fn merge(&mut self, id: GroupId) {
        let Some(key) = self.groups.get(&id).map(|g| g.key.clone()) else {
            return;
        };
        let candidates: Vec<GroupId> = self
            .by_key
            .get(&key)
            .map(|s| s.iter().copied().filter(|c| *c != id).collect())
            .unwrap_or_default();
        if candidates.is_empty() {
            return;
        }
        let pos = self.groups.get(&id).map_or(0, |g| g.pos);
        // The largest group that agrees takes the members.
        let mut best: Option<(usize, GroupId)> = None;
        for c in candidates {
            let Some(t) = self.groups.get_mut(&c) else {
                continue;
            };
            if t.pos != pos || !t.idle() {
                continue;
            }
            // Same key, same desired-log position, nothing pending: same routes told.
            let size = t.members.len();
            if best.is_none_or(|(s, _)| size > s) {
                best = Some((size, c));
            }
        }
        let Some((_, target)) = best else { return };
        let Some(src) = self.remove_group(id) else {
            return;
        };
        debug_assert_eq!(
            src.rib.sent(),
            self.groups
                .get(&target)
                .map(|t| t.rib.sent())
                .unwrap_or(src.rib.sent())
        );
        if let Some(t) = self.groups.get_mut(&target) {
            let end = t.end();
            for m in src.members.keys() {
                t.members.insert(*m, end);
                self.member_group.insert(*m, target);
            }
            self.stats.merges += 1;
        }
    }

    /// Route refresh (RFC 2918 §4) from `member`: send it its routes of `family` again.
    pub fn refresh(&mut self, member: MemberId, family: Family) {
        if let Some(id) = self.split(member) {
            if let Some(g) = self.groups.get_mut(&id) {
                g.rib.mark_family_for_refresh(family);
            }
        }
    }
}

#[cfg(test)]
mod tests;
