//! [`CandleEngine`]: the CPU engine behind [`InferenceEngine`].
//!
//! ```no_run
//! use std::time::Duration;
//! use coreml_candle::CandleEngine;
//! use coreml_inference::{Deadline, InferenceEngine, ModelArtifact, PrepareOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = CandleEngine::new();
//! let artifact = ModelArtifact::from_path("weights/all-minilm-l6-v2/model.safetensors")?;
//! let model = engine.prepare(&artifact, &PrepareOptions::default().with_architecture("bert")).await?;
//! let tokenizer = coreml_candle::text::TextTokenizer::from_file("weights/all-minilm-l6-v2/tokenizer.json", 128)?;
//! let inputs = tokenizer.encode_batch(&["a cat sits on the mat"])?;
//! let out = engine.infer(&model, inputs, Deadline::after(Duration::from_secs(1))).await?;
//! println!("{:?}", &out.f32("embedding")?[..4]);
//! # Ok(()) }
//! ```
//!
//! `prepare` verifies the digest, loads the weights on a blocking thread,
//! runs the model twice for the SLA estimate, all within
//! `PrepareOptions::prepare_budget`. `infer` runs `forward` on a blocking
//! thread; a deadline that passes while it computes returns
//! `DeadlineExceeded` at once (the computation finishes in the background),
//! and a job that waited past its deadline in the queue never starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use candle_core::Device;
use coreml_inference::cpu::CpuModels;
use coreml_inference::{
    CacheKey, CapabilityError, CapabilityReport, Deadline, InferError, InferenceEngine,
    ModelArtifact, PrepareError, PrepareOptions, PreparedModel, SlaEstimate, TensorMap,
    UnloadError, Validated,
};

use crate::registry::{CandleModel, LoadContext, Registry};

/// The engine's name in handles and reports.
pub const ENGINE_NAME: &str = "candle";

/// The Candle CPU engine. Cheap to share: wrap it in an `Arc`.
pub struct CandleEngine {
    registry: Registry,
    device: Device,
    threads: usize,
    models: CpuModels<Arc<dyn CandleModel>>,
}

impl Default for CandleEngine {
    fn default() -> Self {
        Self::new()
    }
}

fn backend(e: impl std::fmt::Display) -> InferError {
    InferError::Backend {
        message: e.to_string(),
    }
}

impl CandleEngine {
    /// An engine with every built-in architecture and the default thread count.
    pub fn new() -> Self {
        Self::with_registry(Registry::builtin(), None)
    }

    /// An engine with a given registry and thread count (`None`: from
    /// `RAYON_NUM_THREADS` or the machine). The thread count is fixed once
    /// per process; later engines reuse it.
    pub fn with_registry(registry: Registry, threads: Option<usize>) -> Self {
        let threads = crate::ops::runtime::init_cpu_runtime(threads);
        Self {
            registry,
            device: Device::Cpu,
            threads,
            models: CpuModels::new(ENGINE_NAME),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// CPU threads candle uses.
    pub fn threads(&self) -> usize {
        self.threads
    }

    async fn load(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        let start = Instant::now();
        let arch =
            options
                .architecture
                .clone()
                .ok_or_else(|| PrepareError::UnsupportedArchitecture {
                    engine: ENGINE_NAME.into(),
                    architecture: "(none given: set PrepareOptions::architecture)".into(),
                    known: self.registry.names(),
                })?;
        let reg = self.registry.find(&arch).cloned().ok_or_else(|| {
            PrepareError::UnsupportedArchitecture {
                engine: ENGINE_NAME.into(),
                architecture: arch.clone(),
                known: self.registry.names(),
            }
        })?;
        let (artifact, opts, device) = (artifact.clone(), options.clone(), self.device.clone());
        let (model, digest, sla) = tokio::task::spawn_blocking(move || {
            let digest = artifact.verify()?;
            let ctx = LoadContext {
                artifact: &artifact,
                options: &opts,
                device: &device,
            };
            let model: Arc<dyn CandleModel> = Arc::from((reg.load)(&ctx)?);
            let example = model.example_inputs().map_err(|e| PrepareError::Backend {
                message: e.to_string(),
            })?;
            let mut runs = [Duration::ZERO; 2];
            for r in &mut runs {
                let t = Instant::now();
                model.forward(&example).map_err(|e| PrepareError::Backend {
                    message: format!("warm-up: {e}"),
                })?;
                *r = t.elapsed();
            }
            let sla = (runs[0].min(runs[1]), runs[0].max(runs[1]));
            Ok::<_, PrepareError>((model, digest, sla))
        })
        .await
        .map_err(|e| PrepareError::Backend {
            message: format!("load task: {e}"),
        })??;
        let schema = model.schema();
        let id = self.models.insert(model, options.compute_units);
        let prepare_time = start.elapsed();
        self.models.record_prepare(prepare_time);
        let mut key_opts = options.clone();
        key_opts.architecture = Some(
            self.registry
                .find(&arch)
                .map_or(arch, |r| r.architecture.to_owned()),
        );
        Ok(PreparedModel {
            engine: ENGINE_NAME.into(),
            id,
            cache_key: CacheKey::derive(ENGINE_NAME, &digest, &key_opts),
            schema,
            sla: SlaEstimate {
                prepare_time,
                infer_p50: sla.0,
                infer_p99: sla.1,
            },
        })
    }
}

#[async_trait]
impl InferenceEngine for CandleEngine {
    fn name(&self) -> &str {
        ENGINE_NAME
    }

    async fn prepare(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        options.within_budget(self.load(artifact, options)).await
    }

    async fn execute(
        &self,
        model: &PreparedModel,
        inputs: Validated,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        let job = self
            .models
            .get(model.id)
            .ok_or(InferError::UnknownModel { model: model.id })?;
        let outputs = tokio::task::spawn_blocking(move || {
            if deadline.is_expired() {
                return Err(deadline.exceeded());
            }
            let start = Instant::now();
            let out = job.model.forward(inputs.inputs()).map_err(backend)?;
            job.infer_stats.record(start.elapsed());
            Ok(out)
        })
        .await
        .map_err(|e| backend(format!("inference task: {e}")))??;
        debug_assert!(
            model.schema.validate_outputs(&outputs).is_ok(),
            "model outputs do not match its schema: {:?}",
            model.schema.validate_outputs(&outputs)
        );
        Ok(outputs)
    }

    async fn capabilities(
        &self,
        model: &PreparedModel,
    ) -> Result<CapabilityReport, CapabilityError> {
        self.models.capabilities(model)
    }

    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        self.models.unload(model)
    }
}
