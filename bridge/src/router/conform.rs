//! Conforming a request to the Core ML side's schema when the two engines
//! take the same model in different forms: integer ids widened or narrowed
//! (checked), token sequences padded to the package's length, and a batch
//! split into the rows a batch-1 package takes (outputs joined back).
//!
//! ```
//! use coreml_bridge::inference::{DType, Dim, IoSchema, Tensor, TensorMap, TensorSpec};
//! use coreml_bridge::router::conform::{conformable_schemas, Conformed};
//!
//! let ids = |dt, b, l| TensorSpec::new("input_ids", dt, vec![b, l]).batch_capable();
//! let mask = |dt, b, l| TensorSpec::new("attention_mask", dt, vec![b, l]).batch_capable();
//! let package = IoSchema::new(
//!     vec![ids(DType::I32, Dim::Fixed(1), Dim::Fixed(4)), mask(DType::I32, Dim::Fixed(1), Dim::Fixed(4))],
//!     vec![TensorSpec::fixed("embedding", DType::F32, &[1, 2])],
//! );
//! let candle = IoSchema::new(
//!     vec![ids(DType::I64, Dim::range(1, 8), Dim::range(1, 16)), mask(DType::I64, Dim::range(1, 8), Dim::range(1, 16))],
//!     vec![TensorSpec::new("embedding", DType::F32, vec![Dim::range(1, 8), Dim::Fixed(2)]).batch_capable()],
//! );
//! // The router takes Candle's form, up to the package's 4 tokens.
//! let router = conformable_schemas(&package, &candle).unwrap();
//! assert_eq!(router.inputs[0].dtype, DType::I64);
//! assert_eq!(router.inputs[0].shape, vec![Dim::range(1, 8), Dim::range(1, 4)]);
//!
//! let x = TensorMap::new()
//!     .with("input_ids", Tensor::new(vec![2, 3], vec![101i64, 7, 102, 101, 102, 0]).unwrap())
//!     .with("attention_mask", Tensor::new(vec![2, 3], vec![1i64, 1, 1, 1, 1, 0]).unwrap());
//! let c = Conformed::to(&package, x).unwrap();
//! assert_eq!(c.parts.len(), 2); // one request per row
//! assert_eq!(c.parts[0].i32("input_ids").unwrap(), &[101, 7, 102, 0]); // i32, padded to 4
//! let rows = vec![
//!     TensorMap::new().with("embedding", Tensor::new(vec![1, 2], vec![1f32, 2.0]).unwrap()),
//!     TensorMap::new().with("embedding", Tensor::new(vec![1, 2], vec![3f32, 4.0]).unwrap()),
//! ];
//! let y = c.join(rows).unwrap();
//! assert_eq!(y.get("embedding").unwrap().shape(), &[2, 2]);
//! ```
//!
//! Rules: only integer inputs change dtype, and a value the target cannot
//! hold is [`ValidationError::OutOfRange`]; only integer inputs of a model
//! that also takes an `attention_mask` are padded (with zeros, on the
//! sequence axis 1: the mask hides the padding), and outputs that carry the
//! padded sequence axis are cut back to the request's length; a batch is
//! split only for a package whose batch axis is fixed at 1. A sequence
//! longer than the package takes is [`ValidationError::Dim`]: the caller
//! truncates (the tokenizer does), never the router.

use coreml_inference::{DType, Dim, InferError, IoSchema, Tensor, TensorMap, TensorSpec, ValidationError};

/// The mask whose zeros make padded token positions inert.
pub const ATTENTION_MASK: &str = "attention_mask";

fn is_int(d: DType) -> bool {
    matches!(d, DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8)
}

fn pads(schema: &IoSchema) -> bool {
    schema.inputs.iter().any(|s| s.name == ATTENTION_MASK && is_int(s.dtype))
}

/// The schema the router accepts for a model whose Core ML side is
/// `coreml` and whose fallback is `candle`: the fallback's form, each
/// dimension narrowed to what the Core ML side takes after conforming. An
/// error says why the two are not the same model.
pub fn conformable_schemas(coreml: &IoSchema, candle: &IoSchema) -> Result<IoSchema, String> {
    let pad = pads(coreml) && pads(candle);
    Ok(IoSchema::new(
        specs("input", &coreml.inputs, &candle.inputs, pad)?,
        specs("output", &coreml.outputs, &candle.outputs, pad)?,
    ))
}

fn specs(kind: &str, a: &[TensorSpec], b: &[TensorSpec], pad: bool) -> Result<Vec<TensorSpec>, String> {
    let names = |s: &[TensorSpec]| format!("{:?}", s.iter().map(|t| t.name.as_str()).collect::<Vec<_>>());
    if a.len() != b.len() {
        return Err(format!("{kind}s differ: {} vs {}", names(a), names(b)));
    }
    a.iter()
        .map(|sa| {
            let sb = b
                .iter()
                .find(|s| s.name == sa.name)
                .ok_or_else(|| format!("{kind}s differ: {} vs {}", names(a), names(b)))?;
            let ints = is_int(sa.dtype) && is_int(sb.dtype);
            if sa.dtype != sb.dtype && !ints {
                return Err(format!("{kind} `{}` is {} on Core ML and {} on Candle", sa.name, sa.dtype, sb.dtype));
            }
            if sa.shape.len() != sb.shape.len() {
                let (ra, rb) = (sa.shape.len(), sb.shape.len());
                return Err(format!("{kind} `{}` has rank {ra} on Core ML and {rb} on Candle", sa.name));
            }
            let padded = pad && (kind == "output" || ints);
            let shape = sa
                .shape
                .iter()
                .zip(&sb.shape)
                .enumerate()
                .map(|(axis, (&x, &y))| {
                    let split = axis == 0 && x == Dim::Fixed(1) && sb.batch_capable;
                    match intersect(x, y) {
                        _ if split => Some(y),
                        // Shorter sequences are padded up to the package's length.
                        _ if axis == 1 && padded => intersect(Dim::range(1, x.max()), y),
                        d => d,
                    }
                })
                .collect::<Option<Vec<Dim>>>()
                .ok_or_else(|| format!("{kind} `{}`: no shape fits both engines", sa.name))?;
            let mut spec = TensorSpec::new(sa.name.clone(), sb.dtype, shape);
            spec.batch_capable = sb.batch_capable && (sa.batch_capable || sa.shape.first() == Some(&Dim::Fixed(1)));
            Ok(spec)
        })
        .collect()
}

/// The intersection of two dimensions (`None`: they share no size).
pub(crate) fn intersect(a: Dim, b: Dim) -> Option<Dim> {
    let bounds = |d: Dim| match d {
        Dim::Fixed(n) => (n, n),
        Dim::Range { min, max } => (min, max),
    };
    let ((lo_a, hi_a), (lo_b, hi_b)) = (bounds(a), bounds(b));
    let (lo, hi) = (lo_a.max(lo_b), hi_a.min(hi_b));
    match (lo.cmp(&hi), a, b) {
        (std::cmp::Ordering::Greater, ..) => None,
        (std::cmp::Ordering::Equal, ..) | (_, Dim::Fixed(_), _) | (_, _, Dim::Fixed(_)) => Some(Dim::Fixed(lo)),
        _ => Some(Dim::range(lo, hi)),
    }
}

/// A request in the Core ML side's form, and how to give its answer back.
#[derive(Debug)]
pub struct Conformed {
    /// The requests to send, in order (one per row when the batch is split).
    pub parts: Vec<TensorMap>,
    /// The request's sequence length, when it was padded.
    unpad: Option<(usize, usize)>,
    split: bool,
}

impl Conformed {
    /// `inputs` (valid for the router's schema) in the form `schema` takes.
    pub fn to(schema: &IoSchema, inputs: TensorMap) -> Result<Self, ValidationError> {
        if schema.inputs.iter().all(|s| inputs.get(&s.name).is_some_and(|t| s.check(t).is_ok())) {
            return Ok(Self { parts: vec![inputs], unpad: None, split: false });
        }
        let pad = pads(schema);
        let mut out = TensorMap::new();
        let (mut unpad, mut rows) = (None, None);
        for (name, t) in inputs.iter() {
            let Some(spec) = schema.input(name) else {
                out.insert(name, t.clone());
                continue;
            };
            let mut t = if t.dtype() == spec.dtype { t.clone() } else { convert(name, t, spec.dtype)? };
            let shape = t.shape().to_vec();
            if shape.len() != spec.shape.len() {
                return Err(ValidationError::Rank {
                    name: name.to_owned(),
                    expected: spec.shape.len(),
                    actual: shape.len(),
                });
            }
            if shape.len() >= 2 && !spec.shape[1].accepts(shape[1]) {
                let target = match spec.shape[1] {
                    Dim::Fixed(n) => n,
                    Dim::Range { min, .. } => min,
                };
                if !(pad && is_int(spec.dtype) && shape[1] < target) {
                    let (expected, actual) = (spec.shape[1], shape[1]);
                    return Err(ValidationError::Dim { name: name.to_owned(), axis: 1, expected, actual });
                }
                t = pad_axis1(&t, target);
                unpad = Some((shape[1], target));
            }
            if !spec.shape[0].accepts(shape[0]) && spec.shape[0] == Dim::Fixed(1) {
                rows = Some(shape[0]);
            }
            out.insert(name, t);
        }
        let Some(n) = rows else {
            return Ok(Self { parts: vec![out], unpad, split: false });
        };
        let mut parts = vec![TensorMap::new(); n];
        for (name, t) in out.iter() {
            let row = t.byte_len() / t.shape()[0].max(1);
            if t.shape()[0] != n {
                return Err(ValidationError::BatchMismatch {
                    name: name.to_owned(),
                    expected: n,
                    actual: t.shape()[0],
                });
            }
            let mut shape = t.shape().to_vec();
            shape[0] = 1;
            for (i, part) in parts.iter_mut().enumerate() {
                let bytes = &t.as_bytes()[i * row..(i + 1) * row];
                let one = Tensor::from_bytes(t.dtype(), shape.clone(), bytes).expect("a row of a valid tensor");
                part.insert(name, one);
            }
        }
        Ok(Self { parts, unpad, split: true })
    }

    /// The answers to [`Self::parts`], in order, as one answer to the request.
    pub fn join(self, answers: Vec<TensorMap>) -> Result<TensorMap, InferError> {
        let bad = |m: String| InferError::Backend { message: format!("joining the Core ML answers: {m}") };
        let mut answers = answers.into_iter();
        let first = answers.next().ok_or_else(|| bad("no answer".into()))?;
        let mut joined = if self.split {
            let rest: Vec<TensorMap> = answers.collect();
            let mut out = TensorMap::new();
            for (name, t) in first.iter() {
                let mut bytes = t.as_bytes().to_vec();
                for a in &rest {
                    let r = a.get(name).ok_or_else(|| bad(format!("a row has no `{name}`")))?;
                    if r.shape() != t.shape() || r.dtype() != t.dtype() {
                        return Err(bad(format!("rows of `{name}` differ in shape")));
                    }
                    bytes.extend_from_slice(r.as_bytes());
                }
                let mut shape = t.shape().to_vec();
                if shape.is_empty() {
                    return Err(bad(format!("`{name}` has no batch axis")));
                }
                shape[0] *= rest.len() + 1;
                out.insert(name, Tensor::from_bytes(t.dtype(), shape, &bytes).map_err(|e| bad(e.to_string()))?);
            }
            out
        } else {
            first
        };
        if let Some((len, padded)) = self.unpad {
            let names: Vec<String> = joined.names().map(str::to_owned).collect();
            for name in names {
                let t = joined.get(&name).expect("listed");
                if t.shape().len() >= 2 && t.shape()[1] == padded {
                    let cut = cut_axis1(t, len);
                    joined.insert(name, cut);
                }
            }
        }
        Ok(joined)
    }
}

/// Integer `t` as `to`, every value checked.
fn convert(name: &str, t: &Tensor, to: DType) -> Result<Tensor, ValidationError> {
    let dtype_error = || ValidationError::DType { name: name.to_owned(), expected: to, actual: t.dtype() };
    if !is_int(t.dtype()) || !is_int(to) {
        return Err(dtype_error());
    }
    let values: Vec<i64> = match t.dtype() {
        DType::I64 => t.to_vec::<i64>().map_err(|_| dtype_error())?,
        DType::I32 => t.to_vec::<i32>().map_err(|_| dtype_error())?.into_iter().map(i64::from).collect(),
        DType::I16 => t.to_vec::<i16>().map_err(|_| dtype_error())?.into_iter().map(i64::from).collect(),
        DType::I8 => t.to_vec::<i8>().map_err(|_| dtype_error())?.into_iter().map(i64::from).collect(),
        _ => t.as_bytes().iter().map(|&b| i64::from(b)).collect(),
    };
    let range = |value: i64| ValidationError::OutOfRange { name: name.to_owned(), value, dtype: to };
    let shape = t.shape().to_vec();
    let made = match to {
        DType::I64 => Tensor::new(shape, values),
        DType::I32 => Tensor::new(shape, narrow::<i32>(&values).map_err(range)?),
        DType::I16 => Tensor::new(shape, narrow::<i16>(&values).map_err(range)?),
        DType::I8 => Tensor::new(shape, narrow::<i8>(&values).map_err(range)?),
        _ => Tensor::new(shape, narrow::<u8>(&values).map_err(range)?),
    };
    made.map_err(|_| dtype_error())
}

fn narrow<T: TryFrom<i64>>(values: &[i64]) -> Result<Vec<T>, i64> {
    values.iter().map(|&v| T::try_from(v).map_err(|_| v)).collect()
}

/// `t` with axis 1 zero-padded at the end to `to`.
fn pad_axis1(t: &Tensor, to: usize) -> Tensor {
    let shape = t.shape();
    let inner: usize = shape[2..].iter().product::<usize>() * t.dtype().size_in_bytes();
    let (from, outer) = (shape[1], shape[0]);
    let mut bytes = vec![0u8; outer * to * inner];
    for o in 0..outer {
        let src = &t.as_bytes()[o * from * inner..(o + 1) * from * inner];
        bytes[o * to * inner..o * to * inner + src.len()].copy_from_slice(src);
    }
    let mut new_shape = shape.to_vec();
    new_shape[1] = to;
    Tensor::from_bytes(t.dtype(), new_shape, &bytes).expect("sized for the shape")
}

/// `t` with axis 1 cut to its first `to` entries.
fn cut_axis1(t: &Tensor, to: usize) -> Tensor {
    let shape = t.shape();
    let inner: usize = shape[2..].iter().product::<usize>() * t.dtype().size_in_bytes();
    let (from, outer) = (shape[1], shape[0]);
    let mut bytes = Vec::with_capacity(outer * to * inner);
    for o in 0..outer {
        bytes.extend_from_slice(&t.as_bytes()[o * from * inner..(o * from + to) * inner]);
    }
    let mut new_shape = shape.to_vec();
    new_shape[1] = to;
    Tensor::from_bytes(t.dtype(), new_shape, &bytes).expect("sized for the shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(mask: bool) -> IoSchema {
        let mut inputs = vec![TensorSpec::fixed("input_ids", DType::I32, &[1, 4])];
        if mask {
            inputs.push(TensorSpec::fixed(ATTENTION_MASK, DType::I32, &[1, 4]));
        }
        IoSchema::new(inputs, vec![TensorSpec::fixed("tokens", DType::F32, &[1, 4, 2])])
    }

    fn request(ids: Vec<i64>, rows: usize) -> TensorMap {
        let len = ids.len() / rows;
        TensorMap::new()
            .with("input_ids", Tensor::new(vec![rows, len], ids).unwrap())
            .with(ATTENTION_MASK, Tensor::new(vec![rows, len], vec![1i64; rows * len]).unwrap())
    }

    #[test]
    fn an_id_the_package_dtype_cannot_hold_is_a_typed_error() {
        let too_big = i64::from(i32::MAX) + 1;
        let e = Conformed::to(&package(true), request(vec![1, too_big, 3, 4], 1)).unwrap_err();
        assert_eq!(e, ValidationError::OutOfRange { name: "input_ids".into(), value: too_big, dtype: DType::I32 });
        let e = Conformed::to(&package(true), request(vec![1, -1 - i64::from(i32::MAX) - 1, 3, 4], 1)).unwrap_err();
        assert!(matches!(e, ValidationError::OutOfRange { .. }), "{e:?}");
        // In range: narrowed value for value.
        let c = Conformed::to(&package(true), request(vec![1, i64::from(i32::MAX), -7, 4], 1)).unwrap();
        assert_eq!(c.parts[0].i32("input_ids").unwrap(), &[1, i32::MAX, -7, 4]);
    }

    #[test]
    fn a_sequence_longer_than_the_package_is_refused_not_cut() {
        let e = Conformed::to(&package(true), request(vec![1, 2, 3, 4, 5], 1)).unwrap_err();
        assert!(matches!(e, ValidationError::Dim { axis: 1, actual: 5, .. }), "{e:?}");
    }

    #[test]
    fn without_an_attention_mask_nothing_is_padded() {
        let x = TensorMap::new().with("input_ids", Tensor::new(vec![1, 3], vec![1i64, 2, 3]).unwrap());
        let e = Conformed::to(&package(false), x).unwrap_err();
        assert!(matches!(e, ValidationError::Dim { axis: 1, actual: 3, .. }), "{e:?}");
        let s = |mask| conformable_schemas(&package(mask), &candle(mask));
        // Without a mask the router takes only the package's own length.
        assert_eq!(s(false).unwrap().inputs[0].shape, vec![Dim::range(1, 8), Dim::Fixed(4)]);
        assert_eq!(s(true).unwrap().inputs[0].shape, vec![Dim::range(1, 8), Dim::range(1, 4)]);
    }

    fn candle(mask: bool) -> IoSchema {
        let ids = |n: &str| TensorSpec::new(n, DType::I64, vec![Dim::range(1, 8), Dim::range(1, 16)]).batch_capable();
        let mut inputs = vec![ids("input_ids")];
        if mask {
            inputs.push(ids(ATTENTION_MASK));
        }
        let out = TensorSpec::new("tokens", DType::F32, vec![Dim::range(1, 8), Dim::range(1, 16), Dim::Fixed(2)]);
        IoSchema::new(inputs, vec![out.batch_capable()])
    }

    #[test]
    fn rows_are_padded_split_and_their_answers_joined_and_cut_back() {
        let c = Conformed::to(&package(true), request(vec![5, 6, 7, 8, 9, 10], 2)).unwrap();
        assert_eq!(c.parts.len(), 2);
        assert_eq!(c.parts[1].i32("input_ids").unwrap(), &[8, 9, 10, 0]);
        assert_eq!(c.parts[1].i32(ATTENTION_MASK).unwrap(), &[1, 1, 1, 0]);
        // Each row's answer: position p of row r holds (r, p).
        let answers = (0..2)
            .map(|r| {
                let v: Vec<f32> = (0..4).flat_map(|p| [r as f32, p as f32]).collect();
                TensorMap::new().with("tokens", Tensor::new(vec![1, 4, 2], v).unwrap())
            })
            .collect();
        let y = c.join(answers).unwrap();
        let t = y.get("tokens").unwrap();
        assert_eq!(t.shape(), &[2, 3, 2]);
        assert_eq!(y.f32("tokens").unwrap(), &[0., 0., 0., 1., 0., 2., 1., 0., 1., 1., 1., 2.]);
    }

    #[test]
    fn a_request_already_in_the_package_form_passes_unchanged() {
        let x = TensorMap::new()
            .with("input_ids", Tensor::new(vec![1, 4], vec![1i32, 2, 3, 4]).unwrap())
            .with(ATTENTION_MASK, Tensor::new(vec![1, 4], vec![1i32; 4]).unwrap());
        let c = Conformed::to(&package(true), x.clone()).unwrap();
        assert_eq!(c.parts, vec![x]);
    }
}
