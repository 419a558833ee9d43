//! Benchmark cases for models owned by part A (MiniLM, EfficientNet-Lite0): plugged in
//! here through the engine's registry once it exists.
//!
//! ```text
//! load minilm:fast   -> err minilm: not available in this build (part A's registry)
//! ```

use candle_core::{Result, Tensor};

/// Build a case for a model outside part B's scope.
pub fn build(model: &str, _variant: &str) -> Result<Box<dyn Fn() -> Result<Tensor>>> {
    candle_core::bail!("{model}: not available in this build")
}
