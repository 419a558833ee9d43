//! Stages and their HDR latency histograms.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::telemetry::latency::{Stage, StageHistogram};
//!
//! let mut h = StageHistogram::new();
//! for ms in 1..=100 {
//!     h.record(Duration::from_millis(ms));
//! }
//! let s = h.summary();
//! assert_eq!(s.count, 100);
//! // HDR histograms keep 3 significant digits.
//! assert!((s.p50_us as f64 - 50_000.0).abs() <= 50.0);
//! assert!((s.p99_us as f64 - 99_000.0).abs() <= 99.0);
//! assert_eq!(Stage::MarshalIn.name(), "marshal_in");
//! ```

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A timed stage of a model's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Compiling a model (Core ML: `.mlpackage` → `.mlmodelc`).
    Compile,
    /// Loading a (compiled) model; for Candle, reading and building the weights.
    Load,
    /// Wrapping inputs for the engine (Core ML: shared memory → `MLMultiArray`).
    MarshalIn,
    /// The engine's own prediction time.
    Predict,
    /// Placing outputs (Core ML: into the shared-memory output slots).
    MarshalOut,
    /// One whole inference as the caller sees it (validation, routing,
    /// transport, fallback included).
    Infer,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 6] =
        [Stage::Compile, Stage::Load, Stage::MarshalIn, Stage::Predict, Stage::MarshalOut, Stage::Infer];

    /// The snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Compile => "compile",
            Stage::Load => "load",
            Stage::MarshalIn => "marshal_in",
            Stage::Predict => "predict",
            Stage::MarshalOut => "marshal_out",
            Stage::Infer => "infer",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Highest latency a histogram tracks exactly (one hour); longer samples
/// are clamped to it and counted.
pub const MAX_TRACKED: Duration = Duration::from_secs(3600);

/// An HDR histogram of one stage's latencies in microseconds (3 significant
/// digits, 1 µs to 1 h), plus the exact sum and maximum.
#[derive(Debug, Clone)]
pub struct StageHistogram {
    hist: Histogram<u64>,
    sum_us: u128,
    max_us: u64,
}

impl Default for StageHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl StageHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED.as_micros() as u64, 3).expect("static, valid bounds");
        Self { hist, sum_us: 0, max_us: 0 }
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
        self.hist.saturating_record(us.max(1));
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The quantile `q` in `0.0..=1.0`, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        (self.count() > 0)
            .then(|| Duration::from_micros(self.hist.value_at_quantile(q.clamp(0.0, 1.0)).min(self.max_us)))
    }

    /// Count, p50/p95/p99, max and sum.
    pub fn summary(&self) -> LatencySummary {
        let q = |q: f64| {
            if self.count() == 0 {
                0
            } else {
                // HDR reports the top of a value's bucket: never above the exact max.
                self.hist.value_at_quantile(q).min(self.max_us)
            }
        };
        LatencySummary {
            count: self.count(),
            p50_us: q(0.50),
            p95_us: q(0.95),
            p99_us: q(0.99),
            max_us: self.max_us,
            sum_us: u64::try_from(self.sum_us).unwrap_or(u64::MAX),
        }
    }
}

/// A snapshot of one histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest sample, µs (exact).
    pub max_us: u64,
    /// Sum of all samples, µs (exact).
    pub sum_us: u64,
}

/// `us` microseconds in a short human form: `850µs`, `12.3ms`, `4.21s`.
pub fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_has_no_quantiles() {
        let h = StageHistogram::new();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.summary(), LatencySummary::default());
    }

    #[test]
    fn outliers_show_in_p99_not_p50_and_sum_is_exact() {
        let mut h = StageHistogram::new();
        for _ in 0..98 {
            h.record(Duration::from_micros(100));
        }
        h.record(Duration::from_millis(50));
        h.record(Duration::from_millis(50));
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!(s.p50_us.abs_diff(100) <= 1);
        assert!(s.p99_us.abs_diff(50_000) <= 50);
        assert_eq!(s.max_us, 50_000);
        assert_eq!(s.sum_us, 98 * 100 + 2 * 50_000);
        let mut one = StageHistogram::new();
        one.record(Duration::from_micros(418_347));
        assert_eq!(one.summary().p50_us, 418_347, "a quantile is never above the exact max");
    }

    #[test]
    fn huge_samples_are_clamped_not_lost() {
        let mut h = StageHistogram::new();
        h.record(Duration::from_secs(10 * 3600));
        assert_eq!(h.count(), 1);
        assert_eq!(h.summary().max_us, 10 * 3600 * 1_000_000);
        assert_eq!(human_us(850), "850µs");
        assert_eq!(human_us(12_345), "12.3ms");
        assert_eq!(human_us(4_210_000), "4.21s");
    }
}
