//! [`AdjRibIn`]: per peer, the routes it sent us, bounded by a max-prefix limit per family.
//!
//! Contract:
//! - [`AdjRibIn::apply`] takes one decoded UPDATE: IPv4 withdrawals and NLRI, MP_UNREACH_NLRI
//!   and MP_REACH_NLRI of IPv4/IPv6 unicast (RFC 4760 §3-4); other families are ignored.
//!   An UPDATE RFC 7606 marks treat-as-withdraw ([`Update::treat_as_withdraw`]) withdraws its
//!   NLRI instead of installing them (RFC 7606 §2).
//! - Max-prefix (RFC 4486 §4): an UPDATE that would take a family over its limit is not
//!   applied at all; [`MaxPrefixExceeded`] carries what the session needs for Cease/1 with
//!   data AFI, SAFI, limit ([`MaxPrefixExceeded::notification`]). The RIB never holds more
//!   than the limit.
//! - Identical attribute sets are interned: every prefix received with the same attributes
//!   points at one `Arc<ReceivedAttrs>`; a set is freed when its last prefix goes.
//! - Attribute budget: max-prefix bounds how many prefixes a peer holds, not the memory they
//!   hold (one /32 may carry a 64 KB COMMUNITIES). [`AdjRibIn::attribute_bytes`] is the cost
//!   of the distinct sets held (each counted once per peer, interned or not: encoded octets
//!   plus [`SET_OVERHEAD`]); an UPDATE whose new sets would take it over the budget is not
//!   applied at all, and [`AttributeBudgetExceeded`] carries what the session needs for
//!   Cease/Out of Resources ([`RibInRefusal::notification`]). The sets an UPDATE frees by
//!   replacing routes are not credited before the check, so a peer at its budget may be
//!   refused one set early.
//! - Representation (sized for a full table, ~1M prefixes): an attribute set is kept only as
//!   its encoding (the interning key; 4-octet AS form plus the session's AS width) and decoded
//!   again when someone looks ([`ReceivedAttrs::attributes`], [`AdjRibIn::routes`]); IPv4
//!   prefixes are keyed by one `u64` (address << 8 | length) in a hash map (sorted when
//!   listed), IPv6 by `Ipv6Net` in an ordered map; the stale mark is membership of a separate set that is empty outside a
//!   graceful restart, so [`AdjRibIn::stale_count`] is O(1). An UPDATE whose set is already
//!   held allocates nothing for the set (the key is built in a reused buffer).
//! - Graceful restart helper (RFC 4724 §4.2): [`AdjRibIn::mark_stale`] when the session drops
//!   instead of [`AdjRibIn::clear`]; a re-announced route is fresh again; End-of-RIB for a
//!   family sweeps that family's stale routes; [`AdjRibIn::sweep_stale`] for the restart timer.
//! - A received route's pass-through attributes are one [`Attributes`]; its ORIGIN is always
//!   the one received (an UPDATE without one is treat-as-withdraw, RFC 7606 §3 d).
//!
//! Never does: best-path selection, loop detection, import policy (Ferry announces; it keeps
//! received routes to show them and to verify that peers reflect what it announced).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use super::seeded_hash::SeededHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::attrs::{Attributes, Form};
use super::export::family_of;
use crate::wire::mp::{MpNextHop, MpNlri};
use crate::wire::notification::cease;
use crate::wire::{
    AsPath, AttributeValue, Context, Family, Message, Notification, PathAttribute, Update,
};

/// The attributes shared by the prefixes of one family of one UPDATE, kept as their encoding:
/// every attribute as received without NLRI (MP_REACH_NLRI keeps its next hop with an empty
/// NLRI, MP_UNREACH_NLRI is left out, and so is NEXT_HOP for MP_REACH prefixes and
/// MP_REACH_NLRI for classic NLRI), encoded with 4-octet ASNs, then one octet: the session's
/// AS width (the effective AS path depends on it, RFC 6793 §4.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceivedAttrs {
    key: Box<[u8]>,
}

/// The decoded view of a [`ReceivedAttrs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedAttrs {
    /// The effective path: on a 2-octet session AS_PATH merged with AS4_PATH (RFC 6793 §4.2.3).
    pub as_path: AsPath,
    pub next_hop: Option<IpAddr>,
    pub next_hop_link_local: Option<Ipv6Addr>,
    pub attrs: Attributes,
    pub attributes: Vec<PathAttribute>,
}

/// Append the key of `update`'s attributes for its classic (`mp` false) or MP_REACH NLRI.
fn encode_key(update: &Update, mp: bool, four_octet_as: bool, key: &mut BytesMut) {
    for a in &update.attributes {
        match &a.value {
            AttributeValue::MpUnreach(_) => {}
            AttributeValue::NextHop(_) if !mp => a.encode(true, key),
            AttributeValue::MpReach(m) if mp => {
                let mut m = m.clone();
                m.nlri = MpNlri::Raw(Vec::new());
                PathAttribute {
                    flags: a.flags,
                    value: AttributeValue::MpReach(m),
                }
                .encode(true, key);
            }
            AttributeValue::NextHop(_) | AttributeValue::MpReach(_) => {}
            // The session's AS width is fixed for the life of the RIB, so 4 octets is canonical.
            _ => a.encode(true, key),
        }
    }
    key.put_u8(u8::from(four_octet_as));
}

impl ReceivedAttrs {
    /// The set as an UPDATE without NLRI, decoded from the key (which this module encoded).
    fn update(&self) -> Option<(Update, bool)> {
        let (&width, attrs) = self.key.split_last()?;
        let ctx = Context {
            four_octet_as: true,
            extended_message: true,
        };
        let mut msg = BytesMut::with_capacity(23 + attrs.len());
        msg.put_bytes(0xff, 16);
        msg.put_u16(u16::try_from(23 + attrs.len()).ok()?);
        msg.put_u8(2);
        msg.put_u16(0);
        msg.put_u16(u16::try_from(attrs.len()).ok()?);
        msg.put_slice(attrs);
        match Message::decode(&msg, &ctx) {
            Ok(Message::Update(u)) => Some((u, width != 0)),
            _ => None,
        }
    }

    /// Every attribute as received (see the type's doc for what is left out).
    pub fn attributes(&self) -> Vec<PathAttribute> {
        self.update().map(|(u, _)| u.attributes).unwrap_or_default()
    }

    /// Decode the set for display.
    pub fn decode(&self) -> DecodedAttrs {
        let Some((update, four_octet_as)) = self.update() else {
            return DecodedAttrs::default();
        };
        let mut d = DecodedAttrs {
            as_path: update.effective_as_path(four_octet_as).unwrap_or_default(),
            attrs: Attributes::from_path_attributes(&update.attributes),
            ..DecodedAttrs::default()
        };
        for a in &update.attributes {
            match &a.value {
                AttributeValue::NextHop(nh) => d.next_hop = Some(IpAddr::V4(*nh)),
                AttributeValue::MpReach(m) => match &m.next_hop {
                    MpNextHop::Ipv4(v4) => d.next_hop = Some(IpAddr::V4(*v4)),
                    MpNextHop::Ipv6 { global, link_local } => {
                        d.next_hop = Some(IpAddr::V6(*global));
                        d.next_hop_link_local = *link_local;
                    }
                    MpNextHop::Other(_) => {}
                },
                _ => {}
            }
        }
        d.attributes = update.attributes;
        d
    }
}

/// An interned set, found by its key octets without building a `ReceivedAttrs`.
#[derive(Debug, Clone)]
struct Interned(Arc<ReceivedAttrs>);

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Interned {}

impl Hash for Interned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with `[u8]`'s hash for `Borrow<[u8]>`.
        self.0.key[..].hash(state);
    }
}

impl Borrow<[u8]> for Interned {
    fn borrow(&self) -> &[u8] {
        &self.0.key
    }
}

/// What [`AdjRibIn::attribute_bytes`] adds per distinct set besides its encoded octets: an
/// estimate, on 64-bit targets, of the `Arc` allocation (counts and boxed-slice pointer), the
/// intern set's slot and the allocator's headers.
pub const SET_OVERHEAD: usize = 64;

/// The peer's attribute sets would take more memory than its budget: send Cease / Out of
/// Resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer's path attributes would take {usage} octets, over its max_attribute_bytes budget of {budget}; the session is closed with Cease/Out of Resources")]
pub struct AttributeBudgetExceeded {
    pub budget: usize,
    /// What [`AdjRibIn::attribute_bytes`] would be had the UPDATE been applied.
    pub usage: usize,
}

/// Why an UPDATE was refused; the session is closed with [`RibInRefusal::notification`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibInRefusal {
    #[error(transparent)]
    MaxPrefix(#[from] MaxPrefixExceeded),
    #[error(transparent)]
    AttributeBudget(#[from] AttributeBudgetExceeded),
}

impl RibInRefusal {
    pub fn notification(&self) -> Notification {
        match self {
            Self::MaxPrefix(e) => e.notification(),
            // RFC 4486 §4 gives "Out of Resources" for a speaker that ends a session because
            // it runs out of resources such as memory: the budget is this peer's share of
            // memory. Maximum Number of Prefixes Reached (1) would be wrong: its data names a
            // prefix limit the peer did not reach. RFC 4486 defines no data for subcode 8.
            Self::AttributeBudget(_) => Notification {
                code: cease::CODE,
                subcode: cease::OUT_OF_RESOURCES,
                data: bytes::Bytes::new(),
            },
        }
    }
}

/// The peer went over its limit: send Cease / Maximum Number of Prefixes Reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer would have {count} {family} prefixes, over the limit of {limit}; the session is closed with Cease/Maximum Number of Prefixes Reached")]
pub struct MaxPrefixExceeded {
    pub family: Family,
    pub limit: usize,
    /// How many prefixes of `family` the peer would hold had the UPDATE been applied.
    pub count: usize,
}

impl MaxPrefixExceeded {
    /// Cease, subcode 1, data AFI (2 octets), SAFI (1), the limit (4) (RFC 4486 §4).
    pub fn notification(&self) -> Notification {
        let mut data = BytesMut::with_capacity(7);
        data.put_u16(self.family.afi().into());
        data.put_u8(self.family.safi().into());
        data.put_u32(u32::try_from(self.limit).unwrap_or(u32::MAX));
        Notification {
            code: cease::CODE,
            subcode: cease::MAX_PREFIXES_REACHED,
            data: data.freeze(),
        }
    }
}

/// What one UPDATE changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RibInChange {
    /// Prefixes installed or replaced, in prefix order.
    pub announced: Vec<IpNet>,
    /// Prefixes removed (withdrawn, treated as withdrawn, or swept stale at End-of-RIB), in
    /// prefix order; withdrawals of prefixes we did not hold are not listed.
    pub withdrawn: Vec<IpNet>,
    /// The family this UPDATE marks the End-of-RIB of.
    pub end_of_rib: Option<Family>,
}

/// One received route, for `ferry routes --received` and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRoute {
    pub prefix: IpNet,
    pub next_hop: Option<IpAddr>,
    pub next_hop_link_local: Option<Ipv6Addr>,
    pub as_path: AsPath,
    pub attrs: Attributes,
    /// Kept from before a graceful restart and not yet refreshed.
    pub stale: bool,
}

/// `{"prefix", "next_hop", "next_hop_link_local", "as_path", the attributes in full, "stale"}`,
/// prefix and path as text.
impl Serialize for ReceivedRoute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("prefix", &Text(&self.prefix))?;
        m.serialize_entry("next_hop", &self.next_hop)?;
        m.serialize_entry("next_hop_link_local", &self.next_hop_link_local)?;
        m.serialize_entry("as_path", &Text(&self.as_path))?;
        self.attrs.write_fields(&mut m, Form::Full)?;
        m.serialize_entry("stale", &self.stale)?;
        m.end()
    }
}

/// A value written as its `Display` text.
struct Text<'a, T>(&'a T);

impl<T: fmt::Display> Serialize for Text<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// An IPv4 prefix as one ordered key: address (host bits as received) then length.
fn v4_key(p: &Ipv4Net) -> u64 {
    (u64::from(u32::from(p.addr())) << 8) | u64::from(p.prefix_len())
}

fn v4_prefix(key: u64) -> IpNet {
    let addr = Ipv4Addr::from((key >> 8) as u32);
    // The key was built from a valid prefix, so the length is <= 32.
    IpNet::V4(Ipv4Net::new(addr, (key & 0xff) as u8).unwrap_or_default())
}

#[derive(Debug, Default)]
pub struct AdjRibIn {
    v4: HashMap<u64, Arc<ReceivedAttrs>, SeededHasher>,
    v6: BTreeMap<Ipv6Net, Arc<ReceivedAttrs>>,
    /// Routes kept from a previous session and not re-announced yet.
    stale: HashSet<IpNet>,
    interned: HashSet<Interned, SeededHasher>,
    limits: BTreeMap<Family, usize>,
    /// Cost of the distinct sets held: key octets plus [`SET_OVERHEAD`] each.
    attribute_bytes: usize,
    attribute_budget: Option<usize>,
    /// Reused buffer for interning keys.
    scratch: BytesMut,
}

/// What one set counts against the attribute budget.
fn set_cost(a: &ReceivedAttrs) -> usize {
    a.key.len() + SET_OVERHEAD
}

impl AdjRibIn {
    /// An empty RIB allowing `max_prefixes` prefixes of each family (IPv4 and IPv6 unicast).
    pub fn new(max_prefixes: usize) -> Self {
        Self {
            limits: [Family::Ipv4Unicast, Family::Ipv6Unicast]
                .into_iter()
                .map(|f| (f, max_prefixes))
                .collect(),
            ..Self::default()
        }
    }

    /// An empty RIB without limits.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Limit the prefixes of `family`; `None` removes the limit. Takes effect at the next UPDATE.
    pub fn set_max_prefix(&mut self, family: Family, limit: Option<usize>) {
        match limit {
            Some(l) => self.limits.insert(family, l),
            None => self.limits.remove(&family),
        };
    }

    pub fn max_prefix(&self, family: Family) -> Option<usize> {
        self.limits.get(&family).copied()
    }

    /// Limit the memory of the distinct attribute sets held; `None` removes the limit. Takes
    /// effect at the next UPDATE.
    pub fn set_attribute_budget(&mut self, budget: Option<usize>) {
        self.attribute_budget = budget;
    }

    pub fn attribute_budget(&self) -> Option<usize> {
        self.attribute_budget
    }

    /// What the distinct attribute sets held count against the budget.
    pub fn attribute_bytes(&self) -> usize {
        self.attribute_bytes
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn count(&self, family: Family) -> usize {
        match family {
            Family::Ipv4Unicast => self.v4.len(),
            Family::Ipv6Unicast => self.v6.len(),
        }
    }

    /// Distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.interned.len()
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Arc<ReceivedAttrs>> {
        match prefix {
            IpNet::V4(p) => self.v4.get(&v4_key(p)),
            IpNet::V6(p) => self.v6.get(p),
        }
    }

    fn contains(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    /// Every route, in prefix order (IPv4 first). Each attribute set is decoded once.
    pub fn routes(&self) -> Vec<ReceivedRoute> {
        let mut decoded: HashMap<*const ReceivedAttrs, DecodedAttrs> = HashMap::new();
        let mut v4: Vec<(&u64, &Arc<ReceivedAttrs>)> = self.v4.iter().collect();
        v4.sort_unstable_by_key(|(k, _)| **k);
        let all = v4
            .into_iter()
            .map(|(k, a)| (v4_prefix(*k), a))
            .chain(self.v6.iter().map(|(p, a)| (IpNet::V6(*p), a)));
        let mut out = Vec::with_capacity(self.len());
        for (prefix, attrs) in all {
            let d = decoded
                .entry(Arc::as_ptr(attrs))
                .or_insert_with(|| attrs.decode());
            out.push(ReceivedRoute {
                prefix,
                next_hop: d.next_hop,
                next_hop_link_local: d.next_hop_link_local,
                as_path: d.as_path.clone(),
                attrs: d.attrs.clone(),
                stale: self.stale.contains(&prefix),
            });
        }
        out
    }

    /// Session down without graceful restart: forget everything (limits stay).
    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
        self.stale.clear();
        self.interned.clear();
        self.attribute_bytes = 0;
    }

    /// Session down with graceful restart (helper mode): keep the routes, marked stale.
    pub fn mark_stale(&mut self) {
        self.stale.extend(self.v4.keys().map(|k| v4_prefix(*k)));
        self.stale.extend(self.v6.keys().map(|p| IpNet::V6(*p)));
    }

    /// Routes kept from a previous session and not re-announced yet.
    pub fn stale_count(&self) -> usize {
        self.stale.len()
    }

    /// Remove stale routes of `family` (all families for `None`); returns them in prefix order.
    pub fn sweep_stale(&mut self, family: Option<Family>) -> Vec<IpNet> {
        let mut gone: Vec<IpNet> = self
            .stale
            .iter()
            .filter(|p| family.is_none_or(|f| family_of(p) == f))
            .copied()
            .collect();
        gone.sort();
        for p in &gone {
            self.remove(p);
        }
        gone
    }

    /// Drop the RIB's use of `attrs`; frees the set when no prefix uses it any more.
    fn release(&mut self, attrs: Arc<ReceivedAttrs>) {
        // Ours and the intern set's: no other prefix uses it.
        if Arc::strong_count(&attrs) == 2 && self.interned.remove(&attrs.key[..]) {
            self.attribute_bytes -= set_cost(&attrs);
        }
    }

    fn remove(&mut self, prefix: &IpNet) -> bool {
        let old = match prefix {
            IpNet::V4(p) => self.v4.remove(&v4_key(p)),
            IpNet::V6(p) => self.v6.remove(p),
        };
        let Some(old) = old else {
            return false;
        };
        if !self.stale.is_empty() {
            self.stale.remove(prefix);
        }
        self.release(old);
        true
    }

    /// The set of `update`'s attributes (for its MP_REACH NLRI when `mp`): the interned one
    /// if held, else a new one not interned yet (`true`).
    fn lookup(
        &mut self,
        update: &Update,
        mp: bool,
        four_octet_as: bool,
    ) -> (Arc<ReceivedAttrs>, bool) {
        self.scratch.clear();
        encode_key(update, mp, four_octet_as, &mut self.scratch);
        if let Some(a) = self.interned.get(&self.scratch[..]) {
            return (a.0.clone(), false);
        }
        let a = Arc::new(ReceivedAttrs {
            key: self.scratch[..].into(),
        });
        (a, true)
    }

    /// Intern a set [`Self::lookup`] built; an equal set interned meanwhile wins.
    fn intern(&mut self, a: Arc<ReceivedAttrs>) -> Arc<ReceivedAttrs> {
        if let Some(held) = self.interned.get(&a.key[..]) {
            return held.0.clone();
        }
        self.attribute_bytes += set_cost(&a);
        self.interned.insert(Interned(a.clone()));
        a
    }

    /// Refuse an UPDATE whose new sets would take the attribute memory over the budget.
    fn check_budget(
        &self,
        sets: &[(Arc<ReceivedAttrs>, bool)],
    ) -> Result<(), AttributeBudgetExceeded> {
        let Some(budget) = self.attribute_budget else {
            return Ok(());
        };
        let new: usize = sets
            .iter()
            .filter(|(_, new)| *new)
            .map(|(a, _)| set_cost(a))
            .sum();
        let usage = self.attribute_bytes + new;
        if new > 0 && usage > budget {
            return Err(AttributeBudgetExceeded { budget, usage });
        }
        Ok(())
    }

    fn insert(&mut self, prefix: IpNet, attrs: Arc<ReceivedAttrs>) {
        let old = match prefix {
            IpNet::V4(p) => self.v4.insert(v4_key(&p), attrs),
            IpNet::V6(p) => self.v6.insert(p, attrs),
        };
        if !self.stale.is_empty() {
            self.stale.remove(&prefix);
        }
        if let Some(old) = old {
            self.release(old);
        }
    }

    /// RFC 4486 §4: refuse an UPDATE that would take a family over its limit. Exact counting
    /// (sets of the UPDATE's prefixes and look-ups) only when the cheap bound could exceed it.
    fn check_limits(
        &self,
        withdraw: &[IpNet],
        announce: &[(Family, bool, Vec<IpNet>)],
    ) -> Result<(), MaxPrefixExceeded> {
        for (&family, &limit) in &self.limits {
            let upper = self.count(family)
                + announce
                    .iter()
                    .filter(|(f, _, _)| *f == family)
                    .map(|(_, _, v)| v.len())
                    .sum::<usize>();
            if upper <= limit {
                continue;
            }
            let announced: BTreeSet<IpNet> = announce
                .iter()
                .flat_map(|(_, _, v)| v.iter().copied())
                .collect();
            let withdrawn: BTreeSet<IpNet> = withdraw.iter().copied().collect();
            let mut count = self.count(family);
            for p in withdrawn.iter().filter(|p| family_of(p) == family) {
                if self.contains(p) && !announced.contains(p) {
                    count -= 1;
                }
            }
            for p in announced.iter().filter(|p| family_of(p) == family) {
                if !self.contains(p) {
                    count += 1;
                }
            }
            if count > limit {
                return Err(MaxPrefixExceeded {
                    family,
                    limit,
                    count,
                });
            }
        }
        Ok(())
    }

    /// Apply one received UPDATE; see the module contract. `four_octet_as`: what the session
    /// negotiated (RFC 6793), for the effective AS path.
    pub fn apply(
        &mut self,
        update: &Update,
        four_octet_as: bool,
    ) -> Result<RibInChange, RibInRefusal> {
        let mut change = RibInChange {
            end_of_rib: update.end_of_rib_family(),
            ..RibInChange::default()
        };
        let mut withdraw: Vec<IpNet> = update.withdrawn.iter().map(|p| IpNet::V4(*p)).collect();
        if let Some(m) = update.mp_unreach() {
            if m.family().is_some() {
                withdraw.extend(prefixes(&m.withdrawn));
            }
        }
        // Each family's NLRI, and whether they came in MP_REACH_NLRI.
        let mut announce: Vec<(Family, bool, Vec<IpNet>)> = Vec::new();
        if !update.nlri.is_empty() {
            announce.push((
                Family::Ipv4Unicast,
                false,
                update.nlri.iter().map(|p| IpNet::V4(*p)).collect(),
            ));
        }
        if let Some(m) = update.mp_reach() {
            if let Some(f) = m.family() {
                let v: Vec<IpNet> = prefixes(&m.nlri).collect();
                if !v.is_empty() {
                    announce.push((f, true, v));
                }
            }
        }
        if update.treat_as_withdraw() {
            for (_, _, v) in announce.drain(..) {
                withdraw.extend(v);
            }
        }
        self.check_limits(&withdraw, &announce)?;
        // Each group's set is built once, before anything changes, so a refused UPDATE
        // leaves the RIB as it was.
        let sets: Vec<(Arc<ReceivedAttrs>, bool)> = announce
            .iter()
            .map(|(_, mp, _)| self.lookup(update, *mp, four_octet_as))
            .collect();
        self.check_budget(&sets)?;
        if !withdraw.is_empty() {
            withdraw.sort();
            withdraw.dedup();
            // A prefix both withdrawn and announced in one UPDATE ends up announced.
            let announced: HashSet<IpNet> = announce
                .iter()
                .flat_map(|(_, _, v)| v.iter().copied())
                .collect();
            for p in &withdraw {
                if !announced.contains(p) && self.remove(p) {
                    change.withdrawn.push(*p);
                }
            }
        }
        for ((_, _, set), (attrs, _)) in announce.into_iter().zip(sets) {
            let attrs = self.intern(attrs);
            for p in set {
                self.insert(p, attrs.clone());
                change.announced.push(p);
            }
        }
        change.announced.sort();
        change.announced.dedup();
        if let Some(f) = change.end_of_rib {
            change.withdrawn.extend(self.sweep_stale(Some(f)));
        }
        Ok(change)
    }
}

fn prefixes(nlri: &MpNlri) -> impl Iterator<Item = IpNet> + '_ {
    let (v4, v6): (&[_], &[_]) = match nlri {
        MpNlri::Ipv4(v) => (v, &[]),
        MpNlri::Ipv6(v) => (&[], v),
        MpNlri::Raw(_) => (&[], &[]),
    };
    v4.iter()
        .map(|p| IpNet::V4(*p))
        .chain(v6.iter().map(|p| IpNet::V6(*p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Community, Context, Message, MpReach, MpUnreach, Origin};
    use ipnet::{Ipv4Net, Ipv6Net};

    const FOUR: bool = true;

    fn v4(p: &str) -> Ipv4Net {
        p.parse().unwrap()
    }

    fn v6(p: &str) -> Ipv6Net {
        p.parse().unwrap()
    }

    fn base_attrs(path: &[u32], communities: &[Community]) -> Vec<PathAttribute> {
        let mut a = vec![
            PathAttribute::new(AttributeValue::Origin(Origin::Igp)),
            PathAttribute::new(AttributeValue::AsPath(AsPath::sequence(path))),
        ];
        if !communities.is_empty() {
            a.push(PathAttribute::new(AttributeValue::Communities(
                communities.to_vec(),
            )));
        }
        a
    }

    fn announce_v4(prefixes: &[&str], path: &[u32], communities: &[Community]) -> Update {
        let mut attributes = base_attrs(path, communities);
        attributes.insert(
            2,
            PathAttribute::new(AttributeValue::NextHop("192.0.2.2".parse().unwrap())),
        );
        attributes.push(PathAttribute::new(AttributeValue::Med(20)));
        Update {
            attributes,
            nlri: prefixes.iter().map(|p| v4(p)).collect(),
            ..Update::default()
        }
    }

    fn announce_v6(prefixes: &[&str]) -> Update {
        let mut attributes = base_attrs(&[65001], &[]);
        attributes.push(PathAttribute::new(AttributeValue::MpReach(MpReach::ipv6(
            MpNextHop::Ipv6 {
                global: "2001:db8::2".parse().unwrap(),
                link_local: Some("fe80::2".parse().unwrap()),
            },
            prefixes.iter().map(|p| v6(p)).collect(),
        ))));
        Update {
            attributes,
            ..Update::default()
        }
    }

    fn withdraw_v6(prefixes: &[&str]) -> Update {
        Update {
            attributes: vec![PathAttribute::new(AttributeValue::MpUnreach(MpUnreach {
                afi: crate::wire::Afi::Ipv6,
                safi: crate::wire::Safi::Unicast,
                withdrawn: MpNlri::Ipv6(prefixes.iter().map(|p| v6(p)).collect()),
            }))],
            ..Update::default()
        }
    }

    #[test]
    fn ipv4_and_ipv6_routes_are_listed_with_their_attributes() {
        let mut rib = AdjRibIn::unlimited();
        let c = Community::new(65001, 100);
        rib.apply(
            &announce_v4(&["198.51.100.0/24"], &[65001, 65002], &[c]),
            FOUR,
        )
        .unwrap();
        rib.apply(&announce_v6(&["2001:db8:1::/48"]), FOUR).unwrap();
        let routes = rib.routes();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].prefix.to_string(), "198.51.100.0/24");
        assert_eq!(routes[0].next_hop, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(routes[0].as_path.to_string(), "65001 65002");
        assert_eq!(routes[0].attrs.communities, vec![c]);
        assert_eq!(routes[0].attrs.med, Some(20));
        assert_eq!(routes[1].next_hop, Some("2001:db8::2".parse().unwrap()));
        assert_eq!(
            routes[1].next_hop_link_local,
            Some("fe80::2".parse().unwrap())
        );
        assert_eq!(
            serde_json::to_string(&routes[0]).unwrap(),
            r#"{"prefix":"198.51.100.0/24","next_hop":"192.0.2.2","next_hop_link_local":null,"as_path":"65001 65002","origin":"igp","communities":["65001:100"],"large_communities":[],"med":20,"local_pref":null,"stale":false}"#
        );
        assert_eq!(rib.count(Family::Ipv4Unicast), 1);
        assert_eq!(rib.count(Family::Ipv6Unicast), 1);

        let ch = rib
            .apply(&withdraw_v6(&["2001:db8:1::/48", "2001:db8:9::/48"]), FOUR)
            .unwrap();
        assert_eq!(
            ch.withdrawn,
            vec!["2001:db8:1::/48".parse::<IpNet>().unwrap()]
        );
        let ch = rib
            .apply(
                &Update {
                    withdrawn: vec![v4("198.51.100.0/24")],
                    ..Update::default()
                },
                FOUR,
            )
            .unwrap();
        assert_eq!(ch.withdrawn.len(), 1);
        assert!(rib.is_empty());
        assert_eq!(rib.attribute_sets(), 0);
    }

    #[test]
    fn identical_attribute_sets_share_one_arc() {
        let mut rib = AdjRibIn::unlimited();
        rib.apply(&announce_v4(&["198.51.100.0/24"], &[65001], &[]), FOUR)
            .unwrap();
        rib.apply(
            &announce_v4(&["203.0.113.0/24", "192.0.2.0/25"], &[65001], &[]),
            FOUR,
        )
        .unwrap();
        rib.apply(
            &announce_v4(&["192.0.2.128/25"], &[65001, 65003], &[]),
            FOUR,
        )
        .unwrap();
        assert_eq!(rib.attribute_sets(), 2);
        let a = rib.get(&"198.51.100.0/24".parse().unwrap()).unwrap();
        let b = rib.get(&"203.0.113.0/24".parse().unwrap()).unwrap();
        let c = rib.get(&"192.0.2.128/25".parse().unwrap()).unwrap();
        assert!(Arc::ptr_eq(a, b));
        assert!(!Arc::ptr_eq(a, c));
        // Replacing the only user of a set frees it.
        rib.apply(&announce_v4(&["192.0.2.128/25"], &[65001], &[]), FOUR)
            .unwrap();
        assert_eq!(rib.attribute_sets(), 1);
    }

    #[test]
    fn treat_as_withdraw_removes_the_nlri() {
        let ctx = Context::default();
        let mut rib = AdjRibIn::unlimited();
        let good = announce_v4(&["198.51.100.0/24"], &[65001], &[]);
        rib.apply(&good, FOUR).unwrap();
        // Same UPDATE on the wire with ORIGIN value 5: RFC 7606 §7.1 treat-as-withdraw.
        let mut bytes = Message::Update(good).to_bytes(&ctx).to_vec();
        let origin_at = 19 + 4 + 3;
        assert_eq!(&bytes[origin_at - 3..origin_at], &[0x40, 1, 1]);
        bytes[origin_at] = 5;
        let Message::Update(bad) = Message::decode(&bytes, &ctx).unwrap() else {
            panic!()
        };
        assert!(bad.treat_as_withdraw());
        let ch = rib.apply(&bad, FOUR).unwrap();
        assert_eq!(
            ch.withdrawn,
            vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]
        );
        assert!(ch.announced.is_empty());
        assert!(rib.is_empty());
    }

    #[test]
    fn max_prefix_refuses_the_update_and_builds_the_cease() {
        let mut rib = AdjRibIn::unlimited();
        rib.set_max_prefix(Family::Ipv6Unicast, Some(2));
        rib.apply(&announce_v6(&["2001:db8:1::/48", "2001:db8:2::/48"]), FOUR)
            .unwrap();
        // Re-announcing held prefixes does not count twice.
        rib.apply(&announce_v6(&["2001:db8:1::/48"]), FOUR).unwrap();
        // IPv4 has no limit.
        rib.apply(
            &announce_v4(&["198.51.100.0/24", "203.0.113.0/24"], &[65001], &[]),
            FOUR,
        )
        .unwrap();
        let e = rib
            .apply(&announce_v6(&["2001:db8:3::/48", "2001:db8:4::/48"]), FOUR)
            .unwrap_err();
        assert_eq!(
            e,
            RibInRefusal::MaxPrefix(MaxPrefixExceeded {
                family: Family::Ipv6Unicast,
                limit: 2,
                count: 4
            })
        );
        assert_eq!(rib.count(Family::Ipv6Unicast), 2);
        let n = e.notification();
        assert_eq!(
            (n.code, n.subcode),
            (cease::CODE, cease::MAX_PREFIXES_REACHED)
        );
        assert_eq!(&n.data[..], &[0, 2, 1, 0, 0, 0, 2]);
        // A withdraw in the same UPDATE makes room.
        let mut swap = announce_v6(&["2001:db8:3::/48"]);
        swap.attributes
            .push(withdraw_v6(&["2001:db8:1::/48"]).attributes.remove(0));
        rib.apply(&swap, FOUR).unwrap();
        assert_eq!(rib.count(Family::Ipv6Unicast), 2);

        // new(n) limits each family to n.
        let mut rib = AdjRibIn::new(1);
        assert_eq!(rib.max_prefix(Family::Ipv4Unicast), Some(1));
        rib.apply(&announce_v6(&["2001:db8:1::/48"]), FOUR).unwrap();
        rib.apply(&announce_v4(&["198.51.100.0/24"], &[65001], &[]), FOUR)
            .unwrap();
        let e = rib
            .apply(&announce_v4(&["203.0.113.0/24"], &[65001], &[]), FOUR)
            .unwrap_err();
        let RibInRefusal::MaxPrefix(e) = e else {
            panic!("{e}")
        };
        assert_eq!((e.family, e.limit, e.count), (Family::Ipv4Unicast, 1, 2));
    }

    /// An announcement of `prefix` whose COMMUNITIES make its set `n` communities long.
    fn with_communities(prefix: &str, first: u32, n: u32) -> Update {
        let c: Vec<Community> = (first..first + n).map(Community).collect();
        announce_v4(&[prefix], &[65001], &c)
    }

    #[test]
    fn attribute_budget_counts_each_set_once_and_frees_it_with_its_last_route() {
        let mut rib = AdjRibIn::unlimited();
        rib.apply(&with_communities("198.51.100.0/24", 1, 100), FOUR)
            .unwrap();
        let one = rib.attribute_bytes();
        let key = rib
            .get(&"198.51.100.0/24".parse().unwrap())
            .unwrap()
            .key
            .len();
        assert!(key > 400, "100 communities are 400 octets; key {key}");
        assert_eq!(one, key + SET_OVERHEAD);
        // Shared: the same set for another prefix costs nothing more.
        rib.apply(&with_communities("203.0.113.0/24", 1, 100), FOUR)
            .unwrap();
        assert_eq!(rib.attribute_bytes(), one);
        // A second set adds its own cost; replacing a set's only route frees it.
        rib.apply(&with_communities("192.0.2.0/24", 1000, 100), FOUR)
            .unwrap();
        assert_eq!(rib.attribute_bytes(), 2 * one);
        rib.apply(&with_communities("192.0.2.0/24", 1, 100), FOUR)
            .unwrap();
        assert_eq!(rib.attribute_bytes(), one);
        let w = Update {
            withdrawn: vec![v4("198.51.100.0/24"), v4("203.0.113.0/24")],
            ..Update::default()
        };
        rib.apply(&w, FOUR).unwrap();
        assert_eq!(rib.attribute_bytes(), one, "192.0.2.0/24 still holds it");
        rib.clear();
        assert_eq!(rib.attribute_bytes(), 0);
    }

    #[test]
    fn attribute_budget_refuses_the_update_whole_and_builds_the_cease() {
        let mut rib = AdjRibIn::unlimited();
        rib.apply(&with_communities("198.51.100.0/24", 1, 100), FOUR)
            .unwrap();
        let one = rib.attribute_bytes();
        rib.set_attribute_budget(Some(2 * one + 10));
        rib.apply(&with_communities("203.0.113.0/24", 1000, 100), FOUR)
            .unwrap();
        // A third set would not fit: nothing of the UPDATE is applied, not even its withdraw.
        let mut third = with_communities("192.0.2.0/24", 2000, 100);
        third.withdrawn = vec![v4("198.51.100.0/24")];
        let e = rib.apply(&third, FOUR).unwrap_err();
        assert_eq!(
            e,
            RibInRefusal::AttributeBudget(AttributeBudgetExceeded {
                budget: 2 * one + 10,
                usage: 3 * one
            })
        );
        assert_eq!(rib.len(), 2);
        assert_eq!(rib.attribute_bytes(), 2 * one);
        let n = e.notification();
        assert_eq!(
            (n.code, n.subcode, n.data.len()),
            (cease::CODE, cease::OUT_OF_RESOURCES, 0)
        );
        // Routes that reuse a held set and withdrawals are always taken.
        rib.apply(&with_communities("192.0.2.0/24", 1, 100), FOUR)
            .unwrap();
        assert_eq!(rib.len(), 3);
        let w = Update {
            withdrawn: vec![v4("203.0.113.0/24")],
            ..Update::default()
        };
        rib.apply(&w, FOUR).unwrap();
        // Now it fits; it replaces the last routes of the first set, which is freed.
        rib.apply(&third, FOUR).unwrap();
        assert_eq!(rib.len(), 1);
        assert_eq!(rib.attribute_bytes(), one);
    }

    #[test]
    fn graceful_restart_stale_routes_are_swept_at_end_of_rib() {
        let mut rib = AdjRibIn::unlimited();
        rib.apply(
            &announce_v4(&["198.51.100.0/24", "203.0.113.0/24"], &[65001], &[]),
            FOUR,
        )
        .unwrap();
        rib.apply(&announce_v6(&["2001:db8:1::/48"]), FOUR).unwrap();
        rib.mark_stale();
        assert!(rib.routes().iter().all(|r| r.stale));
        rib.apply(&announce_v4(&["198.51.100.0/24"], &[65001], &[]), FOUR)
            .unwrap();
        let ch = rib
            .apply(&Update::end_of_rib(Family::Ipv4Unicast), FOUR)
            .unwrap();
        assert_eq!(ch.end_of_rib, Some(Family::Ipv4Unicast));
        assert_eq!(
            ch.withdrawn,
            vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]
        );
        let routes = rib.routes();
        assert_eq!(routes.len(), 2);
        assert!(!routes[0].stale);
        assert!(routes[1].stale);
        assert_eq!(
            rib.sweep_stale(None),
            vec!["2001:db8:1::/48".parse::<IpNet>().unwrap()]
        );
        rib.clear();
        assert!(rib.is_empty());
        assert_eq!(rib.attribute_sets(), 0);
    }

    #[test]
    fn a_set_is_kept_encoded_and_decodes_to_its_attributes_without_nlri() {
        let mut rib = AdjRibIn::unlimited();
        let mut u = announce_v6(&["2001:db8:1::/48", "2001:db8:2::/48"]);
        u.attributes
            .push(withdraw_v6(&["2001:db8:9::/48"]).attributes.remove(0));
        rib.apply(&u, FOUR).unwrap();
        let attrs = rib.get(&"2001:db8:2::/48".parse().unwrap()).unwrap();
        let decoded = attrs.attributes();
        // ORIGIN, AS_PATH, MP_REACH_NLRI with its next hop and no NLRI; no MP_UNREACH_NLRI.
        assert_eq!(decoded.len(), 3);
        let AttributeValue::MpReach(m) = &decoded[2].value else {
            panic!("{decoded:?}")
        };
        assert!(prefixes(&m.nlri).next().is_none());
        assert_eq!(
            m.next_hop,
            MpNextHop::Ipv6 {
                global: "2001:db8::2".parse().unwrap(),
                link_local: Some("fe80::2".parse().unwrap()),
            }
        );
        let d = attrs.decode();
        assert_eq!(d.as_path.to_string(), "65001");
        assert_eq!(d.attrs.origin, Origin::Igp);
        // The same attributes again reuse the set; nothing stale outside a restart.
        rib.apply(&announce_v6(&["2001:db8:3::/48"]), FOUR).unwrap();
        assert_eq!(rib.attribute_sets(), 1);
        assert_eq!(rib.stale_count(), 0);
    }

    #[test]
    fn routes_are_listed_in_prefix_order() {
        let mut rib = AdjRibIn::unlimited();
        let given = [
            "203.0.113.0/24",
            "192.0.2.0/25",
            "192.0.2.0/24",
            "198.51.100.128/25",
        ];
        rib.apply(&announce_v4(&given, &[65001], &[]), FOUR)
            .unwrap();
        rib.apply(&announce_v6(&["2001:db8::/32"]), FOUR).unwrap();
        let listed: Vec<String> = rib.routes().iter().map(|r| r.prefix.to_string()).collect();
        assert_eq!(
            listed,
            [
                "192.0.2.0/24",
                "192.0.2.0/25",
                "198.51.100.128/25",
                "203.0.113.0/24",
                "2001:db8::/32"
            ]
        );
    }

    #[test]
    fn two_octet_session_shows_the_merged_as4_path() {
        let mut rib = AdjRibIn::unlimited();
        let mut u = announce_v4(&["198.51.100.0/24"], &[65001, 23456], &[]);
        u.attributes
            .push(PathAttribute::new(AttributeValue::As4Path(
                AsPath::sequence(&[4_200_000_001]),
            )));
        rib.apply(&u, false).unwrap();
        assert_eq!(rib.routes()[0].as_path.to_string(), "65001 4200000001");
    }
}
