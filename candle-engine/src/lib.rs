//! Candle CPU engine of coreml-bridge: numerical ground truth and the
//! fallback when Core ML fails.
//!
//! ```no_run
//! use std::time::Duration;
//! use coreml_candle::{preprocess::ImagePreprocessor, labels, CandleEngine};
//! use coreml_inference::{BlockingEngine, Deadline, ModelArtifact, PrepareOptions, TensorMap};
//!
//! let engine = BlockingEngine::new(CandleEngine::new()).unwrap();
//! let artifact = ModelArtifact::from_path("weights/efficientnet-lite0/model.safetensors").unwrap();
//! let model = engine.prepare(&artifact, &PrepareOptions::default().with_architecture("efficientnet-lite0")).unwrap();
//! let pixels = ImagePreprocessor::efficientnet_lite().tensor_from_files(&["cat.png"]).unwrap();
//! let out = engine
//!     .infer(&model, TensorMap::new().with("pixel_values", pixels), Deadline::after(Duration::from_secs(2)))
//!     .unwrap();
//! for (class, p) in labels::top_k(out.f32("logits").unwrap(), 5) {
//!     println!("{:>5.1}% {}", p * 100.0, labels::imagenet()[class]);
//! }
//! ```
//!
//! * [`CandleEngine`] implements [`coreml_inference::InferenceEngine`];
//!   architectures come from the [`registry`] (`PrepareOptions::architecture`).
//! * [`models`]: BERT sentence encoders (mean pooling + L2), DistilBERT,
//!   EfficientNet-Lite0, and (part B) ResNet-50 and FastViT-T8.
//! * [`text`] tokenises with a `tokenizer.json`; [`preprocess`] turns images
//!   into `pixel_values`; [`labels`] names ImageNet classes.
//! * [`ops`]: CPU kernels and the one-time thread set-up (part B).

pub mod engine;
pub mod labels;
pub mod models;
pub mod ops;
pub mod preprocess;
pub mod registry;
pub mod tensors;
pub mod text;

pub use engine::{CandleEngine, ENGINE_NAME};

const _: () = {
    const fn send_sync<T: Send + Sync + ?Sized>() {}
    send_sync::<CandleEngine>();
    send_sync::<dyn registry::CandleModel>();
};
