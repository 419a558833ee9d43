//! Convolution weights as plain arrays, and the load-time algebra on them: BatchNorm
//! folding, centred kernel padding, branch sums and identity kernels (structural
//! reparameterisation as in timm's MobileOne/RepMixer).
//!
//! ```
//! use coreml_candle::ops::conv_params::ConvParams;
//! // A 1×1 depthwise identity over 2 channels, padded to 3×3, plus itself.
//! let id = ConvParams::identity(2, 2, 1, 1, 0);
//! let mut k3 = id.pad_to(3)?;
//! k3.add(&id.pad_to(3)?)?;
//! assert_eq!(k3.weight[4], 2.0); // centre tap of channel 0
//! assert_eq!(k3.weight.iter().sum::<f32>(), 4.0);
//! # Ok::<(), candle_core::Error>(())
//! ```

use super::bn_fold::BatchNormParams;
use candle_core::{bail, Result};
use candle_nn::VarBuilder;

/// A convolution's geometry and f32 weights in PyTorch layout `[c_out, c_in/groups, kh, kw]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    /// Output channels.
    pub c_out: usize,
    /// Input channels (all groups).
    pub c_in: usize,
    /// Groups (1 = dense, `c_in` = depthwise).
    pub groups: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes).
    pub padding: usize,
    /// `[c_out, c_in/groups, kh, kw]` row-major.
    pub weight: Vec<f32>,
    /// `[c_out]` (zeros when the conv has no bias).
    pub bias: Vec<f32>,
}

impl ConvParams {
    /// Read `weight` (and `bias` when `has_bias`) under `vb`; square kernel `k`.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        vb: &VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        groups: usize,
        stride: usize,
        padding: usize,
        has_bias: bool,
    ) -> Result<Self> {
        if groups == 0 || !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
            bail!(
                "conv {}: {c_in}→{c_out} not divisible into {groups} groups",
                vb.prefix()
            );
        }
        let weight = vb
            .get((c_out, c_in / groups, k, k), "weight")?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bias = if has_bias {
            vb.get(c_out, "bias")?.to_vec1::<f32>()?
        } else {
            vec![0.0; c_out]
        };
        Ok(Self {
            c_out,
            c_in,
            groups,
            kh: k,
            kw: k,
            stride,
            padding,
            weight,
            bias,
        })
    }

    /// An all-zero conv (weights and bias) to sum branches into.
    pub fn zeros(
        c_in: usize,
        c_out: usize,
        groups: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            c_out,
            c_in,
            groups,
            kh: k,
            kw: k,
            stride,
            padding,
            weight: vec![0.0; c_out * (c_in / groups) * k * k],
            bias: vec![0.0; c_out],
        }
    }

    /// The conv that maps channel `o` to itself (`c_in = c_out`), as a `k×k` kernel with
    /// a centred 1; `groups` as in the branch it is added to.
    pub fn identity(
        channels: usize,
        groups: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        let per = channels / groups;
        let mut weight = vec![0.0; channels * per * k * k];
        for o in 0..channels {
            let i = o % per;
            weight[((o * per + i) * k + k / 2) * k + k / 2] = 1.0;
        }
        Self {
            c_out: channels,
            c_in: channels,
            groups,
            kh: k,
            kw: k,
            stride,
            padding,
            weight,
            bias: vec![0.0; channels],
        }
    }

    /// Input channels per group.
    pub fn per_group(&self) -> usize {
        self.c_in / self.groups
    }

    /// Fold an eval-mode BatchNorm that follows this conv.
    pub fn fold_bn(&mut self, bn: &BatchNormParams) -> Result<()> {
        bn.fold_into(&mut self.weight, &mut self.bias)
    }

    /// Zero-pad the kernel to `k×k` around its centre (padding grows to keep the output size).
    pub fn pad_to(&self, k: usize) -> Result<Self> {
        if k < self.kh
            || k < self.kw
            || !(k - self.kh).is_multiple_of(2)
            || !(k - self.kw).is_multiple_of(2)
        {
            bail!("conv pad: cannot centre {}×{} in {k}×{k}", self.kh, self.kw);
        }
        let (dy, dx) = ((k - self.kh) / 2, (k - self.kw) / 2);
        let rows = self.c_out * self.per_group();
        let mut weight = vec![0.0; rows * k * k];
        for r in 0..rows {
            for y in 0..self.kh {
                for x in 0..self.kw {
                    weight[(r * k + y + dy) * k + x + dx] =
                        self.weight[(r * self.kh + y) * self.kw + x];
                }
            }
        }
        Ok(Self {
            kh: k,
            kw: k,
            padding: self.padding + dy,
            weight,
            ..self.clone()
        })
    }

    /// Add another branch with the same geometry (weights and biases add).
    pub fn add(&mut self, other: &Self) -> Result<()> {
        self.check_same(other)?;
        self.weight
            .iter_mut()
            .zip(&other.weight)
            .for_each(|(a, b)| *a += b);
        self.bias
            .iter_mut()
            .zip(&other.bias)
            .for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Subtract another branch with the same geometry.
    pub fn sub(&mut self, other: &Self) -> Result<()> {
        self.check_same(other)?;
        self.weight
            .iter_mut()
            .zip(&other.weight)
            .for_each(|(a, b)| *a -= b);
        self.bias
            .iter_mut()
            .zip(&other.bias)
            .for_each(|(a, b)| *a -= b);
        Ok(())
    }

    /// Multiply output channel `o` (weights and bias) by `scale[o]`.
    pub fn scale_out(&mut self, scale: &[f32]) -> Result<()> {
        if scale.len() != self.c_out {
            bail!(
                "conv scale: {} factors for {} channels",
                scale.len(),
                self.c_out
            );
        }
        let per = self.weight.len() / self.c_out;
        for (o, &s) in scale.iter().enumerate() {
            self.weight[o * per..(o + 1) * per]
                .iter_mut()
                .for_each(|w| *w *= s);
            self.bias[o] *= s;
        }
        Ok(())
    }

    fn check_same(&self, other: &Self) -> Result<()> {
        let geo = |p: &Self| (p.c_out, p.c_in, p.groups, p.kh, p.kw, p.stride, p.padding);
        if geo(self) != geo(other) {
            bail!("conv branches differ: {:?} vs {:?}", geo(self), geo(other));
        }
        Ok(())
    }
}
