//! BatchNorm (eval mode) folded into the convolution before it, at load time.
//!
//! `bn(conv(x)) = γ·(W*x + b − μ)/√(σ²+ε) + β` is the convolution with
//! `W' = W·s`, `b' = (b − μ)·s + β`, `s = γ/√(σ²+ε)` per output channel: one pass instead
//! of two at run time. The scale is computed in f64 and rounded once.
//!
//! ```
//! use coreml_candle::ops::bn_fold::BatchNormParams;
//! let bn = BatchNormParams {
//!     gamma: vec![2.0], beta: vec![1.0], mean: vec![0.5], var: vec![3.0], eps: 1.0,
//! };
//! let (mut w, mut b) = (vec![1.0f32, -1.0], vec![0.0f32]);
//! bn.fold_into(&mut w, &mut b).unwrap();
//! assert_eq!(w, vec![1.0, -1.0]);   // s = 2/√4 = 1
//! assert_eq!(b, vec![0.5]);         // (0 − 0.5)·1 + 1
//! ```

use candle_core::{bail, Result, Tensor};
use candle_nn::VarBuilder;

/// Running statistics and affine parameters of a `BatchNorm2d`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormParams {
    /// γ (`weight`).
    pub gamma: Vec<f32>,
    /// β (`bias`).
    pub beta: Vec<f32>,
    /// `running_mean`.
    pub mean: Vec<f32>,
    /// `running_var`.
    pub var: Vec<f32>,
    /// ε (PyTorch default 1e-5).
    pub eps: f64,
}

impl BatchNormParams {
    /// Read `weight`, `bias`, `running_mean`, `running_var` under `vb` (PyTorch naming).
    pub fn load(vb: &VarBuilder, channels: usize, eps: f64) -> Result<Self> {
        let get = |name: &str| -> Result<Vec<f32>> { vb.get(channels, name)?.to_vec1::<f32>() };
        Ok(Self {
            gamma: get("weight")?,
            beta: get("bias")?,
            mean: get("running_mean")?,
            var: get("running_var")?,
            eps,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// Per-channel `(scale, shift)` so that `bn(x) = x·scale + shift`, in f64.
    pub fn scale_shift(&self) -> (Vec<f64>, Vec<f64>) {
        let scale: Vec<f64> = self
            .gamma
            .iter()
            .zip(&self.var)
            .map(|(&g, &v)| g as f64 / (v as f64 + self.eps).sqrt())
            .collect();
        let shift = self
            .beta
            .iter()
            .zip(&self.mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| b as f64 - m as f64 * s)
            .collect();
        (scale, shift)
    }

    /// Fold into a convolution whose weight is `[c_out, ...]` row-major and bias `[c_out]`.
    pub fn fold_into(&self, weight: &mut [f32], bias: &mut [f32]) -> Result<()> {
        let c = self.channels();
        if bias.len() != c || weight.is_empty() || !weight.len().is_multiple_of(c) {
            bail!(
                "bn fold: {} channels, conv bias {} and weight {} elements",
                c,
                bias.len(),
                weight.len()
            );
        }
        let per = weight.len() / c;
        let (scale, _) = self.scale_shift();
        for (o, s) in scale.iter().enumerate() {
            for w in &mut weight[o * per..(o + 1) * per] {
                *w = (*w as f64 * s) as f32;
            }
            let b = (bias[o] as f64 - self.mean[o] as f64) * s + self.beta[o] as f64;
            bias[o] = b as f32;
        }
        Ok(())
    }
}

/// Flatten an f32 tensor to a `Vec` (any shape).
pub fn tensor_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()
}
