//! Errors: one small enum per operation and one top-level [`Error`].
//!
//! ```
//! use coreml_inference::{Error, InferError, ModelId};
//!
//! let e: Error = InferError::UnknownModel { model: ModelId(7) }.into();
//! assert!(matches!(e, Error::Infer(InferError::UnknownModel { .. })));
//! assert_eq!(e.to_string(), "inference failed: unknown model #7 (never prepared or unloaded)");
//! ```
//!
//! Engine failures that have no better variant carry a message (`Backend`),
//! so errors stay `Clone` and can cross a process boundary.

use std::path::PathBuf;
use std::time::Duration;

use crate::artifact::{ModelFormat, Sha256Digest};
use crate::dtype::DType;
use crate::engine::ModelId;
use crate::schema::Dim;

/// A tensor could not be built, read or converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// Element count does not match the shape.
    #[error("shape wants {expected} elements, got {actual}")]
    ElementCount { expected: usize, actual: usize },
    /// Byte length does not match dtype and shape.
    #[error("dtype and shape want {expected} bytes, got {actual}")]
    ByteLength { expected: usize, actual: usize },
    /// The shape's element count overflows `usize`.
    #[error("shape {shape:?} is too large")]
    ShapeOverflow { shape: Vec<usize> },
    /// A typed access asked for another dtype.
    #[error("tensor is {actual}, asked for {expected}")]
    DTypeMismatch { expected: DType, actual: DType },
    /// No tensor has that name.
    #[error("no tensor named `{name}`")]
    Missing { name: String },
    /// A file holds a dtype this crate does not model.
    #[error("unsupported dtype {0}")]
    UnsupportedDType(String),
    /// A file is not valid safetensors.
    #[error("invalid tensor file: {0}")]
    Format(String),
    /// Reading or writing a file failed.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// Inputs do not match a model's [`IoSchema`](crate::IoSchema). Raised before
/// any engine code runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// An input the schema does not declare.
    #[error("unknown input `{name}` (model takes {expected:?})")]
    UnknownInput { name: String, expected: Vec<String> },
    /// A declared input is absent.
    #[error("missing input `{name}`")]
    MissingInput { name: String },
    /// Wrong dtype.
    #[error("input `{name}` is {actual}, model wants {expected}")]
    DType {
        name: String,
        expected: DType,
        actual: DType,
    },
    /// Wrong number of dimensions.
    #[error("input `{name}` has rank {actual}, model wants {expected}")]
    Rank {
        name: String,
        expected: usize,
        actual: usize,
    },
    /// A dimension out of its allowed value or range.
    #[error("input `{name}` axis {axis} is {actual}, model wants {expected}")]
    Dim {
        name: String,
        axis: usize,
        expected: Dim,
        actual: usize,
    },
    /// Byte length does not match dtype and shape.
    #[error("input `{name}` has {actual} bytes, dtype and shape want {expected}")]
    ByteLength {
        name: String,
        expected: usize,
        actual: usize,
    },
    /// Batch-capable inputs disagree on the batch size.
    #[error("input `{name}` has batch {actual}, other inputs have {expected}")]
    BatchMismatch {
        name: String,
        expected: usize,
        actual: usize,
    },
    /// A value the model's dtype cannot hold (an i64 token id beyond i32).
    #[error("input `{name}` holds {value}, which the model's {dtype} cannot represent")]
    OutOfRange {
        name: String,
        value: i64,
        dtype: DType,
    },
}

/// A model artifact could not be read or did not match its digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// Reading failed.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// The content's sha256 differs from the pinned one.
    #[error("{}: sha256 is {actual}, expected {expected}", path.display())]
    DigestMismatch {
        path: PathBuf,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    /// The format cannot be told from the path.
    #[error("{}: unknown model format (expected .mlpackage, .mlmodel, .mlmodelc, .safetensors or .pth)", path.display())]
    UnknownFormat { path: PathBuf },
    /// A digest string is not 64 hex digits.
    #[error("invalid sha256 `{0}` (expected 64 hex digits)")]
    InvalidDigest(String),
}

/// `prepare` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The artifact could not be read or verified.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// This engine does not take this format.
    #[error("engine `{engine}` cannot load {format} artifacts")]
    UnsupportedFormat { engine: String, format: ModelFormat },
    /// This engine has no implementation of this architecture.
    #[error("engine `{engine}` has no architecture `{architecture}` (known: {known:?})")]
    UnsupportedArchitecture {
        engine: String,
        architecture: String,
        known: Vec<String>,
    },
    /// The artifact is readable but not a valid model of its architecture.
    #[error("invalid model: {message}")]
    InvalidModel { message: String },
    /// Preparation did not finish within its budget.
    #[error("prepare exceeded its budget of {budget:?}")]
    DeadlineExceeded { budget: Duration },
    /// The engine cannot run at all (helper down, platform without Core ML).
    #[error("engine unavailable: {message}")]
    Unavailable { message: String },
    /// Any other engine failure.
    #[error("engine failure: {message}")]
    Backend { message: String },
}

/// `infer` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// Inputs do not match the schema; no engine code ran.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The model handle is not (or no longer) loaded in this engine.
    #[error("unknown model #{} (never prepared or unloaded)", model.0)]
    UnknownModel { model: ModelId },
    /// The handle belongs to another engine.
    #[error("model belongs to engine `{actual}`, not `{expected}`")]
    WrongEngine { expected: String, actual: String },
    /// The deadline passed before outputs were ready.
    #[error("deadline exceeded after {elapsed:?}")]
    DeadlineExceeded { elapsed: Duration },
    /// The engine cannot run at all.
    #[error("engine unavailable: {message}")]
    Unavailable { message: String },
    /// Any other engine failure.
    #[error("engine failure: {message}")]
    Backend { message: String },
}

/// `capabilities` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// The model handle is not loaded in this engine.
    #[error("unknown model #{} (never prepared or unloaded)", model.0)]
    UnknownModel { model: ModelId },
    /// The engine cannot answer.
    #[error("engine unavailable: {message}")]
    Unavailable { message: String },
}

/// `unload` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnloadError {
    /// The model handle is not loaded in this engine.
    #[error("unknown model #{} (never prepared or unloaded)", model.0)]
    UnknownModel { model: ModelId },
    /// Any other engine failure.
    #[error("engine failure: {message}")]
    Backend { message: String },
}

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("prepare failed: {0}")]
    Prepare(#[from] PrepareError),
    #[error("inference failed: {0}")]
    Infer(#[from] InferError),
    #[error("capability query failed: {0}")]
    Capability(#[from] CapabilityError),
    #[error("unload failed: {0}")]
    Unload(#[from] UnloadError),
    #[error("tensor error: {0}")]
    Tensor(#[from] TensorError),
    #[error("artifact error: {0}")]
    Artifact(#[from] ArtifactError),
    #[error("invalid inputs: {0}")]
    Validation(#[from] ValidationError),
    /// A blocking call was made from inside an async runtime, where it would
    /// deadlock or panic; use the async API there.
    #[error("blocking call made from inside an async runtime; use the async API")]
    InsideAsyncRuntime,
    /// The blocking facade could not start its runtime.
    #[error("runtime error: {0}")]
    Runtime(String),
}

/// Shorthand for results of this crate's top-level [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
