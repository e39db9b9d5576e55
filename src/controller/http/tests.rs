//! The HTTP(S) client against real servers on loopback: a slow-trickling server, status
//! checks, an HTTPS server with a CA made here (with and without `ca_file`, with a client
//! certificate), a name server that never answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::*;

fn post(url: String) -> HttpCall {
    HttpCall {
        url,
        method: "POST".into(),
        body: Some("{}".into()),
        expect_status: None,
        ca_file: None,
        client_cert: None,
        client_key: None,
    }
}

/// Read a request's head (and skip its body, by Content-Length).
fn read_request(s: &mut impl Read) -> String {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    head
}

#[test]
fn http_hooks_check_the_status() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for (i, s) in l.incoming().take(3).enumerate() {
            let mut s = s.unwrap();
            let head = read_request(&mut s);
            assert!(head.starts_with("POST /cutover HTTP/1.1"), "{head}");
            let (status, body) = match i {
                0 => ("204 No Content", ""),
                1 => ("500 Oops", "no VM named web-1"),
                _ => ("302 Found", ""),
            };
            // The status line in two pieces, as a slow server may send it.
            let _ = s.write_all(b"HTTP/1.1 ");
            thread::sleep(Duration::from_millis(20));
            let _ = write!(
                s,
                "{status}\r\nLocation: /elsewhere\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let call = post(format!("http://{addr}/cutover"));
    let t = Duration::from_secs(5);
    super::call(&call, t).unwrap();
    let e = super::call(&call, t).unwrap_err();
    assert!(
        e.contains("HTTP 500") && e.contains("no VM named web-1") && e.contains("/cutover"),
        "{e}"
    );
    // A redirect is an answer, not followed.
    let e = super::call(&call, t).unwrap_err();
    assert!(e.contains("HTTP 302"), "{e}");
}

#[test]
fn a_trickling_server_cannot_stretch_the_deadline() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        read_request(&mut s);
        // One byte every 1.5 s: each read is quick, the answer never completes in time.
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(1500));
        }
    });
    let mut call = post(format!("http://{addr}/health"));
    call.method = "GET".into();
    call.body = None;
    let t = Instant::now();
    let e = super::call(&call, Duration::from_secs(2)).unwrap_err();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}: {e}");
    assert!(took >= Duration::from_millis(1900), "{took:?}: {e}");
    assert!(
        e.contains(&format!("http://{addr}/health")) && e.contains("2000 ms deadline"),
        "{e}"
    );
}

/// The address of the silent name server of the DNS test (loopback, never answers).
const SILENT_DNS: &str = "127.0.53.77";

/// A name lookup whose server never answers (glibc would wait 5 s per try) ends with the
/// call's deadline. Failure injected: `/etc/resolv.conf`, in a mount namespace of the child
/// only, names a UDP socket on loopback that reads queries and never answers. Root and
/// `unshare` (util-linux) needed; nothing outside the child's namespace is changed.
#[test]
fn a_name_lookup_that_never_answers_fails_within_the_deadline() {
    let dns = std::net::UdpSocket::bind((SILENT_DNS, 53)).unwrap();
    dns.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {SILENT_DNS}\noptions timeout:5 attempts:2\n"),
    )
    .unwrap();
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            r#"mount --bind "$0" /etc/resolv.conf && exec "$1" --exact "$2" --ignored --nocapture"#,
        ])
        .arg(&resolv)
        .arg(std::env::current_exe().unwrap())
        .arg("controller::http::tests::lookup_against_the_silent_server")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    // The lookup did go to the silent server (it was not answered from elsewhere).
    let mut buf = [0u8; 512];
    assert!(
        dns.recv_from(&mut buf).is_ok(),
        "no query reached {SILENT_DNS}"
    );
}

#[test]
#[ignore = "run by a_name_lookup_that_never_answers_fails_within_the_deadline in a mount namespace"]
fn lookup_against_the_silent_server() {
    let call = post("http://hook.example:8080/cutover".into());
    let t = Instant::now();
    let e = super::call(&call, Duration::from_secs(2)).unwrap_err();
    let took = t.elapsed();
    println!("lookup gave up after {took:?}: {e}");
    assert!(took < Duration::from_secs(3), "{took:?}: {e}");
    assert!(
        e.contains("hook.example") && e.contains("2000 ms deadline"),
        "{e}"
    );
    // A TCP health check's lookup is bounded the same way.
    use crate::controller::sites::{Probes as _, SystemProbes};
    let probe = crate::controller::plan::Probe::Tcp("hook.example:80".into());
    let t = Instant::now();
    let e = SystemProbes
        .probe(&probe, Duration::from_secs(2), &[])
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "{:?}: {e}",
        t.elapsed()
    );
    assert!(e.contains("did not finish within 2000 ms"), "{e}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    server: (Vec<rustls::pki_types::CertificateDer<'static>>, Vec<u8>),
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ferry test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |names: Vec<String>, file: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            std::fs::write(dir.path().join(format!("{file}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{file}.key")), key.serialize_pem()).unwrap();
            (cert.der().clone(), key.serialize_der())
        };
        let (server_der, server_key) = leaf(vec!["127.0.0.1".into()], "server");
        leaf(vec!["ferry-controller".into()], "client");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        Self {
            server: (vec![server_der], server_key),
            ca_der: ca_cert.der().clone(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An HTTPS server answering 200 to each of `n` connections (a failed handshake counts);
    /// with `client_auth`, it asks for a client certificate signed by the CA.
    fn serve(&self, n: usize, client_auth: bool) -> std::net::SocketAddr {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(v)
        } else {
            builder.with_no_client_auth()
        };
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.server.1.clone().into());
        let config = Arc::new(
            builder
                .with_single_cert(self.server.0.clone(), key)
                .unwrap(),
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming().take(n) {
                let s: TcpStream = s.unwrap();
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                read_request(&mut tls);
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let _ = tls.flush();
            }
        });
        addr
    }
}

fn https(addr: std::net::SocketAddr, ca: Option<&Path>) -> HttpCall {
    let mut c = post(format!("https://{addr}/cutover"));
    c.ca_file = ca.map(Path::to_owned);
    c
}

#[test]
fn https_hooks_verify_the_server_against_ca_file() {
    let pki = Pki::new();
    let addr = pki.serve(2, false);
    let t = Duration::from_secs(5);
    super::call(&https(addr, Some(&pki.path("ca.pem"))), t).unwrap();
    // The public roots do not know the private CA.
    let e = super::call(&https(addr, None), t).unwrap_err();
    assert!(
        e.contains("TLS handshake failed") && e.contains("UnknownIssuer") && e.contains("ca_file"),
        "{e}"
    );
    // A CA file that is not there, or holds no certificate, is named.
    let e = super::call(&https(addr, Some(&pki.path("nope.pem"))), t).unwrap_err();
    assert!(e.contains("ca_file") && e.contains("nope.pem"), "{e}");
    let e = super::call(&https(addr, Some(&pki.path("server.key"))), t).unwrap_err();
    assert!(e.contains("no PEM certificate"), "{e}");
}

#[test]
fn https_hooks_present_a_client_certificate() {
    let pki = Pki::new();
    let addr = pki.serve(2, true);
    let t = Duration::from_secs(5);
    let mut call = https(addr, Some(&pki.path("ca.pem")));
    call.client_cert = Some(pki.path("client.pem"));
    call.client_key = Some(pki.path("client.key"));
    super::call(&call, t).unwrap();
    call.client_cert = None;
    call.client_key = None;
    // TLS 1.3: the server's refusal may come as an alert after the client's handshake ends.
    assert!(super::call(&call, t).is_err());
    call.client_key = Some(pki.path("client.key"));
    let e = super::call(&call, t).unwrap_err();
    assert!(e.contains("client_cert and client_key go together"), "{e}");
}
