//! One HTTP/1.1 exchange with a speaker over std sockets, blocking the calling thread: the
//! path of [`super::blocking::Speaker`] (the CLI, the controller), which so needs no runtime,
//! no hyper connection task and no extra thread for a call (issue 19: a `ferry announce`
//! spent more time building its client than the speaker spent on the change).
//!
//! Contract: the same as the async transport ([`super::client`]): one deadline covers the
//! connection, the request and the whole answer; the same [`TransportError`] kinds for the
//! same failures (no connection: `NotConnected`; sent and no whole answer: `NoAnswer`; our
//! side's fault: `Local`); answers are returned whatever their status. The request says
//! `Connection: close` and the answer is read by its `Content-Length`, its chunks (RFC 9112
//! section 7.1) or to the end of the stream (RFC 9112 section 6.3, rule 8).
//!
//! Never: keeps a connection, follows a redirect, retries, or sends a header value with a
//! control character in it (RFC 9110 section 5.5: refused as `Local`, nothing sent).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::client::{secs_text, Endpoint, Transport, TransportError};
use super::fence::Fence;
use super::request_body::RequestBody;

/// Longest answer head taken (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most headers in an answer head.
const MAX_HEADERS: usize = 64;

/// A connected stream of either kind.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_timeouts(&self, left: Duration) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The deadline of one exchange, applied to the socket before each read and write.
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn left(&self) -> Option<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn late(&self) -> TransportError {
        TransportError::NoAnswer(format!("within {}", secs_text(self.timeout)))
    }

    /// An I/O error after the request started going out: the deadline, or a broken connection.
    fn broke(&self, e: std::io::Error) -> TransportError {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => self.late(),
            _ => TransportError::NoAnswer(format!("(the connection broke: {e})")),
        }
    }
}

/// `stream` bounded by `deadline` for every read and write.
struct Timed<'a> {
    stream: &'a mut Stream,
    deadline: &'a Deadline,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self
            .deadline
            .left()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
        self.stream.set_timeouts(left)?;
        self.stream.read(buf)
    }
}

impl Transport {
    /// [`Transport::send`](super::client::Transport) on this thread, with std sockets.
    pub fn send_blocking(
        &self,
        method: Method,
        path: &str,
        body: Option<RequestBody>,
        fence: Option<&Fence>,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        let deadline = Deadline {
            at: Instant::now() + self.timeout,
            timeout: self.timeout,
        };
        // Nothing goes out with a header that could split the request.
        let head = self.head(&method, path, body.as_ref(), fence)?;
        let mut stream = self.connect_blocking(&deadline)?;
        if let Err(e) = write_request(&mut stream, &deadline, head, body) {
            // A speaker that refuses a body before reading it all (too large, malformed)
            // answers and closes: its answer says more than the broken pipe.
            return read_answer(&mut stream, &deadline).map_err(|_| e);
        }
        read_answer(&mut stream, &deadline)
    }

    fn head(
        &self,
        method: &Method,
        path: &str,
        body: Option<&RequestBody>,
        fence: Option<&Fence>,
    ) -> Result<Vec<u8>, TransportError> {
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "localhost",
            Endpoint::Tcp { authority } => authority.as_str(),
        };
        let mut head = Vec::with_capacity(256);
        let mut header = |name: &str, value: &str| -> Result<(), TransportError> {
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(TransportError::Local(format!(
                    "header {name}: the value has a control character in it"
                )));
            }
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
            Ok(())
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(TransportError::Local(format!(
                "request path {path:?} has a space or control character in it"
            )));
        }
        header("host", host)?;
        if let Some(token) = &self.token {
            header("authorization", &format!("Bearer {token}"))?;
        }
        if let Some(f) = fence {
            for (name, value) in f.headers() {
                header(name, &value)?;
            }
        }
        header("connection", "close")?;
        match body {
            None => {}
            Some(b) => {
                header("content-type", "application/json")?;
                match b.whole_len() {
                    Some(n) => header("content-length", &n.to_string())?,
                    None => header("transfer-encoding", "chunked")?,
                }
            }
        }
        let mut out = Vec::with_capacity(head.len() + path.len() + 32);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        out.extend_from_slice(&head);
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }

    /// Connect by the deadline. A Unix socket whose listener's backlog is full would block
    /// `connect(2)`; its send timeout bounds that (Linux `unix_stream_connect`).
    fn connect_blocking(&self, deadline: &Deadline) -> Result<Stream, TransportError> {
        let no_connection = || {
            TransportError::NotConnected(format!(
                "no connection within {}",
                secs_text(deadline.timeout)
            ))
        };
        let unreachable = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                TransportError::Local(format!("{}: {e}", self.endpoint))
            }
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => no_connection(),
            _ => TransportError::NotConnected(e.to_string()),
        };
        let left = deadline.left().ok_or_else(no_connection)?;
        match &self.endpoint {
            Endpoint::Unix(path) => unix_connect(path, left)
                .map(Stream::Unix)
                .map_err(unreachable),
            Endpoint::Tcp { authority } => {
                let addrs = resolve(authority, left).map_err(|e| match e {
                    Some(e) => TransportError::NotConnected(e.to_string()),
                    None => no_connection(),
                })?;
                let mut last = None;
                for addr in addrs {
                    let Some(left) = deadline.left() else { break };
                    match TcpStream::connect_timeout(&addr, left) {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.map_or_else(no_connection, unreachable))
            }
        }
    }
}

/// A connected Unix stream socket, `connect(2)` bounded by `left`.
fn unix_connect(path: &Path, left: Duration) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, UnixAddr,
    };
    let addr = UnixAddr::new(path).map_err(std::io::Error::from)?;
    let fd: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)?;
    // At least 1 us: a zero timeval would mean no timeout at all.
    let left = left.max(Duration::from_micros(1));
    let tv = nix::sys::time::TimeVal::new(
        left.as_secs().try_into().unwrap_or(i64::MAX),
        left.subsec_micros().into(),
    );
    setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(std::io::Error::from)?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).map_err(std::io::Error::from)?;
    Ok(UnixStream::from(fd))
}

/// The addresses of `authority` (`host:port`): a literal at once, a name on a side thread so
/// that a slow resolver cannot hold the caller past `left` (`Err(None)`: not in time).
fn resolve(authority: &str, left: Duration) -> Result<Vec<SocketAddr>, Option<std::io::Error>> {
    if let Ok(a) = authority.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = authority.to_owned();
    std::thread::Builder::new()
        .name("ferry-resolve".into())
        .spawn(move || {
            let _ = tx.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        })
        .map_err(Some)?;
    match rx.recv_timeout(left) {
        Ok(r) => r.map_err(Some),
        Err(_) => Err(None),
    }
}

/// The head, then the body: whole (with the head in one write, so a small request is one
/// segment), or chunk by chunk as [`RequestBody`] writes it.
fn write_request(
    stream: &mut Stream,
    deadline: &Deadline,
    mut head: Vec<u8>,
    body: Option<RequestBody>,
) -> Result<(), TransportError> {
    let mut send = |bytes: &[u8]| -> Result<(), TransportError> {
        let left = deadline.left().ok_or_else(|| deadline.late())?;
        stream.set_timeouts(left).map_err(|e| deadline.broke(e))?;
        stream.write_all(bytes).map_err(|e| deadline.broke(e))
    };
    let Some(body) = body else {
        return send(&head);
    };
    let chunked = body.whole_len().is_none();
    let mut frames = body.into_frames();
    if !chunked {
        if let Some(first) = frames.next() {
            let first = first.map_err(|e| TransportError::Local(e.to_string()))?;
            head.extend_from_slice(&first);
        }
        return send(&head);
    }
    // Chunked: the head goes with the first chunk.
    let mut out = head;
    for frame in frames {
        let frame = frame.map_err(|e| TransportError::Local(e.to_string()))?;
        if frame.is_empty() {
            continue;
        }
        out.extend_from_slice(format!("{:x}\r\n", frame.len()).as_bytes());
        out.extend_from_slice(&frame);
        out.extend_from_slice(b"\r\n");
        send(&out)?;
        out.clear();
    }
    out.extend_from_slice(b"0\r\n\r\n");
    send(&out)
}

/// The status and the whole body of the answer.
fn read_answer(
    stream: &mut Stream,
    deadline: &Deadline,
) -> Result<(StatusCode, Bytes), TransportError> {
    let mut r = BufReader::with_capacity(16 * 1024, Timed { stream, deadline });
    let malformed =
        |what: String| TransportError::NoAnswer(format!("(not an HTTP answer: {what})"));
    // The head: read until httparse has all of it.
    let mut head = Vec::new();
    let (status, framing) = loop {
        let got = r.fill_buf().map_err(|e| deadline.broke(e))?;
        if got.is_empty() {
            return Err(TransportError::NoAnswer(
                "(the connection broke: it closed before the answer's head)".into(),
            ));
        }
        let n = got.len();
        head.extend_from_slice(got);
        r.consume(n);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                let code = resp.code.unwrap_or(0);
                let status =
                    StatusCode::from_u16(code).map_err(|_| malformed(format!("status {code}")))?;
                let framing = framing(resp.headers).map_err(malformed)?;
                // What came after the head is the body's start: give it back to the reader.
                let rest = head.split_off(len);
                break (status, (framing, rest));
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(malformed(format!("a head longer than {MAX_HEAD} octets")))
            }
            Err(e) => return Err(malformed(e.to_string())),
        }
    };
    let (framing, rest) = framing;
    let mut body = std::io::Cursor::new(rest).chain(r);
    let mut out = Vec::new();
    match framing {
        Framing::Length(n) => {
            out.reserve(n.min(1 << 24) as usize);
            let got = (&mut body)
                .take(n)
                .read_to_end(&mut out)
                .map_err(|e| deadline.broke(e))?;
            if (got as u64) < n {
                return Err(TransportError::NoAnswer(format!(
                    "(the connection broke: {got} of {n} octets of the answer came)"
                )));
            }
        }
        Framing::Chunked => read_chunks(&mut body, &mut out, deadline)?,
        Framing::ToEnd => {
            body.read_to_end(&mut out).map_err(|e| deadline.broke(e))?;
        }
    }
    Ok((status, Bytes::from(out)))
}

/// How the answer's body ends (RFC 9112 section 6.3).
enum Framing {
    Length(u64),
    Chunked,
    ToEnd,
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    let mut length = None;
    for h in headers {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked is last when present (RFC 9112 section 6.1); anything else reads to the end.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            return Ok(if last.eq_ignore_ascii_case("chunked") {
                Framing::Chunked
            } else {
                Framing::ToEnd
            });
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("content-length {value:?}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("two different content-length headers".into());
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::ToEnd, Framing::Length))
}

/// Chunks until the last one and the trailer's end (RFC 9112 section 7.1).
fn read_chunks(
    r: &mut impl BufRead,
    out: &mut Vec<u8>,
    deadline: &Deadline,
) -> Result<(), TransportError> {
    let bad = |what: &str| TransportError::NoAnswer(format!("(not an HTTP answer: {what})"));
    let mut line = Vec::new();
    let read_line = |r: &mut dyn BufRead, line: &mut Vec<u8>| {
        line.clear();
        // A chunk-size line or trailer field is short; bound it so a stream of junk ends.
        let n = (&mut *r)
            .take(MAX_HEAD as u64)
            .read_until(b'\n', line)
            .map_err(|e| deadline.broke(e))?;
        if n == 0 || !line.ends_with(b"\n") {
            return Err(TransportError::NoAnswer(
                "(the connection broke: inside the chunked answer)".into(),
            ));
        }
        Ok(())
    };
    loop {
        read_line(r, &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let size = text.split(';').next().unwrap_or("").trim();
        let size =
            u64::from_str_radix(size, 16).map_err(|_| bad(&format!("chunk size {size:?}")))?;
        if size == 0 {
            break;
        }
        let got = (&mut *r)
            .take(size)
            .read_to_end(out)
            .map_err(|e| deadline.broke(e))?;
        if (got as u64) < size {
            return Err(TransportError::NoAnswer(
                "(the connection broke: inside a chunk)".into(),
            ));
        }
        read_line(r, &mut line)?;
        if line.as_slice() != b"\r\n" && line.as_slice() != b"\n" {
            return Err(bad("a chunk not followed by CRLF"));
        }
    }
    // Trailer fields, up to the empty line.
    loop {
        read_line(r, &mut line)?;
        if line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A one-shot server on a Unix socket: reads the request head (and `body_len` octets),
    /// sends `answer`, closes; returns what it read.
    fn serve(
        answer: &'static [u8],
    ) -> (
        tempfile::TempDir,
        Transport,
        std::thread::JoinHandle<Vec<u8>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let l = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            got
        });
        let t = Transport {
            endpoint: Endpoint::Unix(path),
            token: Some("tok".into()),
            timeout: Duration::from_secs(5),
        };
        (dir, t, h)
    }

    #[test]
    fn a_length_answer_is_read_whole_and_the_request_is_one_write() {
        let (_d, t, h) = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        let (status, body) = t
            .send_blocking(
                Method::POST,
                "/v1/x",
                Some(RequestBody::whole(b"{}".to_vec())),
                None,
            )
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"hello");
        let req = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(req.starts_with("POST /v1/x HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("authorization: Bearer tok\r\n"), "{req}");
        assert!(req.contains("content-length: 2\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n{}"), "{req}");
    }

    #[test]
    fn a_chunked_answer_is_joined_and_a_status_kept() {
        let (_d, t, _h) = serve(
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        let (status, body) = t
            .send_blocking(Method::GET, "/v1/peers", None, None)
            .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(&body[..], b"abcde");
    }

    #[test]
    fn a_short_answer_is_no_answer_and_no_socket_is_not_connected() {
        let (_d, t, _h) = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort");
        let e = t
            .send_blocking(Method::GET, "/v1/peers", None, None)
            .unwrap_err();
        assert!(
            matches!(&e, TransportError::NoAnswer(m) if m.contains("5 of 10")),
            "{e:?}"
        );
        let none = Transport {
            endpoint: Endpoint::Unix("/nonexistent/ferry.sock".into()),
            token: None,
            timeout: Duration::from_secs(1),
        };
        let e = none
            .send_blocking(Method::GET, "/v1/peers", None, None)
            .unwrap_err();
        assert!(matches!(e, TransportError::NotConnected(_)), "{e:?}");
    }

    #[test]
    fn a_silent_server_is_no_answer_within_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let _l = UnixListener::bind(&path).unwrap();
        let t = Transport {
            endpoint: Endpoint::Unix(path),
            token: None,
            timeout: Duration::from_millis(200),
        };
        let start = Instant::now();
        let e = t
            .send_blocking(Method::GET, "/v1/peers", None, None)
            .unwrap_err();
        assert!(
            matches!(&e, TransportError::NoAnswer(m) if m.contains("200 ms")),
            "{e:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_header_with_a_newline_is_refused_before_connecting() {
        let t = Transport {
            endpoint: Endpoint::Unix("/nonexistent/ferry.sock".into()),
            token: Some("a\r\nx-evil: 1".into()),
            timeout: Duration::from_secs(1),
        };
        let e = t
            .send_blocking(Method::GET, "/v1/peers", None, None)
            .unwrap_err();
        assert!(
            matches!(&e, TransportError::Local(m) if m.contains("authorization")),
            "{e:?}"
        );
    }
}
