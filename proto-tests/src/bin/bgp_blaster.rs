//! Raw BGP peers for the benchmarks, run inside a lab namespace (`ip netns exec`):
//!
//! * `bgp_blaster blast --connect IP:PORT --bind IP --asn N --router-id IP --table FILE`:
//!   opens one session (IPv4 unicast, 4-octet ASNs, hold 90 s), prints `ESTABLISHED`, waits for
//!   a line `GO` on stdin, then writes FILE (pre-encoded UPDATEs ending with End-of-RIB, see
//!   `proto_tests::fulltable`) as fast as the socket takes it and prints `SENT <seconds>`. It
//!   then keeps the session up (KEEPALIVE every 30 s, everything received is read and dropped)
//!   until stdin closes.
//! * `bgp_blaster sink --connect IP:PORT --bind IP1,IP2,... --asn N --router-id IP --expect K`:
//!   one session per bind address (IPv4 and IPv6 unicast; session i uses router id
//!   `--router-id` + i), prints `ESTABLISHED <i>` per session
//!   and `ALL_ESTABLISHED`; counts the distinct prefixes each session holds (NLRI and
//!   MP_REACH_NLRI add, withdrawn routes and MP_UNREACH_NLRI remove) and prints `HOLD <i>` the
//!   first time session i holds K, then `DONE` when all do. Runs until stdin closes.
//!
//! The parent timestamps the lines as they arrive (the processes share no clock). Errors
//! (refused connection, a NOTIFICATION, a malformed message) are printed to stderr with what
//! was expected, and the process exits 1. Every wait has a timeout (30 s for a session to come
//! up; the hold time once it is up).

use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferry::wire::{
    split_frame, Afi, Capability, Context, Message, MpNlri, Open, Safi, MAX_MESSAGE_LEN,
};

const HOLD: u16 = 90;
const KEEPALIVE_EVERY: Duration = Duration::from_secs(30);
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    mode: String,
    connect: SocketAddr,
    bind: Vec<IpAddr>,
    asn: u32,
    router_id: std::net::Ipv4Addr,
    table: Option<String>,
    expect: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: bgp_blaster blast|sink --connect ... (see the docs)")?;
    if mode != "blast" && mode != "sink" {
        return Err(format!("mode {mode:?}: expected blast or sink"));
    }
    let (mut connect, mut bind, mut asn, mut rid, mut table, mut expect) =
        (None, Vec::new(), None, None, None, 0usize);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k}: missing value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{k} {v:?}: {e}");
        match k.as_str() {
            "--connect" => connect = Some(v.parse::<SocketAddr>().map_err(|e| bad(&e))?),
            "--bind" => {
                for b in v.split(',') {
                    bind.push(b.parse::<IpAddr>().map_err(|e| bad(&e))?);
                }
            }
            "--asn" => asn = Some(v.parse::<u32>().map_err(|e| bad(&e))?),
            "--router-id" => rid = Some(v.parse().map_err(|e| bad(&e))?),
            "--table" => table = Some(v),
            "--expect" => expect = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(Args {
        mode,
        connect: connect.ok_or("--connect is required")?,
        bind,
        asn: asn.ok_or("--asn is required")?,
        router_id: rid.ok_or("--router-id is required")?,
        table,
        expect,
    })
}

/// An Established session: the socket, and bytes read after the peer's KEEPALIVE.
struct Session {
    sock: TcpStream,
    rest: BytesMut,
}

fn read_message(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
    ctx: &Context,
) -> Result<Message, String> {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(frame) =
            split_frame(buf, MAX_MESSAGE_LEN).map_err(|e| format!("framing: {e}"))?
        {
            return Message::decode(&frame, ctx).map_err(|e| format!("decode: {e}"));
        }
        let n = sock.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("peer closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn open_session(
    a: &Args,
    bind: Option<IpAddr>,
    router_id: std::net::Ipv4Addr,
    families: &[Afi],
) -> Result<Session, String> {
    let domain = if a.connect.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    if let Some(b) = bind {
        s.bind(&SocketAddr::new(b, 0).into())
            .map_err(|e| format!("bind {b}: {e}"))?;
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    // the receiver may still be starting: retry refused connections until the deadline
    loop {
        match s.connect_timeout(&a.connect.into(), Duration::from_secs(5)) {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("connect {} from {bind:?}: {e}", a.connect)),
        }
    }
    let mut sock: TcpStream = s.into();
    sock.set_nodelay(true).ok();
    sock.set_read_timeout(Some(SETUP_TIMEOUT)).ok();
    let ctx = Context::default();
    let mut caps: Vec<Capability> = families
        .iter()
        .map(|&afi| Capability::Multiprotocol {
            afi,
            safi: Safi::Unicast,
        })
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::FourOctetAs(a.asn));
    let open = Message::Open(Open::new(a.asn, HOLD, router_id, caps));
    sock.write_all(&open.to_bytes(&ctx))
        .map_err(|e| format!("send OPEN: {e}"))?;
    let mut buf = BytesMut::new();
    match read_message(&mut sock, &mut buf, &ctx)? {
        Message::Open(_) => {}
        Message::Notification(n) => return Err(format!("NOTIFICATION instead of OPEN: {n:?}")),
        m => return Err(format!("expected OPEN, got {:?}", m.kind())),
    }
    sock.write_all(&Message::Keepalive.to_bytes(&ctx))
        .map_err(|e| format!("send KEEPALIVE: {e}"))?;
    match read_message(&mut sock, &mut buf, &ctx)? {
        Message::Keepalive => {}
        Message::Notification(n) => {
            return Err(format!("NOTIFICATION instead of KEEPALIVE: {n:?}"))
        }
        m => return Err(format!("expected KEEPALIVE, got {:?}", m.kind())),
    }
    // Established: reads may now wait up to the hold time
    sock.set_read_timeout(Some(Duration::from_secs(u64::from(HOLD))))
        .ok();
    Ok(Session { sock, rest: buf })
}

/// Sends a KEEPALIVE through `w` every 30 s until the process exits.
fn keepalives(w: Arc<Mutex<TcpStream>>) {
    let ka = Message::Keepalive.to_bytes(&Context::default());
    std::thread::spawn(move || loop {
        std::thread::sleep(KEEPALIVE_EVERY);
        let mut s = w.lock().unwrap_or_else(|p| p.into_inner());
        if s.write_all(&ka).is_err() {
            return;
        }
    });
}

fn wait_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

fn blast(a: &Args) -> Result<(), String> {
    let path = a.table.as_deref().ok_or("--table is required for blast")?;
    let table = std::fs::read(path).map_err(|e| format!("--table {path}: {e}"))?;
    let s = open_session(a, a.bind.first().copied(), a.router_id, &[Afi::Ipv4])?;
    let reader = s.sock.try_clone().map_err(|e| e.to_string())?;
    let w = Arc::new(Mutex::new(s.sock));
    // read and drop everything (the peer's KEEPALIVEs); a NOTIFICATION ends the process
    std::thread::spawn(move || {
        let mut r = reader;
        let mut buf = s.rest;
        let ctx = Context::default();
        loop {
            match read_message(&mut r, &mut buf, &ctx) {
                Ok(Message::Notification(n)) => {
                    eprintln!("bgp_blaster: NOTIFICATION received: {n:?}");
                    std::process::exit(1);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bgp_blaster: session ended: {e}");
                    std::process::exit(1);
                }
            }
        }
    });
    keepalives(w.clone());
    println!("ESTABLISHED");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("stdin: {e}"))?;
    if line.trim() != "GO" {
        return Err(format!("expected GO on stdin, got {line:?}"));
    }
    let t0 = Instant::now();
    // in chunks, so that a KEEPALIVE can go out between them while the receiver is slow
    for chunk in table.chunks(256 * 1024) {
        let mut s = w.lock().unwrap_or_else(|p| p.into_inner());
        s.write_all(chunk)
            .map_err(|e| format!("write UPDATEs: {e}"))?;
    }
    println!("SENT {:.6}", t0.elapsed().as_secs_f64());
    std::io::stdout().flush().ok();
    wait_stdin_eof();
    Ok(())
}

/// The distinct prefixes a sink session holds, as (family, network, length).
type Held = HashSet<(u8, u128, u8)>;

fn apply(held: &mut Held, m: &Message) {
    let Message::Update(u) = m else { return };
    for p in &u.withdrawn {
        held.remove(&(4, u128::from(u32::from(p.network())), p.prefix_len()));
    }
    for p in &u.nlri {
        held.insert((4, u128::from(u32::from(p.network())), p.prefix_len()));
    }
    for attr in &u.attributes {
        let (nlri, add) = match &attr.value {
            ferry::wire::AttributeValue::MpReach(r) => (&r.nlri, true),
            ferry::wire::AttributeValue::MpUnreach(r) => (&r.withdrawn, false),
            _ => continue,
        };
        let keys: Vec<(u8, u128, u8)> = match nlri {
            MpNlri::Ipv4(v) => v
                .iter()
                .map(|p| (4, u128::from(u32::from(p.network())), p.prefix_len()))
                .collect(),
            MpNlri::Ipv6(v) => v
                .iter()
                .map(|p| (6, u128::from(p.network()), p.prefix_len()))
                .collect(),
            MpNlri::Raw(_) => Vec::new(),
        };
        for k in keys {
            if add {
                held.insert(k);
            } else {
                held.remove(&k);
            }
        }
    }
}

fn sink(a: &Args) -> Result<(), String> {
    if a.bind.is_empty() {
        return Err("--bind needs at least one address for sink".into());
    }
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = move |out: &Arc<Mutex<std::io::Stdout>>, line: String| {
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    // sessions come up one after the other (a daemon with 50 neighbors accepts them all)
    let mut sessions = Vec::new();
    for (i, b) in a.bind.iter().enumerate() {
        let id = std::net::Ipv4Addr::from(u32::from(a.router_id).wrapping_add(i as u32));
        let s = open_session(a, Some(*b), id, &[Afi::Ipv4, Afi::Ipv6])
            .map_err(|e| format!("session {i} from {b}: {e}"))?;
        say(&out, format!("ESTABLISHED {i}"));
        sessions.push(s);
    }
    say(&out, "ALL_ESTABLISHED".into());
    let remaining = Arc::new(Mutex::new(sessions.len()));
    for (i, s) in sessions.into_iter().enumerate() {
        let w = Arc::new(Mutex::new(s.sock.try_clone().map_err(|e| e.to_string())?));
        keepalives(w);
        let (out, remaining, expect) = (out.clone(), remaining.clone(), a.expect);
        std::thread::spawn(move || {
            let (mut r, mut buf) = (s.sock, s.rest);
            let ctx = Context::default();
            let mut held = Held::new();
            let mut reported = false;
            loop {
                match read_message(&mut r, &mut buf, &ctx) {
                    Ok(Message::Notification(n)) => {
                        eprintln!("bgp_blaster: session {i}: NOTIFICATION received: {n:?}");
                        std::process::exit(1);
                    }
                    Ok(m) => apply(&mut held, &m),
                    Err(e) => {
                        eprintln!("bgp_blaster: session {i} ended: {e}");
                        std::process::exit(1);
                    }
                }
                if !reported && expect > 0 && held.len() >= expect {
                    reported = true;
                    say(&out, format!("HOLD {i} {}", held.len()));
                    let mut left = remaining.lock().unwrap_or_else(|p| p.into_inner());
                    *left -= 1;
                    if *left == 0 {
                        say(&out, "DONE".into());
                    }
                }
            }
        });
    }
    wait_stdin_eof();
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|a| match a.mode.as_str() {
        "blast" => blast(&a),
        _ => sink(&a),
    });
    if let Err(e) = result {
        eprintln!("bgp_blaster: {e}");
        std::process::exit(1);
    }
}
