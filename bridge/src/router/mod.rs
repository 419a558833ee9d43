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
//! (`prepare`), the per-model state ([`routed`]) and the builder. It must not
//! talk to the helper itself: Core ML is only reached through the primary
//! engine, and breaker rules live in [`crate::breaker`].

mod builder;
pub mod conform;
pub mod images;
mod prepare;
pub mod primary_side;
pub mod routed;

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
use crate::breaker::trip::FallbackReason;
use crate::breaker::{Admission, BreakerConfig, BreakerState, Outcome, Ticket, Transition};
use crate::clock::SharedClock;
use crate::health::{DomainScope, HealthBus, HealthEvent};
use crate::router::conform::Conformed;
use crate::router::routed::Routed;
use crate::taxonomy::{reached_helper, FailureKind};
use crate::telemetry::events::EventKind;
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

    fn apply_transitions(&self, r: &Routed, transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        for t in transitions {
            self.telemetry.event(Some(&r.name), EventKind::Breaker { transition: t });
        }
        let (state, trip) = {
            let b = r.breaker();
            (b.state(), b.last_trip().cloned())
        };
        self.telemetry.set_breaker(&r.name, state, trip, self.force.current().contains(&r.name));
    }

    fn drain_health(&self) {
        let Some(bus) = &self.health else { return };
        let now = self.clock.now();
        for e in bus.drain() {
            // The models on the helper the report is about: its domain, or every Core ML model.
            let on_helper = |domain: &Option<DomainScope>| -> Vec<Arc<Routed>> {
                self.models()
                    .values()
                    .filter(|r| r.primary.model().is_some() && domain.as_ref().is_none_or(|d| d.contains(&r.name)))
                    .cloned()
                    .collect()
            };
            let targets: Vec<Arc<Routed>> = match &e {
                HealthEvent::Memory { bytes, domain } => {
                    self.telemetry.record_helper_memory(*bytes);
                    let limit = domain.as_ref().and_then(|d| d.memory_limit).or(self.breaker.memory_limit);
                    if let Some(limit) = limit.filter(|l| bytes > l) {
                        self.telemetry.event(None, EventKind::HelperMemory { bytes: *bytes, limit });
                    }
                    on_helper(domain)
                }
                HealthEvent::Crash { model: Some(m), .. } => self.routed_by_name(m),
                HealthEvent::Crash { model: None, domain, .. } => on_helper(domain),
                HealthEvent::Restarted { detail } => {
                    self.telemetry.record_helper_restart(detail.clone());
                    Vec::new()
                }
                HealthEvent::Outage { reason, next_try_in, domain: None } => {
                    self.primary_down(reason, *next_try_in);
                    Vec::new()
                }
                HealthEvent::Recovered { detail, domain: None } => {
                    self.primary_back(detail);
                    Vec::new()
                }
                HealthEvent::Outage { reason, next_try_in, domain: Some(d) } => {
                    self.domain_down(d, reason, *next_try_in);
                    Vec::new()
                }
                HealthEvent::Recovered { detail, domain: Some(d) } => {
                    self.domain_back(d, detail);
                    Vec::new()
                }
            };
            for r in targets {
                let t = match &e {
                    HealthEvent::Memory { bytes, domain } => {
                        r.breaker().record_memory_within(*bytes, domain.as_ref().and_then(|d| d.memory_limit), now)
                    }
                    _ => r.breaker().record_crash(now),
                };
                self.apply_transitions(&r, t);
            }
        }
    }

    /// An outage of the primary: every model goes to the fallback, without
    /// blame, until [`HealthEvent::Recovered`]. Said once per outage, with
    /// when the next try is.
    fn primary_down(&self, reason: &str, next_try_in: Duration) {
        let mut p = self.primary_lock();
        let engine = match &*p {
            Primary::Available(e) | Primary::Down { engine: e, .. } => e.clone(),
            Primary::Unavailable { .. } => return,
        };
        let was_up = matches!(&*p, Primary::Available(_));
        let name = engine.name().to_owned();
        *p = Primary::Down { engine, reason: reason.to_owned() };
        drop(p);
        let next = crate::telemetry::latency::human_us(u64::try_from(next_try_in.as_micros()).unwrap_or(u64::MAX));
        let reason = format!("{reason}; next try in {next}");
        if was_up {
            self.announce_unavailable(&name, &reason);
        } else {
            tracing::info!(target: "coreml_bridge::router", engine = name, "{name} still unavailable: {reason}");
            self.telemetry.notice(format!("{name} still unavailable ({reason})"));
        }
    }

    /// An outage of one isolation domain: its models' requests fail fast
    /// (they never reach a helper, so no breaker is blamed) and go to the
    /// fallback; said once per outage, with when the next try is.
    fn domain_down(&self, d: &DomainScope, reason: &str, next_try_in: Duration) {
        let name = self.primary_label();
        let next = crate::telemetry::latency::human_us(u64::try_from(next_try_in.as_micros()).unwrap_or(u64::MAX));
        let first = self.outages().insert(d.name.clone(), reason.to_owned()).is_none();
        let models = d.models.join(", ");
        let why = format!("{reason}; next try in {next}");
        if first {
            let fallback = self.fallback.as_ref().map_or("nothing", |f| f.name());
            let line = format!("{name} unavailable for domain `{}` ({why}): {fallback} serves {models}", d.name);
            tracing::warn!(target: "coreml_bridge::router", domain = d.name, "{line}");
            self.telemetry.notice(line);
            self.telemetry.event(
                None,
                EventKind::PrimaryUnavailable { engine: format!("{name} (domain `{}`)", d.name), message: why },
            );
        } else {
            self.telemetry.notice(format!("{name} still unavailable for domain `{}` ({why})", d.name));
        }
    }

    /// A domain runs again after an outage.
    fn domain_back(&self, d: &DomainScope, detail: &str) {
        if self.outages().remove(&d.name).is_none() {
            return;
        }
        let name = self.primary_label();
        let message = format!("domain `{}`: {detail}", d.name);
        tracing::info!(target: "coreml_bridge::router", domain = d.name, "{name} available again: {message}");
        self.telemetry.notice(format!("{name} available again: {message}"));
        self.telemetry.event(None, EventKind::PrimaryRecovered { engine: name, message });
    }

    fn outages(&self) -> MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.outages.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The primary runs again after an outage.
    fn primary_back(&self, detail: &str) {
        let mut p = self.primary_lock();
        let Primary::Down { engine, .. } = &*p else { return };
        let engine = engine.clone();
        let name = engine.name().to_owned();
        *p = Primary::Available(engine);
        drop(p);
        tracing::info!(target: "coreml_bridge::router", engine = name, "{name} available again: {detail}");
        self.telemetry.notice(format!("{name} available again: {detail}"));
        self.telemetry.event(None, EventKind::PrimaryRecovered { engine: name, message: detail.to_owned() });
    }

    pub(crate) fn primary_label(&self) -> String {
        match &*self.primary_lock() {
            Primary::Available(e) | Primary::Down { engine: e, .. } => e.name().to_owned(),
            Primary::Unavailable { engine, .. } => engine.clone(),
        }
    }

    /// One attempt on one engine (with the name telemetry gives it), timed and counted.
    async fn attempt(
        &self,
        name: &str,
        (engine, label): (&Arc<dyn InferenceEngine>, &str),
        model: &PreparedModel,
        inputs: TensorMap,
        deadline: Deadline,
        self_timed: bool,
    ) -> (Result<TensorMap, InferError>, Duration) {
        let start = Instant::now();
        let span = stage_span(Stage::Predict, name, label);
        let result = engine.infer(model, inputs, deadline).instrument(span).await;
        let took = start.elapsed();
        if !self_timed {
            self.telemetry.record_stage(name, label, Stage::Predict, took);
        }
        let counted = result.as_ref().map(|_| ()).map_err(FailureKind::of_infer_error);
        self.telemetry.record_inference(name, label, counted);
        (result, took)
    }

    /// The primary's attempts at the parts of a conformed request (one per
    /// row when a batch was split), joined into one answer.
    async fn attempt_conformed(
        &self,
        name: &str,
        engine: &Arc<dyn InferenceEngine>,
        model: &PreparedModel,
        mut conformed: Conformed,
        deadline: Deadline,
    ) -> (Result<TensorMap, InferError>, Duration) {
        let timed = self.primary_self_timed;
        let parts = std::mem::take(&mut conformed.parts);
        let (mut answers, mut took) = (Vec::with_capacity(parts.len()), Duration::ZERO);
        for part in parts {
            let (result, t) = self.attempt(name, (engine, engine.name()), model, part, deadline, timed).await;
            took += t;
            match result {
                Ok(a) => answers.push(a),
                Err(e) => return (Err(e), took),
            }
        }
        (conformed.join(answers), took)
    }

    async fn run_fallback(
        &self,
        r: &Routed,
        inputs: TensorMap,
        deadline: Deadline,
        reason: Option<FallbackReason>,
    ) -> Result<(TensorMap, String), InferError> {
        let (Some(engine), Some(model)) = (&self.fallback, &r.fallback) else {
            let why = reason.map_or_else(|| "no engine".to_owned(), |r| r.to_string());
            let message =
                format!("model `{}`: {why}; {}", r.name, r.fallback_missing.as_deref().unwrap_or("no fallback"));
            self.telemetry.event(Some(&r.name), EventKind::NoFallback { message: message.clone() });
            return Err(InferError::Unavailable { message });
        };
        let label = r.fallback_label.as_str();
        if let Some(reason) = reason {
            self.telemetry.record_fallback(&r.name, &self.primary_label(), label, reason);
        }
        // Images come as Core ML takes them; Candle gets them preprocessed as the model does.
        let inputs = r.images.to_candle(inputs)?;
        let (result, _) = self.attempt(&r.name, (engine, label), model, inputs, deadline, false).await;
        if result.is_ok() {
            self.telemetry.record_served(&r.name, label);
        }
        result.map(|out| (out, label.to_owned()))
    }

    async fn route(
        &self,
        r: &Routed,
        inputs: TensorMap,
        deadline: Deadline,
    ) -> Result<(TensorMap, String), InferError> {
        self.drain_health();
        if r.primary.is_preparing() && r.fallback.is_none() {
            // Nothing else can serve it: wait for Core ML, within the deadline.
            r.primary.settled(Some(deadline.instant())).await;
        }
        let primary_model = r.primary_model();
        let (Some(engine), Some(model)) = (self.primary_engine(), primary_model.as_ref()) else {
            // No Core ML side, Core ML still preparing it, or Core ML is out:
            // counted as a fallback (the event was logged once, at prepare,
            // when the outage began, or when the preparation failed).
            let down = primary_model.as_ref().and(self.primary_down_reason());
            let reason = match down {
                Some(message) => Some(FallbackReason::PrimaryUnavailable { message }),
                None if r.primary.is_preparing() => Some(FallbackReason::PrimaryPreparing),
                None => r.primary_missing(),
            };
            if let (Some(reason), Some(_)) = (&reason, &self.fallback) {
                self.telemetry.count_fallback(&r.name, &self.primary_label(), reason);
            }
            let said = if self.fallback.is_none() { reason } else { None };
            return self.run_fallback(r, inputs, deadline, said).await;
        };
        // The request in the package's form (ids narrowed, sequences padded,
        // a batch split into rows): before the breaker, so a request Core ML
        // cannot take blames nobody and goes to the fallback.
        let keep = r.fallback.as_ref().map(|_| inputs.clone());
        let conformed = match Conformed::to(&model.schema, inputs) {
            Ok(c) => c,
            Err(e) => {
                let Some(inputs) = keep else { return Err(InferError::Invalid(e)) };
                let message = format!("the Core ML model cannot take this request: {e}");
                let reason = FallbackReason::PrimaryFailed { kind: FailureKind::SchemaMismatch, message };
                return self.run_fallback(r, inputs, deadline, Some(reason)).await;
            }
        };
        let forced = self.force.current().contains(&r.name);
        let (admission, transitions) = r.breaker().admit(self.clock.now(), forced);
        self.apply_transitions(r, transitions);
        let ticket = match admission {
            // (Without a fallback `keep` is empty: `run_fallback` only says there is none.)
            Admission::Fallback { reason } => {
                return self.run_fallback(r, keep.unwrap_or_default(), deadline, Some(reason)).await;
            }
            // Given back if this future is dropped before the outcome is known.
            Admission::Primary { ticket } => TicketGuard { routed: r, ticket: Some(ticket) },
        };
        let mut ticket = ticket;
        // Leave the fallback time to answer if Core ML fails.
        let reserve = match &r.fallback {
            Some(f) => (f.sla.infer_p99 * 2).max(MIN_FALLBACK_RESERVE).min(deadline.remaining() / 2),
            None => Duration::ZERO,
        };
        let primary_deadline = Deadline::after(deadline.remaining().saturating_sub(reserve));
        let (result, took) = self.attempt_conformed(&r.name, &engine, model, conformed, primary_deadline).await;
        let outcome = match &result {
            Ok(_) => Some(Outcome::success(took)),
            // It never reached the helper (it waited in the queue or for a
            // restart, or Core ML is out): not this model's doing.
            Err(e) if !reached_helper(e) => None,
            Err(e) => Some(Outcome::failure(FailureKind::of_infer_error(e), took)),
        };
        if let Some(outcome) = outcome {
            let transitions = ticket.record(outcome, self.clock.now());
            self.apply_transitions(r, transitions);
        }
        drop(ticket);
        self.drain_health();
        match result {
            Ok(out) => {
                self.telemetry.record_served(&r.name, engine.name());
                Ok((out, engine.name().to_owned()))
            }
            Err(e) => {
                let kind = FailureKind::of_infer_error(&e);
                match keep {
                    Some(inputs) => {
                        let reason = FallbackReason::PrimaryFailed { kind, message: e.to_string() };
                        self.run_fallback(r, inputs, deadline, Some(reason)).await
                    }
                    None => {
                        let message = format!(
                            "model `{}`: Core ML failed ({kind}): {e}; {}",
                            r.name,
                            r.fallback_missing.as_deref().unwrap_or("no fallback")
                        );
                        self.telemetry.event(Some(&r.name), EventKind::NoFallback { message });
                        Err(e)
                    }
                }
            }
        }
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

/// A breaker ticket held while a request is on the primary. Dropped without
/// an outcome (the caller gave up: a `tokio::time::timeout`, a client that
/// disconnected), it is given back, so a half-open breaker never waits for a
/// probe nobody will finish.
struct TicketGuard<'a> {
    routed: &'a Routed,
    ticket: Option<Ticket>,
}

impl TicketGuard<'_> {
    fn record(&mut self, outcome: Outcome, now: Duration) -> Vec<Transition> {
        match self.ticket.take() {
            Some(t) => self.routed.breaker().record(t, outcome, now),
            None => Vec::new(),
        }
    }
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.routed.breaker().release(t);
        }
    }
}
