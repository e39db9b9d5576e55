//! The speaker's route logic: what we want announced, what each peer was told, what each peer
//! sent us. Pure state and functions: no sockets, no tokio, no clocks; the daemon's driver owns
//! the sessions and calls in here.
//!
//! Module map:
//! - [`attrs`]: [`Attributes`], the path attributes a route carries unchanged (ORIGIN, MED,
//!   LOCAL_PREF, communities): the one place that lists them, with their checks, text forms and
//!   wire mapping.
//! - [`route`]: [`Route`], one desired announcement, validated; its JSON form.
//! - [`store`]: [`RouteStore`], the desired routes persisted atomically in
//!   `state_dir/routes.json` before a change is acknowledged.
//! - [`export`]: [`PeerExport`], per-peer export policy: a route's outgoing [`AttrSet`]
//!   (ORIGIN, AS_PATH, NEXT_HOP / MP_REACH_NLRI, MED, LOCAL_PREF, communities).
//! - [`adj_rib_out`]: [`AdjRibOut`], per peer, what it was told and the pending changes packed
//!   into UPDATEs (RFC 4271 §9.2, RFC 4760), route refresh (RFC 2918), End-of-RIB (RFC 4724).
//! - [`desired_log`]: [`DesiredLog`], the desired routes as the drivers see them, versioned,
//!   with a bounded log of changes so that each consumer applies only the delta.
//! - [`update_group`]: [`UpdateGroups`], sessions with identical export share one Adj-RIB-Out
//!   and one encoding of each UPDATE (`Bytes`); slow members split off, catch up, merge back.
//! - [`adj_rib_in`]: [`AdjRibIn`], per peer, what it sent us, bounded by max-prefix
//!   (RFC 4486), RFC 7606 treat-as-withdraw, graceful-restart stale routes (RFC 4724 §4.2).
//! - [`graceful`]: graceful restart decisions (RFC 4724, RFC 8538): our capability, whether a
//!   session end keeps the peer's routes as stale, the helper's stale timer.
//! - [`lease`]: [`lease::Leases`], when each leased route is withdrawn unless renewed
//!   (fencing), persisted in `state_dir/leases.json`.
//! - [`seeded_hash`]: [`seeded_hash::SeededHasher`], the fast seeded hash of the hot maps.
//! - [`sorted_walk`]: when a sorted batch is applied to a sorted table by one walk beside it,
//!   and the step that keeps the two in line (the store, the desired log, the Adj-RIB-Out).
//! - [`stamp`]: [`stamp::Stamp`], when and by whom a desired route was last changed.
//! - [`prefix_text`]: [`prefix_text::PrefixText`], a prefix's text without `core::fmt`, for
//!   the store's files.
//!
//! Data flow: API request -> [`RouteStore::apply`] (durable) -> [`DesiredLog::apply`] (the
//! changed prefixes) -> each update group applies the delta to its [`AdjRibOut`] ->
//! [`AdjRibOut::next_messages`], encoded once per group, as its members' sockets drain. Received
//! UPDATE -> [`AdjRibIn::apply`].
//!
//! Never does: know about sites or VMs, run the FSM (that is `session`).

pub mod adj_rib_in;
pub mod adj_rib_out;
pub mod attrs;
pub mod desired_log;
pub mod export;
pub mod graceful;
pub mod lease;
pub mod prefix_parse;
pub mod prefix_text;
pub mod route;
pub mod seeded_hash;
pub mod sorted_walk;
pub mod stamp;
pub mod store;
pub mod update_group;

pub use adj_rib_in::{
    AdjRibIn, AttributeBudgetExceeded, MaxPrefixExceeded, ReceivedAttrs, ReceivedRoute,
    RibInChange, RibInRefusal,
};
pub use adj_rib_out::{AdjRibOut, SyncReport};
pub use attrs::Attributes;
pub use desired_log::{DesiredLog, Retired};
pub use export::{AttrSet, ExportError, NextHop, PeerExport, DEFAULT_LOCAL_PREF};
pub use route::{parse_prefix, Route, RouteError, MAX_PREPEND};
pub use store::{Applied, Change, RouteStore, StoreError};
pub use update_group::UpdateGroups;
