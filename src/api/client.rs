//! Where a speaker's API is ([`Endpoint`]) and one HTTP/1.1 exchange with it over a Unix
//! socket or TCP, bounded by one deadline (`Transport`). The typed client on top is
//! [`super::Speaker`]; nothing else speaks HTTP to a speaker.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

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
    /// Could not connect, or the connection broke before an answer.
    Unreachable(String),
    /// No answer within the deadline.
    TimedOut,
    /// Could not build the request (a bug of ours, not the speaker's).
    Request(String),
}

impl Transport {
    /// Send `method path` with an optional JSON body; the status and the whole answer body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        tokio::time::timeout(self.timeout, async {
            let mut sender = self.connect().await?;
            let resp = sender
                .send_request(self.request(method, path, body)?)
                .await
                .map_err(|e| TransportError::Unreachable(e.to_string()))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| TransportError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok((status, bytes))
        })
        .await
        .map_err(|_| TransportError::TimedOut)?
    }

    /// Send `GET path` and return the answer's status and its body, to be read as it comes
    /// (the event stream). Only the connection and the head are bounded by the deadline.
    pub async fn open(&self, path: &str) -> Result<(StatusCode, Incoming), TransportError> {
        tokio::time::timeout(self.timeout, async {
            let mut sender = self.connect().await?;
            let resp = sender
                .send_request(self.request(Method::GET, path, None)?)
                .await
                .map_err(|e| TransportError::Unreachable(e.to_string()))?;
            Ok((resp.status(), resp.into_body()))
        })
        .await
        .map_err(|_| TransportError::TimedOut)?
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let unreachable = |e: String| TransportError::Unreachable(e);
        let (sender, conn) = match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                let (a, c) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                (a, Conn::Unix(c))
            }
            Endpoint::Tcp { authority } => {
                let s = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                let _ = s.set_nodelay(true);
                let (a, c) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
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
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, TransportError> {
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
        req.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| TransportError::Request(e.to_string()))
    }
}

enum Conn {
    Unix(hyper::client::conn::http1::Connection<TokioIo<tokio::net::UnixStream>, Full<Bytes>>),
    Tcp(hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, Full<Bytes>>),
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
