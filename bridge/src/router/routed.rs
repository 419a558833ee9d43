//! A model as the router holds it: its handles on each engine, its breaker,
//! and the schema both engines accept.
//!
//! ```
//! use coreml_bridge::inference::{DType, Dim, IoSchema, TensorSpec};
//! use coreml_bridge::router::routed::intersect_schemas;
//!
//! let coreml = IoSchema::new(
//!     vec![TensorSpec::new("x", DType::F32, vec![Dim::Fixed(1), Dim::Fixed(4)])],
//!     vec![TensorSpec::new("y", DType::F32, vec![Dim::Fixed(1), Dim::Fixed(4)])],
//! );
//! let candle = IoSchema::new(
//!     vec![TensorSpec::new("x", DType::F32, vec![Dim::range(1, 8), Dim::Fixed(4)]).batch_capable()],
//!     vec![TensorSpec::new("y", DType::F32, vec![Dim::range(1, 8), Dim::Fixed(4)]).batch_capable()],
//! );
//! // Inputs valid for the router are valid for both engines once conformed:
//! // a batch for the batch-1 Core ML model goes to it one row at a time.
//! let both = intersect_schemas(&coreml, &candle).unwrap();
//! assert_eq!(both.inputs[0].shape, vec![Dim::range(1, 8), Dim::Fixed(4)]);
//! let wide = IoSchema::new(vec![TensorSpec::fixed("x", DType::F32, &[1, 5])], coreml.outputs.clone());
//! assert_eq!(intersect_schemas(&wide, &candle).unwrap_err(), "input `x`: no shape fits both engines");
//! ```

use std::sync::{Arc, Mutex};

use coreml_inference::{IoSchema, PreparedModel};

use crate::breaker::trip::FallbackReason;
use crate::breaker::Breaker;
use crate::router::conform::conformable_schemas;
use crate::router::images::ImageInputs;
use crate::router::primary_side::PrimarySlot;

/// A prepared, routed model.
#[derive(Debug)]
pub struct Routed {
    /// Model name (telemetry, events, `COREML_FORCE_ENABLE`).
    pub name: String,
    /// Its Core ML side: ready, still preparing in the background, or
    /// missing (and why).
    pub primary: Arc<PrimarySlot>,
    /// Its handle on the fallback (Candle), if it has a Candle implementation.
    pub fallback: Option<PreparedModel>,
    /// Why it has no fallback.
    pub fallback_missing: Option<String>,
    /// The engine that serves its fallback side, as telemetry names it: the
    /// member of a fallback chain that took the model (`candle`, `mil`), not
    /// the chain.
    pub fallback_label: String,
    /// Its image inputs, converted for the fallback.
    pub images: ImageInputs,
    /// Its breaker.
    pub breaker: Mutex<Breaker>,
}

impl Routed {
    /// The breaker, locked. Breaker methods never panic midway, so a
    /// poisoned lock still holds a consistent state.
    pub fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Its handle on the primary (Core ML), once prepared there.
    pub fn primary_model(&self) -> Option<PreparedModel> {
        self.primary.model()
    }

    /// Why it has no primary handle although it has a Core ML side.
    pub fn primary_missing(&self) -> Option<FallbackReason> {
        self.primary.missing()
    }
}

impl Drop for Routed {
    /// A preparation still running for it stops (nobody will use it).
    fn drop(&mut self) {
        if self.primary.is_preparing() {
            self.primary.cancel();
        }
    }
}

/// The schema whose valid inputs both engines can serve: same names, the
/// fallback's dtypes (integer ids are converted for Core ML), each dimension
/// the intersection of both, or what the Core ML side takes once conformed
/// (see [`conformable_schemas`]). An error says why the two engines' models
/// are not the same model.
pub fn intersect_schemas(coreml: &IoSchema, candle: &IoSchema) -> Result<IoSchema, String> {
    conformable_schemas(coreml, candle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::conform::intersect as intersect_dim;
    use coreml_inference::{DType, Dim, TensorSpec};

    #[test]
    fn dims_intersect_and_mismatches_are_explained() {
        assert_eq!(intersect_dim(Dim::range(1, 8), Dim::range(4, 16)), Some(Dim::range(4, 8)));
        assert_eq!(intersect_dim(Dim::range(1, 8), Dim::Fixed(3)), Some(Dim::Fixed(3)));
        assert_eq!(intersect_dim(Dim::range(1, 8), Dim::range(8, 9)), Some(Dim::Fixed(8)));
        assert_eq!(intersect_dim(Dim::Fixed(2), Dim::Fixed(3)), None);
        let s =
            |dt| IoSchema::new(vec![TensorSpec::fixed("x", dt, &[4])], vec![TensorSpec::fixed("y", DType::F32, &[4])]);
        let e = intersect_schemas(&s(DType::F32), &s(DType::I32)).unwrap_err();
        assert_eq!(e, "input `x` is f32 on Core ML and i32 on Candle");
        let other = IoSchema::new(vec![TensorSpec::fixed("z", DType::F32, &[4])], vec![]);
        assert!(intersect_schemas(&s(DType::F32), &other).unwrap_err().starts_with("inputs differ"));
    }
}
