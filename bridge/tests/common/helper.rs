//! Router rigs over the fault-injecting test helper (`coreml-test-helper`)
//! through the supervisor, with a Candle-side equivalent of the diagnostic
//! models computed in process (`y = x + c`; `echo`/`sleep` are `c = 0`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coreml_bridge::breaker::force_enable::ForceSource;
use coreml_bridge::breaker::BreakerConfig;
use coreml_bridge::clock::SharedClock;
use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{
    async_trait, CacheKey, CapabilityError, CapabilityReport, ComputeUnits, DType, Deadline, DeviceClass, InferError,
    InferenceEngine, IoSchema, ModelArtifact, ModelId, PrepareError, PrepareOptions, PreparedModel, SlaEstimate,
    Tensor, TensorMap, TensorSpec, UnloadError, Validated,
};
use coreml_bridge::router::{Router, HINT_CANDLE_ARTIFACT};
use coreml_bridge::supervisor::restart::RestartPolicy;
use coreml_bridge::supervisor::{HelperCommand, SupervisorConfig};
use coreml_bridge::telemetry::Telemetry;

/// `target/<profile>/coreml-test-helper`, built on demand.
pub fn test_helper() -> PathBuf {
    if let Some(p) = std::env::var_os("COREML_TEST_HELPER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").to_owned();
    let bin = profile_dir.join("coreml-test-helper");
    if !bin.exists() {
        let target = profile_dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "coreml-test-helper"]).env("CARGO_TARGET_DIR", target);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build -p coreml-test-helper");
        assert!(status.success() && bin.exists(), "could not build {}", bin.display());
    }
    bin
}

/// A supervisor configuration for tests: short deadlines, quick restarts.
/// The Core ML engine over the test helper with [`supervisor_config`], its
/// compiled-model cache in `cache`, fresh telemetry and health bus.
pub async fn diag_engine(cache: &std::path::Path) -> CoreMlEngine {
    let opts = CoreMlOptions { cache_dir: Some(cache.to_owned()), ..Default::default() };
    CoreMlEngine::start(supervisor_config(None), opts, Arc::new(Telemetry::new()), HealthBus::new())
        .await
        .expect("test helper starts")
}

pub fn supervisor_config(memory_limit: Option<u64>) -> SupervisorConfig {
    let mut cfg = SupervisorConfig::new(HelperCommand::new(test_helper()));
    cfg.deadlines.handshake = Duration::from_secs(5);
    cfg.deadlines.load = Duration::from_secs(10);
    cfg.deadlines.compile = Duration::from_secs(10);
    cfg.deadlines.predict = Duration::from_secs(5);
    cfg.restart = RestartPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_restarts: 200,
        window: Duration::from_secs(60),
    };
    cfg.arena.region_size = 4 << 20;
    cfg.arena.max_total = 64 << 20;
    cfg.memory_limit = memory_limit;
    cfg.memory_poll = Duration::from_millis(10);
    cfg.sandbox = cfg.sandbox.read_write(std::env::temp_dir());
    cfg
}

/// The Candle-side equivalent of `diag:add?c=C&shape=4` (and of echo/sleep with C = 0).
pub struct AddEngine {
    next: AtomicU64,
    loaded: Mutex<Vec<(ModelId, f32)>>,
    pub calls: AtomicU64,
}

pub const WIDTH: usize = 4;

impl AddEngine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { next: AtomicU64::new(1), loaded: Mutex::new(Vec::new()), calls: AtomicU64::new(0) })
    }

    /// Writes the "weights" (`c`) of the Candle side.
    pub fn write_artifact(dir: &std::path::Path, c: f32) -> PathBuf {
        let p = dir.join(format!("add-{c}.safetensors"));
        TensorMap::new().with("c", Tensor::new(vec![1], vec![c]).unwrap()).write_safetensors(&p).unwrap();
        p
    }

    fn schema() -> IoSchema {
        IoSchema::new(
            vec![TensorSpec::fixed("x", DType::F32, &[WIDTH])],
            vec![TensorSpec::fixed("y", DType::F32, &[WIDTH])],
        )
    }
}

#[async_trait]
impl InferenceEngine for AddEngine {
    fn name(&self) -> &str {
        "candle"
    }
    async fn prepare(&self, a: &ModelArtifact, o: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        let w =
            TensorMap::read_safetensors(&a.path).map_err(|e| PrepareError::InvalidModel { message: e.to_string() })?;
        let c = w.f32("c").map_err(|e| PrepareError::InvalidModel { message: e.to_string() })?[0];
        let id = ModelId(self.next.fetch_add(1, Ordering::SeqCst));
        self.loaded.lock().unwrap().push((id, c));
        let d = Duration::from_micros(50);
        // A pessimistic p99 so that the router keeps 200 ms of each deadline
        // for this engine when Core ML times out (robust on a loaded machine).
        Ok(PreparedModel {
            engine: "candle".into(),
            id,
            cache_key: CacheKey::derive("candle", &a.compute_sha256()?, o),
            schema: Self::schema(),
            sla: SlaEstimate { prepare_time: d, infer_p50: d, infer_p99: Duration::from_millis(100) },
        })
    }
    async fn execute(&self, m: &PreparedModel, x: Validated, _: Deadline) -> Result<TensorMap, InferError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let c = self.loaded.lock().unwrap().iter().find(|(id, _)| *id == m.id).map(|(_, c)| *c);
        let c = c.ok_or(InferError::UnknownModel { model: m.id })?;
        let xs = x.inputs().f32("x").map_err(|e| InferError::Backend { message: e.to_string() })?;
        let ys: Vec<f32> = xs.iter().map(|v| v + c).collect();
        Ok(TensorMap::new().with("y", Tensor::new(vec![WIDTH], ys).unwrap()))
    }
    async fn capabilities(&self, m: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        let mut r = CapabilityReport::new("candle", DeviceClass::Cpu, ComputeUnits::All, ComputeUnits::CpuOnly);
        r.dtypes = vec![DType::F32];
        let _ = m;
        Ok(r)
    }
    async fn unload(&self, m: &PreparedModel) -> Result<(), UnloadError> {
        self.loaded.lock().unwrap().retain(|(id, _)| *id != m.id);
        Ok(())
    }
}

/// Another model prepared on a rig's router.
pub struct Other {
    pub model: PreparedModel,
    pub name: String,
    pub c: f32,
}

/// A router over the test helper and [`AddEngine`], with one model prepared.
pub struct HelperRig {
    pub router: Router,
    pub candle: Arc<AddEngine>,
    pub model: PreparedModel,
    pub name: String,
    pub c: f32,
    pub engine: Arc<CoreMlEngine>,
    pub _dir: tempfile::TempDir,
}

pub struct RigOptions {
    pub uri: String,
    pub c: f32,
    pub breaker: BreakerConfig,
    pub memory_limit: Option<u64>,
    pub force: ForceSource,
    pub clock: Option<SharedClock>,
    /// Adjusts the supervisor and engine configuration before the start.
    pub tune: Option<fn(&mut SupervisorConfig, &mut CoreMlOptions)>,
}

impl RigOptions {
    pub fn new(uri: &str, c: f32) -> Self {
        Self {
            uri: uri.into(),
            c,
            breaker: BreakerConfig::default(),
            memory_limit: None,
            force: ForceSource::Env,
            clock: None,
            tune: None,
        }
    }
}

impl HelperRig {
    pub async fn start(o: RigOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Arc::new(match &o.clock {
            Some(c) => Telemetry::with_clock(c.clone()),
            None => Telemetry::new(),
        });
        let health = HealthBus::new();
        let mut opts = CoreMlOptions { cache_dir: Some(dir.path().join("cache")), ..Default::default() };
        let mut cfg = supervisor_config(o.memory_limit);
        if let Some(tune) = o.tune {
            tune(&mut cfg, &mut opts);
        }
        let engine =
            Arc::new(CoreMlEngine::start(cfg, opts, telemetry.clone(), health.clone()).await.expect("helper starts"));
        let candle = AddEngine::new();
        let mut b = Router::builder()
            .primary(engine.clone())
            .primary_self_timed()
            .fallback(candle.clone())
            .breaker(o.breaker)
            .telemetry(telemetry)
            .health(health)
            .force_source(o.force)
            // These rigs test what happens once Core ML serves: `prepare` waits
            // for it (a loaded machine can take more than the default grace).
            .prepare_grace(Duration::from_secs(30));
        if let Some(c) = o.clock {
            b = b.clock(c);
        }
        let router = b.build();
        let candle_art = AddEngine::write_artifact(dir.path(), o.c);
        let name = format!("diag-{}", o.uri.trim_start_matches("diag:").split('?').next().unwrap());
        let options = PrepareOptions::new(ComputeUnits::CpuAndNe)
            .with_model_name(name.clone())
            .with_hint(HINT_CANDLE_ARTIFACT, candle_art.to_str().unwrap());
        let artifact = ModelArtifact::new(coreml_bridge::inference::ModelFormat::MlPackage, o.uri.clone());
        let model = router.prepare(&artifact, &options).await.expect("prepare");
        HelperRig { router, candle, model, name, c: o.c, engine, _dir: dir }
    }

    /// One request; checks y = x + c whoever served, returns who served.
    pub async fn infer(&self, i: f32, budget: Duration) -> String {
        self.infer_on(&Other { model: self.model.clone(), name: self.name.clone(), c: self.c }, i, budget)
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"))
    }

    /// Prepares another model on the same router (its Candle side `y = x + c`).
    pub async fn prepare_other(&self, uri: &str, name: &str, c: f32) -> Other {
        let candle_art = AddEngine::write_artifact(self._dir.path(), c);
        let options = PrepareOptions::new(ComputeUnits::CpuAndNe)
            .with_model_name(name)
            .with_hint(HINT_CANDLE_ARTIFACT, candle_art.to_str().unwrap());
        let artifact = ModelArtifact::new(coreml_bridge::inference::ModelFormat::MlPackage, uri);
        let model = self.router.prepare(&artifact, &options).await.expect("prepare");
        Other { model, name: name.into(), c }
    }

    /// One request on `m`; checks y = x + c whoever served, returns who served.
    pub async fn infer_on(&self, m: &Other, i: f32, budget: Duration) -> Result<String, InferError> {
        let x = TensorMap::new().with("x", Tensor::new(vec![WIDTH], vec![i, i + 1.0, i + 2.0, i + 3.0]).unwrap());
        let y = self.router.infer(&m.model, x, Deadline::after(budget)).await?;
        let want: Vec<f32> = (0..WIDTH).map(|k| i + k as f32 + m.c).collect();
        assert_eq!(y.f32("y").unwrap(), want.as_slice(), "correct output");
        Ok(self.router.served_by(&m.name).unwrap())
    }

    pub fn events(&self) -> Vec<String> {
        self.router.telemetry().events().recent().iter().map(ToString::to_string).collect()
    }

    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }
}
