//! What a prepared model runs on and how fast: [`CapabilityReport`], and the
//! [`LatencyStats`] recorder engines use to fill it.
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::LatencyStats;
//!
//! let stats = LatencyStats::new(128);
//! for ms in 1..=100 {
//!     stats.record(Duration::from_millis(ms));
//! }
//! assert_eq!(stats.count(), 100);
//! assert_eq!(stats.percentile(0.5), Some(Duration::from_millis(50)));
//! assert_eq!(stats.percentile(0.99), Some(Duration::from_millis(99)));
//! ```

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dtype::DType;
use crate::options::ComputeUnits;

/// The kind of processor a model actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceClass {
    /// General-purpose CPU.
    Cpu,
    /// Apple GPU.
    Gpu,
    /// Apple Neural Engine.
    NeuralEngine,
    /// Split across several processors.
    Mixed,
    /// The engine cannot tell.
    Unknown,
}

/// Share of a model's operations placed on the Neural Engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCoverage {
    /// Operations on the Neural Engine.
    pub on_neural_engine: u32,
    /// All operations.
    pub total: u32,
}

impl OpCoverage {
    /// `on_neural_engine / total`, 0 when there are no operations.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            f64::from(self.on_neural_engine) / f64::from(self.total)
        }
    }
}

/// What a prepared model runs on, and measured latencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CapabilityReport {
    /// Engine name.
    pub engine: String,
    /// Processor class the model runs on.
    pub device_class: DeviceClass,
    /// Dtypes the model accepts for its inputs.
    pub dtypes: Vec<DType>,
    /// Largest batch per call.
    pub max_batch: usize,
    /// Neural-Engine op coverage, when the engine can tell.
    pub neural_engine_coverage: Option<OpCoverage>,
    /// Compute units asked for in `prepare`.
    pub compute_units_requested: ComputeUnits,
    /// Compute units actually in use.
    pub compute_units_actual: ComputeUnits,
    /// p99 of `prepare` (compile + load) in this process, if measured.
    pub compile_p99: Option<Duration>,
    /// p99 of `infer` in this process, if measured.
    pub infer_p99: Option<Duration>,
}

impl CapabilityReport {
    /// A report with no measurements yet.
    pub fn new(
        engine: impl Into<String>,
        device_class: DeviceClass,
        requested: ComputeUnits,
        actual: ComputeUnits,
    ) -> Self {
        Self {
            engine: engine.into(),
            device_class,
            dtypes: Vec::new(),
            max_batch: 1,
            neural_engine_coverage: None,
            compute_units_requested: requested,
            compute_units_actual: actual,
            compile_p99: None,
            infer_p99: None,
        }
    }
}

/// A bounded window of recent durations, safe to share between threads.
#[derive(Debug)]
pub struct LatencyStats {
    capacity: usize,
    window: Mutex<(VecDeque<Duration>, u64)>,
}

impl LatencyStats {
    /// A recorder keeping the last `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            window: Mutex::new((VecDeque::with_capacity(capacity), 0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Duration>, u64)> {
        // A panic while holding this lock cannot leave the window invalid.
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a sample, dropping the oldest when full.
    pub fn record(&self, d: Duration) {
        let mut w = self.lock();
        if w.0.len() == self.capacity {
            w.0.pop_front();
        }
        w.0.push_back(d);
        w.1 += 1;
    }

    /// Samples recorded since creation (not only those in the window).
    pub fn count(&self) -> u64 {
        self.lock().1
    }

    /// The nearest-rank percentile `q` in `0.0..=1.0` of the window.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let mut v: Vec<Duration> = self.lock().0.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    }

    /// p99 of the window.
    pub fn p99(&self) -> Option<Duration> {
        self.percentile(0.99)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_drops_oldest_and_empty_has_no_percentile() {
        let s = LatencyStats::new(2);
        assert_eq!(s.p99(), None);
        for ms in [100, 1, 2] {
            s.record(Duration::from_millis(ms));
        }
        assert_eq!(s.count(), 3);
        assert_eq!(s.percentile(1.0), Some(Duration::from_millis(2)));
        assert_eq!(s.percentile(0.0), Some(Duration::from_millis(1)));
        let c = OpCoverage {
            on_neural_engine: 3,
            total: 4,
        };
        assert!((c.fraction() - 0.75).abs() < 1e-12);
        assert_eq!(
            OpCoverage {
                on_neural_engine: 0,
                total: 0
            }
            .fraction(),
            0.0
        );
    }
}
