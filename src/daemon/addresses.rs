//! Our own addresses, for next hop self: the IPv6 global and link-local addresses on the
//! interface that carries a session (RFC 2545 §3: a link-local next hop is sent along with the
//! global one when the peer shares the link).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use nix::ifaddrs::getifaddrs;

fn addresses() -> Vec<(String, IpAddr)> {
    let Ok(addrs) = getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let sa = a.address?;
            let ip = if let Some(v4) = sa.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(sa.as_sockaddr_in6()?.ip())
            };
            Some((a.interface_name, ip))
        })
        .collect()
}

fn interface_of(local: SocketAddr, all: &[(String, IpAddr)]) -> Option<String> {
    all.iter()
        .find(|(_, ip)| *ip == local.ip())
        .map(|(name, _)| name.clone())
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// A global IPv6 address on the interface of `local` (for IPv6 routes on an IPv4 session).
pub fn global_v6_for(local: SocketAddr) -> Option<Ipv6Addr> {
    let all = addresses();
    let ifname = interface_of(local, &all)?;
    all.iter().find_map(|(name, ip)| match ip {
        IpAddr::V6(a) if *name == ifname && !is_link_local(a) && !a.is_loopback() => Some(*a),
        _ => None,
    })
}

/// The link-local IPv6 address on the interface of `local`.
pub fn link_local_v6_for(local: SocketAddr) -> Option<Ipv6Addr> {
    let all = addresses();
    let ifname = interface_of(local, &all)?;
    all.iter().find_map(|(name, ip)| match ip {
        IpAddr::V6(a) if *name == ifname && is_link_local(a) => Some(*a),
        _ => None,
    })
}
