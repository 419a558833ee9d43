//! Engine-neutral inference API of coreml-bridge.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use coreml_inference::{
//!     double::DoubleEngine, ComputeUnits, Deadline, InferenceEngine, PrepareOptions, Tensor, TensorMap,
//! };
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! // Any engine (Core ML, Candle, the test double) behind one object-safe trait.
//! let engine: Arc<dyn InferenceEngine> = Arc::new(DoubleEngine::new());
//! let dir = tempfile::tempdir().unwrap();
//! let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap(); // sha256 pinned
//!
//! let model = engine.prepare(&artifact, &PrepareOptions::new(ComputeUnits::CpuAndNe)).await.unwrap();
//! println!("inputs: {:?}, expected p99: {:?}", model.schema.inputs, model.sla.infer_p99);
//!
//! let inputs = TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![0.5f32; 4]).unwrap());
//! let outputs = engine.infer(&model, inputs, Deadline::after(Duration::from_millis(500))).await.unwrap();
//! assert_eq!(outputs.f32("y").unwrap(), &[2.0; 4]);
//!
//! let report = engine.capabilities(&model).await.unwrap();
//! assert_eq!(report.compute_units_requested, ComputeUnits::CpuAndNe);
//! engine.unload(&model).await.unwrap();
//! # });
//! ```
//!
//! * [`InferenceEngine`]: `prepare` / `infer` (with a [`Deadline`]) /
//!   `capabilities` / `unload`, async and object-safe; every engine is
//!   `Send + Sync`. [`BlockingEngine`] wraps any engine for callers without
//!   a runtime.
//! * [`ModelArtifact`] (format, path, sha256) and [`PrepareOptions`] say what
//!   to load and how; [`PreparedModel`] is the handle that comes back, with
//!   its [`IoSchema`], [`CacheKey`] and [`SlaEstimate`].
//! * [`Tensor`] and [`TensorMap`] are owned, row-major and dtype-explicit;
//!   they read and write safetensors files.
//! * Inputs are checked against the schema (name, dtype, rank, each
//!   dimension, byte length, batch) before any engine code runs: engines only
//!   ever see [`Validated`] inputs.
//! * [`double::DoubleEngine`] is an in-process engine for tests and
//!   [`conformance`] the suite every engine runs.
//!
//! No Objective-C or Swift type crosses this crate's boundary.

pub mod artifact;
pub mod blocking;
pub mod capability;
pub mod chain;
pub mod conformance;
mod convert;
pub mod cpu;
pub mod double;
pub mod dtype;
pub mod engine;
pub mod error;
pub mod options;
mod safetensors_io;
pub mod schema;
pub mod tensor;
pub mod tensor_map;

pub use artifact::{ModelArtifact, ModelFormat, Sha256Digest};
pub use async_trait::async_trait;
pub use blocking::BlockingEngine;
pub use capability::{CapabilityReport, DeviceClass, LatencyStats, OpCoverage};
pub use dtype::{DType, Element};
pub use engine::{CacheKey, Deadline, InferenceEngine, ModelId, PreparedModel, SlaEstimate};
pub use error::{
    ArtifactError, CapabilityError, Error, InferError, PrepareError, TensorError, UnloadError,
    ValidationError,
};
pub use options::{ComputeUnits, PrepareOptions};
pub use schema::{Dim, IoSchema, TensorSpec, Validated};
pub use tensor::Tensor;
pub use tensor_map::TensorMap;

/// Compile-time checks: the public types and every engine here are `Send + Sync`,
/// and the trait is object-safe.
const _: () = {
    const fn send_sync<T: Send + Sync + ?Sized>() {}
    send_sync::<Tensor>();
    send_sync::<TensorMap>();
    send_sync::<PreparedModel>();
    send_sync::<Error>();
    send_sync::<dyn InferenceEngine>();
    send_sync::<double::DoubleEngine>();
    send_sync::<BlockingEngine<double::DoubleEngine>>();
    send_sync::<std::sync::Arc<dyn InferenceEngine>>();
};
