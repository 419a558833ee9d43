//! An in-process engine double for tests: the real trait, a trivial model.
//!
//! Its model is an affine map `y = x * scale + bias` over `x: f32[1..=8, 4]`,
//! stored as a real safetensors artifact, so prepare, digest checks,
//! validation, deadlines and unload all take the same paths as a real engine.
//! Knobs inject delays and failures for tests of callers (the router).
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::{double::DoubleEngine, BlockingEngine, Deadline, PrepareOptions, Tensor, TensorMap};
//!
//! let engine = BlockingEngine::new(DoubleEngine::new()).unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let artifact = engine.inner().write_artifact(dir.path()).unwrap();
//! let model = engine.prepare(&artifact, &PrepareOptions::default()).unwrap();
//! let x = TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![0.0f32; 4]).unwrap());
//! let y = engine.infer(&model, x, Deadline::after(Duration::from_secs(1))).unwrap();
//! assert_eq!(y.f32("y").unwrap(), &[1.0; 4]);
//! assert_eq!(engine.inner().execute_calls(), 1);
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::artifact::{ModelArtifact, ModelFormat};
use crate::capability::{CapabilityReport, DeviceClass, LatencyStats};
use crate::dtype::DType;
use crate::engine::{CacheKey, Deadline, InferenceEngine, ModelId, PreparedModel, SlaEstimate};
use crate::error::{ArtifactError, CapabilityError, InferError, PrepareError, UnloadError};
use crate::options::{ComputeUnits, PrepareOptions};
use crate::schema::{Dim, IoSchema, TensorSpec, Validated};
use crate::tensor::Tensor;
use crate::tensor_map::TensorMap;

/// Width of the double's input and output rows.
pub const WIDTH: usize = 4;
/// Largest batch the double accepts.
pub const MAX_BATCH: usize = 8;
/// The only architecture name the double knows.
pub const ARCHITECTURE: &str = "affine";

struct Loaded {
    scale: Vec<f32>,
    bias: Vec<f32>,
    requested: ComputeUnits,
}

/// The test double. See the module docs.
pub struct DoubleEngine {
    name: String,
    next_id: AtomicU64,
    models: Mutex<HashMap<ModelId, Loaded>>,
    infer_delay_us: AtomicU64,
    prepare_delay_us: AtomicU64,
    failures_left: AtomicU64,
    execute_calls: AtomicU64,
    compile_stats: LatencyStats,
    infer_stats: LatencyStats,
}

impl Default for DoubleEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl DoubleEngine {
    /// A double named `"double"`.
    pub fn new() -> Self {
        Self::named("double")
    }

    /// A double with another name (two doubles side by side in a router).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            next_id: AtomicU64::new(1),
            models: Mutex::new(HashMap::new()),
            infer_delay_us: AtomicU64::new(0),
            prepare_delay_us: AtomicU64::new(0),
            failures_left: AtomicU64::new(0),
            execute_calls: AtomicU64::new(0),
            compile_stats: LatencyStats::new(64),
            infer_stats: LatencyStats::new(256),
        }
    }

    /// The schema of every model the double prepares.
    pub fn schema() -> IoSchema {
        let spec = |n: &str| {
            TensorSpec::new(
                n,
                DType::F32,
                vec![Dim::range(1, MAX_BATCH), Dim::Fixed(WIDTH)],
            )
            .batch_capable()
        };
        IoSchema::new(vec![spec("x")], vec![spec("y")])
    }

    /// Writes a model (`scale = 2`, `bias = 1`) to `dir/affine.safetensors`
    /// and returns its artifact with the digest pinned.
    pub fn write_artifact(&self, dir: impl AsRef<Path>) -> Result<ModelArtifact, ArtifactError> {
        let path = dir.as_ref().join("affine.safetensors");
        let weights = TensorMap::new()
            .with(
                "scale",
                Tensor::new(vec![WIDTH], vec![2.0f32; WIDTH]).expect("static shape"),
            )
            .with(
                "bias",
                Tensor::new(vec![WIDTH], vec![1.0f32; WIDTH]).expect("static shape"),
            );
        weights
            .write_safetensors(&path)
            .map_err(|e| ArtifactError::Io {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let artifact = ModelArtifact::new(ModelFormat::Safetensors, path);
        let digest = artifact.compute_sha256()?;
        Ok(artifact.with_sha256(digest))
    }

    /// Every `infer` sleeps this long inside the engine.
    pub fn set_infer_delay(&self, d: Duration) {
        self.infer_delay_us
            .store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// Every `prepare` sleeps this long.
    pub fn set_prepare_delay(&self, d: Duration) {
        self.prepare_delay_us
            .store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// The next `n` executions fail with [`InferError::Backend`].
    pub fn fail_next(&self, n: u64) {
        self.failures_left.store(n, Ordering::SeqCst);
    }

    /// How many times engine code ran for an inference.
    pub fn execute_calls(&self) -> u64 {
        self.execute_calls.load(Ordering::SeqCst)
    }

    /// Number of loaded models.
    pub fn loaded(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ModelId, Loaded>> {
        self.models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn load(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        let start = Instant::now();
        if artifact.format != ModelFormat::Safetensors {
            return Err(PrepareError::UnsupportedFormat {
                engine: self.name.clone(),
                format: artifact.format,
            });
        }
        if let Some(arch) = options
            .architecture
            .as_deref()
            .filter(|a| *a != ARCHITECTURE)
        {
            return Err(PrepareError::UnsupportedArchitecture {
                engine: self.name.clone(),
                architecture: arch.to_owned(),
                known: vec![ARCHITECTURE.to_owned()],
            });
        }
        let digest = artifact.verify()?;
        let delay = Duration::from_micros(self.prepare_delay_us.load(Ordering::SeqCst));
        tokio::time::sleep(delay).await;
        let weights = TensorMap::read_safetensors(&artifact.path).map_err(|e| {
            PrepareError::InvalidModel {
                message: e.to_string(),
            }
        })?;
        let vec_of = |name: &str| -> Result<Vec<f32>, PrepareError> {
            let v = weights.f32(name).map_err(|e| PrepareError::InvalidModel {
                message: e.to_string(),
            })?;
            if v.len() != WIDTH {
                return Err(PrepareError::InvalidModel {
                    message: format!("`{name}` has {} values, want {WIDTH}", v.len()),
                });
            }
            Ok(v.to_vec())
        };
        let loaded = Loaded {
            scale: vec_of("scale")?,
            bias: vec_of("bias")?,
            requested: options.compute_units,
        };
        let id = ModelId(self.next_id.fetch_add(1, Ordering::SeqCst));
        self.lock().insert(id, loaded);
        let prepare_time = start.elapsed();
        self.compile_stats.record(prepare_time);
        Ok(PreparedModel {
            engine: self.name.clone(),
            id,
            cache_key: CacheKey::derive(&self.name, &digest, options),
            schema: Self::schema(),
            sla: SlaEstimate {
                prepare_time,
                infer_p50: delay.max(Duration::from_micros(10)),
                infer_p99: delay.max(Duration::from_micros(10)) * 2,
            },
        })
    }
}

#[async_trait]
impl InferenceEngine for DoubleEngine {
    fn name(&self) -> &str {
        &self.name
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
        _deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        let start = Instant::now();
        self.execute_calls.fetch_add(1, Ordering::SeqCst);
        let (scale, bias) = {
            let models = self.lock();
            let m = models
                .get(&model.id)
                .ok_or(InferError::UnknownModel { model: model.id })?;
            (m.scale.clone(), m.bias.clone())
        };
        let delay = Duration::from_micros(self.infer_delay_us.load(Ordering::SeqCst));
        tokio::time::sleep(delay).await;
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(InferError::Backend {
                message: "injected failure".into(),
            });
        }
        let x = inputs
            .inputs()
            .require("x")
            .map_err(|e| InferError::Backend {
                message: e.to_string(),
            })?;
        let xs = x.as_slice::<f32>().map_err(|e| InferError::Backend {
            message: e.to_string(),
        })?;
        let ys: Vec<f32> = xs
            .iter()
            .enumerate()
            .map(|(i, v)| v * scale[i % WIDTH] + bias[i % WIDTH])
            .collect();
        let y = Tensor::new(x.shape().to_vec(), ys).map_err(|e| InferError::Backend {
            message: e.to_string(),
        })?;
        self.infer_stats.record(start.elapsed());
        Ok(TensorMap::new().with("y", y))
    }

    async fn capabilities(
        &self,
        model: &PreparedModel,
    ) -> Result<CapabilityReport, CapabilityError> {
        let requested = self
            .lock()
            .get(&model.id)
            .map(|m| m.requested)
            .ok_or(CapabilityError::UnknownModel { model: model.id })?;
        let mut r = CapabilityReport::new(
            self.name.clone(),
            DeviceClass::Cpu,
            requested,
            ComputeUnits::CpuOnly,
        );
        r.dtypes = vec![DType::F32];
        r.max_batch = MAX_BATCH;
        r.compile_p99 = self.compile_stats.p99();
        r.infer_p99 = self.infer_stats.p99();
        Ok(r)
    }

    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        self.lock()
            .remove(&model.id)
            .map(|_| ())
            .ok_or(UnloadError::UnknownModel { model: model.id })
    }
}
