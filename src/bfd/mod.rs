//! BFD for the speaker's neighbors: RFC 5880 asynchronous mode over RFC 5881 single-hop UDP.
//!
//! Files: [`packet`] (Control packet codec, §4.1 and the checks of §6.8.6), [`session`]
//! (the sans-I/O state machine of §6), and this driver.
//!
//! Contract of the driver ([`Bfd`]):
//! - Receiving (RFC 5881 §4, §5): one UDP socket on port 3784 per local address a session is
//!   configured with (the wildcard address when a neighbor has no `local_address`), shared by
//!   every session on it. Each packet's TTL / hop limit comes with it (`IP_RECVTTL`,
//!   `IPV6_RECVHOPLIMIT`; Linux's minimum-TTL option covers TCP only) and a packet that did
//!   not arrive with 255 is dropped. A packet that decodes is handed to the session named by its Your
//!   Discriminator, else (Your Discriminator 0) to the session of its source address
//!   (RFC 5880 §6.8.6); a packet whose source is not that session's peer is dropped.
//! - Sending (RFC 5881 §4): each session has its own socket bound to a source port in
//!   49152-65535 that no other socket on the host uses, sends only to the peer's port 3784,
//!   with TTL / hop limit 255. Its source address is the neighbor's `local_address`, else the
//!   one the kernel's route to the peer picks (the BGP session's own address on a directly
//!   connected link).
//! - One tokio task per session: `select!` over the session's next timer, received packets
//!   and commands; it publishes a [`Snapshot`] after every step and calls the `on_down`
//!   callback when the session goes from Up to Down (never for a session that was never Up,
//!   so a peer that does not run BFD never takes the BGP session down; and not when the peer
//!   went AdminDown, which RFC 5882 §3.2 says is no failure of the path).
//! - [`Handle::admin_down`] (speaker shutdown): the session goes AdminDown (diagnostic 7) and
//!   tells the peer at once, so the peer's clients do not treat the end as a failure
//!   (RFC 5882 §3.2).
//!
//! Never does: authentication, echo, demand mode, multi-hop (RFC 5883), IPv6 link-local
//! peers (no scope id is configured).

pub mod packet;
pub mod session;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{self as nsock, sockopt, AddressFamily, SockFlag, SockType};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use packet::{ControlPacket, Diag, PacketError, State};
pub use session::{Action, Session, SessionConfig, Snapshot};

use crate::sockopt::{set_recv_ttl, set_ttl, unmap};

/// RFC 5881 §4: the destination port of single-hop Control packets.
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 §4: the range source ports are taken from.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5: TTL / hop limit sent, and the least accepted.
pub const SINGLE_HOP_TTL: u8 = 255;

/// Packets queued per session between the receive task and the session task.
const QUEUE: usize = 64;

/// Why a session that was Up went Down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownEvent {
    pub peer: IpAddr,
    pub diag: Diag,
}

type OnDown = Box<dyn Fn(DownEvent) + Send + Sync>;

/// Runs the BFD sessions of one speaker.
#[derive(Clone, Default)]
pub struct Bfd {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    /// Session inputs by bfd.LocalDiscr.
    by_discr: HashMap<u32, Route>,
    /// Session inputs by peer address (for packets with Your Discriminator 0).
    by_peer: HashMap<IpAddr, Route>,
    /// Receive sockets by the address they are bound to.
    receivers: HashSet<IpAddr>,
    seed: u64,
}

#[derive(Clone)]
struct Route {
    peer: IpAddr,
    tx: mpsc::Sender<ControlPacket>,
}

fn lock(m: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The speaker's view of one session.
#[derive(Clone)]
pub struct Handle {
    status: Arc<Mutex<Snapshot>>,
    commands: mpsc::Sender<Command>,
    /// Keeps the receive side running while a session is in use, even if the [`Bfd`] that
    /// started it is gone.
    _registry: Arc<Mutex<Registry>>,
}

enum Command {
    AdminDown(tokio::sync::oneshot::Sender<()>),
}

impl Handle {
    pub fn snapshot(&self) -> Snapshot {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Take the session AdminDown and wait (at most 100 ms) until the peer was told.
    pub async fn admin_down(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::AdminDown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(100), rx).await;
        }
    }
}

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    #[error("BFD for {peer}: cannot receive on {addr}: {source}")]
    Receive {
        peer: IpAddr,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("BFD for {peer}: cannot open a send socket from {local}: {source}")]
    Send {
        peer: IpAddr,
        local: IpAddr,
        source: io::Error,
    },
    #[error("BFD for {peer}: local address {local} is not of the peer's address family")]
    Family { peer: IpAddr, local: IpAddr },
    #[error("BFD for {peer}: a session to this peer already runs")]
    Duplicate { peer: IpAddr },
}

impl Bfd {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a session to `peer` (its port 3784) from `local` (or the kernel's choice).
    /// `on_down` runs when the session goes from Up to Down. Must run inside a tokio runtime.
    pub fn add(
        &self,
        peer: IpAddr,
        local: Option<IpAddr>,
        config: SessionConfig,
        on_down: impl Fn(DownEvent) + Send + Sync + 'static,
    ) -> Result<Handle, BfdError> {
        let peer = unmap(peer);
        let local = local.map(unmap);
        if let Some(l) = local {
            if l.is_ipv4() != peer.is_ipv4() {
                return Err(BfdError::Family { peer, local: l });
            }
        }
        let rx_addr = local.unwrap_or(match peer {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let mut reg = lock(&self.inner);
        if reg.by_peer.contains_key(&peer) {
            return Err(BfdError::Duplicate { peer });
        }
        if !reg.receivers.contains(&rx_addr) {
            let addr = SocketAddr::new(rx_addr, CONTROL_PORT);
            let socket =
                receive_socket(addr).map_err(|source| BfdError::Receive { peer, addr, source })?;
            tokio::spawn(receive(socket, Arc::downgrade(&self.inner)));
            reg.receivers.insert(rx_addr);
        }
        let send_from = local.unwrap_or(rx_addr);
        let sender = send_socket(send_from, &mut reg.seed).map_err(|source| BfdError::Send {
            peer,
            local: send_from,
            source,
        })?;
        let discr = loop {
            let d = random(&mut reg.seed) as u32;
            if d != 0 && !reg.by_discr.contains_key(&d) {
                break d;
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let route = Route { peer, tx };
        reg.by_discr.insert(discr, route.clone());
        reg.by_peer.insert(peer, route);
        let seed = random(&mut reg.seed);
        drop(reg);
        let session = Session::new(config, discr, seed, Instant::now());
        let status = Arc::new(Mutex::new(session.snapshot()));
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        tracing::info!(%peer, source = ?sender.local_addr().ok(), discriminator = discr,
            tx_ms = config.desired_min_tx.as_millis() as u64,
            rx_ms = config.required_min_rx.as_millis() as u64,
            multiplier = config.detect_mult, "BFD session started");
        tokio::spawn(
            Runner {
                session,
                peer,
                sender,
                status: status.clone(),
                on_down: Box::new(on_down),
            }
            .run(rx, cmd_rx),
        );
        Ok(Handle {
            status,
            commands: cmd_tx,
            _registry: self.inner.clone(),
        })
    }
}

/// The receive socket of one local address: port 3784, each packet's TTL reported.
fn receive_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = nsock::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // Another socket may hold the wildcard or a specific address on the same port; the kernel
    // delivers each packet to the most specific one.
    nsock::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        // IPv4 peers get their own IPv4 socket.
        nsock::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    match addr {
        SocketAddr::V4(a) => nsock::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &nsock::SockaddrIn::from(a),
        )?,
        SocketAddr::V6(a) => nsock::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &nsock::SockaddrIn6::from(a),
        )?,
    }
    set_recv_ttl(&fd)?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// A send socket on a free source port of 49152-65535, TTL 255 (RFC 5881 §4, §5).
fn send_socket(local: IpAddr, seed: &mut u64) -> io::Result<UdpSocket> {
    let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free source port");
    for _ in 0..128 {
        let port = SOURCE_PORTS.start() + (random(seed) % span) as u16;
        match std::net::UdpSocket::bind(SocketAddr::new(local, port)) {
            Ok(s) => {
                set_ttl(&s, SINGLE_HOP_TTL)?;
                s.set_nonblocking(true)?;
                return UdpSocket::from_std(s);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// splitmix64 over a seed mixed with the clock and the process id on first use: unique enough
/// discriminators and ports (RFC 5880 §6.8.1 asks for unique, random discriminators).
fn random(seed: &mut u64) -> u64 {
    if *seed == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        *seed = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    }
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Room for the TTL control message (and anything else the kernel adds).
const CMSG_LEN: usize = 128;

/// One packet from a receive socket: its length, source and TTL / hop limit (None when the
/// kernel sent no such control message).
async fn recv_with_ttl(
    socket: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    socket
        .async_io(tokio::io::Interest::READABLE, || {
            // A zeroed buffer the kernel writes the control messages into: nix does not set
            // its length, but every octet stays initialised, so it can be read afterwards.
            cmsg.clear();
            cmsg.resize(CMSG_LEN, 0);
            let mut iov = [std::io::IoSliceMut::new(&mut *buf)];
            let msg = nsock::recvmsg::<nsock::SockaddrStorage>(
                fd,
                &mut iov,
                Some(&mut *cmsg),
                nsock::MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let n = msg.bytes;
            let from = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                    })
            });
            let from = from.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "packet without a source address",
                )
            })?;
            Ok((n, from))
        })
        .await
        .map(|(n, from)| (n, from, ttl_of(cmsg)))
}

/// The TTL (`IPPROTO_IP`/`IP_TTL`) or hop limit (`IPPROTO_IPV6`/`IPV6_HOPLIMIT`) in a buffer of
/// control messages as Linux lays them out: `cmsghdr { size_t len; int level; int type; }`
/// then the data, each message aligned to `size_t`.
fn ttl_of(cmsg: &[u8]) -> Option<u8> {
    let word = std::mem::size_of::<usize>();
    let header = word + 8;
    let align = |n: usize| n.div_ceil(word) * word;
    let mut at = 0;
    while let Some(h) = cmsg.get(at..at + header) {
        let len = usize::from_ne_bytes(h[..word].try_into().ok()?);
        let level = i32::from_ne_bytes(h[word..word + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(h[word + 4..word + 8].try_into().ok()?);
        if len < header {
            return None;
        }
        let data = cmsg.get(at + header..at + len)?;
        let is_ttl = (level == nix::libc::IPPROTO_IP && kind == nix::libc::IP_TTL)
            || (level == nix::libc::IPPROTO_IPV6 && kind == nix::libc::IPV6_HOPLIMIT);
        if is_ttl {
            let v = i32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
            return u8::try_from(v).ok();
        }
        at += align(len);
    }
    None
}

/// Reads one receive socket and hands packets to their sessions (RFC 5880 §6.8.6 demux).
async fn receive(socket: UdpSocket, registry: std::sync::Weak<Mutex<Registry>>) {
    let mut buf = [0u8; 512];
    let mut cmsg = Vec::with_capacity(CMSG_LEN);
    loop {
        let (n, from, ttl) = match recv_with_ttl(&socket, &mut buf, &mut cmsg).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "BFD receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let source = unmap(from.ip());
        if ttl != Some(SINGLE_HOP_TTL) {
            // RFC 5881 §5: "the received TTL MUST be checked to be 255".
            tracing::debug!(%source, ?ttl, "BFD packet discarded: TTL is not 255");
            continue;
        }
        let packet = match ControlPacket::decode(&buf[..n]) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%source, error = %e, "BFD packet discarded");
                continue;
            }
        };
        let route = {
            let reg = lock(&registry);
            if packet.your_discriminator != 0 {
                reg.by_discr.get(&packet.your_discriminator).cloned()
            } else {
                reg.by_peer.get(&source).cloned()
            }
        };
        match route {
            Some(r) if r.peer == source => {
                // A full queue means the session task is behind; dropping is what a lossy
                // link would do and the detection time allows for it.
                let _ = r.tx.try_send(packet);
            }
            _ => {
                tracing::debug!(%source, your = packet.your_discriminator, "BFD packet for no session discarded")
            }
        }
    }
}

struct Runner {
    session: Session,
    peer: IpAddr,
    sender: UdpSocket,
    status: Arc<Mutex<Snapshot>>,
    on_down: OnDown,
}

impl Runner {
    async fn run(
        mut self,
        mut packets: mpsc::Receiver<ControlPacket>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let dest = SocketAddr::new(self.peer, CONTROL_PORT);
        loop {
            let deadline = self.session.poll_timeout();
            let mut done = None;
            let actions = tokio::select! {
                _ = sleep_until(deadline) => self.session.handle_timeout(Instant::now()),
                p = packets.recv() => match p {
                    Some(p) => self.session.handle(Instant::now(), &p),
                    None => return,
                },
                c = commands.recv() => match c {
                    Some(Command::AdminDown(ack)) => {
                        done = Some(ack);
                        let mut a = self.session.admin_down(Instant::now());
                        a.extend(self.session.handle_timeout(Instant::now()));
                        a
                    }
                    // Every handle dropped: the speaker is gone.
                    None => return,
                },
            };
            for action in actions {
                match action {
                    Action::Send(p) => {
                        if let Err(e) = self.sender.send_to(&p.encode(), dest).await {
                            tracing::debug!(peer = %self.peer, error = %e, "BFD send failed");
                        }
                    }
                    Action::StateChanged { from, to, diag } => {
                        if !matches!(to, State::Down | State::AdminDown) {
                            tracing::info!(peer = %self.peer, %from, %to, "BFD session state");
                        } else {
                            tracing::warn!(peer = %self.peer, %from, %to, %diag, "BFD session state");
                        }
                        // RFC 5882 §3.2: a peer taken AdminDown is not a path failure, so
                        // its clients are not told.
                        let admin = self.session.snapshot().remote_state == State::AdminDown;
                        if from == State::Up && to == State::Down && !admin {
                            (self.on_down)(DownEvent {
                                peer: self.peer,
                                diag,
                            });
                        }
                    }
                }
            }
            *self.status.lock().unwrap_or_else(|p| p.into_inner()) = self.session.snapshot();
            if let Some(ack) = done {
                let _ = ack.send(());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            desired_min_tx: Duration::from_millis(20),
            required_min_rx: Duration::from_millis(20),
            detect_mult: 3,
        }
    }

    /// Two drivers on loopback addresses of their own (127.77.x.y, x from the process id and
    /// `n`) that reach Up with each other through real sockets.
    async fn pair(n: u8, downs: Arc<Mutex<Vec<DownEvent>>>) -> (Handle, Handle, IpAddr) {
        let base = (std::process::id() % 100) as u8 * 2 + n;
        let a_ip: IpAddr = Ipv4Addr::new(127, 77, base, 1).into();
        let b_ip: IpAddr = Ipv4Addr::new(127, 77, base, 2).into();
        let a = Bfd::new();
        let b = Bfd::new();
        let ha = a
            .add(b_ip, Some(a_ip), config(), move |e| {
                downs.lock().unwrap().push(e);
            })
            .unwrap();
        let hb = b.add(a_ip, Some(b_ip), config(), |_| {}).unwrap();
        assert!(matches!(
            a.add(b_ip, Some(a_ip), config(), |_| {}),
            Err(BfdError::Duplicate { .. })
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while ha.snapshot().state != State::Up || hb.snapshot().state != State::Up {
            assert!(
                Instant::now() < deadline,
                "not Up: {:?} {:?}",
                ha.snapshot(),
                hb.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = ha.snapshot();
        assert_eq!(s.remote_discriminator, hb.snapshot().local_discriminator);
        assert_eq!(s.detection_time, Some(Duration::from_millis(60)));
        (ha, hb, b_ip)
    }

    async fn wait_down(h: &Handle) -> Duration {
        let start = Instant::now();
        while h.snapshot().state != State::Down {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{:?}",
                h.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        start.elapsed()
    }

    /// The peer going AdminDown takes us Down with diagnostic 3, but `on_down` does not run
    /// (RFC 5882 §3.2: not a failure of the path).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peer_admin_down_is_not_a_failure() {
        let downs = Arc::new(Mutex::new(Vec::new()));
        let (ha, hb, _) = pair(0, downs.clone()).await;
        hb.admin_down().await;
        wait_down(&ha).await;
        assert_eq!(ha.snapshot().local_diag, Diag::NeighborSignaledSessionDown);
        assert_eq!(ha.snapshot().remote_state, State::AdminDown);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            downs.lock().unwrap().is_empty(),
            "{:?}",
            downs.lock().unwrap()
        );
    }

    /// A peer that falls silent is detected (detection time 60 ms here). The bound is very
    /// loose: under a loaded CI machine a 1 s bound failed once; the timing itself is measured
    /// against FRR in proto-tests/tests/interop_bfd.rs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silence_is_detected() {
        let downs = Arc::new(Mutex::new(Vec::new()));
        let (ha, hb, b_ip) = pair(1, downs.clone()).await;
        drop(hb); // ends b's task: no more packets
        let took = wait_down(&ha).await;
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert_eq!(ha.snapshot().local_diag, Diag::ControlDetectionTimeExpired);
        assert_eq!(
            *downs.lock().unwrap(),
            vec![DownEvent {
                peer: b_ip,
                diag: Diag::ControlDetectionTimeExpired
            }]
        );
    }

    /// RFC 5881 §4, §5: send sockets use a source port in 49152-65535 and TTL 255; the
    /// receive side learns each packet's TTL (254 and 255 here).
    #[tokio::test]
    async fn single_hop_ports_and_ttl() {
        let base = (std::process::id() % 100) as u8 * 2 + 50;
        let rx_ip: IpAddr = Ipv4Addr::new(127, 77, base, 3).into();
        let tx_ip: IpAddr = Ipv4Addr::new(127, 77, base, 4).into();
        let mut seed = 0;
        let tx = send_socket(tx_ip, &mut seed).unwrap();
        let port = tx.local_addr().unwrap().port();
        assert!(SOURCE_PORTS.contains(&port), "{port}");
        let other = send_socket(tx_ip, &mut seed).unwrap();
        assert_ne!(other.local_addr().unwrap().port(), port);
        assert_eq!(tx.ttl().unwrap(), 255);
        let rx = receive_socket(SocketAddr::new(rx_ip, CONTROL_PORT)).unwrap();
        let dest = SocketAddr::new(rx_ip, CONTROL_PORT);
        let far = std::net::UdpSocket::bind(SocketAddr::new(tx_ip, 0)).unwrap();
        far.set_ttl(254).unwrap();
        far.send_to(b"ttl 254", dest).unwrap();
        tx.send_to(b"ttl 255", dest).await.unwrap();
        let mut buf = [0u8; 16];
        let mut cmsg = Vec::new();
        let mut got = Vec::new();
        for _ in 0..2 {
            let (n, from, ttl) = tokio::time::timeout(
                Duration::from_secs(5),
                recv_with_ttl(&rx, &mut buf, &mut cmsg),
            )
            .await
            .expect("both packets arrive")
            .unwrap();
            got.push((buf[..n].to_vec(), from.port(), ttl));
        }
        got.sort();
        // The kernel delivers both (no minimum TTL for UDP); the receive task drops the first.
        assert_eq!(got[0].0, b"ttl 254");
        assert_eq!(got[0].2, Some(254));
        assert_eq!(got[1].0, b"ttl 255");
        assert_eq!(got[1].2, Some(SINGLE_HOP_TTL));
        assert_eq!(got[1].1, port);
    }

    /// A packet with TTL 254 never reaches a session: a driver whose only peer sends with 254
    /// stays Down with no remote discriminator, while one sending 255 brings it to Init.
    #[tokio::test]
    async fn packets_below_ttl_255_are_dropped() {
        let base = (std::process::id() % 100) as u8 * 2 + 51;
        let ours: IpAddr = Ipv4Addr::new(127, 77, base, 5).into();
        let peer: IpAddr = Ipv4Addr::new(127, 77, base, 6).into();
        let bfd = Bfd::new();
        let h = bfd.add(peer, Some(ours), config(), |_| {}).unwrap();
        let sock = std::net::UdpSocket::bind(SocketAddr::new(peer, 49999)).unwrap();
        let down = ControlPacket {
            diag: Diag::None,
            state: State::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 99,
            your_discriminator: 0,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 20_000,
            required_min_echo_rx_us: 0,
        };
        let dest = SocketAddr::new(ours, CONTROL_PORT);
        sock.set_ttl(254).unwrap();
        for _ in 0..3 {
            sock.send_to(&down.encode(), dest).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.snapshot().state, State::Down);
        assert_eq!(h.snapshot().remote_discriminator, 0);
        sock.set_ttl(255).unwrap();
        sock.send_to(&down.encode(), dest).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while h.snapshot().state != State::Init {
            assert!(Instant::now() < deadline, "{:?}", h.snapshot());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(h.snapshot().remote_discriminator, 99);
    }

    #[test]
    fn ttl_is_found_among_control_messages() {
        let word = std::mem::size_of::<usize>();
        let msg = |level: i32, kind: i32, v: i32| {
            let mut m = (word + 12).to_ne_bytes()[..word].to_vec();
            m.extend(level.to_ne_bytes());
            m.extend(kind.to_ne_bytes());
            m.extend(v.to_ne_bytes());
            m.resize((word + 12).div_ceil(word) * word, 0);
            m
        };
        let mut buf = msg(nix::libc::IPPROTO_IP, 99, 7);
        buf.extend(msg(nix::libc::IPPROTO_IP, nix::libc::IP_TTL, 255));
        buf.resize(128, 0);
        assert_eq!(ttl_of(&buf), Some(255));
        let v6 = msg(nix::libc::IPPROTO_IPV6, nix::libc::IPV6_HOPLIMIT, 254);
        assert_eq!(ttl_of(&v6), Some(254));
        assert_eq!(ttl_of(&[0u8; 64]), None);
        assert_eq!(ttl_of(&[]), None);
        // A length running past the buffer is not read.
        let mut bad = msg(nix::libc::IPPROTO_IP, nix::libc::IP_TTL, 255);
        bad[..word].copy_from_slice(&(1000usize).to_ne_bytes()[..word]);
        assert_eq!(ttl_of(&bad), None);
    }

    #[test]
    fn local_address_of_another_family_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let e = Bfd::new()
                .add(
                    "2001:db8::1".parse().unwrap(),
                    Some("127.0.0.1".parse().unwrap()),
                    config(),
                    |_| {},
                )
                .err()
                .unwrap();
            assert!(
                e.to_string().contains("not of the peer's address family"),
                "{e}"
            );
        });
    }
}
