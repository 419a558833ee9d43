//! The model registry: architectures by name, and the [`CandleModel`] trait
//! every Candle model implements.
//!
//! ```
//! use coreml_candle::registry::Registry;
//!
//! let registry = Registry::builtin();
//! assert!(registry.find("bert").is_some());
//! assert!(registry.find("all-minilm-l6-v2").is_some()); // alias
//! assert!(registry.find("efficientnet-lite0").is_some());
//! assert!(registry.find("vgg16").is_none());
//! ```
//!
//! # Adding a model (part B: ResNet-50, FastViT-T8)
//!
//! 1. Implement [`CandleModel`] for your model type: `schema()` declares the
//!    inputs and outputs (names, dtypes, shapes, batch axis); `forward()`
//!    runs inputs that already passed validation against that schema and
//!    returns every declared output; `example_inputs()` gives a valid input
//!    for warm-up (the engine times it for the SLA estimate).
//! 2. Write a loader `fn load(ctx: &LoadContext) -> Result<Box<dyn CandleModel>, PrepareError>`;
//!    [`LoadContext::var_builder`] gives a `VarBuilder` over the artifact's
//!    safetensors (F32, CPU), [`LoadContext::companion`] finds files next to
//!    it, [`LoadContext::max_batch`] the batch limit to declare.
//! 3. Export `pub fn registration() -> Registration` from your module and add
//!    it to [`crate::models::builtin`] (one line).
//!
//! The engine calls `forward` on a blocking thread (`spawn_blocking`), may
//! call it from several threads at once, and checks outputs against the
//! schema in debug builds. Vision models take `pixel_values: f32[B, 3, H, W]`
//! (already preprocessed, see [`crate::preprocess`]) and return
//! `logits: f32[B, 1000]`.

use std::path::PathBuf;

use candle_core::Device;
use candle_nn::VarBuilder;
use coreml_inference::{
    IoSchema, ModelArtifact, ModelFormat, PrepareError, PrepareOptions, TensorMap,
};

use crate::preprocess::ImagePreprocessor;

/// Default batch limit when `PrepareOptions::max_batch` is unset.
pub const DEFAULT_MAX_BATCH: usize = 8;
/// Hard batch limit of this engine.
pub const MAX_BATCH_LIMIT: usize = 64;

/// A loaded Candle model.
pub trait CandleModel: Send + Sync + 'static {
    /// Inputs and outputs; fixed for the model's life.
    fn schema(&self) -> IoSchema;

    /// Runs validated inputs (CPU-bound; called on a blocking thread).
    fn forward(&self, inputs: &TensorMap) -> candle_core::Result<TensorMap>;

    /// A valid batch-1 input, for warm-up and the SLA estimate.
    fn example_inputs(&self) -> candle_core::Result<TensorMap>;
}

/// What a loader gets.
pub struct LoadContext<'a> {
    /// The artifact (digest already verified).
    pub artifact: &'a ModelArtifact,
    /// The caller's options.
    pub options: &'a PrepareOptions,
    /// Where tensors live (CPU).
    pub device: &'a Device,
}

impl LoadContext<'_> {
    /// A `VarBuilder` over the artifact's safetensors, as F32.
    pub fn var_builder(&self) -> Result<VarBuilder<'static>, PrepareError> {
        if self.artifact.format != ModelFormat::Safetensors {
            return Err(PrepareError::UnsupportedFormat {
                engine: crate::ENGINE_NAME.into(),
                format: self.artifact.format,
            });
        }
        let bytes = std::fs::read(&self.artifact.path).map_err(|e| PrepareError::InvalidModel {
            message: format!("{}: {e}", self.artifact.path.display()),
        })?;
        VarBuilder::from_buffered_safetensors(bytes, candle_core::DType::F32, self.device)
            .map_err(|e| invalid(format!("{}: {e}", self.artifact.path.display())))
    }

    /// A file next to the artifact (`config.json`, `tokenizer.json`); an
    /// `InvalidModel` error naming it if absent.
    pub fn companion(&self, name: &str) -> Result<PathBuf, PrepareError> {
        let p = self.artifact.dir().join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(invalid(format!(
                "{} is missing (expected next to the weights)",
                p.display()
            )))
        }
    }

    /// A JSON companion file, parsed.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, PrepareError> {
        let p = self.companion(name)?;
        let text =
            std::fs::read_to_string(&p).map_err(|e| invalid(format!("{}: {e}", p.display())))?;
        serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", p.display())))
    }

    /// The batch limit to declare in the schema.
    pub fn max_batch(&self) -> usize {
        self.options
            .max_batch
            .unwrap_or(DEFAULT_MAX_BATCH)
            .clamp(1, MAX_BATCH_LIMIT)
    }
}

/// An `InvalidModel` error.
pub fn invalid(message: impl Into<String>) -> PrepareError {
    PrepareError::InvalidModel {
        message: message.into(),
    }
}

/// A loader.
pub type LoadFn = fn(&LoadContext<'_>) -> Result<Box<dyn CandleModel>, PrepareError>;

/// One architecture.
#[derive(Clone)]
pub struct Registration {
    /// Canonical name (`PrepareOptions::architecture`).
    pub architecture: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Builds the model.
    pub load: LoadFn,
    /// How to turn an image into this model's `pixel_values`, for image models.
    pub image_preprocessor: Option<ImagePreprocessor>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("architecture", &self.architecture)
            .field("aliases", &self.aliases)
            .finish_non_exhaustive()
    }
}

/// Architectures by name (case-insensitive, `_` and `-` alike).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<Registration>,
}

fn norm(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in architecture.
    pub fn builtin() -> Self {
        let mut r = Self::new();
        for reg in crate::models::builtin() {
            r.register(reg);
        }
        r
    }

    /// Adds (or replaces, by canonical name) an architecture.
    pub fn register(&mut self, reg: Registration) {
        self.entries.retain(|e| e.architecture != reg.architecture);
        self.entries.push(reg);
    }

    /// The registration answering to `name`.
    pub fn find(&self, name: &str) -> Option<&Registration> {
        let n = norm(name);
        self.entries
            .iter()
            .find(|e| norm(e.architecture) == n || e.aliases.iter().any(|a| norm(a) == n))
    }

    /// Canonical names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| e.architecture.to_owned())
            .collect()
    }
}
