//! The speaker's metrics, encoded by the `prometheus-client` crate (no hand-written exposition
//! text): [`registry`] builds the one [`Registry`] that `GET /metrics` encodes on every scrape,
//! on the API listeners and on the optional `speaker.metrics_listen` address.
//!
//! Contract:
//! - Every family has HELP and TYPE; names follow the Prometheus conventions: base units in the
//!   name (`_seconds`, `_bytes`), `_total` on counters (the encoder adds it to the counter
//!   families named here without it), `ferry_build_info` for the version.
//! - Values are read at scrape time ([`Collector`]), each under its lock for a moment: a
//!   scrape never changes state and never waits on the network.
//! - Names, labels and help texts are what dashboards and tests scrape (docs/api.md lists
//!   them): change them only on purpose. Session security is shown from the config, never a key.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::{lock, Shared};
use crate::api::listen::ApiCounters;
use crate::api::metrics::{counter, counter_family, gauge, gauge_family, gauge_with_unit};

/// The registry `/metrics` encodes: the build, the speaker's state and the API's counters.
pub fn registry(shared: Arc<Shared>, api: Arc<ApiCounters>) -> Registry {
    let mut r = Registry::default();
    r.register(
        "ferry_build",
        // The registry ends help texts with a period itself.
        "The running build: 1, labelled with its version",
        Info::new([("version", env!("CARGO_PKG_VERSION"))]),
    );
    r.register_collector(Box::new(SpeakerMetrics(shared)));
    r.register_collector(Box::new(api));
    r
}

/// Reads the speaker's state at each scrape.
struct SpeakerMetrics(Arc<Shared>);

impl fmt::Debug for SpeakerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpeakerMetrics")
    }
}

impl Collector for SpeakerMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        encode_speaker(&self.0, &mut enc)
    }
}

/// One peer's values, read once per scrape.
struct PeerRow {
    peer: String,
    established: bool,
    uptime_secs: f64,
    prefixes_sent: u64,
    prefixes_received: u64,
    updates_sent: u64,
    updates_received: u64,
    stale_routes: u64,
    gr_helping: bool,
    admin_down: bool,
    md5: bool,
    ttl_security_hops: u64,
    send_hold_time_secs: u64,
    /// (Up, state changes) when BFD is configured.
    bfd: Option<(bool, u64)>,
}

fn peer_rows(s: &Shared) -> Vec<PeerRow> {
    let admin = lock(&s.admin);
    s.peers()
        .iter()
        .map(|p| {
            let (established, uptime_secs, prefixes_sent, gr_helping) = {
                let st = lock(&p.status);
                let established = st.state == crate::session::State::Established;
                let uptime = st
                    .established_at
                    .filter(|_| established)
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                (
                    established,
                    uptime,
                    st.prefixes_sent,
                    st.gr.stale_until.is_some(),
                )
            };
            let (prefixes_received, stale_routes) = {
                let rib = lock(&p.rib_in);
                (rib.len() as u64, rib.stale_count() as u64)
            };
            PeerRow {
                peer: p.config.address.to_string(),
                established,
                uptime_secs,
                prefixes_sent,
                prefixes_received,
                updates_sent: p.updates_sent.load(Ordering::Relaxed),
                updates_received: p.updates_received.load(Ordering::Relaxed),
                stale_routes,
                gr_helping,
                admin_down: admin.get(p.config.address).is_some(),
                md5: p.config.md5_password.is_some(),
                ttl_security_hops: p.config.ttl_security.map_or(0, |h| u64::from(h.0)),
                send_hold_time_secs: u64::from(p.config.send_hold_time.0),
                bfd: p.bfd.as_ref().map(|b| {
                    let snap = b.snapshot();
                    (snap.state == crate::bfd::State::Up, snap.transitions)
                }),
            }
        })
        .collect()
}

fn encode_speaker(s: &Shared, enc: &mut DescriptorEncoder) -> fmt::Result {
    let rows = peer_rows(s);
    let per_peer = |f: fn(&PeerRow) -> Option<u64>| -> Vec<(&str, u64)> {
        rows.iter()
            .filter_map(|r| Some((r.peer.as_str(), f(r)?)))
            .collect()
    };
    gauge(
        enc,
        "ferry_desired_routes",
        "Routes the speaker is asked to announce.",
        lock(&s.store).len() as u64,
    )?;
    gauge_family(
        enc,
        "ferry_peer_established",
        "1 when the session is Established.",
        None,
        "peer",
        per_peer(|r| Some(r.established.into())),
    )?;
    gauge_family(
        enc,
        "ferry_peer_uptime",
        "Seconds since the session reached Established; 0 when it is not.",
        Some(&Unit::Seconds),
        "peer",
        rows.iter().map(|r| (r.peer.as_str(), r.uptime_secs)),
    )?;
    gauge_family(
        enc,
        "ferry_peer_prefixes_sent",
        "Prefixes announced to the peer now.",
        None,
        "peer",
        per_peer(|r| Some(r.prefixes_sent)),
    )?;
    gauge_family(
        enc,
        "ferry_peer_prefixes_received",
        "Prefixes the peer announces to us now (Adj-RIB-In).",
        None,
        "peer",
        per_peer(|r| Some(r.prefixes_received)),
    )?;
    counter_family(
        enc,
        "ferry_peer_updates_sent",
        "UPDATE messages sent to the peer.",
        "peer",
        per_peer(|r| Some(r.updates_sent)),
    )?;
    counter_family(
        enc,
        "ferry_peer_updates_received",
        "UPDATE messages received from the peer.",
        "peer",
        per_peer(|r| Some(r.updates_received)),
    )?;
    gauge_family(
        enc,
        "ferry_peer_stale_routes",
        "Routes kept from a restarting peer (graceful restart helper, RFC 4724).",
        None,
        "peer",
        per_peer(|r| Some(r.stale_routes)),
    )?;
    gauge_family(
        enc,
        "ferry_peer_graceful_restart_helping",
        "1 while the peer's stale routes wait for its End-of-RIB or restart timer.",
        None,
        "peer",
        per_peer(|r| Some(r.gr_helping.into())),
    )?;
    gauge_family(
        enc,
        "ferry_peer_admin_down",
        "1 while the operator keeps the neighbor down (ferry neighbor disable).",
        None,
        "peer",
        per_peer(|r| Some(r.admin_down.into())),
    )?;
    // Session security (RFC 2385 MD5, RFC 5082 GTSM, RFC 9687 send hold time), from the config.
    gauge_family(
        enc,
        "ferry_peer_md5",
        "1 when TCP MD5 signatures (RFC 2385) protect the session.",
        None,
        "peer",
        per_peer(|r| Some(r.md5.into())),
    )?;
    gauge_family(
        enc,
        "ferry_peer_ttl_security_hops",
        "GTSM (RFC 5082) hop limit of the peer; 0 when off.",
        None,
        "peer",
        per_peer(|r| Some(r.ttl_security_hops)),
    )?;
    gauge_family(
        enc,
        "ferry_peer_send_hold_time",
        "RFC 9687 send hold time; 0 when off.",
        Some(&Unit::Seconds),
        "peer",
        per_peer(|r| Some(r.send_hold_time_secs)),
    )?;
    if rows.iter().any(|r| r.md5) {
        md5_drops(enc)?;
    }
    // Health checks (`[[health_check]]`), labelled by name; nothing when none is configured.
    let checks: Vec<(String, bool, u64)> = lock(&s.health)
        .iter()
        .map(|g| {
            let up = g.state == crate::daemon::health::machine::Health::Up;
            (g.name.clone(), up, g.transitions)
        })
        .collect();
    gauge_family(
        enc,
        "ferry_health_check_up",
        "1 while the health check is up (its routes announced as configured); 0 while it fails or before its first result.",
        None,
        "check",
        checks.iter().map(|(n, up, _)| (n.as_str(), u64::from(*up))),
    )?;
    counter_family(
        enc,
        "ferry_health_check_transitions",
        "Times the health check changed state (init, up, down).",
        "check",
        checks.iter().map(|(n, _, t)| (n.as_str(), *t)),
    )?;
    // BFD only for the peers that have it configured.
    gauge_family(
        enc,
        "ferry_peer_bfd_up",
        "1 when the peer's BFD session (RFC 5880) is Up.",
        None,
        "peer",
        per_peer(|r| r.bfd.map(|(up, _)| up.into())),
    )?;
    counter_family(
        enc,
        "ferry_peer_bfd_transitions",
        "BFD session state changes.",
        "peer",
        per_peer(|r| r.bfd.map(|(_, n)| n)),
    )?;
    counter(
        enc,
        "ferry_lease_expiries",
        "Leased routes withdrawn because their lease was not renewed.",
        s.lease_expiries.load(Ordering::Relaxed),
    )?;
    let (leased, lease_failures) = {
        let l = lock(&s.leases);
        (l.len() as u64, l.write_failures())
    };
    let route_failures = lock(&s.store).write_failures();
    counter_family(
        enc,
        "ferry_state_write_failures",
        "Writes to state_dir that failed (each refused its change, or a compaction waits for the next try).",
        "file",
        [("routes", route_failures), ("leases", lease_failures)],
    )?;
    gauge(
        enc,
        "ferry_leased_routes",
        "Routes announced with a lease.",
        leased,
    )?;
    fences(s, enc)?;
    update_groups(s, enc)
}

/// Fencing tokens, labelled by fence; nothing before a fenced call came.
fn fences(s: &Shared, enc: &mut DescriptorEncoder) -> fmt::Result {
    let held = lock(&s.fences).list();
    gauge_family(
        enc,
        "ferry_fence_token",
        "The highest fencing token taken for the fence (calls with a lower one are refused).",
        None,
        "fence",
        held.iter().map(|f| (f.fence.as_str(), f.token)),
    )?;
    counter_family(
        enc,
        "ferry_fence_refused",
        "Calls refused since the speaker started because their fencing token was lower than the one held.",
        "fence",
        held.iter().map(|f| (f.fence.as_str(), f.refused)),
    )
}

/// Update groups: how many, and how much encoding and memory sharing saves.
fn update_groups(s: &Shared, enc: &mut DescriptorEncoder) -> fmt::Result {
    let (stats, log_bytes) = {
        let g = lock(&s.groups);
        (g.stats(), g.log_bytes())
    };
    gauge(
        enc,
        "ferry_update_groups",
        "Update groups of established sessions (one encoding each).",
        stats.groups as u64,
    )?;
    counter(
        enc,
        "ferry_update_messages_encoded",
        "UPDATEs encoded, once per group.",
        stats.messages_encoded,
    )?;
    counter(
        enc,
        "ferry_update_group_splits",
        "Members split off for lagging or a route refresh.",
        stats.splits,
    )?;
    gauge_with_unit(
        enc,
        "ferry_update_group_log",
        "Octets of encoded UPDATEs held for members.",
        Some(&Unit::Bytes),
        log_bytes,
    )
}

/// A key mismatch leaves no other trace: the kernel drops the segments without an answer.
/// Shown only when a neighbor has a key; absent when /proc/net/netstat has no such counters.
fn md5_drops(enc: &mut DescriptorEncoder) -> fmt::Result {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok();
    let Some(drops) = netstat
        .as_deref()
        .and_then(crate::daemon::security::kernel_md5_drops)
    else {
        return Ok(());
    };
    counter_family(
        enc,
        "ferry_tcp_md5_drops",
        "TCP segments the kernel dropped for MD5 (RFC 2385): no signature where a key is set (not_found), a signature where none is (unexpected), a wrong one (failure); whole network namespace.",
        "reason",
        drops,
    )
}

/// The Prometheus text of `shared`'s metrics alone, for unit tests.
#[cfg(test)]
pub(super) fn text(shared: &Arc<Shared>) -> String {
    let r = registry(shared.clone(), Arc::default());
    crate::api::metrics::encode(&r, None)
        .expect("metrics encode")
        .1
}
