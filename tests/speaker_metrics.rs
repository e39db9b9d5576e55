//! `GET /metrics` of a running speaker, parsed by a strict exposition parser (the
//! `openmetrics-parser` crate), not searched for substrings:
//! - asked for OpenMetrics (as Prometheus asks), the answer is OpenMetrics 1.0 text that parses
//!   (`# EOF`, counters' `_total`, the info type); without that, Prometheus text 0.0.4 that
//!   parses; both hold the same families, every one with HELP and a type;
//! - `ferry_build_info` carries the version; `ferry_peer_uptime_seconds` of an Established
//!   session grows between scrapes; counters are named `..._total`;
//! - `speaker.metrics_listen` serves `GET /metrics` without a token and nothing else, while the
//!   token-protected TCP API still refuses `/metrics` without one.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use openmetrics_parser::{
    openmetrics::parse_openmetrics, prometheus::parse_prometheus, MetricNumber, OpenMetricsType,
    OpenMetricsValue, PrometheusType, PrometheusValue,
};
use support::*;

const OPENMETRICS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One HTTP/1.1 GET with `Connection: close`: (status, content type, body).
fn get(
    mut stream: impl std::io::Read + std::io::Write,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: ferry\r\n{accept}Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

fn unix(api: &Path) -> UnixStream {
    let s = UnixStream::connect(api).expect("API socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn number(n: &MetricNumber) -> f64 {
    match n {
        MetricNumber::Float(f) => *f,
        MetricNumber::Int(i) => *i as f64,
    }
}

/// The OpenMetrics families: name -> (type, help, samples as (labels, value)).
type Families = BTreeMap<String, (String, String, Vec<(BTreeMap<String, String>, f64)>)>;

fn openmetrics(text: &str) -> Families {
    let exposition =
        parse_openmetrics(text).unwrap_or_else(|e| panic!("not OpenMetrics text: {e:?}\n{text}"));
    let mut out = Families::new();
    for (name, family) in exposition.families {
        let samples = family
            .iter_samples()
            .map(|s| {
                let labels = s
                    .get_labelset()
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let value = match &s.value {
                    OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => number(n),
                    OpenMetricsValue::Counter(c) => number(&c.value),
                    OpenMetricsValue::Info => 1.0,
                    other => panic!("{name}: unexpected value {other:?}"),
                };
                (labels, value)
            })
            .collect();
        let ty = match family.family_type {
            OpenMetricsType::Counter => "counter",
            OpenMetricsType::Gauge => "gauge",
            OpenMetricsType::Info => "info",
            other => panic!("{name}: unexpected type {other}"),
        };
        out.insert(name, (ty.to_owned(), family.help.clone(), samples));
    }
    out
}

fn value(f: &Families, family: &str, label: Option<(&str, &str)>) -> f64 {
    let (_, _, samples) = f
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    samples
        .iter()
        .find(|(labels, _)| label.is_none_or(|(k, v)| labels.get(k).map(String::as_str) == Some(v)))
        .unwrap_or_else(|| panic!("{family}: no sample with {label:?}: {samples:?}"))
        .1
}

#[test]
fn metrics_parse_as_openmetrics_and_as_prometheus_text_with_help_and_type() {
    let ip = Ipv4Addr::new(127, 0, 0, 131);
    let (speaker, _peer) = established_pair(ip);
    let peer = ip.to_string();

    let (status, ctype, text) = get(unix(&speaker.api()), "/metrics", Some(OPENMETRICS_ACCEPT));
    assert_eq!(status, 200, "{text}");
    assert!(
        ctype.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ctype}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let om = openmetrics(&text);
    for (name, (ty, help, _)) in &om {
        assert!(!help.trim().is_empty(), "{name} has no HELP");
        assert!(name.starts_with("ferry_"), "{name}");
        assert!(
            !name.ends_with("_total"),
            "{name}: the family name carries _total twice"
        );
        // The unit is the name's last word (OpenMetrics), never spelled in another scale.
        assert!(
            !name.ends_with("_ms") && !name.ends_with("_secs"),
            "{name} ({ty})"
        );
    }
    let (ty, _, build) = &om["ferry_build"];
    assert_eq!(ty, "info");
    assert_eq!(
        build[0].0.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(om["ferry_peer_updates_sent"].0, "counter");
    assert!(text.contains(&format!(
        "ferry_peer_updates_sent_total{{peer=\"{peer}\"}} "
    )));
    assert_eq!(om["ferry_peer_uptime_seconds"].0, "gauge");
    assert_eq!(
        value(&om, "ferry_peer_established", Some(("peer", &peer))),
        1.0
    );
    assert_eq!(value(&om, "ferry_desired_routes", None), 0.0);
    // Established: the handshake and initial sync sent UPDATEs (End-of-RIB at least).
    assert!(value(&om, "ferry_peer_updates_sent", Some(("peer", &peer))) >= 1.0);
    assert_eq!(
        om["ferry_api_connections_evicted"]
            .2
            .iter()
            .map(|(l, _)| l["listener"].as_str())
            .collect::<Vec<_>>(),
        ["unix", "tcp", "metrics"]
    );
    let uptime = value(&om, "ferry_peer_uptime_seconds", Some(("peer", &peer)));
    std::thread::sleep(Duration::from_millis(1100));
    let (_, _, again) = get(unix(&speaker.api()), "/metrics", Some(OPENMETRICS_ACCEPT));
    let later = value(
        &openmetrics(&again),
        "ferry_peer_uptime_seconds",
        Some(("peer", &peer)),
    );
    assert!(later >= uptime + 1.0, "uptime {uptime} then {later}");

    // Without an Accept for OpenMetrics: Prometheus text 0.0.4, the same families.
    let (status, ctype, text) = get(unix(&speaker.api()), "/metrics", None);
    assert_eq!(status, 200, "{text}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let prom =
        parse_prometheus(&text).unwrap_or_else(|e| panic!("not Prometheus text: {e:?}\n{text}"));
    let mut prom_names = BTreeSet::new();
    for (name, family) in &prom.families {
        assert!(!family.help.trim().is_empty(), "{name} has no HELP");
        assert_ne!(
            family.family_type,
            PrometheusType::Unknown,
            "{name}: untyped"
        );
        if family.family_type == PrometheusType::Counter {
            assert!(name.ends_with("_total"), "counter {name} without _total");
            for s in family.iter_samples() {
                assert!(matches!(s.value, PrometheusValue::Counter(_)), "{name}");
            }
        }
        prom_names.insert(name.clone());
    }
    let om_names: BTreeSet<String> = om
        .iter()
        .map(|(name, (ty, _, _))| match ty.as_str() {
            "counter" => format!("{name}_total"),
            "info" => format!("{name}_info"),
            _ => name.clone(),
        })
        .collect();
    assert_eq!(prom_names, om_names);
}

#[test]
fn metrics_listen_serves_only_metrics_and_needs_no_token() {
    let metrics_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let api_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let mut speaker = Speaker::prepare(SpeakerSpec {
        api_tcp: Some((api_addr, "metrics-test-token-0123456789".into())),
        ..SpeakerSpec::default()
    });
    let config = std::fs::read_to_string(speaker.config_path()).unwrap();
    let config = config.replacen(
        "[speaker]\n",
        &format!("[speaker]\nmetrics_listen = \"{metrics_addr}\"\n"),
        1,
    );
    assert!(config.contains("metrics_listen"), "{config}");
    std::fs::write(speaker.config_path(), config).unwrap();
    speaker.spawn();
    // The listener is bound before the speaker's start is over, but poll to be safe.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&metrics_addr, Duration::from_secs(1)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "metrics_listen {metrics_addr} never answered:\n{}",
            speaker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, _, text) = get(tcp(metrics_addr), "/metrics", Some(OPENMETRICS_ACCEPT));
    assert_eq!(status, 200, "{text}");
    let om = openmetrics(&text);
    assert_eq!(value(&om, "ferry_desired_routes", None), 0.0);
    // Nothing else is served there: not the state, not the writes.
    for path in ["/v1/routes", "/v1/peers", "/v1/events"] {
        let (status, _, body) = get(tcp(metrics_addr), path, None);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let mut s = tcp(metrics_addr);
    let body = r#"{"routes":[{"prefix":"203.0.113.0/24","next_hop":"192.0.2.1"}]}"#;
    write!(
        s,
        "POST /v1/announce HTTP/1.1\r\nHost: ferry\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
    let routes = speaker.cli_ok(&["routes", "--json"]);
    assert!(!routes.stdout.contains("203.0.113.0"), "{}", routes.stdout);
    // The token-protected API still wants its token for /metrics.
    let (status, _, _) = get(tcp(api_addr), "/metrics", None);
    assert_eq!(status, 401);
    // Scrapes there are counted under their own listener.
    let (_, _, text) = get(tcp(metrics_addr), "/metrics", Some(OPENMETRICS_ACCEPT));
    assert_eq!(
        value(
            &openmetrics(&text),
            "ferry_api_connections_refused",
            Some(("listener", "metrics"))
        ),
        0.0
    );
}
