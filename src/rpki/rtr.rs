//! Fetching the Validated ROA Payloads from an RPKI validator over RTR: one Reset Query on a
//! fresh TCP connection (RFC 8210 §8.1 "Start or Restart"), then the connection is closed.
//! The protocol is NLnet Labs' `rpki` crate's client (`rpki::rtr::Client`); this module
//! bounds it in time, turns its payloads into [`Vrp`]s and its failures into errors naming the
//! validator.
//!
//! Contract:
//! - Version: RFC 8210 (version 1) first. A validator that answers in version 0 is taken at
//!   its word (stayrtr `-protocol 0` does so); one that answers with an Error Report
//!   "Unsupported Protocol Version" of version 0 is asked again on the same connection at
//!   version 0 (the crate does both, RFC 8210 §7); one that refuses otherwise or breaks off is
//!   asked again on a new connection with RFC 6810 (version 0). A validator that answers
//!   neither is an error carrying both answers. The answer says which version the validator
//!   answered in (the version field of its Cache Response, RFC 8210 §5.5).
//! - Every wait is bounded: name resolution, connect and the whole exchange share one
//!   deadline (`timeout`), whatever the validator does.
//! - [`fetch_first`] asks the validators in the order given and takes the first complete
//!   answer; the ones that failed before it are returned as well, for a warning. None
//!   answering is an error naming each.
//! - Router keys and ASPA payloads are ignored; only route origins become [`Vrp`]s.
//!
//! Never does: keep a session (no Serial Query, no Serial Notify), validate routes (see
//! [`super::rov`]), or cache VRPs between calls.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ipnet::IpNet;
use rpki::rtr::client::{PayloadError, PayloadTarget};
use rpki::rtr::{Action, Client, Payload, Timing};

use super::rov::Vrp;

/// Why a validator gave no VRPs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtrError {
    #[error("RPKI validator {validator:?} is not HOST:PORT: {why}")]
    BadAddress { validator: String, why: String },
    #[error("RPKI validator {validator}: cannot connect: {why}")]
    Connect { validator: String, why: String },
    #[error("RPKI validator {validator}: no complete answer within {} ms", timeout.as_millis())]
    Timeout {
        validator: String,
        timeout: Duration,
    },
    #[error("RPKI validator {validator}: RTR version 1: {v1}; version 0: {v0}")]
    Protocol {
        validator: String,
        v1: String,
        v0: String,
    },
    #[error("no RPKI validator answered: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    NoneAnswered(Vec<RtrError>),
}

/// What one validator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The RTR version of its Cache Response: 1 (RFC 8210) or 0 (RFC 6810).
    pub version: u8,
    pub vrps: Vec<Vrp>,
}

/// The VRPs of the first validator that answered.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub validator: String,
    /// The RTR version it answered in.
    pub version: u8,
    pub vrps: Vec<Vrp>,
    /// Validators asked before it that failed.
    pub skipped: Vec<RtrError>,
}

/// [`fetch`] from each validator in turn until one answers.
pub fn fetch_first(validators: &[String], timeout: Duration) -> Result<Fetched, RtrError> {
    let mut skipped = Vec::new();
    for v in validators {
        match fetch(v, timeout) {
            Ok(a) => {
                return Ok(Fetched {
                    validator: v.clone(),
                    version: a.version,
                    vrps: a.vrps,
                    skipped,
                })
            }
            Err(e) => skipped.push(e),
        }
    }
    Err(RtrError::NoneAnswered(skipped))
}

/// Whether `validator` has the form HOST:PORT ([v6]:PORT for an IPv6 literal); for the plan's
/// check.
pub fn check_address(validator: &str) -> Result<(), String> {
    let (host, port) = validator.rsplit_once(':').ok_or_else(|| {
        "no :PORT (RTR's IANA port is 323; validators often use 3323 or 8282)".to_string()
    })?;
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_err() => {
            return Err(format!("[{v6}] is not an IPv6 address"))
        }
        Some(_) => {}
        None if host.is_empty() => return Err("no host".into()),
        None if host.contains(':') => {
            return Err(format!(
                "{host:?} is not a host (write an IPv6 address as [ADDR]:PORT)"
            ))
        }
        None => {}
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {port:?} is not 1..=65535")),
        Ok(_) => Ok(()),
    }
}

/// The VRPs `validator` (HOST:PORT) holds now, within `timeout` in all.
pub fn fetch(validator: &str, timeout: Duration) -> Result<Answer, RtrError> {
    check_address(validator).map_err(|why| RtrError::BadAddress {
        validator: validator.into(),
        why,
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RtrError::Connect {
            validator: validator.into(),
            why: format!("no runtime: {e}"),
        })?;
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || RtrError::Timeout {
        validator: validator.into(),
        timeout,
    };
    rt.block_on(async {
        let v1 = match tokio::time::timeout_at(deadline, reset(validator, 1)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(Failure::Connect(why))) => {
                return Err(RtrError::Connect {
                    validator: validator.into(),
                    why,
                })
            }
            Ok(Err(Failure::Protocol(why))) => why,
        };
        match tokio::time::timeout_at(deadline, reset(validator, 0)).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(Failure::Connect(v0) | Failure::Protocol(v0))) => Err(RtrError::Protocol {
                validator: validator.into(),
                v1,
                v0,
            }),
        }
    })
}

enum Failure {
    Connect(String),
    Protocol(String),
}

/// One connection, one Reset Query at `version` (lower if the validator asks for it), the
/// VRPs of the answer.
async fn reset(validator: &str, version: u8) -> Result<Answer, Failure> {
    let sock = tokio::net::TcpStream::connect(validator)
        .await
        .map_err(|e| Failure::Connect(e.to_string()))?;
    let answered = Arc::new(AtomicU8::new(u8::MAX));
    let sock = Tap {
        inner: sock,
        after_query: false,
        version: answered.clone(),
    };
    let mut client = Client::with_initial_version(version, sock, Collect, None);
    let update = client.reset().await.map_err(|e| {
        Failure::Protocol(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "the validator closed the connection".into(),
            _ if e.to_string().is_empty() => "the validator sent data the client refused".into(),
            _ => named_error(&e.to_string()),
        })
    })?;
    // A reset answer is the whole set; withdrawals in it are applied in order all the same.
    let mut set = BTreeSet::new();
    for (action, payload) in update {
        let Payload::Origin(o) = payload else {
            continue;
        };
        let prefix = IpNet::new(o.prefix.addr(), o.prefix.prefix_len())
            .map_err(|e| Failure::Protocol(format!("bad prefix length in a VRP: {e}")))?;
        let vrp = Vrp::new(prefix, o.prefix.resolved_max_len(), o.asn.into_u32())
            .map_err(Failure::Protocol)?;
        match action {
            Action::Announce => set.insert(vrp),
            Action::Withdraw => set.remove(&vrp),
        };
    }
    Ok(Answer {
        version: answered.load(Ordering::Relaxed),
        vrps: set.into_iter().collect(),
    })
}

/// The validator's socket, noting the first byte it sends after each query: the version field
/// of the PDU that answers it (RFC 8210 §5.1, every PDU starts with it). The crate's client
/// downgrades on its own and does not say to which version; the answer to the last query is
/// the Cache Response whose version the whole exchange used.
struct Tap<S> {
    inner: S,
    after_query: bool,
    version: Arc<AtomicU8>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if me.after_query {
            if let Some(&v) = buf.filled().get(before) {
                me.version.store(v, Ordering::Relaxed);
                me.after_query = false;
            }
        }
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            me.after_query = true;
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The client says "server reported error N"; RFC 8210 §12 names N.
fn named_error(text: &str) -> String {
    let Some(code) = text
        .strip_prefix("server reported error ")
        .and_then(|c| c.parse::<u16>().ok())
    else {
        return text.to_owned();
    };
    let name = match code {
        0 => "Corrupt Data",
        1 => "Internal Error",
        2 => "No Data Available (the validator has not finished its first validation run)",
        3 => "Invalid Request",
        4 => "Unsupported Protocol Version",
        5 => "Unsupported PDU Type",
        6 => "Withdrawal of Unknown Record",
        7 => "Duplicate Announcement Received",
        8 => "Unexpected Protocol Version",
        _ => "an error code RFC 8210 does not define",
    };
    format!("error report {code}: {name}")
}

/// The client's target: the update a reset returns is all we read; nothing is kept here.
struct Collect;

impl PayloadTarget for Collect {
    type Update = Vec<(Action, Payload)>;

    fn start(&mut self, _reset: bool) -> Self::Update {
        Vec::new()
    }

    fn apply(&mut self, _update: Self::Update, _timing: Timing) -> Result<(), PayloadError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert!(check_address("192.0.2.1:3323").is_ok());
        assert!(check_address("rtr.example:323").is_ok());
        assert!(check_address("[2001:db8::1]:8282").is_ok());
        assert!(check_address("192.0.2.1").unwrap_err().contains("no :PORT"));
        assert!(check_address("192.0.2.1:0").unwrap_err().contains("port"));
        assert!(check_address(":323").unwrap_err().contains("no host"));
        assert!(check_address("2001:db8::1:323")
            .unwrap_err()
            .contains("[ADDR]:PORT"));
    }

    #[test]
    fn a_closed_port_is_a_connect_error_naming_the_validator() {
        // A port just freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let v = format!("127.0.0.1:{port}");
        let e = fetch(&v, Duration::from_secs(2)).unwrap_err();
        assert!(matches!(e, RtrError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&v), "{e}");
    }

    #[test]
    fn a_silent_validator_times_out() {
        // Accepts the connection (the backlog does) and never answers.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v = l.local_addr().unwrap().to_string();
        let t0 = std::time::Instant::now();
        let e = fetch(&v, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, RtrError::Timeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        let all = fetch_first(&[v.clone(), v.clone()], Duration::from_millis(100)).unwrap_err();
        assert!(
            all.to_string().starts_with("no RPKI validator answered"),
            "{all}"
        );
        assert_eq!(all.to_string().matches(&v).count(), 2, "{all}");
    }

    #[test]
    fn an_error_report_is_named() {
        // RFC 8210 §5.11: an Error Report "No Data Available" (code 2) to every query, no
        // encapsulated PDU, no text: what a validator says before its first run ends.
        use std::io::{Read as _, Write as _};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                if let Ok((mut s, _)) = l.accept() {
                    let mut query = [0u8; 12];
                    let n = s.read(&mut query).unwrap_or(0);
                    let version = if n > 0 { query[0] } else { 1 };
                    let pdu = [version, 10, 0, 2, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0];
                    let _ = s.write_all(&pdu);
                }
            }
        });
        let e = fetch(&v, Duration::from_secs(5)).unwrap_err().to_string();
        assert!(
            e.contains("version 1: error report 2: No Data Available"),
            "{e}"
        );
        assert!(e.contains("version 0: error report 2"), "{e}");
        server.join().unwrap();
    }

    #[test]
    fn a_version_0_cache_refusing_version_1_is_asked_again_in_version_0() {
        // RFC 8210 §7: the cache answers the version 1 Reset Query with an Error Report
        // "Unsupported Protocol Version" (code 4) in version 0, then the version 0 query with
        // an RFC 6810 answer: Cache Response, one IPv4 Prefix, End of Data (12 octets in v0).
        use std::io::{Read as _, Write as _};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut q1 = [0u8; 8];
            s.read_exact(&mut q1).unwrap();
            s.write_all(&[0, 10, 0, 4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap();
            let mut q2 = [0u8; 8];
            s.read_exact(&mut q2).unwrap();
            let mut answer = vec![0, 3, 0, 7, 0, 0, 0, 8];
            answer.extend([0, 4, 0, 0, 0, 0, 0, 20, 1, 24, 24, 0, 198, 51, 100, 0]);
            answer.extend(65101u32.to_be_bytes());
            answer.extend([0, 7, 0, 7, 0, 0, 0, 12, 0, 0, 0, 1]);
            s.write_all(&answer).unwrap();
            (q1[0], q2[0])
        });
        let a = fetch(&v, Duration::from_secs(5)).unwrap();
        assert_eq!(server.join().unwrap(), (1, 0), "query versions");
        assert_eq!(a.version, 0);
        assert_eq!(
            a.vrps,
            [Vrp::new("198.51.100.0/24".parse().unwrap(), 24, 65101).unwrap()]
        );
    }

    #[test]
    fn a_validator_speaking_something_else_is_a_protocol_error() {
        // An HTTP-ish server: answers every connection with text and closes it.
        use std::io::Write as _;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                if let Ok((mut s, _)) = l.accept() {
                    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                }
            }
        });
        let e = fetch(&v, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, RtrError::Protocol { .. }), "{e}");
        assert!(
            e.to_string().contains("version 1") && e.to_string().contains(&v),
            "{e}"
        );
        server.join().unwrap();
    }
}
