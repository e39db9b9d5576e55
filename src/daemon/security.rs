//! Session security per neighbor: TCP MD5 signatures (RFC 2385) and the Generalized TTL
//! Security Mechanism (GTSM, RFC 5082), applied to the sockets the speaker opens and accepts.
//!
//! - Outbound ([`outbound_socket`]): the MD5 key for the peer's address and, with
//!   `ttl_security`, TTL 255 and minimum TTL `256 - hops` are set before `connect`, so the SYN
//!   is already signed and sent with TTL 255 and a SYN-ACK from too far away is dropped.
//! - Listener ([`prepare_listener`]): Linux checks the MD5 signature on the SYN against the
//!   keys of the *listening* socket (accepted sockets inherit them), so every neighbor's key is
//!   installed there before the first `accept`. With any GTSM neighbor the listener sends with
//!   TTL 255, since the kernel answers SYNs with the listener's TTL and a GTSM peer would drop
//!   any other SYN-ACK. The listener carries a minimum TTL only when
//!   every neighbor has `ttl_security` ([`listener_min_ttl`]): it then drops SYNs from beyond
//!   the loosest neighbor's radius in the kernel. With a neighbor without GTSM it carries none,
//!   since that neighbor's packets (sent with the usual TTL 64) would be dropped too.
//! - Inbound ([`secure_accepted`]): the TTL the connection's SYN arrived with is checked first
//!   (the listener keeps SYNs, Linux `TCP_SAVE_SYN`, when any neighbor uses GTSM): below the
//!   neighbor's minimum the connection is closed before a byte is read, so a peer too far away
//!   never gets its OPEN looked at, even when it arrived before the option below was set.
//!   Then the connection gets TTL 255 and the neighbor's minimum TTL, and the kernel drops
//!   every later segment that arrives with a lower TTL (RFC 5082 §3: such packets are
//!   discarded). Either way the session never reaches Established.
//!
//! Every failure names the neighbor and the config key (`md5_password`, `ttl_security`); it is
//! never the password. Never does: keep sockets, decide about sessions, or log secrets.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

use tokio::net::{TcpListener, TcpSocket};

use crate::config::NeighborConfig;
use crate::sockopt;

/// RFC 5082 §3: a GTSM speaker sends with the highest TTL.
pub const GTSM_SEND_TTL: u8 = 255;

/// A security option could not be applied for a neighbor.
#[derive(Debug, thiserror::Error)]
#[error("neighbor {neighbor}: {option}: {what}: {source}")]
pub struct OptionError {
    pub neighbor: IpAddr,
    /// The config key: `md5_password` or `ttl_security`.
    pub option: &'static str,
    pub what: String,
    pub source: io::Error,
}

fn md5(fd: &impl AsFd, n: &NeighborConfig) -> Result<(), OptionError> {
    let Some(key) = &n.md5_password else {
        return Ok(());
    };
    sockopt::set_tcp_md5(fd, n.address, key.as_bytes()).map_err(|source| OptionError {
        neighbor: n.address,
        option: "md5_password",
        what: "cannot install the TCP MD5 signature key (RFC 2385)".into(),
        source,
    })
}

fn gtsm(fd: &impl AsFd, n: &NeighborConfig) -> Result<(), OptionError> {
    let Some(hops) = n.ttl_security else {
        return Ok(());
    };
    let err = |what: String| {
        move |source| OptionError {
            neighbor: n.address,
            option: "ttl_security",
            what,
            source,
        }
    };
    sockopt::set_ttl(fd, GTSM_SEND_TTL)
        .map_err(err(format!("cannot send with TTL {GTSM_SEND_TTL}")))?;
    sockopt::set_min_ttl(fd, hops.min_ttl()).map_err(err(format!(
        "cannot set the minimum TTL {} ({} hops, RFC 5082)",
        hops.min_ttl(),
        hops.0
    )))
}

/// A socket for connecting to `remote` with the neighbor's MD5 key and GTSM options set (not
/// yet bound or connected).
pub fn outbound_socket(n: &NeighborConfig, remote: SocketAddr) -> Result<TcpSocket, io::Error> {
    let socket = if remote.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    md5(&socket, n).map_err(io::Error::other)?;
    gtsm(&socket, n).map_err(io::Error::other)?;
    Ok(socket)
}

/// Try the options of every neighbor that has any on a scratch socket of its family, so that a
/// kernel without TCP MD5 support (or a key it refuses) stops the speaker at start-up instead
/// of leaving a session that can never come up.
pub fn preflight(neighbors: &[NeighborConfig]) -> Result<(), OptionError> {
    for n in neighbors
        .iter()
        .filter(|n| n.md5_password.is_some() || n.ttl_security.is_some())
    {
        let socket = match n.address {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|source| OptionError {
            neighbor: n.address,
            option: if n.md5_password.is_some() {
                "md5_password"
            } else {
                "ttl_security"
            },
            what: "cannot open a socket to check the option".into(),
            source,
        })?;
        md5(&socket, n)?;
        gtsm(&socket, n)?;
    }
    Ok(())
}

/// The minimum TTL the listening socket itself carries: the loosest neighbor's (most hops)
/// when every neighbor uses GTSM, otherwise none (see the module docs).
pub fn listener_min_ttl(neighbors: &[NeighborConfig]) -> Option<u8> {
    neighbors
        .iter()
        .map(|n| n.ttl_security.map(|h| h.min_ttl()))
        .collect::<Option<Vec<u8>>>()?
        .into_iter()
        .min()
}

/// Whether an inbound connection from `peer` can arrive on a listener bound to `listen`: an
/// IPv4 listener never sees IPv6 peers; an IPv6 one sees both (IPv4 as mapped addresses)
/// unless it is v6-only, which the kernel tells us when the key is installed.
fn listener_reaches(listen: SocketAddr, peer: IpAddr) -> bool {
    !(listen.is_ipv4() && peer.is_ipv6())
}

/// Install every neighbor's MD5 key, and the common minimum TTL, on the listener before it
/// accepts anything. An error stops the speaker at start-up.
pub fn prepare_listener(
    listener: &TcpListener,
    listen: SocketAddr,
    neighbors: &[NeighborConfig],
) -> Result<(), OptionError> {
    for n in neighbors.iter().filter(|n| n.md5_password.is_some()) {
        if !listener_reaches(listen, n.address) {
            tracing::info!(peer = %n.address, %listen, "md5_password: an IPv4 listener cannot accept this IPv6 neighbor; its key is used for outbound connections only");
            continue;
        }
        md5(listener, n)?;
        tracing::info!(peer = %n.address, %listen, "TCP MD5 signature key installed on the listener (RFC 2385)");
    }
    if let Some(n) = neighbors.iter().find(|n| n.ttl_security.is_some()) {
        listener_gtsm(listener, n)?;
    }
    if let Some(min) = listener_min_ttl(neighbors) {
        let n = neighbors
            .iter()
            .find(|n| n.ttl_security.map(|h| h.min_ttl()) == Some(min))
            .map_or(IpAddr::from([0, 0, 0, 0]), |n| n.address);
        sockopt::set_min_ttl(listener, min).map_err(|source| OptionError {
            neighbor: n,
            option: "ttl_security",
            what: format!("cannot set the listener's minimum TTL {min}"),
            source,
        })?;
        tracing::info!(%listen, min_ttl = min, "GTSM: every neighbor uses ttl_security, the listener drops SYNs with a lower TTL (RFC 5082)");
    }
    Ok(())
}

/// The listener's part of GTSM once any neighbor (`n`, named in errors) uses it. The kernel
/// answers a SYN with the listener's TTL: a GTSM peer drops a SYN-ACK that is not sent with
/// 255 (a higher TTL harms no other neighbor); the SYNs are kept so that each accepted
/// connection's TTL can be checked ([`secure_accepted`]).
fn listener_gtsm(listener: &TcpListener, n: &NeighborConfig) -> Result<(), OptionError> {
    let err = |what: &str| {
        let what = what.to_string();
        move |source| OptionError {
            neighbor: n.address,
            option: "ttl_security",
            what,
            source,
        }
    };
    sockopt::set_ttl(listener, GTSM_SEND_TTL)
        .map_err(err("cannot make the listener send with TTL 255"))?;
    sockopt::set_save_syn(listener).map_err(err(
        "cannot make the listener keep SYNs (to check their TTL)",
    ))
}

/// Bring a listener prepared for the neighbors `old` ([`prepare_listener`]) in line with
/// `new` after a reload: MD5 keys of neighbors gone, or whose key changed, are removed and new
/// ones installed; the GTSM settings follow the new set (a TTL of 255 and saved SYNs, once
/// set, stay: they harm no neighbor). Neighbors whose options did not change are not touched,
/// so their inbound sessions never see the listener without their key.
pub fn update_listener(
    listener: &TcpListener,
    listen: SocketAddr,
    old: &[NeighborConfig],
    new: &[NeighborConfig],
) -> Result<(), OptionError> {
    let same_key = |a: &NeighborConfig, list: &[NeighborConfig]| {
        list.iter()
            .any(|b| b.address == a.address && b.md5_password == a.md5_password)
    };
    for o in old.iter().filter(|o| o.md5_password.is_some()) {
        if !same_key(o, new) && listener_reaches(listen, o.address) {
            sockopt::set_tcp_md5(listener, o.address, b"").map_err(|source| OptionError {
                neighbor: o.address,
                option: "md5_password",
                what: "cannot remove the TCP MD5 signature key from the listener".into(),
                source,
            })?;
            tracing::info!(peer = %o.address, %listen, "TCP MD5 signature key removed from the listener");
        }
    }
    for n in new.iter().filter(|n| n.md5_password.is_some()) {
        if !same_key(n, old) && listener_reaches(listen, n.address) {
            md5(listener, n)?;
            tracing::info!(peer = %n.address, %listen, "TCP MD5 signature key installed on the listener (RFC 2385)");
        }
    }
    if let Some(n) = new.iter().find(|n| n.ttl_security.is_some()) {
        if !old.iter().any(|o| o.ttl_security.is_some()) {
            listener_gtsm(listener, n)?;
        }
    }
    let (was, now) = (listener_min_ttl(old), listener_min_ttl(new));
    if was != now {
        sockopt::set_min_ttl(listener, now.unwrap_or(0)).map_err(|source| OptionError {
            neighbor: IpAddr::from([0, 0, 0, 0]),
            option: "ttl_security",
            what: format!("cannot set the listener's minimum TTL {}", now.unwrap_or(0)),
            source,
        })?;
        tracing::info!(%listen, min_ttl = now.unwrap_or(0), "GTSM: the listener's minimum TTL follows the reloaded neighbors");
    }
    Ok(())
}

/// Why an inbound connection is not handed to the session.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Option(#[from] OptionError),
    /// RFC 5082 §3: the SYN came from farther away than `ttl_security` allows.
    #[error("neighbor {neighbor}: ttl_security: SYN arrived with TTL {ttl}, below the minimum {min} ({hops} hop(s)); the peer is farther away than allowed, or its packets are not sent with TTL 255")]
    TooFar {
        neighbor: IpAddr,
        ttl: u8,
        min: u8,
        hops: u8,
    },
}

/// The TTL (IPv4) or hop limit (IPv6) in the network header that `headers` starts with.
pub fn header_ttl(headers: &[u8]) -> Option<u8> {
    match headers.first()? >> 4 {
        4 => headers.get(8).copied(),
        6 => headers.get(7).copied(),
        _ => None,
    }
}

/// Check a connection a GTSM neighbor opened to us and apply its options, before anything is
/// read from or written to it (see the module docs). The MD5 key came with the listener.
pub fn secure_accepted(fd: &impl AsFd, n: &NeighborConfig) -> Result<(), InboundError> {
    let Some(hops) = n.ttl_security else {
        return Ok(());
    };
    let min = hops.min_ttl();
    match sockopt::saved_syn(fd).map(|h| header_ttl(&h)) {
        Ok(Some(ttl)) if ttl < min => {
            return Err(InboundError::TooFar {
                neighbor: n.address,
                ttl,
                min,
                hops: hops.0,
            })
        }
        Ok(Some(_)) => {}
        // No SYN kept (e.g. the connection came through a SYN cookie): the minimum TTL set
        // below still drops every later segment from too far away.
        Ok(None) => tracing::debug!(peer = %n.address, "GTSM: no saved SYN to check"),
        Err(e) => tracing::debug!(peer = %n.address, error = %e, "GTSM: cannot read the saved SYN"),
    }
    gtsm(fd, n)?;
    Ok(())
}

/// The kernel's counts of TCP segments dropped for MD5 reasons, from `/proc/net/netstat`
/// (TcpExt): no key option where one was expected, an option where none was, and a wrong
/// signature, in that order. They cover the whole network namespace, not one peer, and are
/// the only trace a key mismatch leaves: the kernel drops such segments without an answer.
/// `None` when the text lacks them (another kernel, or no MD5 support).
pub fn kernel_md5_drops(netstat: &str) -> Option<[(&'static str, u64); 3]> {
    let mut rows = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = rows.next()?.split_whitespace().collect();
    let values: Vec<&str> = rows.next()?.split_whitespace().collect();
    if names.len() != values.len() {
        return None;
    }
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some([
        ("not_found", get("TCPMD5NotFound")?),
        ("unexpected", get("TCPMD5Unexpected")?),
        ("failure", get("TCPMD5Failure")?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn neighbors(extra: &[&str]) -> Vec<NeighborConfig> {
        let mut text = String::from(
            "[speaker]\nasn = 65100\nrouter_id = \"192.0.2.1\"\napi = \"/tmp/x.sock\"\nstate_dir = \"/tmp/x\"\n",
        );
        for (i, e) in extra.iter().enumerate() {
            text.push_str(&format!(
                "[[neighbor]]\naddress = \"192.0.2.{}\"\nremote_as = 65001\n{e}\n",
                i + 2
            ));
        }
        Config::parse(&text).unwrap().neighbors
    }

    #[test]
    fn listener_min_ttl_only_when_every_neighbor_uses_gtsm() {
        assert_eq!(listener_min_ttl(&[]), None);
        assert_eq!(
            listener_min_ttl(&neighbors(&["ttl_security = 1", "ttl_security = 3"])),
            Some(253)
        );
        assert_eq!(
            listener_min_ttl(&neighbors(&["ttl_security = 1", ""])),
            None
        );
        assert_eq!(
            listener_min_ttl(&neighbors(&["ttl_security = 1"])),
            Some(255)
        );
    }

    #[test]
    fn md5_drop_counters_are_read_from_netstat() {
        let text = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure\n\
                    TcpExt: 0 3 4 5\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            kernel_md5_drops(text),
            Some([("not_found", 3), ("unexpected", 4), ("failure", 5)])
        );
        assert_eq!(kernel_md5_drops("TcpExt: A B\nTcpExt: 1\n"), None, "ragged");
        assert_eq!(
            kernel_md5_drops("TcpExt: A\nTcpExt: 1\n"),
            None,
            "no MD5 fields"
        );
        assert_eq!(
            kernel_md5_drops(
                "TcpExt: TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure\nTcpExt: x 1 2\n"
            ),
            None,
            "not a number"
        );
        assert_eq!(kernel_md5_drops(""), None);
        // This kernel has them.
        if let Ok(real) = std::fs::read_to_string("/proc/net/netstat") {
            assert!(kernel_md5_drops(&real).is_some(), "{real}");
        }
    }

    #[test]
    fn ttl_is_read_from_ipv4_and_ipv6_headers() {
        let mut v4 = [0u8; 40];
        v4[0] = 0x45;
        v4[8] = 254;
        assert_eq!(header_ttl(&v4), Some(254));
        let mut v6 = [0u8; 60];
        v6[0] = 0x60;
        v6[7] = 253;
        assert_eq!(header_ttl(&v6), Some(253));
        assert_eq!(header_ttl(&[]), None);
        assert_eq!(header_ttl(&[0x45, 0, 0]), None, "truncated");
        assert_eq!(header_ttl(&[0x50; 20]), None, "not IP");
    }

    /// A SYN from a far-away peer (sent with the system default TTL, 64) is refused for a
    /// neighbor with `ttl_security = 1`; an unprotected neighbor is let through untouched.
    #[test]
    fn accepted_connection_with_low_syn_ttl_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        sockopt::set_save_syn(&l).unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let default_ttl = c.ttl().unwrap() as u8;
        assert!(default_ttl < 255, "the system default TTL is {default_ttl}");
        let (s, _) = l.accept().unwrap();
        let mut n = neighbors(&["ttl_security = 1"]).remove(0);
        n.address = "127.0.0.1".parse().unwrap();
        match secure_accepted(&s, &n) {
            Err(InboundError::TooFar { ttl, min, .. }) => {
                assert_eq!((ttl, min), (default_ttl, 255))
            }
            other => panic!("expected TooFar, got {other:?}"),
        }
        let plain = neighbors(&[""]).remove(0);
        secure_accepted(&s, &plain).unwrap();
    }

    /// A SYN sent with TTL 255 over loopback (no hop) passes, and the socket gets TTL 255.
    #[test]
    fn accepted_connection_with_ttl_255_passes() {
        use nix::sys::socket::{getsockopt, sockopt::Ipv4Ttl};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        sockopt::set_save_syn(&l).unwrap();
        let addr = l.local_addr().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _client = rt
            .block_on(async {
                let s = TcpSocket::new_v4()?;
                sockopt::set_ttl(&s, 255)?;
                s.connect(addr).await
            })
            .unwrap();
        let (accepted, _) = l.accept().unwrap();
        let mut n = neighbors(&["ttl_security = 1"]).remove(0);
        n.address = "127.0.0.1".parse().unwrap();
        secure_accepted(&accepted, &n).unwrap();
        assert_eq!(getsockopt(&accepted, Ipv4Ttl).unwrap(), 255);
    }

    #[test]
    fn options_land_on_the_socket() {
        use nix::sys::socket::{getsockopt, sockopt::Ipv4Ttl};
        let n = neighbors(&["md5_password = \"s3cret\"\nttl_security = 2"]);
        let s = outbound_socket(&n[0], "192.0.2.2:179".parse().unwrap()).unwrap();
        assert_eq!(getsockopt(&s, Ipv4Ttl).unwrap(), 255);
        // Without ttl_security the TTL stays the system default.
        let plain = neighbors(&["md5_password = \"s3cret\""]);
        let s = outbound_socket(&plain[0], "192.0.2.2:179".parse().unwrap()).unwrap();
        assert_ne!(getsockopt(&s, Ipv4Ttl).unwrap(), 255);
        preflight(&n).unwrap();
    }

    #[test]
    fn errors_name_the_neighbor_and_the_key_never_the_password() {
        let n = neighbors(&["md5_password = \"s3cret\""]);
        // An IPv6 key on an IPv4-only socket is refused by sockopt: the error must say who.
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut n6 = n[0].clone();
        n6.address = "2001:db8::2".parse().unwrap();
        let e = md5(&v4, &n6).unwrap_err().to_string();
        assert!(e.starts_with("neighbor 2001:db8::2: md5_password: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
