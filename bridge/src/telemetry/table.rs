//! The readable telemetry table ([`Snapshot::table`]).
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::telemetry::latency::Stage;
//! use coreml_bridge::telemetry::Telemetry;
//!
//! let t = Telemetry::new();
//! t.record_stage("minilm", "candle", Stage::Infer, Duration::from_millis(3));
//! t.record_inference("minilm", "candle", Ok(()));
//! t.record_served("minilm", "candle");
//! let table = t.snapshot().table();
//! assert!(table.contains("minilm"));
//! assert!(table.lines().any(|l| l.contains("minilm") && l.contains("candle") && l.contains("yes")));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::telemetry::latency::human_us;
use crate::telemetry::snapshot::Snapshot;

/// Column-aligned rows with a header.
#[derive(Debug, Default)]
pub struct TextTable {
    rows: Vec<Vec<String>>,
}

impl TextTable {
    /// A table with these column headers.
    pub fn new(header: &[&str]) -> Self {
        Self { rows: vec![header.iter().map(|s| (*s).to_owned()).collect()] }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Rows besides the header.
    pub fn len(&self) -> usize {
        self.rows.len() - 1
    }

    /// Whether only the header is there.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Renders with two spaces between columns, indented by `indent`.
    pub fn render(&self, indent: &str) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |c: usize| self.rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::from(indent);
            for (c, cell) in r.iter().enumerate() {
                let pad = widths[c].saturating_sub(cell.chars().count());
                line.push_str(cell);
                if c + 1 < r.len() {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

impl Snapshot {
    /// The snapshot as readable text: notices, models, latencies, helper,
    /// recent events.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for n in &self.notices {
            let _ = writeln!(out, "note: {n}");
        }
        let mut models = TextTable::new(&[
            "MODEL",
            "ENGINE",
            "SERVED",
            "BREAKER",
            "INFER",
            "OK",
            "FAILURES",
            "UNITS REQ->ACTUAL",
            "NE COVERAGE",
        ]);
        let mut lat = TextTable::new(&["MODEL", "ENGINE", "STAGE", "COUNT", "P50", "P95", "P99", "MAX"]);
        for m in &self.models {
            for e in &m.engines {
                let served = if m.served_by.as_deref() == Some(e.engine.as_str()) { "yes" } else { "-" };
                let breaker = m.breaker.as_ref().map_or("-".to_owned(), |b| {
                    if b.forced {
                        format!("{} (forced)", b.state.name())
                    } else {
                        b.state.name().to_owned()
                    }
                });
                let failures = if e.failures.is_empty() {
                    "-".to_owned()
                } else {
                    e.failures.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
                };
                let units = match (e.compute_units_requested, e.compute_units_actual) {
                    (Some(r), Some(a)) => format!("{r}->{a}"),
                    (Some(r), None) => format!("{r}->?"),
                    _ => "-".to_owned(),
                };
                let coverage = match e.ne_coverage {
                    Some(c) => format!("{:.1}%", c * 100.0),
                    None => "unknown".to_owned(),
                };
                models.row(vec![
                    m.model.clone(),
                    e.engine.clone(),
                    served.to_owned(),
                    breaker,
                    e.inferences.to_string(),
                    e.successes.to_string(),
                    failures,
                    units,
                    coverage,
                ]);
                for (stage, s) in &e.stages {
                    lat.row(vec![
                        m.model.clone(),
                        e.engine.clone(),
                        stage.clone(),
                        s.count.to_string(),
                        human_us(s.p50_us),
                        human_us(s.p95_us),
                        human_us(s.p99_us),
                        human_us(s.max_us),
                    ]);
                }
            }
        }
        out.push_str("models\n");
        out.push_str(&models.render("  "));
        if !lat.is_empty() {
            out.push_str("latency\n");
            out.push_str(&lat.render("  "));
        }
        let mut fb = TextTable::new(&["MODEL", "FALLBACK REASON", "COUNT", "BREAKER LAST OPENED BECAUSE"]);
        for m in &self.models {
            let trip = m.breaker.as_ref().and_then(|b| b.last_trip.clone()).unwrap_or_else(|| "-".to_owned());
            for (reason, n) in &m.fallbacks {
                fb.row(vec![m.model.clone(), reason.clone(), n.to_string(), trip.clone()]);
            }
        }
        if !fb.is_empty() {
            out.push_str("fallbacks\n");
            out.push_str(&fb.render("  "));
        }
        let mut domains: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for m in &self.models {
            if let Some(d) = &m.domain {
                domains.entry(d.as_str()).or_default().push(m.model.as_str());
            }
        }
        if !domains.is_empty() {
            out.push_str("domains (one helper each)\n");
            let mut t = TextTable::new(&["DOMAIN", "MODELS"]);
            for (d, models) in domains {
                t.row(vec![d.to_owned(), models.join(", ")]);
            }
            out.push_str(&t.render("  "));
        }
        let h = &self.helper;
        out.push_str("helper\n");
        let _ = writeln!(out, "  identity: {}", h.identity.as_deref().unwrap_or("not started"));
        let _ = writeln!(
            out,
            "  memory high-water: {}  limit: {}  restarts: {}",
            h.memory_high_water.map_or("-".to_owned(), mib),
            h.memory_limit.map_or("-".to_owned(), mib),
            h.restarts
        );
        if h.fast_replies + h.slow_replies > 0 {
            let _ = writeln!(out, "  replies: {} read while spinning, {} waited for", h.fast_replies, h.slow_replies);
        }
        if !h.sandbox.is_empty() {
            let parts: Vec<String> =
                h.sandbox.iter().map(|p| format!("{}={}", p.name, if p.applied { "on" } else { "off" })).collect();
            let _ = writeln!(out, "  sandbox: {}", parts.join(" "));
        }
        if !self.events.is_empty() {
            let _ = writeln!(out, "events (last {} of {})", self.events.len().min(10), self.events_total);
            for e in self.events.iter().rev().take(10).collect::<Vec<_>>().into_iter().rev() {
                let _ = writeln!(out, "  {e}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut t = TextTable::new(&["A", "BB"]);
        t.row(vec!["long cell".into(), "x".into()]);
        let r = t.render("");
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], "A          BB");
        assert_eq!(lines[1], "long cell  x");
        assert_eq!(t.len(), 1);
    }
}
