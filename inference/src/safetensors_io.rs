//! Reading and writing a [`TensorMap`] as a `.safetensors` file.
//!
//! ```
//! use coreml_inference::{Tensor, TensorMap};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("inputs.safetensors");
//! let m = TensorMap::new().with("x", Tensor::new(vec![2], vec![1.0f32, 2.0]).unwrap());
//! m.write_safetensors(&path).unwrap();
//! assert_eq!(TensorMap::read_safetensors(&path).unwrap(), m);
//! ```

use std::path::Path;

use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use crate::dtype::DType;
use crate::error::TensorError;
use crate::tensor::Tensor;
use crate::tensor_map::TensorMap;

fn to_st(d: DType) -> StDtype {
    match d {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::F64 => StDtype::F64,
        DType::I64 => StDtype::I64,
        DType::I32 => StDtype::I32,
        DType::I16 => StDtype::I16,
        DType::I8 => StDtype::I8,
        DType::U8 => StDtype::U8,
        DType::Bool => StDtype::BOOL,
    }
}

fn from_st(d: StDtype) -> Result<DType, TensorError> {
    Ok(match d {
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F64 => DType::F64,
        StDtype::I64 => DType::I64,
        StDtype::I32 => DType::I32,
        StDtype::I16 => DType::I16,
        StDtype::I8 => DType::I8,
        StDtype::U8 => DType::U8,
        StDtype::BOOL => DType::Bool,
        other => return Err(TensorError::UnsupportedDType(format!("{other:?}"))),
    })
}

impl TensorMap {
    /// Parses safetensors bytes.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self, TensorError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| TensorError::Format(e.to_string()))?;
        let mut out = TensorMap::new();
        for (name, view) in st.tensors() {
            let dtype = from_st(view.dtype())?;
            out.insert(
                name,
                Tensor::from_bytes(dtype, view.shape().to_vec(), view.data())?,
            );
        }
        Ok(out)
    }

    /// Serialises to safetensors bytes (tensors in name order, no metadata).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>, TensorError> {
        let views = self
            .iter()
            .map(|(name, t)| {
                TensorView::new(to_st(t.dtype()), t.shape().to_vec(), t.as_bytes())
                    .map(|v| (name.to_owned(), v))
                    .map_err(|e| TensorError::Format(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, None).map_err(|e| TensorError::Format(e.to_string()))
    }

    /// Reads a `.safetensors` file.
    pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Self, TensorError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TensorError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_safetensors_bytes(&bytes)
    }

    /// Writes a `.safetensors` file.
    pub fn write_safetensors(&self, path: impl AsRef<Path>) -> Result<(), TensorError> {
        let path = path.as_ref();
        let bytes = self.to_safetensors_bytes()?;
        std::fs::write(path, bytes).map_err(|e| TensorError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_survives_a_round_trip() {
        let mut m = TensorMap::new();
        let base = Tensor::new(vec![2, 3], vec![1.0f32, 0.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        for d in DType::ALL {
            m.insert(d.name(), base.cast(d).unwrap());
        }
        let bytes = m.to_safetensors_bytes().unwrap();
        let back = TensorMap::from_safetensors_bytes(&bytes).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn garbage_is_a_format_error() {
        assert!(matches!(
            TensorMap::from_safetensors_bytes(b"not a safetensors file"),
            Err(TensorError::Format(_))
        ));
        assert!(matches!(
            TensorMap::read_safetensors("/nonexistent/x.safetensors"),
            Err(TensorError::Io { .. })
        ));
    }
}
