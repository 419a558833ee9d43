//! Activations fused into kernel epilogues, and a vectorisable erf-GELU.
//!
//! candle's `gelu_erf` calls scalar libm `erff` per element (≈7 ns each). [`gelu_erf`]
//! here uses Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7 on erf, the approximation
//! PyTorch's vectorised CPU erf also uses) with a polynomial `exp`, written branch-free so
//! the compiler vectorises it with baseline SSE2.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use coreml_candle::ops::activation::{gelu, gelu_erf};
//! let x = Tensor::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu)?;
//! let y: Vec<f32> = gelu(&x)?.to_vec1()?;
//! assert!((y[2] - 1.9544997).abs() < 1e-6);
//! assert!((gelu_erf(-1.0) + 0.15865526).abs() < 1e-6);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elementwise function applied to a kernel's output before it is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet/EfficientNet-Lite).
    Relu6,
    /// Exact (erf) GELU, as `torch.nn.GELU()` and candle's `gelu_erf`.
    Gelu,
}

/// Below this many elements, activation passes stay on the calling thread.
const PAR_MIN: usize = 1 << 15;

impl Activation {
    /// Apply in place (AVX-512/AVX2-wide where the CPU has it).
    #[inline]
    pub fn apply(self, xs: &mut [f32]) {
        if self != Activation::Identity {
            super::sys::run_wide(InPlace(self, xs))
        }
    }

    #[inline(always)]
    pub(crate) fn apply_inline(self, xs: &mut [f32]) {
        match self {
            Activation::Identity => {}
            Activation::Relu => xs.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Relu6 => xs.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
            Activation::Gelu => xs.iter_mut().for_each(|v| *v = gelu_erf(*v)),
        }
    }

    /// `dst[i] = f(src[i])`, in parallel chunks for large slices.
    pub fn map_par(self, src: &[f32], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "activation: length mismatch");
        let one = |s: &[f32], d: &mut [f32]| super::sys::run_wide(Mapped(self, s, d));
        if src.len() < PAR_MIN {
            one(src, dst);
        } else {
            dst.par_chunks_mut(PAR_MIN / 2)
                .zip(src.par_chunks(PAR_MIN / 2))
                .for_each(|(d, s)| one(s, d));
        }
    }

    /// Apply in place, in parallel chunks on the rayon pool for large slices.
    pub fn apply_par(self, xs: &mut [f32]) {
        if self == Activation::Identity {
            return;
        }
        if xs.len() < PAR_MIN {
            self.apply(xs);
        } else {
            xs.par_chunks_mut(PAR_MIN / 2).for_each(|c| self.apply(c));
        }
    }
}

/// [`Activation::apply`] as a loop for [`sys::run_wide`](super::sys::run_wide).
struct InPlace<'a>(Activation, &'a mut [f32]);

impl super::sys::WideLoop for InPlace<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        self.0.apply_inline(self.1)
    }
}

/// [`Activation::map_par`]'s per-chunk loop for [`sys::run_wide`](super::sys::run_wide).
struct Mapped<'a>(Activation, &'a [f32], &'a mut [f32]);

impl super::sys::WideLoop for Mapped<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Mapped(act, s, d) = self;
        match act {
            Activation::Identity => d.copy_from_slice(s),
            Activation::Relu => d.iter_mut().zip(s).for_each(|(d, s)| *d = s.max(0.0)),
            Activation::Relu6 => d
                .iter_mut()
                .zip(s)
                .for_each(|(d, s)| *d = s.clamp(0.0, 6.0)),
            Activation::Gelu => d.iter_mut().zip(s).for_each(|(d, s)| *d = gelu_erf(*s)),
        }
    }
}

/// `e^x` for f32, branch-free (≈2 ulp; inputs below -87 flush towards 0).
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer without SSE4.1.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Taylor to degree 6 on |r| ≤ ln2/2: relative error < 2e-8 before rounding.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), branch-free.
#[inline(always)]
pub fn erf_approx(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let y = 1.0 - poly * exp_approx(-a * a);
    y.copysign(x)
}

/// Exact-form GELU, `0.5·x·(1 + erf(x/√2))`, with [`erf_approx`].
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU (erf form) of an f32 tensor as a custom op; other dtypes go to candle's `gelu_erf`.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if xs.dtype() != candle_core::DType::F32 || !xs.device().is_cpu() {
        return xs.gelu_erf();
    }
    xs.apply_op1_no_bwd(&ActivationOp(Activation::Gelu))
}

/// ReLU through the same kernel (parallel, in one pass).
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    if xs.dtype() != candle_core::DType::F32 || !xs.device().is_cpu() {
        return xs.relu();
    }
    xs.apply_op1_no_bwd(&ActivationOp(Activation::Relu))
}

/// An [`Activation`] as a candle `CustomOp1` over contiguous f32 CPU storage.
#[derive(Debug, Clone, Copy)]
pub struct ActivationOp(pub Activation);

impl CustomOp1 for ActivationOp {
    fn name(&self) -> &'static str {
        "coreml-activation"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = super::contiguous_f32(storage, layout, self.name())?;
        let mut out = vec![0f32; src.len()];
        self.0.map_par(src, &mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wide (AVX-512/AVX2) loops round exactly as the baseline build: no FMA
    /// contraction, the same operations per element, on every activation and on
    /// lengths that leave vector tails.
    #[test]
    fn wide_loops_equal_the_scalar_definition_bit_for_bit() {
        let xs: Vec<f32> = (0..1037).map(|i| (i as f32 - 518.0) * 0.0173).collect();
        for act in [Activation::Relu, Activation::Relu6, Activation::Gelu] {
            let scalar: Vec<f32> = xs
                .iter()
                .map(|&v| match act {
                    Activation::Relu => v.max(0.0),
                    Activation::Relu6 => v.clamp(0.0, 6.0),
                    _ => gelu_erf(v),
                })
                .collect();
            let mut wide = xs.clone();
            act.apply(&mut wide);
            let mut mapped = vec![0.0; xs.len()];
            act.map_par(&xs, &mut mapped);
            for (i, ((s, w), m)) in scalar.iter().zip(&wide).zip(&mapped).enumerate() {
                assert_eq!(s.to_bits(), w.to_bits(), "{act:?} apply at {i}");
                assert_eq!(s.to_bits(), m.to_bits(), "{act:?} map at {i}");
            }
        }
        // The depthwise taps' multiply-add, likewise.
        let mut acc: Vec<f32> = xs.iter().map(|v| v * 0.5).collect();
        let want: Vec<f32> = acc.iter().zip(&xs).map(|(a, v)| a + 0.37 * v).collect();
        super::super::sys::axpy(&mut acc, &xs, 0.37);
        assert!(acc
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
