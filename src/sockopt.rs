//! Socket options the standard library and `nix` do not offer: TCP MD5 signatures
//! (RFC 2385), the minimum TTL / hop limit of received packets (GTSM, RFC 5082; BFD single hop,
//! RFC 5881 §5) and the TTL / hop limit of sent packets.
//!
//! Contract: each function sets (or, for the saved SYN, reads) one option on one socket and returns the kernel's error as
//! `io::Error`; nothing else. The socket's own address family decides the level (an IPv6
//! socket that talks to IPv4 peers through mapped addresses gets the IPv4 option as well,
//! since the kernel checks IPv4 packets against the IPv4 one).
//! One of the two modules with `unsafe` (the other is `daemon::priority`): `setsockopt` with a pointer to a local value of the
//! size passed, `getsockname` into a `sockaddr_storage`, and `getsockopt(TCP_SAVED_SYN)` into a
//! buffer of the size passed (the SYN's headers, for GTSM on accepted connections).
//! Never does: open, bind or connect sockets.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use nix::libc;

/// The longest key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`); RFC 2385 sets no limit.
pub const MD5_MAX_KEY_LEN: usize = 80;

/// Layout of Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h): a `sockaddr_storage`
/// (128 octets), flags, prefix length, key length, ifindex, key.
const MD5SIG_ADDR_LEN: usize = 128;
const MD5SIG_LEN: usize = MD5SIG_ADDR_LEN + 1 + 1 + 2 + 4 + MD5_MAX_KEY_LEN;

/// Whether the socket is IPv6 (`AF_INET6`) rather than IPv4.
fn is_ipv6_socket(fd: &impl AsFd) -> io::Result<bool> {
    // SAFETY: `storage` is a zeroed sockaddr_storage, `len` its size; getsockname writes at
    // most `len` octets into it.
    let family = unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let rc = libc::getsockname(
            fd.as_fd().as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        );
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        storage.ss_family
    };
    match i32::from(family) {
        libc::AF_INET => Ok(false),
        libc::AF_INET6 => Ok(true),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket family {other} is neither IPv4 nor IPv6"),
        )),
    }
}

fn set_raw(fd: &impl AsFd, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is a live slice; the kernel reads exactly `value.len()` octets from it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_int(fd: &impl AsFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    set_raw(fd, level, name, &value.to_ne_bytes())
}

/// Sign every segment to and from `peer` with `key` (RFC 2385 §2); an empty key removes it.
/// On a listening socket this installs the key for connections `peer` opens to us, so it
/// must be set before the peer connects. On an IPv6 socket an IPv4 peer is keyed by its
/// mapped address, which the kernel stores as an IPv4 key.
pub fn set_tcp_md5(fd: &impl AsFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key of {} octets is longer than {MD5_MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    let mut buf = [0u8; MD5SIG_LEN];
    let peer = match (is_ipv6_socket(fd)?, peer) {
        (true, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
        (false, IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("IPv6 peer {v6} on an IPv4 socket"),
                ))
            }
        },
        (_, p) => p,
    };
    // sockaddr_in / sockaddr_in6: family in host order, port 0, address in network order.
    match peer {
        IpAddr::V4(v4) => {
            buf[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            buf[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            buf[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            buf[8..24].copy_from_slice(&v6.octets());
        }
    }
    // flags 0, prefix length 0 (whole address), key length, ifindex 0, key.
    let keylen_at = MD5SIG_ADDR_LEN + 2;
    buf[keylen_at..keylen_at + 2].copy_from_slice(&(key.len() as u16).to_ne_bytes());
    let key_at = MD5SIG_ADDR_LEN + 8;
    buf[key_at..key_at + key.len()].copy_from_slice(key);
    set_raw(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &buf)
}

/// Drop received packets whose TTL (IPv4) or hop limit (IPv6) is below `min` (1-255).
/// GTSM (RFC 5082 §3) uses `256 - hops`. Linux checks it on TCP sockets only (a UDP
/// receiver such as BFD's uses [`set_recv_ttl`] and checks each packet).
pub fn set_min_ttl(fd: &impl AsFd, min: u8) -> io::Result<()> {
    let min = i32::from(min);
    if is_ipv6_socket(fd)? {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min)?;
        // IPv4 peers through mapped addresses are checked against IP_MINTTL; on a v6-only
        // socket the kernel refuses it, which is harmless.
        let _ = set_int(fd, libc::IPPROTO_IP, libc::IP_MINTTL, min);
        Ok(())
    } else {
        set_int(fd, libc::IPPROTO_IP, libc::IP_MINTTL, min)
    }
}

/// Send with this TTL (IPv4) and hop limit (IPv6); GTSM and BFD single hop send 255.
pub fn set_ttl(fd: &impl AsFd, ttl: u8) -> io::Result<()> {
    let ttl = i32::from(ttl);
    if is_ipv6_socket(fd)? {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl)?;
        let _ = set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, ttl);
        Ok(())
    } else {
        set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, ttl)
    }
}

/// Keep the SYN of every connection this listening socket accepts, for [`saved_syn`]
/// (Linux `TCP_SAVE_SYN`). Used to check the TTL a GTSM neighbor's SYN arrived with.
pub fn set_save_syn(fd: &impl AsFd) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, 1)
}

/// The network and TCP headers of the SYN that opened this accepted connection, as received
/// (Linux `TCP_SAVED_SYN`; the kernel hands them out once). Empty when none was saved.
pub fn saved_syn(fd: &impl AsFd) -> io::Result<Vec<u8>> {
    // IPv6 with extension headers plus a TCP header with options fits easily.
    let mut buf = vec![0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is a live buffer of `len` octets; the kernel writes at most `len` octets
    // into it and stores the length it wrote in `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate((len as usize).min(512));
    Ok(buf)
}

/// Deliver each received packet's TTL (IPv4, `IP_RECVTTL`) or hop limit (IPv6,
/// `IPV6_RECVHOPLIMIT`) as a control message with `recvmsg`. UDP needs this for RFC 5881 §5:
/// Linux applies the minimum TTL of [`set_min_ttl`] to TCP only, so a BFD receiver checks the
/// TTL of each packet itself.
pub fn set_recv_ttl(fd: &impl AsFd) -> io::Result<()> {
    if is_ipv6_socket(fd)? {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)
    } else {
        set_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
    }
}

/// The IPv4-mapped form of an IPv6 address, if it is one (`::ffff:a.b.c.d`).
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    #[test]
    fn md5_key_is_accepted_on_v4_and_v6_sockets() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        set_tcp_md5(&v4, "127.0.0.2".parse().unwrap(), b"secret").unwrap();
        // Removing it again is allowed.
        set_tcp_md5(&v4, "127.0.0.2".parse().unwrap(), b"").unwrap();
        if let Ok(v6) = TcpListener::bind("[::1]:0") {
            set_tcp_md5(&v6, "::1".parse().unwrap(), b"secret").unwrap();
            set_tcp_md5(&v6, "127.0.0.2".parse().unwrap(), b"secret").unwrap();
        }
    }

    #[test]
    fn md5_key_longer_than_linux_allows_is_refused() {
        let s = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = set_tcp_md5(&s, "127.0.0.2".parse().unwrap(), &[b'k'; 81]).unwrap_err();
        assert!(err.to_string().contains("81 octets"), "{err}");
    }

    #[test]
    fn ttl_options_are_set() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_ttl(&s, 255).unwrap();
        set_min_ttl(&s, 255).unwrap();
        assert_eq!(s.ttl().unwrap(), 255);
    }

    #[test]
    fn saved_syn_holds_the_ip_header_of_the_syn() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        set_save_syn(&l).unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let syn = saved_syn(&s).unwrap();
        assert_eq!(syn[0] >> 4, 4, "IPv4 header first: {syn:?}");
        assert_eq!(syn[8], c.ttl().unwrap() as u8, "TTL of the SYN");
        // Handed out once.
        assert!(saved_syn(&s).unwrap().is_empty());
    }

    #[test]
    fn mapped_addresses_unmap() {
        assert_eq!(
            unmap("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            unmap("2001:db8::1".parse().unwrap()),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }
}
