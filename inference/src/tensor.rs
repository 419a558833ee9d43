//! Owned, row-major, dtype-explicit tensors.
//!
//! ```
//! use coreml_inference::{DType, Tensor};
//!
//! let t = Tensor::new(vec![2, 3], vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
//! assert_eq!(t.dtype(), DType::F32);
//! assert_eq!(t.byte_len(), 24);
//! assert_eq!(t.as_slice::<f32>().unwrap()[4], 4.0);
//!
//! // Byte-level construction checks the length against dtype and shape.
//! assert!(Tensor::from_bytes(DType::F32, vec![2, 3], &[0u8; 23]).is_err());
//!
//! // Conversions between dtypes.
//! let h = t.cast(DType::F16).unwrap();
//! assert_eq!(h.to_f32_vec().unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
//! ```

use std::fmt;

use crate::dtype::{DType, Element};
use crate::error::TensorError;

/// Byte storage aligned to 8 bytes, so typed views never need a copy.
#[derive(Clone, PartialEq, Eq)]
struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    fn zeroed(len: usize) -> Self {
        Self {
            words: vec![0u64; len.div_ceil(8)],
            len,
        }
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let mut out = Self::zeroed(bytes.len());
        out.as_mut().copy_from_slice(bytes);
        out
    }

    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[..self.len]
    }
}

/// An owned tensor: dtype, row-major shape and the elements' bytes
/// (native little-endian layout, as Core ML and Candle use).
///
/// Invariant: `byte_len() == shape.iter().product() * dtype.size_in_bytes()`.
/// Every constructor checks it, so a `Tensor` never has a wrong byte length.
#[derive(Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: AlignedBytes,
}

/// Number of elements of a shape, or an error if it overflows `usize`.
pub(crate) fn element_count(shape: &[usize]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError::ShapeOverflow {
            shape: shape.to_vec(),
        })
}

impl Tensor {
    /// A tensor from typed elements. Fails if `data.len()` is not the
    /// product of `shape`.
    pub fn new<T: Element>(shape: Vec<usize>, data: Vec<T>) -> Result<Self, TensorError> {
        Self::from_slice(shape, &data)
    }

    /// A tensor copied from typed elements.
    pub fn from_slice<T: Element>(shape: Vec<usize>, data: &[T]) -> Result<Self, TensorError> {
        let expected = element_count(&shape)?;
        if data.len() != expected {
            return Err(TensorError::ElementCount {
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            dtype: T::DTYPE,
            shape,
            data: AlignedBytes::from_bytes(bytemuck::cast_slice(data)),
        })
    }

    /// A boolean tensor (one byte per element, 0 or 1).
    pub fn from_bools(shape: Vec<usize>, data: &[bool]) -> Result<Self, TensorError> {
        let bytes: Vec<u8> = data.iter().map(|&b| u8::from(b)).collect();
        let mut t = Self::from_slice(shape, &bytes)?;
        t.dtype = DType::Bool;
        Ok(t)
    }

    /// A tensor from raw bytes. Fails with [`TensorError::ByteLength`] if the
    /// length does not match dtype and shape.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, bytes: &[u8]) -> Result<Self, TensorError> {
        let expected = element_count(&shape)?
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| TensorError::ShapeOverflow {
                shape: shape.clone(),
            })?;
        if bytes.len() != expected {
            return Err(TensorError::ByteLength {
                expected,
                actual: bytes.len(),
            });
        }
        Ok(Self {
            dtype,
            shape,
            data: AlignedBytes::from_bytes(bytes),
        })
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Self, TensorError> {
        let len = element_count(&shape)?
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| TensorError::ShapeOverflow {
                shape: shape.clone(),
            })?;
        Ok(Self {
            dtype,
            shape,
            data: AlignedBytes::zeroed(len),
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The row-major shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn num_elements(&self) -> usize {
        self.data.len / self.dtype.size_in_bytes()
    }

    /// Number of bytes of the elements.
    pub fn byte_len(&self) -> usize {
        self.data.len
    }

    /// The elements' bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// The elements' bytes, mutable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.data.as_mut()
    }

    fn check_dtype(&self, expected: DType) -> Result<(), TensorError> {
        if self.dtype == expected {
            Ok(())
        } else {
            Err(TensorError::DTypeMismatch {
                expected,
                actual: self.dtype,
            })
        }
    }

    /// A typed view without copying. Fails if `T` is not this tensor's dtype.
    pub fn as_slice<T: Element>(&self) -> Result<&[T], TensorError> {
        self.check_dtype(T::DTYPE)?;
        Ok(bytemuck::cast_slice(self.data.as_ref()))
    }

    /// A typed mutable view without copying.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T], TensorError> {
        self.check_dtype(T::DTYPE)?;
        Ok(bytemuck::cast_slice_mut(self.data.as_mut()))
    }

    /// A typed copy. Fails if `T` is not this tensor's dtype (use
    /// [`Tensor::cast`] to convert).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, TensorError> {
        self.as_slice::<T>().map(<[T]>::to_vec)
    }

    /// The same elements under another shape with the same element count.
    pub fn reshape(mut self, shape: Vec<usize>) -> Result<Self, TensorError> {
        let expected = element_count(&shape)?;
        if expected != self.num_elements() {
            return Err(TensorError::ElementCount {
                expected,
                actual: self.num_elements(),
            });
        }
        self.shape = shape;
        Ok(self)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("bytes", &self.data.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_views_are_checked_and_aligned() {
        let t = Tensor::new(vec![3], vec![1i64, -2, 3]).unwrap();
        assert_eq!(t.as_slice::<i64>().unwrap(), &[1, -2, 3]);
        assert!(matches!(
            t.as_slice::<f32>(),
            Err(TensorError::DTypeMismatch {
                expected: DType::F32,
                actual: DType::I64
            })
        ));
        // Odd byte lengths still give aligned, exact views.
        let b = Tensor::from_bytes(DType::U8, vec![5], &[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(b.as_bytes(), &[1, 2, 3, 4, 5]);
        let h = Tensor::from_bytes(DType::F16, vec![1, 3], &[0u8; 6]).unwrap();
        assert_eq!(h.as_slice::<half::f16>().unwrap().len(), 3);
    }

    #[test]
    fn constructors_reject_wrong_lengths() {
        assert!(matches!(
            Tensor::new(vec![2, 2], vec![1.0f32; 3]),
            Err(TensorError::ElementCount {
                expected: 4,
                actual: 3
            })
        ));
        assert!(matches!(
            Tensor::from_bytes(DType::I64, vec![2], &[0u8; 12]),
            Err(TensorError::ByteLength {
                expected: 16,
                actual: 12
            })
        ));
        assert!(matches!(
            Tensor::zeros(DType::F32, vec![usize::MAX, 2]),
            Err(TensorError::ShapeOverflow { .. })
        ));
        let t = Tensor::zeros(DType::F32, vec![2, 3]).unwrap();
        assert!(t.clone().reshape(vec![7]).is_err());
        assert_eq!(t.reshape(vec![3, 2]).unwrap().shape(), &[3, 2]);
    }

    #[test]
    fn mutable_views_write_through() {
        let mut t = Tensor::zeros(DType::F32, vec![2]).unwrap();
        t.as_mut_slice::<f32>().unwrap()[1] = 7.5;
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 7.5]);
        let b = Tensor::from_bools(vec![2], &[true, false]).unwrap();
        assert_eq!(b.dtype(), DType::Bool);
        assert_eq!(b.as_bytes(), &[1, 0]);
    }
}
