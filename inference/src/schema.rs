//! Input/output schemas and the validation that runs before any engine.
//!
//! ```
//! use coreml_inference::{DType, Dim, IoSchema, Tensor, TensorMap, TensorSpec, ValidationError};
//!
//! let schema = IoSchema::new(
//!     vec![TensorSpec::new("x", DType::F32, vec![Dim::range(1, 8), Dim::Fixed(4)]).batch_capable()],
//!     vec![TensorSpec::new("y", DType::F32, vec![Dim::range(1, 8), Dim::Fixed(4)]).batch_capable()],
//! );
//! let ok = TensorMap::new().with("x", Tensor::zeros(DType::F32, vec![2, 4]).unwrap());
//! let validated = schema.validate(ok).unwrap();
//! assert_eq!(validated.batch_size(), Some(2));
//!
//! let bad = TensorMap::new().with("x", Tensor::zeros(DType::F32, vec![2, 5]).unwrap());
//! assert!(matches!(schema.validate(bad), Err(ValidationError::Dim { axis: 1, .. })));
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dtype::DType;
use crate::error::ValidationError;
use crate::tensor_map::TensorMap;

/// One dimension of a declared shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// Exactly this size.
    Fixed(usize),
    /// Any size in `min..=max`.
    Range { min: usize, max: usize },
}

impl Dim {
    /// Any size in `min..=max`.
    pub const fn range(min: usize, max: usize) -> Self {
        Dim::Range { min, max }
    }

    /// Whether `n` is allowed.
    pub const fn accepts(self, n: usize) -> bool {
        match self {
            Dim::Fixed(d) => d == n,
            Dim::Range { min, max } => min <= n && n <= max,
        }
    }

    /// The largest allowed size.
    pub const fn max(self) -> usize {
        match self {
            Dim::Fixed(d) => d,
            Dim::Range { max, .. } => max,
        }
    }
}

impl From<usize> for Dim {
    fn from(d: usize) -> Self {
        Dim::Fixed(d)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(d) => write!(f, "{d}"),
            Dim::Range { min, max } => write!(f, "{min}..={max}"),
        }
    }
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Name, as in the [`TensorMap`].
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Row-major shape.
    pub shape: Vec<Dim>,
    /// Axis 0 is a batch axis: all batch-capable inputs share its size, and
    /// batch-capable outputs have it too.
    pub batch_capable: bool,
}

impl TensorSpec {
    /// A spec without a batch axis.
    pub fn new(name: impl Into<String>, dtype: DType, shape: Vec<Dim>) -> Self {
        Self {
            name: name.into(),
            dtype,
            shape,
            batch_capable: false,
        }
    }

    /// A spec with a fully fixed shape.
    pub fn fixed(name: impl Into<String>, dtype: DType, shape: &[usize]) -> Self {
        Self::new(name, dtype, shape.iter().map(|&d| Dim::Fixed(d)).collect())
    }

    /// Marks axis 0 as the batch axis.
    #[must_use]
    pub fn batch_capable(mut self) -> Self {
        self.batch_capable = true;
        self
    }

    /// Largest batch this spec allows (1 when not batch-capable).
    pub fn max_batch(&self) -> usize {
        match (self.batch_capable, self.shape.first()) {
            (true, Some(d)) => d.max(),
            _ => 1,
        }
    }

    /// Bytes of a tensor of this dtype with `shape`.
    pub fn byte_len(&self, shape: &[usize]) -> Option<usize> {
        shape
            .iter()
            .try_fold(self.dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d))
    }

    /// Checks one tensor against this spec (dtype, rank, dims, byte length).
    pub fn check(&self, tensor: &crate::Tensor) -> Result<(), ValidationError> {
        let name = || self.name.clone();
        if tensor.dtype() != self.dtype {
            return Err(ValidationError::DType {
                name: name(),
                expected: self.dtype,
                actual: tensor.dtype(),
            });
        }
        if tensor.shape().len() != self.shape.len() {
            return Err(ValidationError::Rank {
                name: name(),
                expected: self.shape.len(),
                actual: tensor.shape().len(),
            });
        }
        for (axis, (&actual, &expected)) in tensor.shape().iter().zip(&self.shape).enumerate() {
            if !expected.accepts(actual) {
                return Err(ValidationError::Dim {
                    name: name(),
                    axis,
                    expected,
                    actual,
                });
            }
        }
        let expected = self.byte_len(tensor.shape()).unwrap_or(usize::MAX);
        if tensor.byte_len() != expected {
            return Err(ValidationError::ByteLength {
                name: name(),
                expected,
                actual: tensor.byte_len(),
            });
        }
        Ok(())
    }
}

/// A model's declared inputs and outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IoSchema {
    /// Inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
}

/// Inputs that passed [`IoSchema::validate`]. Engines receive only this type,
/// so no engine code can run on unchecked inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    inputs: TensorMap,
    batch: Option<usize>,
}

impl Validated {
    /// The checked inputs.
    pub fn inputs(&self) -> &TensorMap {
        &self.inputs
    }

    /// The checked inputs, owned.
    pub fn into_inner(self) -> TensorMap {
        self.inputs
    }

    /// The shared batch size, if any input is batch-capable.
    pub fn batch_size(&self) -> Option<usize> {
        self.batch
    }
}

impl IoSchema {
    /// A schema from its inputs and outputs.
    pub fn new(inputs: Vec<TensorSpec>, outputs: Vec<TensorSpec>) -> Self {
        Self { inputs, outputs }
    }

    /// The input spec called `name`.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|s| s.name == name)
    }

    /// The output spec called `name`.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|s| s.name == name)
    }

    /// Largest batch all batch-capable inputs allow (1 if none is).
    pub fn max_batch(&self) -> usize {
        self.inputs
            .iter()
            .filter(|s| s.batch_capable)
            .map(TensorSpec::max_batch)
            .min()
            .unwrap_or(1)
    }

    /// Checks inputs: every name declared, none missing, then per input dtype,
    /// rank, each dimension, byte length, and one batch size across
    /// batch-capable inputs.
    pub fn validate(&self, inputs: TensorMap) -> Result<Validated, ValidationError> {
        let batch = check_all(&self.inputs, &inputs)?;
        Ok(Validated { inputs, batch })
    }

    /// The same checks for outputs (engines and conformance tests use it).
    pub fn validate_outputs(&self, outputs: &TensorMap) -> Result<Option<usize>, ValidationError> {
        check_all(&self.outputs, outputs)
    }
}

fn check_all(specs: &[TensorSpec], map: &TensorMap) -> Result<Option<usize>, ValidationError> {
    if let Some(name) = map.names().find(|n| !specs.iter().any(|s| s.name == *n)) {
        return Err(ValidationError::UnknownInput {
            name: name.to_owned(),
            expected: specs.iter().map(|s| s.name.clone()).collect(),
        });
    }
    let mut batch: Option<usize> = None;
    for spec in specs {
        let tensor = map
            .get(&spec.name)
            .ok_or_else(|| ValidationError::MissingInput {
                name: spec.name.clone(),
            })?;
        spec.check(tensor)?;
        if spec.batch_capable {
            let b = tensor.shape()[0];
            match batch {
                Some(expected) if expected != b => {
                    return Err(ValidationError::BatchMismatch {
                        name: spec.name.clone(),
                        expected,
                        actual: b,
                    })
                }
                _ => batch = Some(b),
            }
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    fn bert_schema() -> IoSchema {
        let ids = |n: &str| {
            TensorSpec::new(n, DType::I64, vec![Dim::range(1, 4), Dim::range(1, 128)])
                .batch_capable()
        };
        IoSchema::new(
            vec![ids("input_ids"), ids("attention_mask")],
            vec![TensorSpec::new(
                "embedding",
                DType::F32,
                vec![Dim::range(1, 4), Dim::Fixed(384)],
            )
            .batch_capable()],
        )
    }

    fn ids(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(shape, vec![1i64; n]).unwrap()
    }

    #[test]
    fn each_mismatch_has_its_own_error() {
        let s = bert_schema();
        let good = TensorMap::new()
            .with("input_ids", ids(vec![2, 7]))
            .with("attention_mask", ids(vec![2, 7]));
        assert_eq!(s.validate(good.clone()).unwrap().batch_size(), Some(2));
        assert_eq!(s.max_batch(), 4);

        let extra = good.clone().with("token_type_ids", ids(vec![2, 7]));
        assert!(
            matches!(s.validate(extra), Err(ValidationError::UnknownInput { name, .. }) if name == "token_type_ids")
        );

        let mut missing = good.clone();
        missing.remove("attention_mask");
        assert!(matches!(
            s.validate(missing),
            Err(ValidationError::MissingInput { .. })
        ));

        let dtype = good
            .clone()
            .with("input_ids", Tensor::zeros(DType::I32, vec![2, 7]).unwrap());
        assert!(matches!(
            s.validate(dtype),
            Err(ValidationError::DType {
                expected: DType::I64,
                actual: DType::I32,
                ..
            })
        ));

        let rank = good.clone().with("input_ids", ids(vec![14]));
        assert!(matches!(
            s.validate(rank),
            Err(ValidationError::Rank {
                expected: 2,
                actual: 1,
                ..
            })
        ));

        let too_long = good.clone().with("input_ids", ids(vec![2, 129]));
        assert!(matches!(
            s.validate(too_long),
            Err(ValidationError::Dim {
                axis: 1,
                actual: 129,
                ..
            })
        ));

        let batch = good.clone().with("input_ids", ids(vec![3, 7]));
        assert!(matches!(
            s.validate(batch),
            Err(ValidationError::BatchMismatch {
                expected: 3,
                actual: 2,
                ..
            })
        ));
    }

    #[test]
    fn outputs_validate_like_inputs_and_dims_display() {
        let s = bert_schema();
        let out = TensorMap::new().with(
            "embedding",
            Tensor::zeros(DType::F32, vec![1, 384]).unwrap(),
        );
        assert_eq!(s.validate_outputs(&out).unwrap(), Some(1));
        assert_eq!(Dim::range(1, 8).to_string(), "1..=8");
        assert_eq!(Dim::from(3).to_string(), "3");
        let spec = TensorSpec::fixed("x", DType::F16, &[2, 3]);
        assert_eq!(spec.byte_len(&[2, 3]), Some(12));
        assert_eq!(spec.max_batch(), 1);
    }
}
