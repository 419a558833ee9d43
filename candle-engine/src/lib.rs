//! placeholder
// part B: custom CPU kernels (ops/) and the vision models (models/resnet.rs, models/fastvit.rs).
pub mod models;
pub mod ops;
