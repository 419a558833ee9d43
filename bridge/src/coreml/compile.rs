//! Compiling for the Core ML engine: `diag:` URIs go through the helper's
//! `Compile` as they are; `.mlmodelc` bundles are loaded as they are;
//! `.mlpackage` / `.mlmodel` sources are compiled once per cache key and
//! installed into the [`ModelCache`](crate::coreml::model_cache::ModelCache).
//!
//! ```
//! use coreml_bridge::coreml::model_cache::CompileKey;
//! let k = CompileKey {
//!     source_sha256: "00".repeat(32),
//!     coreml_version: "8.0".into(),
//!     compute_units: "all".into(),
//!     quantization: "unspecified".into(),
//!     shape_key: "default".into(),
//!     os_build: "24A335".into(),
//! };
//! assert!(k.full("mlprogram").contains(":8.0:mlprogram:all:"));
//! ```

use std::time::{Duration, Instant};

use coreml_inference::{ArtifactError, ModelArtifact, PrepareError, PrepareOptions, Sha256Digest};

use crate::coreml::convert::{prepare_error, units_to_wire};
use crate::coreml::engine::{CoreMlEngine, COREML_ENGINE};
use crate::coreml::model_cache::CompileKey;
use crate::taxonomy::{tagged, FailureKind};
use crate::telemetry::latency::Stage;
use crate::telemetry::stage_span;

/// Runs a future inside the stage's span.
pub(crate) trait InstrumentStage: Sized {
    fn instrument_stage(self, stage: Stage, model: &str) -> tracing::instrument::Instrumented<Self>;
}

impl<F: std::future::Future> InstrumentStage for F {
    fn instrument_stage(self, stage: Stage, model: &str) -> tracing::instrument::Instrumented<Self> {
        tracing::Instrument::instrument(self, stage_span(stage, model, COREML_ENGINE))
    }
}

impl CoreMlEngine {
    /// Compiles (or finds in the cache) and returns the bundle to load.
    pub(crate) async fn bundle_for(
        &self,
        sup: &coreml_supervisor::Supervisor,
        name: &str,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
        deadline: Instant,
    ) -> Result<String, PrepareError> {
        let budget = deadline.saturating_duration_since(Instant::now());
        let source = artifact.path.to_string_lossy().into_owned();
        let diag = source.starts_with("diag:");
        if !diag && artifact.format == coreml_inference::ModelFormat::MlModelC {
            artifact.verify()?;
            return Ok(source);
        }
        let digest = if diag {
            // A `diag:` URI is its own content: a pinned digest must be the URI's.
            let d = Sha256Digest::of_bytes(source.as_bytes());
            match artifact.sha256 {
                Some(expected) if expected != d => {
                    return Err(
                        ArtifactError::DigestMismatch { path: artifact.path.clone(), expected, actual: d }.into()
                    )
                }
                _ => d,
            }
        } else {
            artifact.verify()?
        };
        let hello = sup.hello();
        let key = CompileKey {
            source_sha256: digest.to_string(),
            coreml_version: hello.as_ref().and_then(|h| h.coreml_version.clone()).unwrap_or_else(|| "none".into()),
            compute_units: options.compute_units.name().into(),
            quantization: options.hint("quantization").unwrap_or("unspecified").into(),
            shape_key: options.hint("shape_key").unwrap_or("default").into(),
            os_build: hello.map(|h| h.os_build).unwrap_or_default(),
        };
        if let Some(hit) = self.cache.lookup(&key).filter(|_| !diag) {
            tracing::debug!(target: "coreml_bridge::coreml", model = name, key = hit.key, "compiled model found in cache");
            return Ok(hit.bundle.to_string_lossy().into_owned());
        }
        // Within what is left of the prepare budget and the domain's compile
        // budget: past it the supervisor kills this domain's helper.
        let left = deadline.saturating_duration_since(Instant::now());
        let compiled = sup
            .compile_with_deadline(&source, Some(units_to_wire(options.compute_units)), left)
            .instrument_stage(Stage::Compile, name)
            .await
            .map_err(|e| {
                self.telemetry.record_failure(name, COREML_ENGINE, crate::coreml::convert::failure_kind(&e));
                prepare_error(e, budget)
            })?;
        self.telemetry.record_stage(name, COREML_ENGINE, Stage::Compile, Duration::from_micros(compiled.compile_us));
        if compiled.bundle_path.starts_with("diag:") {
            return Ok(compiled.bundle_path);
        }
        // The helper named this path: it must lie inside the staging directory it
        // was given (docs/protocol.md, Compiled), or nothing is moved.
        let staged = self.cache.confine(std::path::Path::new(&compiled.bundle_path)).map_err(|e| {
            self.telemetry.record_failure(name, COREML_ENGINE, FailureKind::ProtocolViolation);
            PrepareError::Backend { message: tagged(FailureKind::ProtocolViolation, format!("helper's Compiled: {e}")) }
        })?;
        let backend = format!("{:?}", compiled.backend).to_ascii_lowercase();
        let installed = self.cache.install(&key, &backend, &staged).map_err(|e| PrepareError::Backend {
            message: tagged(FailureKind::CompileError, format!("installing the compiled model: {e}")),
        })?;
        Ok(installed.to_string_lossy().into_owned())
    }
}
