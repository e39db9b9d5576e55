//! Encoding `/metrics` with the `prometheus-client` crate: the exposition format a scraper asks
//! for, and the small helpers the collectors use to emit a family read at scrape time.
//!
//! Contract:
//! - [`encode`] answers OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`)
//!   when the request's `Accept` names `application/openmetrics-text` (Prometheus asks for it),
//!   and the Prometheus text format 0.0.4 otherwise (`curl`, older scrapers). Same families,
//!   same values: only the framing differs (`# EOF`, `# UNIT`, the info type).
//! - Every family the helpers emit has HELP and TYPE; counters are named without `_total`,
//!   which the encoder appends to their samples. A labelled family with no sample (no peer has
//!   BFD, say) is left out rather than sent as a bare HELP/TYPE.
//!
//! Never: writes exposition text by hand.

use std::fmt;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The OpenMetrics text media type, as Prometheus asks for it and as it is answered.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format 0.0.4 media type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition of `registry` in the format `accept` asks for: (content type, body).
pub fn encode(
    registry: &Registry,
    accept: Option<&str>,
) -> Result<(&'static str, String), fmt::Error> {
    let mut body = String::new();
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        prometheus_client::encoding::text::encode(&mut body, registry)?;
        Ok((OPENMETRICS, body))
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?;
        Ok((PROMETHEUS_TEXT, body))
    }
}

/// A gauge without labels.
pub fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue + fmt::Debug,
) -> fmt::Result {
    gauge_with_unit(enc, name, help, None, value)
}

/// A gauge without labels; `unit` is appended to the name (`_seconds`, `_bytes`).
pub fn gauge_with_unit(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl EncodeGaugeValue + fmt::Debug,
) -> fmt::Result {
    let m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(m)
}

/// A counter without labels; the encoder names its sample `NAME_total`.
pub fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(m)
}

/// A gauge family with one label; `unit` is appended to the name (`_seconds`, `_bytes`).
pub fn gauge_family<'a, V: EncodeGaugeValue + fmt::Debug>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    label: &str,
    rows: impl IntoIterator<Item = (&'a str, V)>,
) -> fmt::Result {
    let rows: Vec<_> = rows.into_iter().collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (value_of_label, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(&[(label, value_of_label)])?)?;
    }
    Ok(())
}

/// A counter family with one label; the encoder names its samples `NAME_total`.
pub fn counter_family<'a, V: EncodeCounterValue + fmt::Debug>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    rows: impl IntoIterator<Item = (&'a str, V)>,
) -> fmt::Result {
    let rows: Vec<_> = rows.into_iter().collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value_of_label, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(&[(label, value_of_label)])?)?;
    }
    Ok(())
}
