//! Reader of Core ML ML Program packages (`.mlpackage`), with no Core ML and no
//! tensor library: `Manifest.json`, the `Model` protobuf (the ML Program
//! subset), the model description, the MIL program and the memory-mapped
//! `weight.bin`. A malformed or truncated package gives a [`PackageError`]
//! naming the package-relative file and the field; never a panic.
//!
//! ```
//! use coreml_mlpackage::{Package, description::FeatureKind};
//! let pkg = Package::open(concat!(env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/mlpackage/small_cnn_fp16.mlpackage")).unwrap();
//! let main = pkg.main();
//! println!("opset {} with {} operations", main.opset, main.block.operations.len());
//! assert_eq!(pkg.description.outputs[0].name, "logits");
//! assert!(main.block.operations.iter().any(|op| op.op_type == "conv"));
//! ```
//!
//! Module layout:
//! * [`package`] has [`Package::open`] / [`Package::from_bytes`], the interface
//!   checks and [`Package::tensor`] (blob decoding on demand);
//! * [`manifest`] reads `Manifest.json`;
//! * [`proto`] has the protobuf messages (prost derives, field numbers from the
//!   format reference);
//! * [`description`] has inputs/outputs (multi-arrays, images, flexible shapes);
//! * [`program`] has the checked MIL program (functions, blocks, operations,
//!   arguments, values);
//! * [`weights`] reads blob storage v2 (header, per-blob metadata, bounds checks);
//! * [`elements`] and [`dtype`] do element decoding (little-endian, bit-packed
//!   sub-byte types, FP16/BF16/FP8) and the MIL type tables;
//! * [`error`] has [`PackageError`], and [`sys`] the memory map (the crate's only
//!   `unsafe`).

pub mod description;
pub mod dtype;
pub mod elements;
pub mod error;
pub mod manifest;
pub mod package;
pub mod program;
pub mod proto;
pub mod sys;
pub mod weights;

pub use dtype::{ArrayDataType, DataType};
pub use elements::Elements;
pub use error::PackageError;
pub use package::Package;
pub use program::{
    Arg, ArgRef, Block, Dim, Function, NamedType, Operation, Program, TensorData, TensorType,
    TensorValue, Value, ValueType,
};
