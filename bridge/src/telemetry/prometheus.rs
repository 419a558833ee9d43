//! Prometheus text exposition (format 0.0.4) of a [`Snapshot`], and a
//! strict parser of that format used to check it.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::telemetry::latency::Stage;
//! use coreml_bridge::telemetry::prometheus::parse;
//! use coreml_bridge::telemetry::Telemetry;
//!
//! let t = Telemetry::new();
//! t.record_stage("minilm", "coreml", Stage::Predict, Duration::from_millis(2));
//! let text = t.snapshot().prometheus();
//! let samples = parse(&text).unwrap();
//! let p99 = samples.iter().find(|s| {
//!     s.name == "coreml_bridge_stage_latency_seconds" && s.label("quantile") == Some("0.99")
//! }).unwrap();
//! assert_eq!(p99.label("stage"), Some("predict"));
//! assert!((p99.value - 0.002).abs() < 1e-5);
//! ```
//!
//! Families: `coreml_bridge_stage_latency_seconds` (summary: quantiles 0.5,
//! 0.95, 0.99, `_sum`, `_count`), `coreml_bridge_inferences_total`,
//! `coreml_bridge_failures_total{kind}`, `coreml_bridge_fallbacks_total{reason}`,
//! `coreml_bridge_served_info`, `coreml_bridge_compute_units_info{requested,actual}`,
//! `coreml_bridge_neural_engine_coverage_ratio` (only when reported),
//! `coreml_bridge_domain_info{domain}` (the isolation domain of each model),
//! `coreml_bridge_breaker_state{state}`, `coreml_bridge_helper_memory_high_water_bytes`,
//! `coreml_bridge_helper_memory_limit_bytes`, `coreml_bridge_helper_restarts_total`,
//! `coreml_bridge_helper_replies_total{lane}`,
//! `coreml_bridge_sandbox_part_applied{part}`, `coreml_bridge_events_total`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::breaker::BreakerState;
use crate::telemetry::snapshot::Snapshot;

struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

impl Snapshot {
    /// The snapshot in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut w = Writer { out: String::new() };
        let lat = "coreml_bridge_stage_latency_seconds";
        w.family(lat, "summary", "Latency of each stage per model and engine (HDR histogram quantiles).");
        for m in &self.models {
            for e in &m.engines {
                for (stage, s) in &e.stages {
                    let base = [("model", m.model.as_str()), ("engine", e.engine.as_str()), ("stage", stage.as_str())];
                    for (q, us) in [("0.5", s.p50_us), ("0.95", s.p95_us), ("0.99", s.p99_us)] {
                        let mut l = base.to_vec();
                        l.push(("quantile", q));
                        w.sample(lat, &l, us as f64 / 1e6);
                    }
                    w.sample(&format!("{lat}_sum"), &base, s.sum_us as f64 / 1e6);
                    w.sample(&format!("{lat}_count"), &base, s.count as f64);
                }
            }
        }
        let per_engine =
            |w: &mut Writer,
             name: &str,
             kind: &str,
             help: &str,
             f: &dyn Fn(&mut Writer, &str, &str, &crate::telemetry::snapshot::EngineSnapshot)| {
                w.family(name, kind, help);
                for m in &self.models {
                    for e in &m.engines {
                        f(w, name, &m.model, e);
                    }
                }
            };
        per_engine(
            &mut w,
            "coreml_bridge_inferences_total",
            "counter",
            "Inference attempts by outcome.",
            &|w, n, m, e| {
                w.sample(n, &[("model", m), ("engine", &e.engine), ("outcome", "success")], e.successes as f64);
                w.sample(
                    n,
                    &[("model", m), ("engine", &e.engine), ("outcome", "failure")],
                    (e.inferences - e.successes.min(e.inferences)) as f64,
                );
            },
        );
        per_engine(
            &mut w,
            "coreml_bridge_failures_total",
            "counter",
            "Failures by kind (the failure taxonomy).",
            &|w, n, m, e| {
                for (k, v) in &e.failures {
                    w.sample(n, &[("model", m), ("engine", &e.engine), ("kind", k)], *v as f64);
                }
            },
        );
        per_engine(
            &mut w,
            "coreml_bridge_compute_units_info",
            "gauge",
            "Requested and actual compute units (value 1).",
            &|w, n, m, e| {
                if let Some(r) = e.compute_units_requested {
                    let actual = e.compute_units_actual.map_or("unknown", |a| a.name());
                    w.sample(
                        n,
                        &[("model", m), ("engine", &e.engine), ("requested", r.name()), ("actual", actual)],
                        1.0,
                    );
                }
            },
        );
        per_engine(
            &mut w,
            "coreml_bridge_neural_engine_coverage_ratio",
            "gauge",
            "Neural-Engine coverage as reported by the helper (absent when unknown).",
            &|w, n, m, e| {
                if let Some(c) = e.ne_coverage {
                    w.sample(n, &[("model", m), ("engine", &e.engine)], c);
                }
            },
        );
        w.family("coreml_bridge_fallbacks_total", "counter", "Requests served by the fallback engine, by reason.");
        for m in &self.models {
            for (reason, v) in &m.fallbacks {
                w.sample("coreml_bridge_fallbacks_total", &[("model", &m.model), ("reason", reason)], *v as f64);
            }
        }
        w.family("coreml_bridge_served_info", "gauge", "Engine that answered the model's latest request (value 1).");
        for m in &self.models {
            if let Some(e) = &m.served_by {
                w.sample("coreml_bridge_served_info", &[("model", &m.model), ("engine", e)], 1.0);
            }
        }
        w.family(
            "coreml_bridge_domain_info",
            "gauge",
            "The Core ML isolation domain (helper) of each model (value 1).",
        );
        for m in &self.models {
            if let Some(d) = &m.domain {
                w.sample("coreml_bridge_domain_info", &[("model", &m.model), ("domain", d)], 1.0);
            }
        }
        w.family("coreml_bridge_breaker_state", "gauge", "Circuit-breaker state per model (1 for the current state).");
        for m in &self.models {
            if let Some(b) = &m.breaker {
                for s in [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen] {
                    let v = if b.state == s { 1.0 } else { 0.0 };
                    w.sample("coreml_bridge_breaker_state", &[("model", &m.model), ("state", s.name())], v);
                }
            }
        }
        let h = &self.helper;
        w.family("coreml_bridge_helper_memory_high_water_bytes", "gauge", "Highest helper memory use seen.");
        if let Some(v) = h.memory_high_water {
            w.sample("coreml_bridge_helper_memory_high_water_bytes", &[], v as f64);
        }
        w.family("coreml_bridge_helper_memory_limit_bytes", "gauge", "Helper memory limit.");
        if let Some(v) = h.memory_limit {
            w.sample("coreml_bridge_helper_memory_limit_bytes", &[], v as f64);
        }
        w.family("coreml_bridge_helper_restarts_total", "counter", "Helper restarts by the supervisor.");
        w.sample("coreml_bridge_helper_restarts_total", &[], h.restarts as f64);
        w.family(
            "coreml_bridge_helper_replies_total",
            "counter",
            "Helper replies by how the caller got them: read while spinning (fast) or waited for (slow).",
        );
        w.sample("coreml_bridge_helper_replies_total", &[("lane", "fast")], h.fast_replies as f64);
        w.sample("coreml_bridge_helper_replies_total", &[("lane", "slow")], h.slow_replies as f64);
        w.family(
            "coreml_bridge_sandbox_part_applied",
            "gauge",
            "Whether each sandbox part is in force (1) or not (0).",
        );
        for p in &h.sandbox {
            w.sample("coreml_bridge_sandbox_part_applied", &[("part", &p.name)], if p.applied { 1.0 } else { 0.0 });
        }
        w.family("coreml_bridge_events_total", "counter", "Events logged (breaker transitions, fallbacks, notices).");
        w.sample("coreml_bridge_events_total", &[], self.events_total as f64);
        w.out
    }
}

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_sum`/`_count` suffix where present).
    pub name: String,
    /// Labels in order of appearance.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// The value of label `k`.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

fn valid_name(s: &str, label: bool) -> bool {
    let mut chars = s.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (!label && c == ':');
    chars.next().is_some_and(first_ok) && chars.all(|c| first_ok(c) || c.is_ascii_digit())
}

type Labels = Vec<(String, String)>;

fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s;
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = &rest[..eq];
        if !valid_name(name, true) {
            return Err(format!("bad label name `{name}`"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape `\\{c}`")),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the text format strictly: `# HELP`/`# TYPE` before a family's
/// samples, valid names and labels, escaped values, float values, no
/// duplicate series, each family's samples together.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if kw == "TYPE" {
                let kind = parts.next().unwrap_or("");
                if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                    return Err(err(format!("unknown type `{kind}`")));
                }
                if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(err("second TYPE for a family".into()));
                }
                if let Some(prev) = current.replace(name.to_owned()) {
                    closed.insert(prev);
                }
            } else if kw == "HELP" && !valid_name(name, false) {
                return Err(err("bad metric name in HELP".into()));
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name, false) {
            return Err(err(format!("bad metric name `{name}`")));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(err)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let value_str = rest.trim().split(' ').next().unwrap_or("");
        let value = match value_str {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().map_err(|_| err(format!("bad value `{v}`")))?,
        };
        let family = ["_sum", "_count", "_bucket"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "summary" || t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(err(format!("sample of `{family}` before its TYPE")));
        }
        if current.as_deref() != Some(family) || closed.contains(family) {
            return Err(err(format!("sample of `{family}` outside its family's block")));
        }
        let mut key: Vec<(String, String)> = labels.clone();
        key.sort();
        if !seen.insert((name.to_owned(), key)) {
            return Err(err("duplicate series".into()));
        }
        out.push(Sample { name: name.to_owned(), labels, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_rejects_malformed_text() {
        assert!(parse("x 1\n").unwrap_err().contains("before its TYPE"));
        assert!(parse("# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n").unwrap_err().contains("duplicate"));
        assert!(parse("# TYPE x gauge\nx{a=1} 1\n").unwrap_err().contains("not quoted"));
        assert!(parse("# TYPE x gauge\nx one\n").unwrap_err().contains("bad value"));
        assert!(parse("# TYPE x gauge\n# TYPE y gauge\nx 1\n").unwrap_err().contains("outside"));
        let ok = parse("# TYPE x gauge\nx{a=\"q\\\"\\\\\\n\"} +Inf\n").unwrap();
        assert_eq!(ok[0].label("a"), Some("q\"\\\n"));
        assert_eq!(ok[0].value, f64::INFINITY);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
