//! A blocking DNS client for the failover steps: authoritative queries and RFC 2136 UPDATEs
//! signed with TSIG (RFC 8945), each bounded by one deadline.
//!
//! Contract:
//! - Messages are built, signed, verified and parsed by Hickory (`hickory-proto`); this module
//!   only moves their bytes: queries over UDP (resent every [`RESEND`] until the deadline,
//!   TCP when the answer is truncated, RFC 7766), updates over TCP (one exchange, no resend:
//!   a lost answer would otherwise apply it twice) with the two-byte length prefix of RFC 1035
//!   section 4.2.2.
//! - An update's answer must carry a TSIG that verifies with the same key (RFC 8945 section
//!   5.3), except NOTAUTH answers, which the server sends unsigned with the TSIG error
//!   (BADSIG, BADKEY, BADTIME; section 5.2): those are reported as the server's answer.
//! - Errors name the server, what was asked and, for a refusal, the RCODE and TSIG error.
//!
//! Never does: retry an update, or decide what a refusal means for a step
//! ([`crate::controller::dns`]).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::key::TsigKey;

/// How long a UDP query waits before it is sent again (within its deadline).
pub const RESEND: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Nothing (or no whole answer) came back in time.
    #[error("DNS server {server}: no answer to {what} within {ms} ms")]
    Timeout {
        server: SocketAddr,
        what: String,
        ms: u64,
    },
    /// The connection or socket failed (refused, unreachable).
    #[error("DNS server {server}: {what}: {error}")]
    Io {
        server: SocketAddr,
        what: String,
        error: String,
    },
    /// The server answered with an error RCODE (and, for NOTAUTH, the TSIG error).
    #[error("{0}")]
    Refused(Box<Refusal>),
    /// The answer could not be used (does not parse, wrong id, bad signature).
    #[error("DNS server {server}: bad answer to {what}: {why}")]
    BadAnswer {
        server: SocketAddr,
        what: String,
        why: String,
    },
}

/// An error answer: RCODE, for NOTAUTH the TSIG error, and the key the request was signed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS server {server} answered {rcode}{} to {what}{}", tsig.as_ref().map(|t| format!(" (TSIG error {t})")).unwrap_or_default(), key.as_ref().map(|k| format!(" signed with key {k:?}")).unwrap_or_default())]
pub struct Refusal {
    pub server: SocketAddr,
    pub what: String,
    pub rcode: String,
    pub tsig: Option<String>,
    pub key: Option<String>,
}

impl DnsError {
    /// The server took nothing: no connection or no answer.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Io { .. })
    }
}

/// What a signed update came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Applied,
    /// A prerequisite did not hold (RFC 2136 section 3.2: NXRRSET, YXRRSET, NXDOMAIN,
    /// YXDOMAIN): nothing was changed.
    PrerequisiteFailed(String),
}

/// One RRset replaced: `name`'s A (or AAAA) RRset must be exactly `{old}` and becomes `{new}`
/// with `ttl` (the same address with another TTL to change only the TTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    pub name: String,
    pub old: IpAddr,
    pub new: IpAddr,
    pub ttl: u32,
}

/// The addresses (and TTL) a server holds for a name, from an authoritative answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub addrs: Vec<IpAddr>,
    pub ttl: Option<u32>,
}

fn name(s: &str) -> Result<Name, String> {
    Name::from_ascii(s).map_err(|e| format!("{s:?} is not a domain name: {e}"))
}

fn rtype(ip: IpAddr) -> RecordType {
    match ip {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    }
}

fn rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    }
}

/// Ask `server` (no recursion) for the A or AAAA records of `host`.
pub fn addresses(
    server: SocketAddr,
    host: &str,
    v6: bool,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    lookup(server, host, v6, false, timeout)
}

/// Ask a resolver at `server` (recursion desired, RFC 1035 section 4.1.1) for the A or AAAA
/// records of `host`, as a stub resolver does: the lab's client before each probe.
pub fn resolve(
    server: SocketAddr,
    host: &str,
    v6: bool,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    lookup(server, host, v6, true, timeout)
}

fn lookup(
    server: SocketAddr,
    host: &str,
    v6: bool,
    recursion: bool,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    let rt = if v6 { RecordType::AAAA } else { RecordType::A };
    let what = format!("{host} {rt}");
    let m = query(server, host, rt, recursion, &what, timeout)?;
    let mut a = Answer::default();
    for r in &m.answers {
        let ip = match &r.data {
            RData::A(x) if !v6 => IpAddr::V4(x.0),
            RData::AAAA(x) if v6 => IpAddr::V6(x.0),
            _ => continue,
        };
        a.addrs.push(ip);
        a.ttl = Some(a.ttl.map_or(r.ttl, |t: u32| t.min(r.ttl)));
    }
    a.addrs.sort();
    Ok(a)
}

/// The serial of `zone`'s SOA at `server`.
pub fn soa_serial(server: SocketAddr, zone: &str, timeout: Duration) -> Result<u32, DnsError> {
    let what = format!("{zone} SOA");
    let m = query(server, zone, RecordType::SOA, false, &what, timeout)?;
    m.answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(SOA { serial, .. }) => Some(*serial),
            _ => None,
        })
        .ok_or_else(|| DnsError::BadAnswer {
            server,
            what,
            why: "no SOA in the answer (is the server authoritative for the zone?)".into(),
        })
}

fn query(
    server: SocketAddr,
    host: &str,
    rt: RecordType,
    recursion: bool,
    what: &str,
    timeout: Duration,
) -> Result<Message, DnsError> {
    let bad = bad_answer(server, what);
    let mut m = Message::query();
    m.metadata.recursion_desired = recursion;
    m.add_query(Query::query(name(host).map_err(bad)?, rt));
    let bytes = m.to_vec().map_err(|e| bad(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut answer = udp_exchange(server, &bytes, m.metadata.id, what, deadline)?;
    if answer.metadata.truncation {
        let raw = tcp_exchange(server, &bytes, what, deadline)?;
        answer = parse(server, what, &raw, m.metadata.id)?;
    }
    match answer.metadata.response_code {
        ResponseCode::NoError => Ok(answer),
        rc => Err(DnsError::Refused(Box::new(Refusal {
            server,
            what: what.to_owned(),
            rcode: rcode_name(rc),
            tsig: None,
            key: None,
        }))),
    }
}

/// Send `changes` to `server` as one UPDATE of `zone` signed with `key`: for each, the
/// prerequisite that its RRset is exactly `{old}` (RFC 2136 section 2.4.2), then delete the
/// RRset (section 2.5.2) and add `new` (section 2.5.1). The server applies all or nothing
/// (section 3.4).
pub fn update(
    server: SocketAddr,
    zone: &str,
    key: &TsigKey,
    changes: &[Replace],
    timeout: Duration,
) -> Result<UpdateOutcome, DnsError> {
    let what = format!("the update of {zone}");
    let bad = bad_answer(server, &what);
    let zone_name = name(zone).map_err(bad)?;
    let mut zq = Query::query(zone_name, RecordType::SOA);
    zq.set_query_class(DNSClass::IN);
    let mut m = update_message(zq);
    for c in changes {
        let n = name(&c.name).map_err(bad)?;
        // Prerequisite: TTL 0, class of the zone (RFC 2136 section 2.4.2).
        m.add_pre_requisite(Record::from_rdata(n.clone(), 0, rdata(c.old)));
    }
    for c in changes {
        let n = name(&c.name).map_err(bad)?;
        let mut delete = Record::update0(n.clone(), 0, rtype(c.old)).into_record_of_rdata();
        delete.dns_class = DNSClass::ANY;
        m.add_update(delete);
        m.add_update(Record::from_rdata(n, c.ttl, rdata(c.new)));
    }
    match signed_exchange(server, &what, key, m, timeout)? {
        ResponseCode::NoError => Ok(UpdateOutcome::Applied),
        rcode @ (ResponseCode::NXRRSet
        | ResponseCode::YXRRSet
        | ResponseCode::NXDomain
        | ResponseCode::YXDomain) => Ok(UpdateOutcome::PrerequisiteFailed(rcode_name(rcode))),
        rc => Err(update_refused(server, &what, rc, None, key)),
    }
}

/// An update that changes nothing: its prerequisite (the zone's apex name is not in use,
/// RFC 2136 section 2.4.5) always fails where the key is accepted and the zone takes updates
/// from it, so the answer tells: YXDOMAIN means accepted, NOTAUTH a bad key, REFUSED updates
/// not allowed for this key (`allow-update`; per-name `update-policy` rules are checked only
/// for real changes, after the prerequisites).
pub fn probe_update(
    server: SocketAddr,
    zone: &str,
    key: &TsigKey,
    timeout: Duration,
) -> Result<(), DnsError> {
    let what = format!("a test update of {zone} (changes nothing)");
    let bad = bad_answer(server, &what);
    let zone_name = name(zone).map_err(bad)?;
    let mut m = update_message(Query::query(zone_name.clone(), RecordType::SOA));
    let mut pre = Record::update0(zone_name, 0, RecordType::ANY).into_record_of_rdata();
    pre.dns_class = DNSClass::NONE;
    m.add_pre_requisite(pre);
    match signed_exchange(server, &what, key, m, timeout)? {
        ResponseCode::YXDomain => Ok(()),
        rc => Err(update_refused(server, &what, rc, None, key)),
    }
}

/// An UPDATE of the zone `zone` names (RFC 2136 section 2.3), no recursion asked.
fn update_message(zone: Query) -> Message {
    let mut m = Message::query();
    m.metadata.op_code = OpCode::Update;
    m.metadata.recursion_desired = false;
    m.add_zone(zone);
    m
}

/// Sign the UPDATE `m` with `key`, send it to `server` over TCP (one exchange within
/// `timeout`) and check the answer against it: it must answer `m` ([`parse`]) and carry a TSIG
/// that verifies with `key` (RFC 8945 section 5.3), except a NOTAUTH answer, which the server
/// sends unsigned with the TSIG error when it cannot verify the request (section 5.3.2):
/// that is returned as the server's refusal. Returns the answer's RCODE.
fn signed_exchange(
    server: SocketAddr,
    what: &str,
    key: &TsigKey,
    mut m: Message,
    timeout: Duration,
) -> Result<ResponseCode, DnsError> {
    let bad = bad_answer(server, what);
    let signer = key.signer().map_err(bad)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut verifier = m
        .finalize(&signer, now)
        .map_err(|e| bad(format!("signing: {e}")))?
        .ok_or_else(|| bad("the request was not signed".into()))?;
    let bytes = m.to_vec().map_err(|e| bad(e.to_string()))?;
    let raw = tcp_exchange(server, &bytes, what, Instant::now() + timeout)?;
    let answer = parse(server, what, &raw, m.metadata.id)?;
    let rcode = answer.metadata.response_code;
    if rcode == ResponseCode::NotAuth {
        let tsig = answer
            .signature
            .as_ref()
            .and_then(|s| s.data.error.as_ref())
            .map(|e| format!("{e:?}").to_uppercase());
        return Err(update_refused(server, what, rcode, tsig, key));
    }
    verifier.verify(&raw).map_err(|e| {
        bad(format!(
            "its TSIG does not verify with key {:?}: {e}",
            key.name
        ))
    })?;
    Ok(rcode)
}

/// The server's error answer `rc` (with, for NOTAUTH, the TSIG error) to an update signed
/// with `key`.
fn update_refused(
    server: SocketAddr,
    what: &str,
    rc: ResponseCode,
    tsig: Option<String>,
    key: &TsigKey,
) -> DnsError {
    DnsError::Refused(Box::new(Refusal {
        server,
        what: what.to_owned(),
        rcode: rcode_name(rc),
        tsig,
        key: Some(key.name.clone()),
    }))
}

/// The error for an answer (or a request) that cannot be used, saying `why`.
fn bad_answer(server: SocketAddr, what: &str) -> impl Fn(String) -> DnsError + Copy + '_ {
    move |why| DnsError::BadAnswer {
        server,
        what: what.to_owned(),
        why,
    }
}

/// The RCODE's mnemonic as RFC 1035 and RFC 2136 write it (NOTAUTH, NXRRSET, ...).
fn rcode_name(rc: ResponseCode) -> String {
    format!("{rc:?}").to_uppercase()
}

fn parse(server: SocketAddr, what: &str, raw: &[u8], id: u16) -> Result<Message, DnsError> {
    let bad = bad_answer(server, what);
    let m = Message::from_vec(raw).map_err(|e| bad(format!("does not parse: {e}")))?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return Err(bad(format!(
            "not the answer to our request (id {}, expected {id})",
            m.metadata.id
        )));
    }
    Ok(m)
}

fn left(deadline: Instant) -> Option<Duration> {
    let l = deadline.saturating_duration_since(Instant::now());
    (!l.is_zero()).then_some(l)
}

fn udp_exchange(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    what: &str,
    deadline: Instant,
) -> Result<Message, DnsError> {
    let start = Instant::now();
    let io = |error: std::io::Error| DnsError::Io {
        server,
        what: what.to_owned(),
        error: error.to_string(),
    };
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("an address"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("an address"),
    };
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.connect(server).map_err(io)?;
    let mut buf = vec![0u8; 65535];
    'send: while let Some(l) = left(deadline) {
        sock.send(bytes).map_err(io)?;
        let resend_at = Instant::now() + RESEND.min(l);
        while let Some(wait) = left(resend_at) {
            sock.set_read_timeout(Some(wait)).map_err(io)?;
            match sock.recv(&mut buf) {
                Ok(n) => match parse(server, what, &buf[..n], id) {
                    Ok(m) => return Ok(m),
                    // Not ours (a late answer to an earlier query): keep waiting.
                    Err(_) => continue,
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue 'send
                }
                // ICMP port unreachable: nobody listens there (now); try again until the deadline.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::thread::sleep(left(resend_at).unwrap_or_default());
                    continue 'send;
                }
                Err(e) => return Err(io(e)),
            }
        }
    }
    Err(DnsError::Timeout {
        server,
        what: what.to_owned(),
        ms: start.elapsed().as_millis() as u64,
    })
}

fn tcp_exchange(
    server: SocketAddr,
    bytes: &[u8],
    what: &str,
    deadline: Instant,
) -> Result<Vec<u8>, DnsError> {
    let start = Instant::now();
    let timeout = || DnsError::Timeout {
        server,
        what: what.to_owned(),
        ms: start.elapsed().as_millis() as u64,
    };
    let io = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            timeout()
        } else {
            DnsError::Io {
                server,
                what: what.to_owned(),
                error: e.to_string(),
            }
        }
    };
    let l = left(deadline).ok_or_else(timeout)?;
    let mut s = TcpStream::connect_timeout(&server, l).map_err(io)?;
    let len = u16::try_from(bytes.len()).map_err(|_| DnsError::BadAnswer {
        server,
        what: what.to_owned(),
        why: format!("the request is {} bytes, over 65535", bytes.len()),
    })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.set_write_timeout(Some(left(deadline).ok_or_else(timeout)?))
        .map_err(io)?;
    s.write_all(&framed).map_err(io)?;
    let mut len = [0u8; 2];
    s.set_read_timeout(Some(left(deadline).ok_or_else(timeout)?))
        .map_err(io)?;
    s.read_exact(&mut len).map_err(io)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.set_read_timeout(Some(left(deadline).ok_or_else(timeout)?))
        .map_err(io)?;
    s.read_exact(&mut answer).map_err(io)?;
    Ok(answer)
}
