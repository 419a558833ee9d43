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
//! // Inputs valid for the router are valid for both engines.
//! let both = intersect_schemas(&coreml, &candle).unwrap();
//! assert_eq!(both.inputs[0].shape, vec![Dim::Fixed(1), Dim::Fixed(4)]);
//! ```

use std::sync::{Arc, Mutex};

use coreml_inference::{Dim, IoSchema, PreparedModel, TensorSpec};

use crate::breaker::trip::FallbackReason;
use crate::breaker::Breaker;
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

fn intersect_dim(a: Dim, b: Dim) -> Option<Dim> {
    let (lo_a, hi_a) = match a {
        Dim::Fixed(d) => (d, d),
        Dim::Range { min, max } => (min, max),
    };
    let (lo_b, hi_b) = match b {
        Dim::Fixed(d) => (d, d),
        Dim::Range { min, max } => (min, max),
    };
    let (lo, hi) = (lo_a.max(lo_b), hi_a.min(hi_b));
    match (lo.cmp(&hi), a, b) {
        (std::cmp::Ordering::Greater, ..) => None,
        (std::cmp::Ordering::Equal, ..) | (_, Dim::Fixed(_), _) | (_, _, Dim::Fixed(_)) => Some(Dim::Fixed(lo)),
        _ => Some(Dim::range(lo, hi)),
    }
}

fn intersect_specs(kind: &str, a: &[TensorSpec], b: &[TensorSpec]) -> Result<Vec<TensorSpec>, String> {
    if a.len() != b.len() {
        return Err(format!("{kind}s differ: {} vs {}", names(a), names(b)));
    }
    a.iter()
        .map(|sa| {
            let sb = b
                .iter()
                .find(|s| s.name == sa.name)
                .ok_or_else(|| format!("{kind}s differ: {} vs {}", names(a), names(b)))?;
            if sa.dtype != sb.dtype {
                return Err(format!("{kind} `{}` is {} on Core ML and {} on Candle", sa.name, sa.dtype, sb.dtype));
            }
            if sa.shape.len() != sb.shape.len() {
                return Err(format!(
                    "{kind} `{}` has rank {} on Core ML and {} on Candle",
                    sa.name,
                    sa.shape.len(),
                    sb.shape.len()
                ));
            }
            let shape = sa
                .shape
                .iter()
                .zip(&sb.shape)
                .map(|(&x, &y)| intersect_dim(x, y))
                .collect::<Option<Vec<Dim>>>()
                .ok_or_else(|| format!("{kind} `{}`: no shape fits both engines", sa.name))?;
            let mut spec = TensorSpec::new(sa.name.clone(), sa.dtype, shape);
            spec.batch_capable = sa.batch_capable && sb.batch_capable;
            Ok(spec)
        })
        .collect()
}

fn names(s: &[TensorSpec]) -> String {
    format!("{:?}", s.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())
}

/// The schema whose valid inputs are valid for both engines: same names and
/// dtypes, each dimension the intersection of both. An error says why the
/// two engines' models are not the same model.
pub fn intersect_schemas(coreml: &IoSchema, candle: &IoSchema) -> Result<IoSchema, String> {
    Ok(IoSchema::new(
        intersect_specs("input", &coreml.inputs, &candle.inputs)?,
        intersect_specs("output", &coreml.outputs, &candle.outputs)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coreml_inference::DType;

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
