//! Host-side f32 tensors for the ops candle has no kernel for (padded pools,
//! strided slices, batched gathers, bilinear resampling, dequantisation), and
//! shape helpers (broadcasting, axes).
//!
//! ```
//! use coreml_mil::host::{broadcast_shape, norm_axis};
//! assert_eq!(broadcast_shape(&[2, 3, 1], &[4]).unwrap(), vec![2, 3, 4]);
//! assert_eq!(norm_axis(-1, 3).unwrap(), 2);
//! ```

use candle_core::{DType, Device, Tensor};

/// A row-major f32 tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Host {
    /// Copies a tensor of any dtype to the host as f32.
    pub fn from_tensor(t: &Tensor) -> candle_core::Result<Self> {
        Ok(Self {
            shape: t.dims().to_vec(),
            data: t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
        })
    }

    /// To an f32 tensor.
    pub fn to_tensor(&self) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.data.clone(), self.shape.as_slice(), &Device::Cpu)
    }

    /// Row-major strides.
    pub fn strides(&self) -> Vec<usize> {
        strides(&self.shape)
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Normalises a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r.max(1)).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} out of range for rank {rank}"))
    }
}
