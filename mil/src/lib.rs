//! Executor of Core ML ML Programs on candle-core: reads an `.mlpackage` with
//! `coreml-mlpackage` and runs its MIL `main` function on the CPU, on any OS.
//!
//! ```
//! use std::collections::HashMap;
//! use candle_core::{Device, Tensor};
//! use coreml_mil::{Executor, Options};
//! let exe = Executor::load(concat!(env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/mlpackage/linear_matmul.mlpackage"), Options::default()).unwrap();
//! let x = Tensor::ones((2, 3, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
//! let y = Tensor::ones((2, 5, 6), candle_core::DType::F32, &Device::Cpu).unwrap();
//! let out = exe.run(&HashMap::from([("x".to_string(), x), ("y".to_string(), y)])).unwrap();
//! let matmul = &out.iter().find(|(n, _)| n == "matmul").unwrap().1;
//! assert_eq!(matmul.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0], 5.0);
//! ```
//!
//! * Loading checks every operation against [`ops::SUPPORTED`] and fails with
//!   the full list of the missing ones ([`LoadError::UnsupportedOps`]); it
//!   materialises `const` and `constexpr_*` values (dequantised) once.
//! * FP16 programs run in f32 by default; [`Precision::Fp16`] rounds every
//!   fp16-typed result to fp16 (f32 accumulation).
//! * Convolutions use the Candle engine's dense (im2col + gemm) and depthwise
//!   kernels where they apply, and exact-erf GELU its vectorised kernel.
//!
//! Module layout: [`engine`] ([`MilEngine`], the `InferenceEngine`),
//! [`executor`] (load, run, parameter access), [`ops`] (one
//! module per op family: `elementwise`, `shape`, `nn`, `conv`, `constexpr`),
//! [`host`] (host-side f32 tensors and shape helpers), [`error`].

pub mod engine;
pub mod error;
pub mod executor;
pub mod host;
pub mod ops;

pub use engine::MilEngine;
pub use error::{LoadError, RunError};
pub use executor::{Executor, Options, Precision};

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Executor>();
};
