//! Conversions between dtypes.
//!
//! ```
//! use coreml_inference::{DType, Tensor};
//!
//! let ids = Tensor::new(vec![3], vec![101i64, 2023, 102]).unwrap();
//! let as_i32 = ids.cast(DType::I32).unwrap();
//! assert_eq!(as_i32.as_slice::<i32>().unwrap(), &[101, 2023, 102]);
//! assert_eq!(ids.to_f32_vec().unwrap(), vec![101.0, 2023.0, 102.0]);
//! ```
//!
//! Float-to-integer casts truncate towards zero and saturate, like Rust's
//! `as`; integer-to-integer casts go through `i64` and saturate; anything to
//! `bool` is `value != 0`.

use half::{bf16, f16};

use crate::dtype::DType;
use crate::error::TensorError;
use crate::tensor::Tensor;

fn read<T: bytemuck::Pod>(bytes: &[u8]) -> impl Iterator<Item = T> + '_ {
    bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(bytemuck::pod_read_unaligned::<T>)
}

impl Tensor {
    /// Every element as `f64` (exact for all dtypes but `i64` beyond 2^53).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, TensorError> {
        let b = self.as_bytes();
        Ok(match self.dtype() {
            DType::F32 => read::<f32>(b).map(f64::from).collect(),
            DType::F16 => read::<f16>(b).map(f64::from).collect(),
            DType::BF16 => read::<bf16>(b).map(f64::from).collect(),
            DType::F64 => read::<f64>(b).collect(),
            DType::I64 => read::<i64>(b).map(|v| v as f64).collect(),
            DType::I32 => read::<i32>(b).map(f64::from).collect(),
            DType::I16 => read::<i16>(b).map(f64::from).collect(),
            DType::I8 => read::<i8>(b).map(f64::from).collect(),
            DType::U8 | DType::Bool => b.iter().map(|&v| f64::from(v)).collect(),
        })
    }

    /// Every element as `f32`.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, TensorError> {
        if let Ok(v) = self.as_slice::<f32>() {
            return Ok(v.to_vec());
        }
        Ok(self.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
    }

    /// Every element as `i64` (floats truncate towards zero).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, TensorError> {
        let b = self.as_bytes();
        Ok(match self.dtype() {
            DType::I64 => read::<i64>(b).collect(),
            DType::I32 => read::<i32>(b).map(i64::from).collect(),
            DType::I16 => read::<i16>(b).map(i64::from).collect(),
            DType::I8 => read::<i8>(b).map(i64::from).collect(),
            DType::U8 | DType::Bool => b.iter().map(|&v| i64::from(v)).collect(),
            _ => self.to_f64_vec()?.into_iter().map(|v| v as i64).collect(),
        })
    }

    /// A copy converted to `to`. Casting to the same dtype is a plain clone.
    pub fn cast(&self, to: DType) -> Result<Tensor, TensorError> {
        if to == self.dtype() {
            return Ok(self.clone());
        }
        let shape = self.shape().to_vec();
        if !to.is_float() && !self.dtype().is_float() {
            let v = self.to_i64_vec()?;
            return from_i64(to, shape, &v);
        }
        let v = self.to_f64_vec()?;
        match to {
            DType::F32 => Tensor::new(shape, v.iter().map(|&x| x as f32).collect::<Vec<_>>()),
            DType::F64 => Tensor::new(shape, v),
            DType::F16 => Tensor::new(
                shape,
                v.iter().map(|&x| f16::from_f64(x)).collect::<Vec<_>>(),
            ),
            DType::BF16 => Tensor::new(
                shape,
                v.iter().map(|&x| bf16::from_f64(x)).collect::<Vec<_>>(),
            ),
            _ => from_i64(to, shape, &v.iter().map(|&x| x as i64).collect::<Vec<_>>()),
        }
    }
}

fn from_i64(to: DType, shape: Vec<usize>, v: &[i64]) -> Result<Tensor, TensorError> {
    fn sat<T: TryFrom<i64> + Copy>(x: i64, lo: T, hi: T) -> T {
        T::try_from(x).unwrap_or(if x < 0 { lo } else { hi })
    }
    match to {
        DType::I64 => Tensor::from_slice(shape, v),
        DType::I32 => Tensor::new(
            shape,
            v.iter()
                .map(|&x| sat(x, i32::MIN, i32::MAX))
                .collect::<Vec<_>>(),
        ),
        DType::I16 => Tensor::new(
            shape,
            v.iter()
                .map(|&x| sat(x, i16::MIN, i16::MAX))
                .collect::<Vec<_>>(),
        ),
        DType::I8 => Tensor::new(
            shape,
            v.iter()
                .map(|&x| sat(x, i8::MIN, i8::MAX))
                .collect::<Vec<_>>(),
        ),
        DType::U8 => Tensor::new(
            shape,
            v.iter()
                .map(|&x| sat(x, u8::MIN, u8::MAX))
                .collect::<Vec<_>>(),
        ),
        DType::Bool => Tensor::from_bools(shape, &v.iter().map(|&x| x != 0).collect::<Vec<_>>()),
        DType::F32 => Tensor::new(shape, v.iter().map(|&x| x as f32).collect::<Vec<_>>()),
        DType::F64 => Tensor::new(shape, v.iter().map(|&x| x as f64).collect::<Vec<_>>()),
        DType::F16 => Tensor::new(
            shape,
            v.iter()
                .map(|&x| f16::from_f64(x as f64))
                .collect::<Vec<_>>(),
        ),
        DType::BF16 => Tensor::new(
            shape,
            v.iter()
                .map(|&x| bf16::from_f64(x as f64))
                .collect::<Vec<_>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips_small_integers() {
        let src = Tensor::new(vec![2, 2], vec![0.0f32, 1.0, 2.0, 100.0]).unwrap();
        for d in DType::ALL {
            let c = src.cast(d).unwrap();
            assert_eq!(c.dtype(), d);
            assert_eq!(c.shape(), &[2, 2]);
            assert_eq!(c.byte_len(), 4 * d.size_in_bytes());
            let back = c.to_f32_vec().unwrap();
            if d == DType::Bool {
                assert_eq!(back, vec![0.0, 1.0, 1.0, 1.0]);
            } else {
                assert_eq!(back, vec![0.0, 1.0, 2.0, 100.0], "dtype {d}");
            }
        }
    }

    #[test]
    fn integer_casts_saturate_and_floats_truncate() {
        let t = Tensor::new(vec![3], vec![-300i64, 5, 300]).unwrap();
        assert_eq!(
            t.cast(DType::I8).unwrap().as_slice::<i8>().unwrap(),
            &[-128, 5, 127]
        );
        assert_eq!(t.cast(DType::U8).unwrap().as_bytes(), &[0, 5, 255]);
        let f = Tensor::new(vec![2], vec![-1.7f32, 2.9]).unwrap();
        assert_eq!(f.to_i64_vec().unwrap(), vec![-1, 2]);
        let h = f.cast(DType::F16).unwrap();
        let err = (h.to_f32_vec().unwrap()[1] - 2.9).abs();
        assert!(err < 2e-3, "f16 rounding error {err}");
    }
}
