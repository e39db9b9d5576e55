//! The API client used by the CLI and the controller: HTTP/1.1 over a Unix socket or TCP,
//! with a timeout on every request.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::ErrorBody;

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

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the speaker at {endpoint}: {detail} (is `ferry speaker` running? set --api or FERRY_API)")]
    Connect { endpoint: String, detail: String },
    #[error("the speaker at {endpoint} did not answer within {secs} s")]
    Timeout { endpoint: String, secs: u64 },
    /// The speaker answered with an error.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from the speaker at {endpoint}: {detail}")]
    Protocol { endpoint: String, detail: String },
}

impl ClientError {
    /// Bad input (400) is a usage error for the CLI's exit code; the rest are failures.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Self::Api { status: 400, .. })
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub endpoint: Endpoint,
    pub token: Option<String>,
    pub timeout: Duration,
}

impl Client {
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Self {
        Self {
            endpoint,
            token,
            timeout: Duration::from_secs(30),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| self.protocol(e.to_string()))?;
        self.call(Method::POST, path, Some(bytes)).await
    }

    /// GET returning the raw body text (for `/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let (status, body) = self.send(Method::GET, path, None).await?;
        self.check(status, &body)?;
        String::from_utf8(body.to_vec()).map_err(|e| self.protocol(e.to_string()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, body) = self.send(method, path, body).await?;
        self.check(status, &body)?;
        serde_json::from_slice(&body)
            .map_err(|e| self.protocol(format!("{e} in {}", String::from_utf8_lossy(&body))))
    }

    fn check(&self, status: StatusCode, body: &[u8]) -> Result<(), ClientError> {
        if status.is_success() {
            return Ok(());
        }
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("HTTP {status}: {}", String::from_utf8_lossy(body)));
        Err(ClientError::Api {
            status: status.as_u16(),
            message,
        })
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            endpoint: self.endpoint.to_string(),
            detail,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let endpoint = self.endpoint.to_string();
        let secs = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.send_inner(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout { endpoint, secs })?
    }

    async fn send_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let connect_err = |e: std::io::Error| ClientError::Connect {
            endpoint: self.endpoint.to_string(),
            detail: e.to_string(),
        };
        let (host, io) = match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_err)?;
                ("localhost".to_owned(), Io::Unix(s))
            }
            Endpoint::Tcp { authority } => {
                let s = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                (authority.clone(), Io::Tcp(s))
            }
        };
        let (mut sender, conn) = match io {
            Io::Unix(s) => hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .map(|(a, c)| (a, Conn::Unix(c))),
            Io::Tcp(s) => hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .map(|(a, c)| (a, Conn::Tcp(c))),
        }
        .map_err(|e| self.protocol(e.to_string()))?;
        tokio::spawn(async move {
            let _ = match conn {
                Conn::Unix(c) => c.await,
                Conn::Tcp(c) => c.await,
            };
        });
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
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.protocol(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.protocol(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.protocol(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }
}

enum Io {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
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
