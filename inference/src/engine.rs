//! The [`InferenceEngine`] trait, the [`PreparedModel`] handle and [`Deadline`]s.
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::{double::DoubleEngine, Deadline, InferenceEngine, PrepareOptions, Tensor, TensorMap};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = DoubleEngine::new();
//! let artifact = engine.write_artifact(tempfile::tempdir().unwrap().keep()).unwrap();
//! let model = engine.prepare(&artifact, &PrepareOptions::default()).await.unwrap();
//! let inputs = TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap());
//! let out = engine.infer(&model, inputs, Deadline::after(Duration::from_secs(1))).await.unwrap();
//! assert_eq!(out.f32("y").unwrap(), &[3.0, 5.0, 7.0, 9.0]);
//! # });
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::{ModelArtifact, Sha256Digest};
use crate::capability::CapabilityReport;
use crate::error::{CapabilityError, InferError, PrepareError, UnloadError};
use crate::options::PrepareOptions;
use crate::schema::{IoSchema, Validated};
use crate::tensor_map::TensorMap;

/// An engine-assigned model number, unique within one engine instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelId(pub u64);

/// Identifies a prepared artifact across processes: same engine, content and
/// relevant options give the same key (engines use it to reuse compiled
/// models).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CacheKey(pub String);

impl CacheKey {
    /// The key of `artifact_digest` prepared by `engine` with `options`
    /// (compute units, architecture, max batch and hints count; budgets and
    /// the cache directory do not).
    pub fn derive(engine: &str, artifact_digest: &Sha256Digest, options: &PrepareOptions) -> Self {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(engine.as_bytes());
        field(&artifact_digest.0);
        field(options.compute_units.name().as_bytes());
        field(options.architecture.as_deref().unwrap_or("").as_bytes());
        field(&options.max_batch.unwrap_or(0).to_le_bytes());
        for (k, v) in &options.hints {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        Self(Sha256Digest(h.finalize().into()).to_string())
    }
}

/// Expected latencies of a prepared model, measured during `prepare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaEstimate {
    /// How long `prepare` took.
    pub prepare_time: Duration,
    /// Expected median `infer` latency at batch 1.
    pub infer_p50: Duration,
    /// Expected 99th-percentile `infer` latency at batch 1.
    pub infer_p99: Duration,
}

/// A handle to a model prepared by one engine. Plain data: clone it freely;
/// it stays valid until `unload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedModel {
    /// Name of the engine that prepared it.
    pub engine: String,
    /// The engine's number for it.
    pub id: ModelId,
    /// Content-and-options key.
    pub cache_key: CacheKey,
    /// Inputs and outputs.
    pub schema: IoSchema,
    /// Expected latencies.
    pub sla: SlaEstimate,
}

/// When an inference must be done by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    start: Instant,
    at: Instant,
}

impl Deadline {
    /// `budget` from now (`Duration::MAX` and other budgets past the
    /// clock's range mean "no deadline": about a century).
    pub fn after(budget: Duration) -> Self {
        let start = Instant::now();
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        Self {
            start,
            at: start.checked_add(budget.min(far)).unwrap_or(start),
        }
    }

    /// The instant it falls due.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether it has passed.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Time since it was set.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The error for having missed it.
    pub fn exceeded(&self) -> InferError {
        InferError::DeadlineExceeded {
            elapsed: self.elapsed(),
        }
    }
}

/// An inference engine: Core ML behind the supervisor, Candle on the CPU, or
/// a test double. Object-safe: use `Arc<dyn InferenceEngine>`.
///
/// Engines implement `prepare`, `execute`, `capabilities` and `unload`;
/// callers use `prepare`, [`infer`](InferenceEngine::infer), `capabilities`
/// and `unload`. `infer` checks the handle's engine, validates the inputs
/// against the schema and the deadline before any engine code runs, then
/// bounds `execute` by the deadline.
#[async_trait]
pub trait InferenceEngine: Send + Sync {
    /// Stable engine name (`"candle"`, `"coreml"`, ...).
    fn name(&self) -> &str;

    /// Loads (and compiles, where needed) a model. Honours
    /// `options.prepare_budget`, and verifies `artifact.sha256` when set.
    async fn prepare(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError>;

    /// Runs validated inputs. Called only through [`InferenceEngine::infer`].
    async fn execute(
        &self,
        model: &PreparedModel,
        inputs: Validated,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError>;

    /// What the model runs on and how fast.
    async fn capabilities(
        &self,
        model: &PreparedModel,
    ) -> Result<CapabilityReport, CapabilityError>;

    /// Releases the model; the handle is invalid afterwards.
    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError>;

    /// Validates `inputs` against `model.schema`, then runs them within `deadline`.
    async fn infer(
        &self,
        model: &PreparedModel,
        inputs: TensorMap,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        if model.engine != self.name() {
            return Err(InferError::WrongEngine {
                expected: self.name().to_owned(),
                actual: model.engine.clone(),
            });
        }
        let validated = model.schema.validate(inputs)?;
        if deadline.is_expired() {
            return Err(deadline.exceeded());
        }
        let at = tokio::time::Instant::from_std(deadline.instant());
        match tokio::time::timeout_at(at, self.execute(model, validated, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(deadline.exceeded()),
        }
    }
}

macro_rules! forward {
    ($ptr:ident) => {
        #[async_trait]
        impl<E: InferenceEngine + ?Sized> InferenceEngine for $ptr<E> {
            fn name(&self) -> &str {
                (**self).name()
            }
            async fn prepare(
                &self,
                artifact: &ModelArtifact,
                options: &PrepareOptions,
            ) -> Result<PreparedModel, PrepareError> {
                (**self).prepare(artifact, options).await
            }
            async fn execute(
                &self,
                model: &PreparedModel,
                inputs: Validated,
                deadline: Deadline,
            ) -> Result<TensorMap, InferError> {
                (**self).execute(model, inputs, deadline).await
            }
            async fn capabilities(
                &self,
                model: &PreparedModel,
            ) -> Result<CapabilityReport, CapabilityError> {
                (**self).capabilities(model).await
            }
            async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
                (**self).unload(model).await
            }
            async fn infer(
                &self,
                model: &PreparedModel,
                inputs: TensorMap,
                deadline: Deadline,
            ) -> Result<TensorMap, InferError> {
                (**self).infer(model, inputs, deadline).await
            }
        }
    };
}

forward!(Arc);
forward!(Box);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::ComputeUnits;

    #[test]
    fn cache_keys_follow_content_and_relevant_options_only() {
        let d = Sha256Digest::of_bytes(b"weights");
        let base = PrepareOptions::new(ComputeUnits::All).with_architecture("bert");
        let k = CacheKey::derive("candle", &d, &base);
        assert_eq!(k.0.len(), 64);
        assert_eq!(
            k,
            CacheKey::derive(
                "candle",
                &d,
                &base.clone().with_prepare_budget(Duration::from_secs(1))
            )
        );
        assert_ne!(k, CacheKey::derive("coreml", &d, &base));
        assert_ne!(
            k,
            CacheKey::derive("candle", &Sha256Digest::of_bytes(b"other"), &base)
        );
        assert_ne!(
            k,
            CacheKey::derive(
                "candle",
                &d,
                &PrepareOptions::new(ComputeUnits::CpuOnly).with_architecture("bert")
            )
        );
        assert_ne!(
            k,
            CacheKey::derive("candle", &d, &base.clone().with_hint("pooling", "cls"))
        );
    }

    #[test]
    fn deadlines_count_down() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.is_expired());
        assert!(d.remaining() > Duration::from_secs(59));
        let past = Deadline::after(Duration::ZERO);
        assert!(past.is_expired());
        assert_eq!(past.remaining(), Duration::ZERO);
        assert!(matches!(
            past.exceeded(),
            InferError::DeadlineExceeded { .. }
        ));
    }
}
