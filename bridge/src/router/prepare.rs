//! Preparing a routed model: which artifact goes to which engine, the
//! Core ML side first, then Candle, and the schema both accept.
//!
//! ```
//! use coreml_bridge::router::{HINT_CANDLE_ARTIFACT, HINT_COREML_ARTIFACT};
//! // A Core ML artifact (or a `diag:` URI) goes to the primary; the Candle side
//! // comes from a hint, and vice versa.
//! assert_eq!(HINT_CANDLE_ARTIFACT, "router.candle_artifact");
//! assert_eq!(HINT_COREML_ARTIFACT, "router.coreml_artifact");
//! ```
//!
//! Rules: a digest mismatch on either side fails `prepare`; a Core ML side
//! that cannot be prepared (unsupported by the helper, a failed compile or
//! load, a schema the engine cannot carry) leaves this model on Candle (one
//! fallback event with the reason) and every other model where it was;
//! a `.mlpackage` given without a Candle artifact is also the fallback's
//! artifact (the MIL executor of a fallback chain runs it);
//! a Candle side that does not exist (`UnsupportedArchitecture` /
//! `UnsupportedFormat`) leaves the model without a fallback; when neither
//! side can serve, `prepare` fails with `PrepareError::Unavailable` saying
//! why for each.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coreml_inference::{
    CacheKey, InferenceEngine, ModelArtifact, ModelFormat, ModelId, PrepareError, PrepareOptions, PreparedModel,
    Sha256Digest,
};
use tracing::Instrument;

use crate::breaker::trip::FallbackReason;
use crate::breaker::{Breaker, BreakerState};
use crate::router::images::ImageInputs;
use crate::router::primary_side::{spawn_preparation, Preparation, PrimarySide, PrimarySlot};
use crate::router::routed::{intersect_schemas, Routed};
use crate::router::{Router, HINT_CANDLE_ARTIFACT, HINT_COREML_ARTIFACT, HINT_WAIT_FOR_COREML, ROUTER_ENGINE};
use crate::taxonomy::FailureKind;
use crate::telemetry::events::EventKind;
use crate::telemetry::latency::Stage;
use crate::telemetry::stage_span;

pub(crate) fn is_coreml(a: &ModelArtifact) -> bool {
    a.format.is_core_ml() || a.path.to_str().is_some_and(|p| p.starts_with("diag:"))
}

fn artifact_from_hint(path: &str) -> Result<ModelArtifact, PrepareError> {
    if path.starts_with("diag:") {
        return Ok(ModelArtifact::new(ModelFormat::MlPackage, path));
    }
    Ok(ModelArtifact::from_path(path)?)
}

fn model_name(artifact: &ModelArtifact, options: &PrepareOptions) -> String {
    options.model_name.clone().unwrap_or_else(|| {
        let p = artifact.path.to_string_lossy();
        match p.strip_prefix("diag:") {
            Some(rest) => format!("diag-{}", rest.split('?').next().unwrap_or(rest)),
            None => Path::new(&*p).file_stem().map_or_else(|| p.to_string(), |s| s.to_string_lossy().into_owned()),
        }
    })
}

/// A `.mlpackage` with no Candle artifact named is its own fallback
/// artifact: a fallback chain's MIL executor runs the package itself (an
/// engine that cannot take a package says so, and the model has no fallback).
fn package_as_its_own_fallback(artifact: &ModelArtifact) -> Option<ModelArtifact> {
    let diag = artifact.path.to_str().is_some_and(|p| p.starts_with("diag:"));
    (artifact.format == ModelFormat::MlPackage && !diag).then(|| artifact.clone())
}

impl Router {
    pub(crate) async fn prepare_routed(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        let name = model_name(artifact, options);
        let (coreml_art, candle_art) = if is_coreml(artifact) {
            let hinted = options.hint(HINT_CANDLE_ARTIFACT).map(artifact_from_hint).transpose()?;
            (Some(artifact.clone()), hinted.or_else(|| package_as_its_own_fallback(artifact)))
        } else {
            (options.hint(HINT_COREML_ARTIFACT).map(artifact_from_hint).transpose()?, Some(artifact.clone()))
        };
        let options = options.clone().with_model_name(name.clone());
        let images = ImageInputs::from_options(&options).map_err(|message| PrepareError::InvalidModel { message })?;

        // The Core ML side prepares in the background, on its own budgets;
        // `prepare` waits for it only while the fallback prepares and a
        // short grace after (see `RouterBuilder::prepare_grace`).
        let started = Instant::now();
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        let mut slot_guard = None;
        let slot = match (&coreml_art, self.primary_engine()) {
            (None, _) => PrimarySlot::new(PrimarySide::Absent),
            (Some(_), None) => {
                let message = self.primary_down_reason().unwrap_or_default();
                PrimarySlot::new(PrimarySide::Missing(FallbackReason::PrimaryUnavailable { message }))
            }
            (Some(a), Some(engine)) => {
                // A pinned digest that does not match fails `prepare` itself,
                // before anything runs in the background.
                if a.sha256.is_some() && !a.path.to_string_lossy().starts_with("diag:") {
                    a.verify()?;
                }
                let slot = PrimarySlot::new(PrimarySide::Preparing);
                // The caller's budget is the caller's: the background preparation
                // runs within the primary's own compile and load budgets.
                let mut background = options.clone();
                background.prepare_budget = None;
                spawn_preparation(Preparation {
                    slot: slot.clone(),
                    engine,
                    artifact: a.clone(),
                    options: background,
                    name: name.clone(),
                    telemetry: self.telemetry.clone(),
                    self_timed: self.primary_self_timed,
                    fallback_schema: schema_rx,
                });
                // If this call is abandoned or fails, the preparation stops.
                slot_guard = Some(CancelOnDrop(Some(slot.clone())));
                slot
            }
        };

        let mut fallback = None;
        let mut fallback_label = String::new();
        let mut fallback_missing = Some("no Candle artifact given".to_owned());
        if let (Some(a), Some(engine)) = (&candle_art, &self.fallback) {
            let start = Instant::now();
            let span = stage_span(Stage::Load, &name, engine.name());
            match engine.prepare(a, &options).instrument(span).await {
                Ok(m) => {
                    // A chain answers with the report of the member that took
                    // the model: telemetry names that engine (`mil`), not the chain.
                    let report = engine.capabilities(&m).await.ok();
                    let label = report.as_ref().map_or_else(|| engine.name().to_owned(), |r| r.engine.clone());
                    self.telemetry.record_stage(&name, &label, Stage::Load, start.elapsed());
                    if let Some(r) = report {
                        self.telemetry.set_compute_units(
                            &name,
                            &label,
                            r.compute_units_requested,
                            Some(r.compute_units_actual),
                        );
                    }
                    fallback_label = label;
                    fallback = Some(m);
                    fallback_missing = None;
                }
                Err(e @ PrepareError::Artifact(_)) => return Err(e),
                Err(e @ (PrepareError::UnsupportedArchitecture { .. } | PrepareError::UnsupportedFormat { .. })) => {
                    fallback_missing = Some(format!("no Candle implementation: {e}"));
                }
                Err(e) if slot.has_core_ml() => {
                    self.telemetry.record_failure(&name, engine.name(), FailureKind::of_prepare_error(&e));
                    tracing::warn!(target: "coreml_bridge::router", model = %name, "Candle could not prepare the model; no fallback: {e}");
                    fallback_missing = Some(format!("Candle could not prepare it: {e}"));
                }
                Err(e) => return Err(e),
            }
        } else if candle_art.is_some() {
            fallback_missing = Some("no fallback engine configured".to_owned());
        }

        let fallback_name = self.fallback.as_ref().map_or_else(String::new, |f| f.name().to_owned());
        // The fallback's schema as callers see it (image inputs as Core ML takes them).
        let fallback_schema = fallback
            .as_ref()
            .map(|f: &PreparedModel| images.caller_schema(&f.schema))
            .transpose()
            .map_err(|message| PrepareError::InvalidModel { message })?;
        let _ = schema_tx.send(fallback_schema.clone().map(|s| (s, fallback_name)));
        if fallback.is_some() {
            let grace = options
                .hint(HINT_WAIT_FOR_COREML)
                .and_then(|ms| ms.parse().ok())
                .map_or(self.prepare_grace, Duration::from_millis);
            slot.settled(Some(started + grace)).await;
        } else {
            // Nothing else can serve: wait for Core ML (within the caller's budget).
            slot.settled(None).await;
        }
        let side = slot.hand_over();
        let primary = match &side {
            PrimarySide::Ready(m) => Some(m.clone()),
            _ => None,
        };
        let primary_missing = match &side {
            PrimarySide::Missing(r) => Some(r.clone()),
            _ => None,
        };
        let (schema, sla, keys) = match (&primary, &fallback) {
            (Some(p), Some(f)) => (
                intersect_schemas(&p.schema, fallback_schema.as_ref().unwrap_or(&f.schema))
                    .map_err(|m| PrepareError::InvalidModel { message: format!("Core ML and Candle disagree: {m}") })?,
                p.sla,
                format!("{}|{}", p.cache_key.0, f.cache_key.0),
            ),
            (Some(p), None) => (p.schema.clone(), p.sla, p.cache_key.0.clone()),
            (None, Some(f)) => {
                if let Some(reason) = &primary_missing {
                    self.telemetry.event(
                        Some(&name),
                        EventKind::Fallback {
                            from: self.primary_label(),
                            to: fallback_label.clone(),
                            reason: reason.clone(),
                        },
                    );
                }
                let key = match &coreml_art {
                    Some(a) => format!("{}|{}", a.path.display(), f.cache_key.0),
                    None => f.cache_key.0.clone(),
                };
                (fallback_schema.clone().unwrap_or_else(|| f.schema.clone()), f.sla, key)
            }
            (None, None) => {
                let why_primary =
                    primary_missing.as_ref().map_or("no Core ML artifact given".to_owned(), ToString::to_string);
                let why_fallback = fallback_missing.clone().unwrap_or_default();
                return Err(PrepareError::Unavailable {
                    message: format!("no engine can serve `{name}`: {why_primary}; {why_fallback}"),
                });
            }
        };

        let mut cfg = self.breaker.clone();
        cfg.sla_p99 = cfg.sla_p99.or(options.infer_budget);
        let routed = Arc::new(Routed {
            name: name.clone(),
            primary: slot.clone(),
            fallback,
            fallback_missing,
            fallback_label,
            images,
            breaker: Mutex::new(Breaker::new(cfg)),
        });
        if let Some(g) = slot_guard.take() {
            g.disarm();
        }
        if routed.primary.has_core_ml() {
            self.telemetry.set_breaker(&name, BreakerState::Closed, None, self.force.current().contains(&name));
        }
        let id = ModelId(self.next_id.fetch_add(1, Ordering::SeqCst));
        self.models().insert(id, routed);
        Ok(PreparedModel {
            engine: ROUTER_ENGINE.to_owned(),
            id,
            cache_key: CacheKey::derive(ROUTER_ENGINE, &Sha256Digest::of_bytes(keys.as_bytes()), &options),
            schema,
            sla,
        })
    }
}

/// Cancels a background preparation unless disarmed (its model was
/// registered): a `prepare` that fails or is abandoned leaves nothing
/// running.
struct CancelOnDrop(Option<Arc<PrimarySlot>>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.cancel();
        }
    }
}
