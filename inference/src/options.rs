//! What to run on, and how to prepare a model.
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::{ComputeUnits, PrepareOptions};
//!
//! let opts = PrepareOptions::new(ComputeUnits::CpuAndNe)
//!     .with_architecture("bert")
//!     .with_prepare_budget(Duration::from_secs(30))
//!     .with_hint("pooling", "mean");
//! assert_eq!(opts.architecture.as_deref(), Some("bert"));
//! assert_eq!(opts.hint("pooling"), Some("mean"));
//! assert_eq!("cpu_and_ne".parse::<ComputeUnits>().unwrap(), ComputeUnits::CpuAndNe);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which processors a model may use (Core ML's `MLComputeUnits`). Engines
/// that have only a CPU accept any value and report `CpuOnly` as actual.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeUnits {
    /// CPU, GPU and Neural Engine, as Core ML sees fit.
    #[default]
    All,
    /// CPU only.
    CpuOnly,
    /// CPU and GPU.
    CpuAndGpu,
    /// CPU and Neural Engine.
    CpuAndNe,
}

impl ComputeUnits {
    /// All values.
    pub const ALL: [ComputeUnits; 4] = [
        ComputeUnits::All,
        ComputeUnits::CpuOnly,
        ComputeUnits::CpuAndGpu,
        ComputeUnits::CpuAndNe,
    ];

    /// The snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            ComputeUnits::All => "all",
            ComputeUnits::CpuOnly => "cpu_only",
            ComputeUnits::CpuAndGpu => "cpu_and_gpu",
            ComputeUnits::CpuAndNe => "cpu_and_ne",
        }
    }
}

impl fmt::Display for ComputeUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ComputeUnits {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.to_ascii_lowercase().replace('-', "_");
        ComputeUnits::ALL
            .into_iter()
            .find(|c| c.name() == norm)
            .ok_or_else(|| {
                format!("unknown compute units `{s}` (all, cpu_only, cpu_and_gpu, cpu_and_ne)")
            })
    }
}

/// How to prepare a model. Every field has a sensible default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PrepareOptions {
    /// Processors the model may use.
    pub compute_units: ComputeUnits,
    /// Architecture / model family (`"bert"`, `"distilbert"`,
    /// `"efficientnet-lite0"`, `"resnet50"`, `"fastvit-t8"`), for engines
    /// that load bare weights; Core ML ignores it.
    pub architecture: Option<String>,
    /// Caller-chosen model name, carried in reports and logs.
    pub model_name: Option<String>,
    /// Budget for `prepare` (compile + load); `None` lets the engine decide.
    pub prepare_budget: Option<Duration>,
    /// Expected budget of one `infer`, used for SLA estimates and warm-up.
    pub infer_budget: Option<Duration>,
    /// Where engines may cache compiled artifacts.
    pub cache_dir: Option<PathBuf>,
    /// Largest batch the caller will send (engines may clamp it).
    pub max_batch: Option<usize>,
    /// Engine-specific string hints (`"pooling"`, `"labels"`, ...).
    pub hints: BTreeMap<String, String>,
}

impl PrepareOptions {
    /// Runs an engine's prepare future within `prepare_budget`, if one is set.
    ///
    /// # Errors
    /// The future's own error, or [`crate::PrepareError::DeadlineExceeded`] when the
    /// budget runs out first.
    pub async fn within_budget<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, crate::PrepareError>>,
    ) -> Result<T, crate::PrepareError> {
        match self.prepare_budget {
            Some(budget) => tokio::time::timeout(budget, fut)
                .await
                .unwrap_or(Err(crate::PrepareError::DeadlineExceeded { budget })),
            None => fut.await,
        }
    }

    /// Defaults with the given compute units.
    pub fn new(compute_units: ComputeUnits) -> Self {
        Self {
            compute_units,
            ..Self::default()
        }
    }

    /// Sets the architecture.
    #[must_use]
    pub fn with_architecture(mut self, architecture: impl Into<String>) -> Self {
        self.architecture = Some(architecture.into());
        self
    }

    /// Sets the model name.
    #[must_use]
    pub fn with_model_name(mut self, name: impl Into<String>) -> Self {
        self.model_name = Some(name.into());
        self
    }

    /// Sets the prepare budget.
    #[must_use]
    pub fn with_prepare_budget(mut self, budget: Duration) -> Self {
        self.prepare_budget = Some(budget);
        self
    }

    /// Sets the expected infer budget.
    #[must_use]
    pub fn with_infer_budget(mut self, budget: Duration) -> Self {
        self.infer_budget = Some(budget);
        self
    }

    /// Sets the cache directory.
    #[must_use]
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Sets the largest batch.
    #[must_use]
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = Some(max_batch);
        self
    }

    /// Adds an engine-specific hint.
    #[must_use]
    pub fn with_hint(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.hints.insert(key.into(), value.into());
        self
    }

    /// An engine-specific hint.
    pub fn hint(&self, key: &str) -> Option<&str> {
        self.hints.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_units_parse_and_serialise() {
        for c in ComputeUnits::ALL {
            assert_eq!(c.to_string().parse::<ComputeUnits>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        assert_eq!(
            "CPU-AND-GPU".parse::<ComputeUnits>().unwrap(),
            ComputeUnits::CpuAndGpu
        );
        assert!("gpu".parse::<ComputeUnits>().is_err());
        assert_eq!(ComputeUnits::default(), ComputeUnits::All);
    }
}
