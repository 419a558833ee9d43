//! coreml-bridge: the crate apps link. Core ML (through the supervised,
//! sandboxed helper) first, Candle on the CPU as ground truth and fallback,
//! with a per-model circuit breaker and telemetry that make every decision
//! visible.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use coreml_bridge::inference::{double::DoubleEngine, Deadline, InferenceEngine, PrepareOptions, Tensor, TensorMap};
//! use coreml_bridge::router::Router;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // No Core ML here: the router says so once and Candle (a double in this example) serves.
//! let router = Router::builder()
//!     .primary_unavailable("coreml", "no helper binary (COREML_HELPER is unset)")
//!     .fallback(Arc::new(DoubleEngine::named("candle")))
//!     .build();
//! let dir = tempfile::tempdir().unwrap();
//! let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
//! let model = router.prepare(&artifact, &PrepareOptions::default().with_model_name("affine")).await.unwrap();
//! let x = TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![0.0f32; 4]).unwrap());
//! let y = router.infer(&model, x, Deadline::after(Duration::from_secs(1))).await.unwrap();
//! assert_eq!(y.f32("y").unwrap(), &[1.0; 4]);
//! assert_eq!(router.telemetry().snapshot().model("affine").unwrap().served_by.as_deref(), Some("candle"));
//! println!("{}", router.telemetry().snapshot().table());
//! # });
//! ```
//!
//! * [`router::Router`] implements [`inference::InferenceEngine`]: per model,
//!   Core ML first and Candle as fallback, behind a [`breaker::Breaker`].
//! * [`telemetry::Telemetry`] counts and times every stage; its
//!   [`telemetry::snapshot::Snapshot`] renders as JSON, a table or Prometheus text.
//! * [`coreml::engine::CoreMlEngine`] runs models in the supervised helper;
//!   [`setup::router_from_env`] builds the default router (Core ML when
//!   `COREML_HELPER` names a helper that has it, else Candle alone, said once).
//! * The engine crates are re-exported: [`inference`] (the API),
//!   [`supervisor`], and `candle` (feature `candle`, on by default). The
//!   supervisor crate itself stays free of Candle.
//!
//! One folder per concept: [`router`] (decisions), [`breaker`] (the state
//! machine and its rules), [`coreml`] (everything that speaks to the helper),
//! [`cache`] (the compiled-model cache) and [`telemetry`] (recording and
//! rendering); [`sys`] holds the crate's few raw system calls. [`health`], [`clock`] and [`taxonomy`] are the small shared
//! vocabulary between them; [`setup`] wires the default router.

pub mod breaker;
pub mod cache;
pub mod clock;
pub mod coreml;
pub mod gates;
pub mod health;
pub mod router;
pub mod setup;
pub mod sys;
pub mod taxonomy;
pub mod telemetry;

/// The Candle CPU engine (`coreml-candle`): ground truth and fallback.
#[cfg(feature = "candle")]
pub use coreml_candle as candle;
/// The engine-neutral API (`coreml-inference`).
pub use coreml_inference as inference;
/// The helper's supervisor (`coreml-supervisor`).
pub use coreml_supervisor as supervisor;
