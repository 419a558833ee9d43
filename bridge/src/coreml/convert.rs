//! Conversions between the wire protocol's types (through the supervisor)
//! and the engine-neutral API, and the classification of supervisor errors
//! into the failure taxonomy.
//!
//! ```
//! use coreml_bridge::coreml::convert::{infer_error, spec_from_wire};
//! use coreml_bridge::inference::{DType, Dim, InferError};
//! use coreml_bridge::taxonomy::FailureKind;
//! use coreml_supervisor::{schema, Error, Stage};
//!
//! let wire = schema::TensorSpec {
//!     name: "x".into(),
//!     dtype: schema::DType::F32,
//!     shape: vec![1, 4],
//!     enumerated_shapes: vec![],
//!     shape_ranges: vec![[1, 8], [4, 4]],
//!     optional: false,
//!     image: None,
//! };
//! let spec = spec_from_wire(&wire).unwrap();
//! assert_eq!(spec.shape, vec![Dim::range(1, 8), Dim::Fixed(4)]);
//! assert_eq!(spec.dtype, DType::F32);
//!
//! let e = infer_error(Error::HelperCrashed { stage: Stage::Predict, detail: "signal 11".into() });
//! assert_eq!(FailureKind::of_infer_error(&e), FailureKind::HelperCrash);
//! ```

use std::time::Duration;

use coreml_inference::{ComputeUnits, DType, Dim, InferError, PrepareError, TensorSpec};
use coreml_supervisor::schema::{self, ErrorCode};
use coreml_supervisor::{Error, Stage};

use crate::taxonomy::{not_reached, tagged, FailureKind};

/// The API's dtype of a wire dtype.
pub fn dtype_from_wire(d: schema::DType) -> DType {
    match d {
        schema::DType::F32 => DType::F32,
        schema::DType::F16 => DType::F16,
        schema::DType::BF16 => DType::BF16,
        schema::DType::F64 => DType::F64,
        schema::DType::I8 => DType::I8,
        schema::DType::I16 => DType::I16,
        schema::DType::I32 => DType::I32,
        schema::DType::I64 => DType::I64,
        schema::DType::U8 => DType::U8,
    }
}

/// The API's compute units of wire compute units.
pub fn units_from_wire(c: schema::ComputeUnits) -> ComputeUnits {
    match c {
        schema::ComputeUnits::CpuOnly => ComputeUnits::CpuOnly,
        schema::ComputeUnits::CpuAndGpu => ComputeUnits::CpuAndGpu,
        schema::ComputeUnits::All => ComputeUnits::All,
        schema::ComputeUnits::CpuAndNe => ComputeUnits::CpuAndNe,
    }
}

/// The wire compute units of the API's.
pub fn units_to_wire(c: ComputeUnits) -> schema::ComputeUnits {
    match c {
        ComputeUnits::CpuOnly => schema::ComputeUnits::CpuOnly,
        ComputeUnits::CpuAndGpu => schema::ComputeUnits::CpuAndGpu,
        ComputeUnits::All => schema::ComputeUnits::All,
        ComputeUnits::CpuAndNe => schema::ComputeUnits::CpuAndNe,
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// An API spec of a wire spec: ranges from `shape_ranges`, else the span
/// of `enumerated_shapes` per axis (validation then admits each listed
/// size range; the helper still checks exact shapes), else the fixed shape.
/// `Bool` has no wire dtype; an input the API cannot express is an error. An image feature
/// (protocol 2.1) is presented as the HWC image the caller passes
/// ([`api_shape`](crate::coreml::image::api_shape)), not as its pixel format.
pub fn spec_from_wire(s: &schema::TensorSpec) -> Result<TensorSpec, String> {
    if let Some(image) = &s.image {
        // The caller passes an HWC image (RGB or gray); the engine lays it out in the pixel format.
        image.check(s).map_err(|e| format!("`{}`: {e}", s.name))?;
        let (dtype, shape) = crate::coreml::image::api_shape(image);
        // A flexible size: height and width within the ranges (or the enumerated sizes'
        // envelope; the supervisor checks the exact size).
        let envelope = |axis: usize| -> Option<[u64; 2]> {
            match (&s.shape_ranges[..], &s.enumerated_shapes[..]) {
                ([h, w, _], _) => Some([*h, *w][axis]),
                ([], e) if !e.is_empty() => {
                    let v = e.iter().filter_map(|sh| sh.get(axis).copied());
                    Some([v.clone().min()?, v.max()?])
                }
                _ => None,
            }
        };
        let dim = |axis: usize| match envelope(axis) {
            Some([lo, hi]) if lo != hi => Dim::range(to_usize(lo), to_usize(hi)),
            _ => Dim::Fixed(shape[axis]),
        };
        return Ok(TensorSpec::new(s.name.clone(), dtype, vec![dim(0), dim(1), Dim::Fixed(shape[2])]));
    }
    let rank = s.shape.len();
    let shape: Vec<Dim> = if s.shape_ranges.len() == rank && rank > 0 {
        s.shape_ranges
            .iter()
            .map(|[lo, hi]| if lo == hi { Dim::Fixed(to_usize(*lo)) } else { Dim::range(to_usize(*lo), to_usize(*hi)) })
            .collect()
    } else if !s.enumerated_shapes.is_empty() {
        if s.enumerated_shapes.iter().any(|e| e.len() != rank) {
            return Err(format!("`{}`: enumerated shapes of another rank", s.name));
        }
        (0..rank)
            .map(|d| {
                let lo = s.enumerated_shapes.iter().map(|e| e[d]).min().unwrap_or(s.shape[d]);
                let hi = s.enumerated_shapes.iter().map(|e| e[d]).max().unwrap_or(s.shape[d]);
                if lo == hi {
                    Dim::Fixed(to_usize(lo))
                } else {
                    Dim::range(to_usize(lo), to_usize(hi))
                }
            })
            .collect()
    } else {
        s.shape.iter().map(|&d| Dim::Fixed(to_usize(d))).collect()
    };
    Ok(TensorSpec::new(s.name.clone(), dtype_from_wire(s.dtype), shape))
}

fn kind_of_code(code: ErrorCode) -> FailureKind {
    match code {
        ErrorCode::COMPILE_FAILED => FailureKind::CompileError,
        ErrorCode::LOAD_FAILED => FailureKind::LoadError,
        ErrorCode::SCHEMA_MISMATCH | ErrorCode::BAD_REQUEST => FailureKind::SchemaMismatch,
        ErrorCode::TIMEOUT => FailureKind::Timeout,
        ErrorCode::MEMORY_PRESSURE => FailureKind::MemoryPressure,
        ErrorCode::UNSUPPORTED => FailureKind::Unavailable,
        _ => FailureKind::Other,
    }
}

/// The failure kind of a supervisor error.
pub fn failure_kind(e: &Error) -> FailureKind {
    match e {
        Error::Timeout { .. } => FailureKind::Timeout,
        Error::MemoryLimit { .. } => FailureKind::MemoryPressure,
        Error::HelperCrashed { .. } => FailureKind::HelperCrash,
        Error::ProtocolViolation { .. } => FailureKind::ProtocolViolation,
        Error::Helper { code, .. } => kind_of_code(*code),
        Error::HelperUnavailable { .. } | Error::Start(_) | Error::ShuttingDown => FailureKind::Unavailable,
        Error::BadRequest(_) => FailureKind::SchemaMismatch,
        _ => FailureKind::Other,
    }
}

/// A supervisor error as an inference error, its kind tagged in the message.
pub fn infer_error(e: Error) -> InferError {
    let kind = failure_kind(&e);
    match e {
        // Waited in the queue or for a restart: it never reached a helper.
        Error::Timeout { stage: Stage::Queue | Stage::Restart, .. } => {
            InferError::Unavailable { message: not_reached(kind, e.to_string()) }
        }
        Error::Timeout { after, .. } => InferError::DeadlineExceeded { elapsed: after },
        Error::UnknownModel(id) => InferError::Backend { message: tagged(kind, format!("helper has no model {id}")) },
        Error::HelperUnavailable { .. } | Error::ShuttingDown => {
            InferError::Unavailable { message: not_reached(kind, e.to_string()) }
        }
        other => InferError::Backend { message: tagged(kind, other.to_string()) },
    }
}

/// A supervisor error of compile or load as a prepare error.
pub fn prepare_error(e: Error, budget: Duration) -> PrepareError {
    let kind = failure_kind(&e);
    match e {
        Error::Timeout { .. } => PrepareError::DeadlineExceeded { budget },
        Error::HelperUnavailable { .. } | Error::Start(_) | Error::ShuttingDown => {
            PrepareError::Unavailable { message: tagged(kind, e.to_string()) }
        }
        // This model only: the helper runs, but not this model.
        Error::Helper { code: ErrorCode::UNSUPPORTED, .. } => PrepareError::InvalidModel {
            message: tagged(FailureKind::LoadError, format!("the helper cannot run this model: {e}")),
        },
        other => PrepareError::Backend { message: tagged(kind, other.to_string()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supervisor_failure_has_its_kind() {
        let p = Stage::Predict;
        let cases = [
            (Error::Timeout { stage: p, after: Duration::from_millis(5) }, FailureKind::Timeout),
            (Error::MemoryLimit { stage: p, rss: 2, limit: 1 }, FailureKind::MemoryPressure),
            (Error::ProtocolViolation { stage: p, detail: "bad ref".into() }, FailureKind::ProtocolViolation),
            (
                Error::Helper { stage: p, code: ErrorCode::SCHEMA_MISMATCH, message: "x".into() },
                FailureKind::SchemaMismatch,
            ),
            (
                Error::Helper { stage: Stage::Compile, code: ErrorCode::COMPILE_FAILED, message: "x".into() },
                FailureKind::CompileError,
            ),
            (Error::HelperUnavailable { reason: "budget".into() }, FailureKind::Unavailable),
        ];
        for (e, kind) in cases {
            let ie = infer_error(e);
            assert_eq!(FailureKind::of_infer_error(&ie), kind, "{ie:?}");
        }
        // UNSUPPORTED is about one model: never "the engine is unavailable".
        let e = prepare_error(
            Error::Helper { stage: Stage::Load, code: ErrorCode::UNSUPPORTED, message: "image input".into() },
            Duration::ZERO,
        );
        assert!(matches!(e, PrepareError::InvalidModel { .. }), "{e:?}");
        assert_eq!(FailureKind::of_prepare_error(&e), FailureKind::LoadError);
    }

    #[test]
    fn requests_that_never_reached_a_helper_say_so() {
        use crate::taxonomy::reached_helper;
        for stage in [Stage::Queue, Stage::Restart] {
            let e = infer_error(Error::Timeout { stage, after: Duration::from_millis(5) });
            assert!(!reached_helper(&e), "{e:?}");
            assert_eq!(FailureKind::of_infer_error(&e), FailureKind::Timeout);
        }
        assert!(!reached_helper(&infer_error(Error::HelperUnavailable { reason: "budget".into() })));
        let e = infer_error(Error::Timeout { stage: Stage::Predict, after: Duration::from_millis(5) });
        assert!(reached_helper(&e), "a predict timeout is the model's");
    }

    #[test]
    fn enumerated_shapes_become_ranges_per_axis() {
        let s = schema::TensorSpec {
            name: "ids".into(),
            dtype: schema::DType::I32,
            shape: vec![1, 128],
            enumerated_shapes: vec![vec![1, 64], vec![1, 128], vec![1, 256]],
            shape_ranges: vec![],
            optional: false,
            image: None,
        };
        assert_eq!(spec_from_wire(&s).unwrap().shape, vec![Dim::Fixed(1), Dim::range(64, 256)]);
    }
}
