//! Where a speaker's API is ([`Endpoint`]) and one HTTP/1.1 exchange with it over a Unix
//! socket or TCP, bounded by one deadline (`Transport`). The typed client on top is
//! [`super::Speaker`]; nothing else speaks HTTP to a speaker.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::fence::Fence;
use super::request_body::RequestBody;

/// Where the speaker's API is: a Unix socket path, or `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp { authority: String },
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("http://") {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(format!("API address {s:?} is not http://HOST:PORT"));
            }
            return Ok(Self::Tcp {
                authority: authority.to_owned(),
            });
        }
        if s.starts_with("https://") {
            return Err(format!("API address {s:?}: https is not supported; use a Unix socket or http:// on a trusted network"));
        }
        if s.is_empty() {
            return Err("API address is empty".into());
        }
        Ok(Self::Unix(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "{}", p.display()),
            Self::Tcp { authority } => write!(f, "http://{authority}"),
        }
    }
}

/// One HTTP exchange with a speaker over its endpoint, bounded by one deadline; what the typed
/// [`super::Speaker`] is built on. Answers are returned whatever their status.
#[derive(Debug, Clone)]
pub(super) struct Transport {
    pub endpoint: Endpoint,
    pub token: Option<String>,
    pub timeout: Duration,
}

/// Why no answer came back.
#[derive(Debug)]
pub(super) enum TransportError {
    /// Could not connect (refused, no such socket, no route, or not within the deadline):
    /// nothing was sent.
    NotConnected(String),
    /// The request went out (or may have) and no whole answer came back: the connection broke,
    /// or the deadline passed. The speaker may or may not have done it. The text completes
    /// "did not answer ...".
    NoAnswer(String),
    /// Could not build the request, or may not connect at all (permission denied): our side's
    /// fault, not the speaker's.
    Local(String),
}

impl Transport {
    /// Send `method path` with an optional JSON body (whole or written as it goes) and the
    /// headers of `fence` if given; the
    /// status and the whole answer body. One deadline covers the connection, the request and
    /// the answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<RequestBody>,
        fence: Option<&Fence>,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut sender = self.connect(deadline).await?;
        let request = self.request(method, path, body, fence)?;
        tokio::time::timeout_at(deadline, async {
            let resp = sender.send_request(request).await.map_err(no_answer)?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(no_answer)?;
            Ok((status, bytes.to_bytes()))
        })
        .await
        .map_err(|_| self.late())?
    }

    /// Send `GET path` and return the answer's status and its body, to be read as it comes
    /// (the event stream). Only the connection and the head are bounded by the deadline.
    pub async fn open(&self, path: &str) -> Result<(StatusCode, Incoming), TransportError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut sender = self.connect(deadline).await?;
        let request = self.request(Method::GET, path, None, None)?;
        tokio::time::timeout_at(deadline, async {
            let resp = sender.send_request(request).await.map_err(no_answer)?;
            Ok((resp.status(), resp.into_body()))
        })
        .await
        .map_err(|_| self.late())?
    }

    /// The deadline passed after the request went out.
    fn late(&self) -> TransportError {
        TransportError::NoAnswer(format!("within {}", secs_text(self.timeout)))
    }

    /// Connect and shake hands by `deadline`.
    async fn connect(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<SendRequest<RequestBody>, TransportError> {
        match tokio::time::timeout_at(deadline, self.connect_now()).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::NotConnected(format!(
                "no connection within {}",
                secs_text(self.timeout)
            ))),
        }
    }

    async fn connect_now(&self) -> Result<SendRequest<RequestBody>, TransportError> {
        let unreachable = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                TransportError::Local(format!("{}: {e}", self.endpoint))
            }
            _ => TransportError::NotConnected(e.to_string()),
        };
        let handshake = |e: hyper::Error| TransportError::NotConnected(e.to_string());
        let (sender, conn) = match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                let (a, c) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(handshake)?;
                (a, Conn::Unix(c))
            }
            Endpoint::Tcp { authority } => {
                let s = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(unreachable)?;
                let _ = s.set_nodelay(true);
                let (a, c) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(handshake)?;
                (a, Conn::Tcp(c))
            }
        };
        tokio::spawn(async move {
            let _ = match conn {
                Conn::Unix(c) => c.await,
                Conn::Tcp(c) => c.await,
            };
        });
        Ok(sender)
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<RequestBody>,
        fence: Option<&Fence>,
    ) -> Result<Request<RequestBody>, TransportError> {
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "localhost",
            Endpoint::Tcp { authority } => authority.as_str(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host);
        if let Some(token) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in fence.map(Fence::headers).into_iter().flatten() {
            req = req.header(name, value);
        }
        req.body(body.unwrap_or_else(RequestBody::empty))
            .map_err(|e| TransportError::Local(e.to_string()))
    }
}

fn no_answer(e: hyper::Error) -> TransportError {
    TransportError::NoAnswer(format!("(the connection broke: {e})"))
}

/// `10 s`, or `300 ms` below a second.
fn secs_text(d: Duration) -> String {
    if d.as_secs() > 0 && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

enum Conn {
    Unix(hyper::client::conn::http1::Connection<TokioIo<tokio::net::UnixStream>, RequestBody>),
    Tcp(hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, RequestBody>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("/run/ferry/ferry.sock").unwrap(),
            Endpoint::Unix("/run/ferry/ferry.sock".into())
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8179/").unwrap(),
            Endpoint::Tcp {
                authority: "127.0.0.1:8179".into()
            }
        );
        assert!(Endpoint::parse("https://x").unwrap_err().contains("https"));
        assert!(Endpoint::parse("http://a/b").is_err());
    }
}
