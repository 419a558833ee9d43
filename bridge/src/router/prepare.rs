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
//! a Candle side that does not exist (`UnsupportedArchitecture` /
//! `UnsupportedFormat`) leaves the model without a fallback; when neither
//! side can serve, `prepare` fails with `PrepareError::Unavailable` saying
//! why for each.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use coreml_inference::{
    CacheKey, InferenceEngine, ModelArtifact, ModelFormat, ModelId, PrepareError, PrepareOptions, PreparedModel,
    Sha256Digest,
};
use tracing::Instrument;

use crate::breaker::trip::FallbackReason;
use crate::breaker::{Breaker, BreakerState};
use crate::router::routed::{intersect_schemas, Routed};
use crate::router::{Router, HINT_CANDLE_ARTIFACT, HINT_COREML_ARTIFACT, ROUTER_ENGINE};
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

impl Router {
    pub(crate) async fn prepare_routed(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        let name = model_name(artifact, options);
        let (coreml_art, candle_art) = if is_coreml(artifact) {
            (Some(artifact.clone()), options.hint(HINT_CANDLE_ARTIFACT).map(artifact_from_hint).transpose()?)
        } else {
            (options.hint(HINT_COREML_ARTIFACT).map(artifact_from_hint).transpose()?, Some(artifact.clone()))
        };
        let options = options.clone().with_model_name(name.clone());

        let mut primary = None;
        let mut primary_missing = None;
        if let Some(a) = &coreml_art {
            match self.primary_engine() {
                Some(engine) => {
                    let start = Instant::now();
                    let span = stage_span(Stage::Load, &name, engine.name());
                    match engine.prepare(a, &options).instrument(span).await {
                        Ok(m) => {
                            if !self.primary_self_timed {
                                self.telemetry.record_stage(&name, engine.name(), Stage::Load, start.elapsed());
                            }
                            self.telemetry.set_compute_units(&name, engine.name(), options.compute_units, None);
                            if let Ok(r) = engine.capabilities(&m).await {
                                self.telemetry.set_compute_units(
                                    &name,
                                    engine.name(),
                                    r.compute_units_requested,
                                    Some(r.compute_units_actual),
                                );
                            }
                            primary = Some(m);
                        }
                        Err(e @ PrepareError::Artifact(_)) => return Err(e),
                        Err(e) => {
                            let kind = FailureKind::of_prepare_error(&e);
                            self.telemetry.record_failure(&name, engine.name(), kind);
                            primary_missing = Some(FallbackReason::PrimaryNotPrepared { kind, message: e.to_string() });
                        }
                    }
                }
                None => {
                    let reason = self.primary_down_reason().unwrap_or_default();
                    primary_missing = Some(FallbackReason::PrimaryUnavailable { message: reason });
                }
            }
        }

        let mut fallback = None;
        let mut fallback_missing = Some("no Candle artifact given".to_owned());
        if let (Some(a), Some(engine)) = (&candle_art, &self.fallback) {
            let start = Instant::now();
            let span = stage_span(Stage::Load, &name, engine.name());
            match engine.prepare(a, &options).instrument(span).await {
                Ok(m) => {
                    self.telemetry.record_stage(&name, engine.name(), Stage::Load, start.elapsed());
                    if let Ok(r) = engine.capabilities(&m).await {
                        self.telemetry.set_compute_units(
                            &name,
                            engine.name(),
                            r.compute_units_requested,
                            Some(r.compute_units_actual),
                        );
                    }
                    fallback = Some(m);
                    fallback_missing = None;
                }
                Err(e @ PrepareError::Artifact(_)) => return Err(e),
                Err(e @ (PrepareError::UnsupportedArchitecture { .. } | PrepareError::UnsupportedFormat { .. })) => {
                    fallback_missing = Some(format!("no Candle implementation: {e}"));
                }
                Err(e) if primary.is_some() => {
                    self.telemetry.record_failure(&name, engine.name(), FailureKind::of_prepare_error(&e));
                    tracing::warn!(target: "coreml_bridge::router", model = %name, "Candle could not prepare the model; no fallback: {e}");
                    fallback_missing = Some(format!("Candle could not prepare it: {e}"));
                }
                Err(e) => return Err(e),
            }
        } else if candle_art.is_some() {
            fallback_missing = Some("no fallback engine configured".to_owned());
        }

        let (schema, sla, keys) = match (&primary, &fallback) {
            (Some(p), Some(f)) => (
                intersect_schemas(&p.schema, &f.schema)
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
                            to: f.engine.clone(),
                            reason: reason.clone(),
                        },
                    );
                }
                (f.schema.clone(), f.sla, f.cache_key.0.clone())
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
            primary,
            primary_missing,
            fallback,
            fallback_missing,
            breaker: Mutex::new(Breaker::new(cfg)),
        });
        if routed.primary.is_some() {
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
