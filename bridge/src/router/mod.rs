//! The router: an [`InferenceEngine`] that runs each model on the primary
//! (Core ML) behind the model's circuit breaker and falls back to Candle.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use coreml_bridge::inference::{double::DoubleEngine, Deadline, InferenceEngine, PrepareOptions, Tensor, TensorMap};
//! use coreml_bridge::router::{Router, HINT_COREML_ARTIFACT};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let coreml = Arc::new(DoubleEngine::named("coreml"));
//! let router = Router::builder().primary(coreml.clone()).fallback(Arc::new(DoubleEngine::named("candle"))).build();
//! let dir = tempfile::tempdir().unwrap();
//! let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
//! // The artifact is Candle's; the hint names the Core ML side (the double reads the same file).
//! let options = PrepareOptions::default().with_hint(HINT_COREML_ARTIFACT, artifact.path.to_str().unwrap());
//! let model = router.prepare(&artifact, &options).await.unwrap();
//! let x = || TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![0.0f32; 4]).unwrap());
//! router.infer(&model, x(), Deadline::after(Duration::from_secs(1))).await.unwrap();
//! assert_eq!(router.served_by("affine").as_deref(), Some("coreml"));
//!
//! coreml.fail_next(1); // Core ML fails once: the request is answered by Candle, and an event says why.
//! let y = router.infer(&model, x(), Deadline::after(Duration::from_secs(1))).await.unwrap();
//! assert_eq!(y.f32("y").unwrap(), &[1.0; 4]);
//! assert_eq!(router.served_by("affine").as_deref(), Some("candle"));
//! assert!(router.telemetry().events().recent().last().unwrap().to_string().contains("injected failure"));
//! # });
//! ```
//!
//! Which artifact goes to which engine: a Core ML artifact (`.mlpackage`,
//! `.mlmodel`, `.mlmodelc`, or a `diag:` URI) goes to the primary, any
//! other to the fallback; the other side comes from the hints
//! [`HINT_CANDLE_ARTIFACT`] / [`HINT_COREML_ARTIFACT`] (a path). See
//! docs/router.md for the routing rules.

//! Owns: routing decisions per model ([`Router`]), preparing on both engines
//! (`prepare`), serving a request (`serve`), turning health reports into
//! outages and breaker transitions (`outages`), the per-model state
//! ([`routed`]), requests conformed to a package ([`conform`]), image inputs
//! for the fallback ([`images`]) and the builder. It must not
//! talk to the helper itself: Core ML is only reached through the primary
//! engine, and breaker rules live in [`crate::breaker`].

mod builder;
pub mod conform;
pub mod images;
mod outages;
mod prepare;
pub mod primary_side;
pub mod routed;
mod serve;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coreml_inference::{
    async_trait, CapabilityError, CapabilityReport, Deadline, InferError, InferenceEngine, ModelArtifact, ModelId,
    PrepareError, PrepareOptions, PreparedModel, TensorMap, UnloadError, Validated,
};
use tracing::Instrument;

use crate::breaker::force_enable::ForceSource;
use crate::breaker::{BreakerConfig, BreakerState};
use crate::clock::SharedClock;
use crate::health::HealthBus;
use crate::router::routed::Routed;
use crate::telemetry::latency::Stage;
use crate::telemetry::{stage_span, Telemetry};

pub use crate::router::builder::RouterBuilder;

/// Hint naming the Candle-side artifact of a model prepared from a Core ML artifact.
pub const HINT_CANDLE_ARTIFACT: &str = "router.candle_artifact";
/// Hint naming the Core ML-side artifact of a model prepared from a Candle artifact.
pub const HINT_COREML_ARTIFACT: &str = "router.coreml_artifact";
/// Hint (milliseconds) that makes `prepare` wait up to this long for the
/// Core ML side to be ready or to fail, instead of the router's
/// [`prepare_grace`](RouterBuilder::prepare_grace), when the fallback could
/// serve meanwhile: for a caller that named a Core ML model and makes one
/// request (`coreml-bridge embed --coreml-model`).
pub const HINT_WAIT_FOR_COREML: &str = "router.wait_for_coreml_ms";
/// Time kept back from Core ML's share of a deadline so that the fallback
/// can still answer (at least this, or twice the fallback's expected p99).
pub const MIN_FALLBACK_RESERVE: Duration = Duration::from_millis(50);
/// The router's engine name.
pub const ROUTER_ENGINE: &str = "router";
/// How long `prepare` waits for Core ML after it started, when a fallback
/// is ready to serve meanwhile (see [`RouterBuilder::prepare_grace`]).
pub const DEFAULT_PREPARE_GRACE: Duration = Duration::from_secs(1);

/// The primary engine, or why there is none.
pub(crate) enum Primary {
    Available(Arc<dyn InferenceEngine>),
    /// It cannot run now (an outage); it tries again by itself and says when.
    Down {
        engine: Arc<dyn InferenceEngine>,
        reason: String,
    },
    Unavailable {
        engine: String,
        reason: String,
    },
}

/// See the module docs.
pub struct Router {
    pub(crate) primary: Mutex<Primary>,
    pub(crate) primary_self_timed: bool,
    pub(crate) fallback: Option<Arc<dyn InferenceEngine>>,
    pub(crate) breaker: BreakerConfig,
    pub(crate) clock: SharedClock,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) force: ForceSource,
    pub(crate) health: Option<Arc<HealthBus>>,
    pub(crate) models: Mutex<HashMap<ModelId, Arc<Routed>>>,
    pub(crate) next_id: AtomicU64,
    /// How long `prepare` waits for Core ML when the fallback can serve.
    pub(crate) prepare_grace: Duration,
    /// Isolation domains of the primary that are out now, and why.
    pub(crate) outages: Mutex<std::collections::BTreeMap<String, String>>,
}

impl Router {
    /// A builder.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    pub(crate) fn primary_lock(&self) -> MutexGuard<'_, Primary> {
        self.primary.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn models(&self) -> MutexGuard<'_, HashMap<ModelId, Arc<Routed>>> {
        self.models.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn primary_engine(&self) -> Option<Arc<dyn InferenceEngine>> {
        match &*self.primary_lock() {
            Primary::Available(e) => Some(e.clone()),
            Primary::Down { .. } | Primary::Unavailable { .. } => None,
        }
    }

    /// The primary engine, available or in an outage.
    fn primary_any(&self) -> Option<Arc<dyn InferenceEngine>> {
        match &*self.primary_lock() {
            Primary::Available(e) | Primary::Down { engine: e, .. } => Some(e.clone()),
            Primary::Unavailable { .. } => None,
        }
    }

    /// Why the primary cannot serve now, if it cannot.
    pub(crate) fn primary_down_reason(&self) -> Option<String> {
        match &*self.primary_lock() {
            Primary::Available(_) => None,
            Primary::Down { reason, .. } | Primary::Unavailable { reason, .. } => Some(reason.clone()),
        }
    }

    /// The primary's name while it is available.
    pub fn primary_name(&self) -> Option<String> {
        self.primary_engine().map(|e| e.name().to_owned())
    }

    /// The one-line notice that the primary cannot run, if it cannot.
    pub fn unavailable_notice(&self) -> Option<String> {
        let out = match &*self.primary_lock() {
            Primary::Unavailable { .. } | Primary::Down { .. } => true,
            Primary::Available(_) => !self.outages().is_empty(),
        };
        out.then(|| self.telemetry.notices().into_iter().rev().find(|n| n.contains("unavailable"))).flatten()
    }

    /// Its telemetry.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    fn routed_by_name(&self, name: &str) -> Vec<Arc<Routed>> {
        self.models().values().filter(|r| r.name == name).cloned().collect()
    }

    /// The engine that answered the model's latest request.
    pub fn served_by(&self, model: &str) -> Option<String> {
        self.telemetry.snapshot().model(model).and_then(|m| m.served_by.clone())
    }

    /// The model's breaker state (`None`: no such model, or no primary side).
    pub fn breaker_state(&self, model: &str) -> Option<BreakerState> {
        self.routed_by_name(model).into_iter().find(|r| r.primary.has_core_ml()).map(|r| r.breaker().state())
    }

    /// Re-enables Core ML for `model` now (closes its breaker; a fresh
    /// warm-up follows). Returns whether a breaker was open.
    pub fn force_enable(&self, model: &str) -> bool {
        let now = self.clock.now();
        let mut any = false;
        for r in self.routed_by_name(model) {
            let t = r.breaker().force_close(now);
            if let Some(t) = t {
                any = true;
                self.apply_transitions(&r, vec![t]);
            }
        }
        any
    }
}

#[async_trait]
impl InferenceEngine for Router {
    fn name(&self) -> &str {
        ROUTER_ENGINE
    }

    async fn prepare(&self, artifact: &ModelArtifact, options: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        match options.prepare_budget {
            Some(budget) => tokio::time::timeout(budget, self.prepare_routed(artifact, options))
                .await
                .unwrap_or(Err(PrepareError::DeadlineExceeded { budget })),
            None => self.prepare_routed(artifact, options).await,
        }
    }

    async fn execute(
        &self,
        model: &PreparedModel,
        inputs: Validated,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        let r = self.models().get(&model.id).cloned().ok_or(InferError::UnknownModel { model: model.id })?;
        let start = Instant::now();
        let span = stage_span(Stage::Infer, &r.name, ROUTER_ENGINE);
        let (out, served) = self.route(&r, inputs.into_inner(), deadline).instrument(span).await?;
        self.telemetry.record_stage(&r.name, &served, Stage::Infer, start.elapsed());
        Ok(out)
    }

    async fn capabilities(&self, model: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        let r = self.models().get(&model.id).cloned().ok_or(CapabilityError::UnknownModel { model: model.id })?;
        let primary = r.primary_model();
        let primary_serves = primary.is_some() && r.breaker().state() == BreakerState::Closed;
        let (engine, handle) = match (primary_serves, self.primary_engine(), &primary, &self.fallback, &r.fallback) {
            (true, Some(e), Some(m), _, _) => (e, m.clone()),
            (_, _, _, Some(e), Some(m)) => (e.clone(), m.clone()),
            (_, Some(e), Some(m), _, _) => (e, m.clone()),
            _ => return Err(CapabilityError::Unavailable { message: format!("no engine serves `{}`", r.name) }),
        };
        let mut report = engine.capabilities(&handle).await?;
        report.engine = ROUTER_ENGINE.to_owned();
        report.max_batch = report.max_batch.min(model.schema.max_batch().max(1));
        let snap = self.telemetry.snapshot();
        let p99 = |stage: Stage| {
            snap.model(&r.name)
                .into_iter()
                .flat_map(|m| m.engines.iter())
                .filter_map(|e| e.stages.get(stage.name()))
                .map(|s| Duration::from_micros(s.p99_us))
                .max()
        };
        report.compile_p99 = p99(Stage::Load).or(report.compile_p99);
        report.infer_p99 = p99(Stage::Infer).or(report.infer_p99);
        Ok(report)
    }

    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        let r = self.models().remove(&model.id).ok_or(UnloadError::UnknownModel { model: model.id })?;
        // A preparation still running stops; a ready Core ML model is unloaded.
        if let (Some(e), Some(m)) = (self.primary_any(), r.primary.cancel()) {
            e.unload(&m).await?;
        }
        if let (Some(e), Some(m)) = (&self.fallback, &r.fallback) {
            e.unload(m).await?;
        }
        Ok(())
    }
}
