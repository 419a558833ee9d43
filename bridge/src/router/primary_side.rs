//! The Core ML side of a routed model: ready, still preparing in the
//! background, or missing (and why). Core ML may take minutes to compile
//! and load a model the first time; meanwhile the fallback serves the
//! model's requests, and they switch to Core ML once it is ready.
//!
//! ```
//! use coreml_bridge::router::primary_side::{PrimarySide, PrimarySlot};
//!
//! let slot = PrimarySlot::new(PrimarySide::Preparing);
//! assert!(slot.has_core_ml() && slot.model().is_none());
//! // Nobody will use the model any more (unloaded, or its `prepare` was
//! // abandoned): a preparation that finishes later is told so and unloads.
//! assert!(slot.cancel().is_none());
//! assert!(!slot.settle(PrimarySide::Missing(coreml_bridge::breaker::trip::FallbackReason::ProbeInFlight)));
//! ```
//!
//! The background preparation itself ([`spawn_preparation`]) runs on the
//! primary's own budgets (the domain's compile and load budgets), not on
//! the caller's clock; it stops when the slot is cancelled.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use coreml_inference::{InferenceEngine, IoSchema, ModelArtifact, PrepareOptions, PreparedModel};
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use crate::breaker::trip::FallbackReason;
use crate::router::routed::intersect_schemas;
use crate::taxonomy::FailureKind;
use crate::telemetry::events::EventKind;
use crate::telemetry::latency::Stage;
use crate::telemetry::{stage_span, Telemetry};

/// Where a model's Core ML side is.
#[derive(Debug, Clone)]
pub enum PrimarySide {
    /// The model has no Core ML side (no Core ML artifact given).
    Absent,
    /// Compiling and loading in the background; the fallback serves.
    Preparing,
    /// Ready: requests go to Core ML (behind the breaker).
    Ready(PreparedModel),
    /// Core ML cannot serve this model: why.
    Missing(FallbackReason),
    /// Nobody will use it any more (unloaded, or its `prepare` abandoned).
    Cancelled,
}

/// A model's [`PrimarySide`], shared with its background preparation.
#[derive(Debug)]
pub struct PrimarySlot(watch::Sender<PrimarySide>, Mutex<bool>);

impl PrimarySlot {
    /// A slot in `side`.
    pub fn new(side: PrimarySide) -> Arc<Self> {
        Arc::new(Self(watch::Sender::new(side), Mutex::new(false)))
    }

    fn handed(&self) -> std::sync::MutexGuard<'_, bool> {
        self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `prepare` call returns with the side as it is now; a later end
    /// of the preparation is announced by the preparation itself.
    pub(crate) fn hand_over(&self) -> PrimarySide {
        let mut h = self.handed();
        *h = true;
        self.get()
    }

    /// [`PrimarySlot::settle`], and whether the `prepare` call had already
    /// returned (the preparation then announces the outcome itself).
    fn settle_after_hand_over(&self, side: PrimarySide) -> (bool, bool) {
        let h = self.handed();
        let settled = self.settle(side);
        (settled, settled && *h)
    }

    /// The side now.
    pub fn get(&self) -> PrimarySide {
        self.0.borrow().clone()
    }

    /// The Core ML model, when ready.
    pub fn model(&self) -> Option<PreparedModel> {
        match &*self.0.borrow() {
            PrimarySide::Ready(m) => Some(m.clone()),
            _ => None,
        }
    }

    /// Whether the model has a Core ML side (ready or still preparing).
    pub fn has_core_ml(&self) -> bool {
        matches!(&*self.0.borrow(), PrimarySide::Ready(_) | PrimarySide::Preparing)
    }

    /// Whether Core ML is still preparing it.
    pub fn is_preparing(&self) -> bool {
        matches!(&*self.0.borrow(), PrimarySide::Preparing)
    }

    /// Why Core ML does not serve it, when it is missing.
    pub fn missing(&self) -> Option<FallbackReason> {
        match &*self.0.borrow() {
            PrimarySide::Missing(r) => Some(r.clone()),
            _ => None,
        }
    }

    /// The end of a preparation: `Preparing` becomes `side`. `false` when
    /// the slot was cancelled meanwhile (the caller then unloads what it
    /// prepared).
    pub fn settle(&self, side: PrimarySide) -> bool {
        let mut settled = false;
        self.0.send_if_modified(|s| {
            if matches!(s, PrimarySide::Preparing) {
                *s = side;
                settled = true;
            }
            settled
        });
        settled
    }

    /// Nobody will use the model any more: a preparation in progress stops
    /// (and unloads what it may still get); a ready model is handed back
    /// to be unloaded.
    pub fn cancel(&self) -> Option<PreparedModel> {
        let mut taken = None;
        self.0.send_if_modified(|s| match std::mem::replace(s, PrimarySide::Cancelled) {
            PrimarySide::Ready(m) => {
                taken = Some(m);
                true
            }
            PrimarySide::Preparing => true,
            other => {
                *s = other;
                false
            }
        });
        taken
    }

    /// Waits until the side is no longer `Preparing`, or until `until`.
    pub async fn settled(&self, until: Option<Instant>) -> PrimarySide {
        let mut rx = self.0.subscribe();
        let wait = rx.wait_for(|s| !matches!(s, PrimarySide::Preparing));
        match until {
            Some(t) => {
                let _ = tokio::time::timeout_at(t.into(), wait).await;
            }
            None => {
                let _ = wait.await;
            }
        }
        self.get()
    }

    async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|s| matches!(s, PrimarySide::Cancelled)).await;
    }
}

/// What a background preparation needs besides the engine.
pub(crate) struct Preparation {
    pub slot: Arc<PrimarySlot>,
    pub engine: Arc<dyn InferenceEngine>,
    pub artifact: ModelArtifact,
    pub options: PrepareOptions,
    pub name: String,
    pub telemetry: Arc<Telemetry>,
    pub self_timed: bool,
    /// The fallback's schema once the fallback is prepared (`None`: no fallback).
    pub fallback_schema: oneshot::Receiver<Option<(IoSchema, String)>>,
}

/// Prepares the Core ML side in the background and settles the slot:
/// `Ready` (schemas agree with the fallback's), or `Missing` with the
/// reason (also logged as a fallback event when it comes after `prepare`
/// returned). A cancelled slot stops it; a model it gets after the slot was
/// cancelled is unloaded.
pub(crate) fn spawn_preparation(p: Preparation) {
    tokio::spawn(async move {
        let Preparation { slot, engine, artifact, options, name, telemetry, self_timed, fallback_schema } = p;
        let start = Instant::now();
        let span = stage_span(Stage::Load, &name, engine.name());
        let prepared = tokio::select! {
            r = engine.prepare(&artifact, &options).instrument(span) => r,
            // Dropping the engine's future ends its preparation (its domain
            // is left, and shut down if empty).
            () = slot.cancelled() => return,
        };
        let engine_name = engine.name().to_owned();
        let model = match prepared {
            Ok(m) => m,
            Err(e) => {
                let kind = FailureKind::of_prepare_error(&e);
                telemetry.record_failure(&name, &engine_name, kind);
                let reason = FallbackReason::PrimaryNotPrepared { kind, message: e.to_string() };
                if slot.settle_after_hand_over(PrimarySide::Missing(reason.clone())).1 {
                    telemetry.event(Some(&name), EventKind::PrimaryNotReady { engine: engine_name, reason });
                }
                return;
            }
        };
        if !self_timed {
            telemetry.record_stage(&name, &engine_name, Stage::Load, start.elapsed());
        }
        telemetry.set_compute_units(&name, &engine_name, options.compute_units, None);
        if let Ok(r) = engine.capabilities(&model).await {
            telemetry.set_compute_units(&name, &engine_name, r.compute_units_requested, Some(r.compute_units_actual));
        }
        let fallback = tokio::select! {
            f = fallback_schema => f.ok(),
            () = slot.cancelled() => None,
        };
        let disagreement = match &fallback {
            // The `prepare` call went away before the fallback was known.
            None => {
                slot.cancel();
                let _ = engine.unload(&model).await;
                return;
            }
            Some(Some((schema, fallback_name))) => intersect_schemas(&model.schema, schema)
                .err()
                .map(|m| format!("Core ML and {fallback_name} disagree on the model's schema: {m}")),
            Some(None) => None,
        };
        if let Some(message) = disagreement {
            let _ = engine.unload(&model).await;
            let kind = FailureKind::SchemaMismatch;
            telemetry.record_failure(&name, &engine_name, kind);
            let reason = FallbackReason::PrimaryNotPrepared { kind, message };
            if slot.settle_after_hand_over(PrimarySide::Missing(reason.clone())).1 {
                telemetry.event(Some(&name), EventKind::PrimaryNotReady { engine: engine_name, reason });
            }
            return;
        }
        let (settled, announce) = slot.settle_after_hand_over(PrimarySide::Ready(model.clone()));
        if !settled {
            let _ = engine.unload(&model).await;
            return;
        }
        if announce {
            let took = crate::telemetry::latency::human_us(u64::try_from(start.elapsed().as_micros()).unwrap_or(0));
            let message = format!("prepared in {took} in the background; it serves the model from now on");
            tracing::info!(target: "coreml_bridge::router", model = name, "{engine_name} {message}");
            telemetry.event(Some(&name), EventKind::PrimaryReady { engine: engine_name, message });
        }
    });
}
