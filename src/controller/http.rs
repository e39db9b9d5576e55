//! HTTP(S) calls of hooks and health checks: one request, one overall deadline.
//!
//! Contract:
//! - The deadline covers the whole call: name lookup (on a side thread, so a stuck resolver
//!   cannot hold the controller), connect, TLS handshake, request, response headers and the
//!   part of the body read. A server that trickles bytes cannot stretch it.
//! - `https://` is verified with rustls against the Mozilla roots (webpki-roots), or only
//!   against the CAs in `ca_file` when it is given; `client_cert` + `client_key` (PEM) present a
//!   client certificate. Verification is never turned off.
//! - Success is `expect_status`, or any 2xx when absent. Redirects are not followed (a 3xx is
//!   the answer: a cutover API that redirects a POST must be named by its final URL) and no
//!   proxy is used (hooks talk to the management network directly, as before).
//! - Errors name the URL and, for a timeout, the deadline; a failed TLS handshake says so and
//!   what to set.
//!
//! Never does: retry (the health check's loop does), or read more than 4 KiB of a body.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::plan::HttpCall;

/// How much of an error answer's body goes into the error text.
const BODY_SHOWN: u64 = 4096;

/// The certificates of a PEM file, named by the plan key that gave it.
fn certs(key: &str, path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("{key} {}: {e}", path.display())),
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{key} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(out)
}

fn private_key(path: &Path) -> Result<PrivateKey<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("client_key {}: {e}", path.display()))?;
    PrivateKey::from_pem(&pem).map_err(|e| format!("client_key {}: {e}", path.display()))
}

fn tls(call: &HttpCall) -> Result<TlsConfig, String> {
    let mut b = TlsConfig::builder();
    if let Some(ca) = &call.ca_file {
        b = b.root_certs(RootCerts::Specific(Arc::new(certs("ca_file", ca)?)));
    }
    match (&call.client_cert, &call.client_key) {
        (Some(c), Some(k)) => {
            let chain = certs("client_cert", c)?;
            b = b.client_cert(Some(ClientCert::new_with_certs(&chain, private_key(k)?)));
        }
        (None, None) => {}
        _ => return Err("client_cert and client_key go together".into()),
    }
    Ok(b.build())
}

/// One request; `Ok` when the status is the expected one.
pub fn call(call: &HttpCall, deadline: Duration) -> Result<(), String> {
    let url = &call.url;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(deadline))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .tls_config(tls(call).map_err(|e| format!("{url}: {e}"))?)
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(call.method.as_str())
        .uri(url.as_str());
    if call.body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(call.body.clone().unwrap_or_default())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut resp = agent.run(req).map_err(|e| explain(url, deadline, e))?;
    let status = resp.status().as_u16();
    let ok = match call.expect_status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    if ok {
        return Ok(());
    }
    let mut body = String::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(BODY_SHOWN)
        .read_to_string(&mut body);
    let body = body.trim();
    let want = match call.expect_status {
        Some(w) => format!("expected {w}"),
        None => "expected 2xx".into(),
    };
    if body.is_empty() {
        Err(format!("{url}: HTTP {status} ({want})"))
    } else {
        Err(format!("{url}: HTTP {status} ({want}): {body}"))
    }
}

/// The client's error as a sentence that says what to do.
fn explain(url: &str, deadline: Duration, e: ureq::Error) -> String {
    let ms = deadline.as_millis();
    match e {
        ureq::Error::Timeout(what) => format!(
            "{url}: no complete answer within the {ms} ms deadline (timeout_ms; covers name lookup, connect, TLS and the answer; ran out during {what})"
        ),
        ureq::Error::HostNotFound => format!("{url}: host not found"),
        ureq::Error::Rustls(e) => format!(
            "{url}: TLS handshake failed: {e} (a private CA? give its PEM file as ca_file)"
        ),
        ureq::Error::Tls(e) => format!("{url}: TLS: {e}"),
        // rustls' handshake errors come wrapped in an io::Error of this kind.
        ureq::Error::Io(e)
            if e.kind() == std::io::ErrorKind::InvalidData && url.starts_with("https:") =>
        {
            format!(
                "{url}: TLS handshake failed: {e} (a private CA? give its PEM file as ca_file)"
            )
        }
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => format!(
            "{url}: no complete answer within the {ms} ms deadline (timeout_ms): {e}"
        ),
        other => format!("{url}: {other}"),
    }
}

#[cfg(test)]
mod tests;
