//! Tensor references into shared memory and their validation.

use crate::enums::wire_enum;
use serde::{Deserialize, Serialize};

/// Highest tensor rank the protocol carries.
pub const MAX_RANK: usize = 8;

wire_enum! {
    /// Element type of a tensor.
    DType {
        /// IEEE 754 binary32.
        F32 = 1,
        /// IEEE 754 binary16.
        F16 = 2,
        /// bfloat16.
        BF16 = 3,
        /// IEEE 754 binary64.
        F64 = 4,
        /// Signed 8-bit integer.
        I8 = 5,
        /// Signed 16-bit integer.
        I16 = 6,
        /// Signed 32-bit integer.
        I32 = 7,
        /// Signed 64-bit integer.
        I64 = 8,
        /// Unsigned 8-bit integer.
        U8 = 9,
    }
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> u64 {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// Short lowercase name (`f32`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }

    /// Parses [`DType::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        DType::ALL.iter().copied().find(|d| d.name() == name)
    }
}

/// A tensor stored in a shared-memory region.
///
/// `strides` count elements, not bytes: element `(i0, i1, ...)` lives at byte
/// `offset + (i0*strides[0] + i1*strides[1] + ...) * dtype.size()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorRef {
    /// Element type.
    pub dtype: DType,
    /// Dimensions; empty for a scalar.
    pub shape: Vec<u64>,
    /// Stride of each dimension in elements; same length as `shape`.
    pub strides: Vec<u64>,
    /// Id of the region, as given in `AttachRegion`.
    pub region: u32,
    /// Byte offset of element zero inside the region.
    pub offset: u64,
    /// Number of bytes the tensor spans (see [`TensorRef::span_bytes`]).
    pub len: u64,
}

/// Why a [`TensorRef`] is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorRefError {
    /// `shape` and `strides` differ in length.
    #[error("rank mismatch: {shape} dims but {strides} strides")]
    RankMismatch {
        /// Length of `shape`.
        shape: usize,
        /// Length of `strides`.
        strides: usize,
    },
    /// More than [`MAX_RANK`] dimensions.
    #[error("rank {0} exceeds the maximum of {MAX_RANK}")]
    RankTooLarge(usize),
    /// Sizes overflow 64 bits.
    #[error("tensor size overflows u64")]
    Overflow,
    /// `len` disagrees with dtype × shape × strides.
    #[error("byte length {actual} disagrees with dtype, shape and strides ({expected})")]
    LengthMismatch {
        /// Bytes implied by dtype, shape and strides.
        expected: u64,
        /// Bytes the ref claims.
        actual: u64,
    },
    /// Two elements share bytes (a stride too small for the dimension below it).
    #[error("strides make elements overlap")]
    Overlapping,
    /// The offset is not a multiple of the element size.
    #[error("offset {offset} is not aligned to the {align}-byte element size")]
    Misaligned {
        /// The offset.
        offset: u64,
        /// The required alignment.
        align: u64,
    },
    /// The bytes fall outside the region.
    #[error("bytes {offset}..{end} fall outside the region of {region_size} bytes")]
    OutOfRegion {
        /// First byte.
        offset: u64,
        /// One past the last byte.
        end: u64,
        /// The region's size.
        region_size: u64,
    },
}

impl TensorRef {
    /// A contiguous row-major ref at `offset` of `region`.
    pub fn contiguous(dtype: DType, shape: Vec<u64>, region: u32, offset: u64) -> Self {
        let strides = row_major_strides(&shape);
        let count: u64 = shape.iter().product();
        TensorRef {
            dtype,
            len: count * dtype.size(),
            shape,
            strides,
            region,
            offset,
        }
    }

    /// Number of elements (`1` for a scalar, `0` if any dim is zero).
    pub fn element_count(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Whether the strides are the row-major strides of `shape`.
    pub fn is_contiguous(&self) -> bool {
        self.strides == row_major_strides(&self.shape)
    }

    /// Bytes spanned from element zero to one past the last element.
    ///
    /// # Errors
    /// Rank errors, overflow and overlapping strides.
    pub fn span_bytes(&self) -> Result<u64, TensorRefError> {
        if self.shape.len() != self.strides.len() {
            return Err(TensorRefError::RankMismatch {
                shape: self.shape.len(),
                strides: self.strides.len(),
            });
        }
        if self.shape.len() > MAX_RANK {
            return Err(TensorRefError::RankTooLarge(self.shape.len()));
        }
        if self.shape.contains(&0) {
            return Ok(0);
        }
        // Non-overlap: sorted by stride, each dim's stride must reach past the extent of
        // every smaller-stride dim (dims of size 1 never overlap anything).
        let mut dims: Vec<(u64, u64)> = self
            .shape
            .iter()
            .copied()
            .zip(self.strides.iter().copied())
            .filter(|&(n, _)| n > 1)
            .collect();
        dims.sort_by_key(|&(_, s)| s);
        let mut extent = 1u64; // elements covered by the dims seen so far
        for &(n, s) in &dims {
            if s < extent {
                return Err(TensorRefError::Overlapping);
            }
            extent = s
                .checked_mul(n - 1)
                .and_then(|x| x.checked_add(extent))
                .ok_or(TensorRefError::Overflow)?;
        }
        extent
            .checked_mul(self.dtype.size())
            .ok_or(TensorRefError::Overflow)
    }

    /// Checks the ref against a region of `region_size` bytes: consistent rank,
    /// `len` equal to the span, offset aligned to the element size, and all bytes
    /// inside the region.
    ///
    /// # Errors
    /// The first rule the ref breaks.
    pub fn validate(&self, region_size: u64) -> Result<(), TensorRefError> {
        let expected = self.span_bytes()?;
        if expected != self.len {
            return Err(TensorRefError::LengthMismatch {
                expected,
                actual: self.len,
            });
        }
        let align = self.dtype.size();
        if !self.offset.is_multiple_of(align) {
            return Err(TensorRefError::Misaligned {
                offset: self.offset,
                align,
            });
        }
        let end = self
            .offset
            .checked_add(self.len)
            .ok_or(TensorRefError::Overflow)?;
        if end > region_size {
            return Err(TensorRefError::OutOfRegion {
                offset: self.offset,
                end,
                region_size,
            });
        }
        Ok(())
    }
}

/// Row-major strides, in elements, for `shape`.
pub fn row_major_strides(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1].max(1));
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(shape: &[u64], strides: &[u64], offset: u64, len: u64) -> TensorRef {
        TensorRef {
            dtype: DType::F32,
            shape: shape.into(),
            strides: strides.into(),
            region: 0,
            offset,
            len,
        }
    }

    #[test]
    fn contiguous_is_valid() {
        let t = TensorRef::contiguous(DType::F16, vec![2, 3, 4], 1, 16384);
        assert_eq!(t.strides, vec![12, 4, 1]);
        assert_eq!(t.len, 48);
        t.validate(16384 + 48).unwrap();
        assert_eq!(
            t.validate(16384 + 47),
            Err(TensorRefError::OutOfRegion {
                offset: 16384,
                end: 16432,
                region_size: 16431
            })
        );
    }

    #[test]
    fn padded_rows_span() {
        // 2 rows of 1500 f32 padded to 1504.
        let t = r(&[2, 1500], &[1504, 1], 0, (1504 + 1500) * 4);
        t.validate(1 << 20).unwrap();
        assert!(matches!(
            r(&[2, 1500], &[1504, 1], 0, 2 * 1504 * 4).validate(1 << 20),
            Err(TensorRefError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn rejects_bad_refs() {
        assert!(matches!(
            r(&[2, 2], &[1], 0, 16).validate(64),
            Err(TensorRefError::RankMismatch { .. })
        ));
        assert_eq!(
            r(&[2, 2], &[1, 1], 0, 12).validate(64),
            Err(TensorRefError::Overlapping)
        );
        assert!(matches!(
            r(&[4], &[1], 2, 16).validate(64),
            Err(TensorRefError::Misaligned { .. })
        ));
        assert_eq!(
            r(&[u64::MAX, 2], &[2, 1], 0, 0).validate(64),
            Err(TensorRefError::Overflow)
        );
        assert!(matches!(
            r(&[4], &[1], u64::MAX - 3, 16).validate(u64::MAX),
            Err(TensorRefError::Misaligned { .. }) | Err(TensorRefError::Overflow)
        ));
        assert_eq!(
            r(&[4], &[1], u64::MAX - 7, 16).validate(u64::MAX),
            Err(TensorRefError::Overflow)
        );
        let deep = TensorRef::contiguous(DType::U8, vec![1; 9], 0, 0);
        assert_eq!(deep.validate(64), Err(TensorRefError::RankTooLarge(9)));
    }

    #[test]
    fn empty_and_scalar() {
        r(&[0, 5], &[5, 1], 0, 0).validate(0).unwrap();
        r(&[], &[], 0, 4).validate(4).unwrap();
        // Size-1 dims never overlap, whatever their stride.
        r(&[1, 3], &[0, 1], 0, 12).validate(12).unwrap();
    }
}
