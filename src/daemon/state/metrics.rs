//! The speaker's metrics as Prometheus text (exposition format 0.0.4), hand-written.
//!
//! Names, labels and help texts are what dashboards and tests scrape: change them only on
//! purpose. Session security is shown from the config, never a key.
//!
//! Never does: change state; every value is read under its lock for a moment.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{lock, PeerShared, Shared};
use crate::speaker::UpdateGroups;

impl Shared {
    /// The text `GET /metrics` serves.
    pub(super) fn metrics_text(&self) -> String {
        let mut m = String::new();
        let desired = lock(&self.store).len();
        let _ = writeln!(
            m,
            "# HELP ferry_desired_routes Routes the speaker is asked to announce."
        );
        let _ = writeln!(
            m,
            "# TYPE ferry_desired_routes gauge\nferry_desired_routes {desired}"
        );
        let _ = writeln!(
            m,
            "# HELP ferry_peer_established 1 when the session is Established."
        );
        let _ = writeln!(m, "# TYPE ferry_peer_established gauge");
        for p in &self.peers() {
            let up = u8::from(lock(&p.status).state == crate::session::State::Established);
            let _ = writeln!(
                m,
                "ferry_peer_established{{peer=\"{}\"}} {up}",
                p.config.address
            );
        }
        let _ = writeln!(m, "# TYPE ferry_peer_prefixes_sent gauge");
        for p in &self.peers() {
            let _ = writeln!(
                m,
                "ferry_peer_prefixes_sent{{peer=\"{}\"}} {}",
                p.config.address,
                lock(&p.status).prefixes_sent
            );
        }
        let _ = writeln!(m, "# TYPE ferry_peer_prefixes_received gauge");
        for p in &self.peers() {
            let _ = writeln!(
                m,
                "ferry_peer_prefixes_received{{peer=\"{}\"}} {}",
                p.config.address,
                lock(&p.rib_in).len()
            );
        }
        let _ = writeln!(m, "# TYPE ferry_peer_updates_sent_total counter");
        for p in &self.peers() {
            let _ = writeln!(
                m,
                "ferry_peer_updates_sent_total{{peer=\"{}\"}} {}",
                p.config.address,
                p.updates_sent.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            m,
            "# HELP ferry_peer_stale_routes Routes kept from a restarting peer (graceful restart helper)."
        );
        let _ = writeln!(m, "# TYPE ferry_peer_stale_routes gauge");
        for p in &self.peers() {
            let _ = writeln!(
                m,
                "ferry_peer_stale_routes{{peer=\"{}\"}} {}",
                p.config.address,
                lock(&p.rib_in).stale_count()
            );
        }
        let _ = writeln!(
            m,
            "# HELP ferry_peer_graceful_restart_helping 1 while the peer's stale routes wait for its End-of-RIB or restart timer."
        );
        let _ = writeln!(m, "# TYPE ferry_peer_graceful_restart_helping gauge");
        for p in &self.peers() {
            let helping = u8::from(lock(&p.status).gr.stale_until.is_some());
            let _ = writeln!(
                m,
                "ferry_peer_graceful_restart_helping{{peer=\"{}\"}} {helping}",
                p.config.address
            );
        }
        let _ = writeln!(
            m,
            "# HELP ferry_peer_admin_down 1 while the operator keeps the neighbor down (ferry neighbor disable).\n# TYPE ferry_peer_admin_down gauge"
        );
        for p in &self.peers() {
            let down = u8::from(lock(&self.admin).get(p.config.address).is_some());
            let _ = writeln!(
                m,
                "ferry_peer_admin_down{{peer=\"{}\"}} {down}",
                p.config.address
            );
        }
        security_metrics(&mut m, &self.peers());
        bfd_metrics(&mut m, &self.peers());
        let _ = writeln!(
            m,
            "# HELP ferry_lease_expiries_total Leased routes withdrawn because their lease was not renewed."
        );
        let _ = writeln!(
            m,
            "# TYPE ferry_lease_expiries_total counter\nferry_lease_expiries_total {}",
            self.lease_expiries.load(Ordering::Relaxed)
        );
        let (leased, lease_failures) = {
            let l = lock(&self.leases);
            (l.len(), l.write_failures())
        };
        let _ = writeln!(
            m,
            "# HELP ferry_state_write_failures_total Writes to state_dir that failed (each refused its change, or a compaction waits for the next try).\n\
             # TYPE ferry_state_write_failures_total counter\n\
             ferry_state_write_failures_total{{file=\"routes\"}} {}\n\
             ferry_state_write_failures_total{{file=\"leases\"}} {lease_failures}",
            lock(&self.store).write_failures()
        );
        let _ = writeln!(
            m,
            "# HELP ferry_leased_routes Routes announced with a lease.\n# TYPE ferry_leased_routes gauge\nferry_leased_routes {leased}"
        );
        let _ = writeln!(m, "# TYPE ferry_peer_updates_received_total counter");
        for p in &self.peers() {
            let _ = writeln!(
                m,
                "ferry_peer_updates_received_total{{peer=\"{}\"}} {}",
                p.config.address,
                p.updates_received.load(Ordering::Relaxed)
            );
        }
        update_group_metrics(&mut m, &lock(&self.groups));
        m
    }
}

/// Update groups: how many, and how much encoding and memory sharing saves.
fn update_group_metrics(m: &mut String, groups: &UpdateGroups) {
    let s = groups.stats();
    let _ = writeln!(
        m,
        "# HELP ferry_update_groups Update groups of established sessions (one encoding each).\n# TYPE ferry_update_groups gauge\nferry_update_groups {}",
        s.groups
    );
    let _ = writeln!(
        m,
        "# HELP ferry_update_messages_encoded_total UPDATEs encoded, once per group.\n# TYPE ferry_update_messages_encoded_total counter\nferry_update_messages_encoded_total {}",
        s.messages_encoded
    );
    let _ = writeln!(
        m,
        "# HELP ferry_update_group_splits_total Members split off for lagging or a route refresh.\n# TYPE ferry_update_group_splits_total counter\nferry_update_group_splits_total {}",
        s.splits
    );
    let _ = writeln!(
        m,
        "# HELP ferry_update_group_log_bytes Octets of encoded UPDATEs held for members.\n# TYPE ferry_update_group_log_bytes gauge\nferry_update_group_log_bytes {}",
        groups.log_bytes()
    );
}

/// Session security per peer (RFC 2385 MD5, RFC 5082 GTSM, RFC 9687 send hold time), from the
/// config; 0 means off. Never the key itself.
fn security_metrics(m: &mut String, peers: &[Arc<PeerShared>]) {
    let _ = writeln!(
        m,
        "# HELP ferry_peer_md5 1 when TCP MD5 signatures (RFC 2385) protect the session.\n# TYPE ferry_peer_md5 gauge"
    );
    for p in peers {
        let on = u8::from(p.config.md5_password.is_some());
        let _ = writeln!(m, "ferry_peer_md5{{peer=\"{}\"}} {on}", p.config.address);
    }
    let _ = writeln!(
        m,
        "# HELP ferry_peer_ttl_security_hops GTSM (RFC 5082) hop limit of the peer; 0 when off.\n# TYPE ferry_peer_ttl_security_hops gauge"
    );
    for p in peers {
        let hops = p.config.ttl_security.map_or(0, |h| h.0);
        let _ = writeln!(
            m,
            "ferry_peer_ttl_security_hops{{peer=\"{}\"}} {hops}",
            p.config.address
        );
    }
    let _ = writeln!(
        m,
        "# HELP ferry_peer_send_hold_time_seconds RFC 9687 send hold time; 0 when off.\n# TYPE ferry_peer_send_hold_time_seconds gauge"
    );
    for p in peers {
        let _ = writeln!(
            m,
            "ferry_peer_send_hold_time_seconds{{peer=\"{}\"}} {}",
            p.config.address, p.config.send_hold_time.0
        );
    }
    // A key mismatch leaves no other trace: the kernel drops the segments without an answer.
    if peers.iter().any(|p| p.config.md5_password.is_some()) {
        let netstat = std::fs::read_to_string("/proc/net/netstat").ok();
        if let Some(drops) = netstat
            .as_deref()
            .and_then(crate::daemon::security::kernel_md5_drops)
        {
            let _ = writeln!(
                m,
                "# HELP ferry_tcp_md5_drops_total TCP segments the kernel dropped for MD5 (RFC 2385): no signature where a key is set (not_found), a signature where none is (unexpected), a wrong one (failure); whole network namespace.\n# TYPE ferry_tcp_md5_drops_total counter"
            );
            for (reason, n) in drops {
                let _ = writeln!(m, "ferry_tcp_md5_drops_total{{reason=\"{reason}\"}} {n}");
            }
        }
    }
}

/// BFD per peer that has it configured: Up or not, and state changes.
fn bfd_metrics(m: &mut String, peers: &[Arc<PeerShared>]) {
    let sessions: Vec<_> = peers
        .iter()
        .filter_map(|p| Some((p.config.address, p.bfd.as_ref()?.snapshot())))
        .collect();
    let _ = writeln!(
        m,
        "# HELP ferry_peer_bfd_up 1 when the peer's BFD session (RFC 5880) is Up.\n# TYPE ferry_peer_bfd_up gauge"
    );
    for (peer, s) in &sessions {
        let up = u8::from(s.state == crate::bfd::State::Up);
        let _ = writeln!(m, "ferry_peer_bfd_up{{peer=\"{peer}\"}} {up}");
    }
    let _ = writeln!(
        m,
        "# HELP ferry_peer_bfd_transitions_total BFD session state changes.\n# TYPE ferry_peer_bfd_transitions_total counter"
    );
    for (peer, s) in &sessions {
        let _ = writeln!(
            m,
            "ferry_peer_bfd_transitions_total{{peer=\"{peer}\"}} {}",
            s.transitions
        );
    }
}
