//! The Core ML engine: [`InferenceEngine`] over the supervisor. Compile →
//! cache install → load → predict through shared memory; the helper's
//! timings, compute plan and health go to the telemetry and the router.
//!
//! ```no_run
//! use std::sync::Arc;
//! use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
//! use coreml_bridge::health::HealthBus;
//! use coreml_bridge::telemetry::Telemetry;
//! use coreml_supervisor::{HelperCommand, SupervisorConfig};
//!
//! # async fn demo() {
//! let telemetry = Arc::new(Telemetry::new());
//! let health = HealthBus::new();
//! let cfg = SupervisorConfig::new(HelperCommand::new("/usr/local/libexec/coreml-helper"));
//! match CoreMlEngine::start(cfg, CoreMlOptions::default(), telemetry, health).await {
//!     Ok(engine) => println!("Core ML helper up: {}", engine.identity()),
//!     Err(reason) => println!("Core ML unavailable: {reason}"),
//! }
//! # }
//! ```
//!
//! A helper that reports no Core ML (`coreml_version: nil`, e.g. the Swift
//! helper on Linux) is refused at start, unless it is a diagnostic helper
//! (`engine: "diagnostic"`), which serves only `diag:` models.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coreml_inference::{
    async_trait, CacheKey, CapabilityError, CapabilityReport, Deadline, DeviceClass, InferError, InferenceEngine,
    IoSchema, ModelArtifact, ModelId, OpCoverage, PrepareError, PrepareOptions, PreparedModel, Sha256Digest,
    SlaEstimate, Tensor, TensorMap, UnloadError, Validated,
};
use coreml_supervisor::memwatch::MemoryWatcher;
use coreml_supervisor::schema::Device;
use coreml_supervisor::{Supervisor, SupervisorConfig};

use crate::coreml::compile::InstrumentStage;
use crate::coreml::convert::{infer_error, prepare_error, spec_from_wire, units_from_wire, units_to_wire};
use crate::coreml::events::watch_supervisor;
use crate::coreml::model_cache::ModelCache;
use crate::coreml::revive::Backoff;
use crate::health::{HealthBus, HealthEvent};
use crate::taxonomy::{tagged, FailureKind};
use crate::telemetry::latency::Stage;
use crate::telemetry::Telemetry;

/// The engine's name.
pub const COREML_ENGINE: &str = "coreml";

/// Options of the engine besides the supervisor's.
#[derive(Debug, Clone)]
pub struct CoreMlOptions {
    /// Compiled-model cache directory (default: `$COREML_BRIDGE_CACHE/compiled`
    /// or `~/.cache/coreml-bridge/compiled`).
    pub cache_dir: Option<PathBuf>,
    /// Directories holding the models to compile. The helper is sandboxed before
    /// it sees its first request (Landlock on Linux, Seatbelt on macOS), so it can
    /// read a model only under one of these (or in the cache): each is added to
    /// the sandbox's read-only paths.
    pub model_dirs: Vec<PathBuf>,
    /// After the supervisor gives up on its helper (restart budget spent),
    /// the first wait before a fresh helper is tried; doubles after each
    /// failed try (default 1 s).
    pub revive_after: Duration,
    /// The longest wait between tries (default 5 min).
    pub revive_max: Duration,
}

impl Default for CoreMlOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            model_dirs: Vec::new(),
            revive_after: Duration::from_secs(1),
            revive_max: Duration::from_secs(300),
        }
    }
}

struct Loaded {
    sup_id: coreml_supervisor::ModelId,
    name: String,
    schema: IoSchema,
    requested: coreml_inference::ComputeUnits,
    actual: coreml_inference::ComputeUnits,
    coverage: Option<OpCoverage>,
    device: DeviceClass,
}

/// See the module docs.
pub struct CoreMlEngine {
    pub(crate) sup: Arc<Supervisor>,
    pub(crate) cache: ModelCache,
    pub(crate) telemetry: Arc<Telemetry>,
    health: Arc<HealthBus>,
    models: Mutex<HashMap<ModelId, Loaded>>,
    next_id: AtomicU64,
    in_flight: Arc<AtomicUsize>,
    last_request_death: Arc<AtomicU64>,
    epoch: Instant,
    identity: String,
    memwatch: Mutex<(MemoryWatcher, Option<Instant>)>,
}

/// How often the engine samples the helper's memory itself when the
/// supervisor does not (no memory limit configured).
pub const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(250);

fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("COREML_BRIDGE_CACHE") {
        return PathBuf::from(d).join("compiled");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/coreml-bridge/compiled")
}

impl CoreMlEngine {
    /// Starts the helper. `Err` says, in one line, why Core ML cannot serve.
    pub async fn start(
        mut cfg: SupervisorConfig,
        options: CoreMlOptions,
        telemetry: Arc<Telemetry>,
        health: Arc<HealthBus>,
    ) -> Result<Self, String> {
        let cache = ModelCache::open(options.cache_dir.unwrap_or_else(default_cache_dir))
            .map_err(|e| format!("compiled-model cache: {e}"))?;
        cfg.staging_dir = cache.staging_dir().map_err(|e| format!("staging directory: {e}"))?;
        cfg.sandbox = cfg.sandbox.read_write(cache.root());
        for d in options.model_dirs {
            cfg.sandbox = cfg.sandbox.read_only(d);
        }
        let memory_limit = cfg.memory_limit;
        let sup = Arc::new(Supervisor::start(cfg).await.map_err(|e| format!("the helper did not start: {e}"))?);
        let hello = sup.hello().ok_or("the helper went away right after starting")?;
        let diagnostic = hello.engine == "diagnostic";
        if hello.coreml_version.is_none() && !diagnostic {
            sup.shutdown().await;
            return Err(format!(
                "the helper runs on {} {} ({}) where there is no Core ML",
                hello.os, hello.os_build, hello.chip
            ));
        }
        let identity = format!(
            "{} helper {} on {} {} ({}), Core ML {}, pid {}",
            hello.engine,
            hello.helper_version,
            hello.os,
            hello.os_build,
            hello.chip,
            hello.coreml_version.as_deref().unwrap_or("absent"),
            hello.pid
        );
        for key in cache.evict_mismatched(hello.coreml_version.as_deref().unwrap_or("none"), &hello.os_build) {
            tracing::info!(target: "coreml_bridge::coreml", key, "evicted stale compiled model");
        }
        telemetry.set_helper_identity(identity.clone());
        if memory_limit.is_some() {
            telemetry.set_helper_memory_limit(memory_limit);
        }
        let in_flight = Arc::new(AtomicUsize::new(0));
        let last_request_death = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let requests = crate::coreml::events::RequestDeaths {
            in_flight: in_flight.clone(),
            last_death_ms: last_request_death.clone(),
            epoch,
        };
        let revival = Backoff::new(options.revive_after, options.revive_max);
        watch_supervisor(&sup, telemetry.clone(), health.clone(), requests, revival);
        Ok(Self {
            sup,
            cache,
            telemetry,
            health,
            models: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            in_flight,
            last_request_death,
            epoch,
            identity,
            memwatch: Mutex::new((MemoryWatcher::new(), None)),
        })
    }

    /// What the helper said it is.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The supervisor (stats, events, `kill_helper` for tests).
    pub fn supervisor(&self) -> &Supervisor {
        &self.sup
    }

    /// Stops the helper.
    pub async fn shutdown(&self) {
        self.sup.shutdown().await;
    }

    /// The helper's RSS: the supervisor's sample when it watches memory,
    /// else our own, at most every [`MEMORY_SAMPLE_EVERY`].
    fn sample_memory(&self) -> Option<u64> {
        let stats = self.sup.stats();
        if stats.rss_bytes > 0 {
            return Some(stats.rss_bytes);
        }
        let mut w = self.memwatch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.1.is_some_and(|t: Instant| t.elapsed() < MEMORY_SAMPLE_EVERY) || stats.pid == 0 {
            return None;
        }
        w.1 = Some(Instant::now());
        Some(w.0.sample(stats.pid)).filter(|&b| b > 0)
    }

    fn models(&self) -> std::sync::MutexGuard<'_, HashMap<ModelId, Loaded>> {
        self.models.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn prepare_inner(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
        budget: Duration,
    ) -> Result<PreparedModel, PrepareError> {
        let start = Instant::now();
        let source = artifact.path.to_string_lossy().into_owned();
        if !source.starts_with("diag:") && !artifact.format.is_core_ml() {
            return Err(PrepareError::UnsupportedFormat { engine: COREML_ENGINE.into(), format: artifact.format });
        }
        let name = options.model_name.clone().unwrap_or_else(|| source.clone());
        let bundle = self.bundle_for(&name, artifact, options, budget).await?;
        let info = self
            .sup
            .load(&bundle, Some(units_to_wire(options.compute_units)))
            .instrument_stage(Stage::Load, &name)
            .await
            .map_err(|e| {
                self.telemetry.record_failure(&name, COREML_ENGINE, FailureKind::LoadError);
                prepare_error(e, budget)
            })?;
        self.telemetry.record_stage(&name, COREML_ENGINE, Stage::Load, Duration::from_micros(info.load_us));
        let specs = |v: &[coreml_supervisor::schema::TensorSpec]| {
            v.iter()
                .map(spec_from_wire)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| PrepareError::InvalidModel { message: m })
        };
        let schema = IoSchema::new(specs(&info.inputs)?, specs(&info.outputs)?);
        let actual = units_from_wire(info.compute_units);
        self.telemetry.set_compute_units(&name, COREML_ENGINE, options.compute_units, Some(actual));
        let (coverage, device) = match self.sup.compute_plan(info.id).await {
            Ok(plan) => {
                self.telemetry.set_ne_coverage(&name, COREML_ENGINE, plan.ne_coverage, plan.unavailable_reason.clone());
                let known: Vec<_> = plan.ops.iter().filter_map(|o| o.preferred).collect();
                let on_ne = known.iter().filter(|d| **d == Device::NeuralEngine).count() as u32;
                let device =
                    match (known.is_empty(), on_ne as usize == known.len(), known.iter().all(|d| *d == Device::Cpu)) {
                        (true, ..) => DeviceClass::Unknown,
                        (false, true, _) => DeviceClass::NeuralEngine,
                        (false, _, true) => DeviceClass::Cpu,
                        _ => DeviceClass::Mixed,
                    };
                (
                    (!known.is_empty()).then_some(OpCoverage { on_neural_engine: on_ne, total: known.len() as u32 }),
                    device,
                )
            }
            Err(e) => {
                self.telemetry.set_ne_coverage(&name, COREML_ENGINE, None, Some(format!("compute plan: {e}")));
                (None, DeviceClass::Unknown)
            }
        };
        let id = ModelId(self.next_id.fetch_add(1, Ordering::SeqCst));
        let digest = Sha256Digest::of_bytes(bundle.as_bytes());
        let loaded = Loaded {
            sup_id: info.id,
            name,
            schema: schema.clone(),
            requested: options.compute_units,
            actual,
            coverage,
            device,
        };
        self.models().insert(id, loaded);
        let expected = options.infer_budget.unwrap_or(Duration::from_millis(10));
        Ok(PreparedModel {
            engine: COREML_ENGINE.into(),
            id,
            cache_key: CacheKey::derive(COREML_ENGINE, &digest, options),
            schema,
            sla: SlaEstimate { prepare_time: start.elapsed(), infer_p50: expected, infer_p99: expected * 2 },
        })
    }
}

#[async_trait]
impl InferenceEngine for CoreMlEngine {
    fn name(&self) -> &str {
        COREML_ENGINE
    }

    async fn prepare(&self, artifact: &ModelArtifact, options: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        let budget = options.prepare_budget.unwrap_or(Duration::from_secs(15 * 60));
        tokio::time::timeout(budget, self.prepare_inner(artifact, options, budget))
            .await
            .unwrap_or(Err(PrepareError::DeadlineExceeded { budget }))
    }

    async fn execute(
        &self,
        model: &PreparedModel,
        inputs: Validated,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        let (sup_id, name, schema) = {
            let m = self.models();
            let l = m.get(&model.id).ok_or(InferError::UnknownModel { model: model.id })?;
            (l.sup_id, l.name.clone(), l.schema.clone())
        };
        let inputs = inputs.into_inner();
        let named: Vec<(&str, &[u8])> =
            schema.inputs.iter().filter_map(|s| inputs.get(&s.name).map(|t| (s.name.as_str(), t.as_bytes()))).collect();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self.sup.predict_with_deadline(sup_id, &named, deadline.remaining()).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(bytes) = self.sample_memory() {
            self.health.push(HealthEvent::Memory { bytes, domain: None });
        }
        let (fast, slow) = self.sup.reply_lanes();
        self.telemetry.set_helper_replies(fast, slow);
        if let Err(e) = &result {
            if e.killed_helper() {
                self.last_request_death.store(self.epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
            }
        }
        let prediction = result.map_err(infer_error)?;
        for (stage, us) in [
            (Stage::MarshalIn, prediction.marshal_in_us),
            (Stage::Predict, prediction.predict_us),
            (Stage::MarshalOut, prediction.marshal_out_us),
        ] {
            self.telemetry.record_stage(&name, COREML_ENGINE, stage, Duration::from_micros(us));
        }
        let mut out = TensorMap::new();
        for spec in &schema.outputs {
            let o = prediction.output(&spec.name).ok_or_else(|| InferError::Backend {
                message: tagged(FailureKind::SchemaMismatch, format!("no output `{}`", spec.name)),
            })?;
            let shape: Vec<usize> = o.shape().iter().map(|&d| d as usize).collect();
            let t = Tensor::from_bytes(spec.dtype, shape, &o.to_vec())
                .map_err(|e| InferError::Backend { message: tagged(FailureKind::SchemaMismatch, e) })?;
            out.insert(spec.name.clone(), t);
        }
        Ok(out)
    }

    async fn capabilities(&self, model: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        let m = self.models();
        let l = m.get(&model.id).ok_or(CapabilityError::UnknownModel { model: model.id })?;
        let mut r = CapabilityReport::new(COREML_ENGINE, l.device, l.requested, l.actual);
        r.dtypes = l.schema.inputs.iter().map(|s| s.dtype).collect();
        r.max_batch = l.schema.max_batch().max(1);
        r.neural_engine_coverage = l.coverage;
        let snap = self.telemetry.snapshot();
        let p99 = |stage: Stage| {
            snap.model(&l.name)
                .and_then(|s| s.engine(COREML_ENGINE))
                .and_then(|e| e.stages.get(stage.name()))
                .map(|s| Duration::from_micros(s.p99_us))
        };
        r.compile_p99 = p99(Stage::Load);
        r.infer_p99 = p99(Stage::Predict);
        Ok(r)
    }

    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        let l = self.models().remove(&model.id).ok_or(UnloadError::UnknownModel { model: model.id })?;
        self.sup.unload(l.sup_id).await.map_err(|e| UnloadError::Backend { message: e.to_string() })
    }
}
