//! The report of a run: `report.json` (every timing of every move, and a summary with median
//! and max of the loss window and of each of its parts) and `timeline.svg` (probes answered by
//! primary, recovery or lost against time, with the BGP events marked: an overview of the run
//! and one zoomed panel per move). Never does: measure; it renders what [`super::moves`] found.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::moves::MoveTiming;
use super::probe::Probe;
use super::{LabError, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub topology: String,
    pub instance: String,
    pub probe_interval_ms: f64,
    pub probes_sent: usize,
    pub probes_lost: usize,
    pub moves: Vec<MoveTiming>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub n: usize,
    pub median: f64,
    pub max: f64,
    pub min: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub moves: usize,
    pub converged: usize,
    pub loss_ms: Option<Stat>,
    pub cutover_ms: Option<Stat>,
    pub ferry_ms: Option<Stat>,
    pub routers_ms: Option<Stat>,
    pub dataplane_ms: Option<Stat>,
    /// Ferry's latency over every call (not only the decisive ones), to the speaker's
    /// `routes_sent` event.
    pub ferry_all_calls_ms: Option<Stat>,
    /// The same, to the UPDATE's receipt logged by the site router's bgpd.
    pub ferry_received_all_calls_ms: Option<Stat>,
    /// How many moves' `ferry` part ends at the site router's log (the others: at the
    /// speaker's event).
    pub ferry_from_site_router_log: usize,
}

pub fn stat(mut v: Vec<f64>) -> Option<Stat> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stat {
        n,
        median: round3(median),
        max: round3(v[n - 1]),
        min: round3(v[0]),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn summarize(moves: &[MoveTiming]) -> Summary {
    let parts: Vec<_> = moves.iter().filter_map(|m| m.parts).collect();
    Summary {
        moves: moves.len(),
        converged: moves.iter().filter(|m| m.converged).count(),
        loss_ms: stat(moves.iter().filter_map(|m| m.loss_ms).collect()),
        cutover_ms: stat(parts.iter().map(|p| p.cutover_ms).collect()),
        ferry_ms: stat(parts.iter().map(|p| p.ferry_ms).collect()),
        routers_ms: stat(parts.iter().map(|p| p.routers_ms).collect()),
        dataplane_ms: stat(parts.iter().map(|p| p.dataplane_ms).collect()),
        ferry_all_calls_ms: stat(
            moves
                .iter()
                .flat_map(|m| m.calls.iter().filter_map(|c| c.ferry_ms))
                .collect(),
        ),
        ferry_received_all_calls_ms: stat(
            moves
                .iter()
                .flat_map(|m| m.calls.iter().filter_map(|c| c.ferry_received_ms))
                .collect(),
        ),
        ferry_from_site_router_log: parts
            .iter()
            .filter(|p| p.ferry_source == "site-router-log")
            .count(),
    }
}

pub fn write(dir: &Path, report: &Report, probes: &[Probe]) -> Result<()> {
    let err =
        |e: std::io::Error| LabError::step(format!("writing the report to {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(err)?;
    let json = serde_json::to_string_pretty(report).map_err(|e| LabError::step("report", e))?;
    std::fs::write(dir.join("report.json"), json).map_err(err)?;
    std::fs::write(dir.join("timeline.svg"), svg(report, probes)).map_err(err)?;
    Ok(())
}

fn color(tag: Option<&str>) -> &'static str {
    match tag {
        Some("primary") => "#1f77b4",
        Some("recovery") => "#2ca02c",
        Some(_) => "#9467bd",
        None => "#d62728",
    }
}

const W: f64 = 1100.0;
const LEFT: f64 = 20.0;
const PLOT: f64 = W - 2.0 * LEFT;

/// Runs of probes with the same outcome, as rectangles between x0 and x1 (µs).
fn band(s: &mut String, probes: &[Probe], x0: i64, x1: i64, y: f64, h: f64) {
    let x = |t: i64| LEFT + PLOT * (t - x0) as f64 / (x1 - x0).max(1) as f64;
    let inside: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.sent_us >= x0 && p.sent_us <= x1)
        .collect();
    let mut i = 0;
    while i < inside.len() {
        let tag = inside[i].tag.as_deref();
        let mut j = i;
        while j + 1 < inside.len() && inside[j + 1].tag.as_deref() == tag {
            j += 1;
        }
        let end = inside
            .get(j + 1)
            .map_or(inside[j].sent_us + 1000, |p| p.sent_us);
        let _ = writeln!(
            s,
            r#"<rect x="{:.2}" y="{y}" width="{:.2}" height="{h}" fill="{}"><title>probes {}-{}: {}</title></rect>"#,
            x(inside[i].sent_us),
            (x(end) - x(inside[i].sent_us)).max(0.5),
            color(tag),
            inside[i].seq,
            inside[j].seq,
            tag.unwrap_or("lost")
        );
        i = j + 1;
    }
}

fn marker(s: &mut String, x: f64, y: f64, h: f64, label: &str, color: &str, row: usize) {
    let _ = writeln!(
        s,
        r#"<line x1="{x:.2}" y1="{y}" x2="{x:.2}" y2="{}" stroke="{color}" stroke-width="1.5" stroke-dasharray="4 2"/><text x="{:.2}" y="{}" font-size="10" fill="{color}">{label}</text>"#,
        y + h,
        x + 2.0,
        y + h + 12.0 + 11.0 * row as f64
    );
}

pub fn svg(report: &Report, probes: &[Probe]) -> String {
    let panel = 220.0;
    let height = 120.0 + panel * report.moves.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">ferry lab {}: {} probes every {} ms, {} lost; {} moves</text>"#,
        report.topology,
        report.probes_sent,
        report.probe_interval_ms,
        report.probes_lost,
        report.moves.len()
    );
    let legend = [
        ("primary", Some("primary")),
        ("recovery", Some("recovery")),
        ("lost", None),
    ];
    for (k, (label, tag)) in legend.iter().enumerate() {
        let x = LEFT + 520.0 + 100.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="10" width="12" height="12" fill="{}"/><text x="{}" y="20" font-size="12">{label}</text>"#,
            color(*tag),
            x + 16.0
        );
    }
    if let (Some(first), Some(last)) = (probes.first(), probes.last()) {
        let (x0, x1) = (first.sent_us, last.sent_us + 1000);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="45" font-size="12">whole run ({:.1} s)</text>"#,
            (x1 - x0) as f64 / 1e6
        );
        band(&mut s, probes, x0, x1, 52.0, 30.0);
        for m in &report.moves {
            let x = LEFT + PLOT * (m.start_us - x0) as f64 / (x1 - x0).max(1) as f64;
            marker(&mut s, x, 50.0, 34.0, &m.name, "#333", 0);
        }
    }
    for (k, m) in report.moves.iter().enumerate() {
        let y = 120.0 + panel * k as f64;
        let (a, b) = match (m.loss_start_us, m.loss_end_us) {
            (Some(a), Some(b)) => (a, b),
            _ => (m.start_us, m.end_us.min(m.start_us + 1_000_000)),
        };
        let pad = ((b - a) / 4).max(20_000);
        let (x0, x1) = (a - pad, b + pad);
        let x = |t: i64| LEFT + PLOT * (t - x0) as f64 / (x1 - x0).max(1) as f64;
        let title = match (m.loss_ms, &m.parts) {
            (Some(l), Some(p)) => format!(
                "{} ({} -> {}, {:?}): loss {l:.1} ms ({} probes) = cutover {:.2} + ferry {:.2} + routers {:.2} + data plane {:.2} ms",
                m.name, m.from, m.to, m.order, m.lost_probes, p.cutover_ms, p.ferry_ms, p.routers_ms, p.dataplane_ms
            ),
            (Some(l), None) => format!("{} ({} -> {}): loss {l:.1} ms ({} probes)", m.name, m.from, m.to, m.lost_probes),
            _ => format!("{} ({} -> {}): no loss window found{}", m.name, m.from, m.to, if m.converged { "" } else { "; NOT CONVERGED" }),
        };
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" font-size="12">{}</text>"#,
            y + 12.0,
            title.replace('>', "&gt;")
        );
        band(&mut s, probes, x0, x1, y + 20.0, 30.0);
        // Every event of the move in the panel, labelled in time order one row apart.
        let mut marks: Vec<(i64, String, &str)> = Vec::new();
        for c in &m.calls {
            marks.push((c.call_us, format!("{} @ {}", c.action, c.site), "#000"));
            if let Some(u) = c.update_us {
                marks.push((u, format!("UPDATE sent ({})", c.site), "#1f3fbf"));
            }
        }
        for (name, r) in &m.routers {
            if let Some(b) = r.bgp_us {
                let what = r.bgp_change.as_deref().unwrap_or("");
                marks.push((b, format!("{name} BGP table: {what}"), "#8c564b"));
            }
            if let Some(k) = r.kernel_us {
                let what = r.kernel_change.as_deref().unwrap_or("");
                marks.push((k, format!("{name} kernel route: {what}"), "#ff7f0e"));
            }
        }
        for c in &m.calls {
            if let Some(r) = c.received_us {
                marks.push((r, format!("UPDATE rcvd at {} router", c.site), "#17becf"));
            }
        }
        if let Some(r) = m.third_site_route_us {
            marks.push((r, "third site kernel route".into(), "#ff7f0e"));
        }
        marks.retain(|(t, _, _)| (x0..=x1).contains(t));
        marks.sort_by_key(|(t, _, _)| *t);
        marks.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
        for (row, (t, label, c)) in marks.iter().take(12).enumerate() {
            marker(&mut s, x(*t), y + 18.0, 34.0, label, c, row);
        }
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{}" font-size="9" fill="#666">{:.1} ms</text><text x="{}" y="{}" font-size="9" fill="#666" text-anchor="end">+{:.1} ms</text>"##,
            y + 64.0 + 11.0 * 13.0,
            0.0,
            W - LEFT,
            y + 64.0 + 11.0 * 13.0,
            (x1 - x0) as f64 / 1000.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_max() {
        let s = stat(vec![3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.max, s.min, s.n), (2.5, 10.0, 1.0, 4));
        assert!(stat(vec![]).is_none());
    }
}
