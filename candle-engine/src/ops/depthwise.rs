//! Direct depthwise conv2d: one NCHW plane per task, bias and activation fused.
//!
//! candle 0.11.1 runs `groups = channels` as one tiled-im2col convolution per channel
//! followed by a `cat` (a 7×7 depthwise over 48 channels at 56²: 22 ms). This kernel
//! copies each plane once into a zero-padded buffer (split into its s×s row/column
//! phases when the stride s > 1), then adds each kernel tap to the whole output plane as
//! one contiguous multiply-add (vectorised by the compiler, AVX2-wide where available),
//! parallel over planes on the rayon pool (≈1 ms). A channel multiplier (out = in × m)
//! is supported.
//!
//! ```
//! use candle_core::{Device, DType, Tensor};
//! use coreml_candle::ops::{activation::Activation, depthwise::DepthwiseConv2d};
//! let dev = Device::Cpu;
//! let w = Tensor::ones((8, 1, 7, 7), DType::F32, &dev)?; // 4 inputs × multiplier 2
//! let conv = DepthwiseConv2d::new(&w, None, 4, 2, 3, Activation::Identity)?;
//! let y = conv.forward(&Tensor::ones((1, 4, 16, 16), DType::F32, &dev)?)?;
//! assert_eq!(y.dims(), &[1, 8, 8, 8]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use super::activation::Activation;
use super::{contiguous_f32, conv_out_len_asym};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Depthwise convolution with its weights prepared at load time.
#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    c_in: usize,
    multiplier: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
    /// Zeros after the input (bottom and right); `padding` unless set otherwise.
    pad_end: usize,
    /// `[c_in·multiplier, kh·kw]`; output channel `o` reads input channel `o / multiplier`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    act: Activation,
}

impl DepthwiseConv2d {
    /// From a PyTorch-layout weight `(c_out, 1, kh, kw)` of a conv with `groups = c_in`
    /// input channels, where `c_out = c_in·multiplier`.
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        groups: usize,
        stride: usize,
        padding: usize,
        act: Activation,
    ) -> Result<Self> {
        let (c_out, one, kh, kw) = weight.dims4()?;
        if one != 1 {
            bail!(
                "depthwise: weight must be (c_out, 1, kh, kw), got {:?}",
                weight.dims()
            );
        }
        let w = super::bn_fold::tensor_vec(weight)?;
        let b = match bias {
            Some(b) => super::bn_fold::tensor_vec(b)?,
            None => vec![0.0; c_out],
        };
        if groups == 0 || !c_out.is_multiple_of(groups) {
            bail!("depthwise: {c_out} output channels not a multiple of {groups} groups");
        }
        Self::from_parts(groups, c_out / groups, kh, kw, stride, padding, w, b, act)
    }

    /// From raw parts: `groups` input channels, `weight` `[c_out, kh·kw]`, `bias` `[c_out]`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        groups: usize,
        multiplier: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        act: Activation,
    ) -> Result<Self> {
        let c_out = groups * multiplier;
        if c_out == 0 || kh == 0 || kw == 0 || stride == 0 {
            bail!("depthwise: empty shape or zero stride");
        }
        if weight.len() != c_out * kh * kw || bias.len() != c_out {
            bail!(
                "depthwise: weight {} / bias {} elements for {c_out} channels of {kh}×{kw}",
                weight.len(),
                bias.len()
            );
        }
        Ok(Self {
            c_in: groups,
            multiplier,
            kh,
            kw,
            stride,
            padding,
            pad_end: padding,
            weight,
            bias,
            act,
        })
    }

    /// The same convolution with `end` zeros after the input instead of `padding`
    /// (bottom and right), as TensorFlow's "SAME" padding at stride 2 on even sizes.
    pub fn with_end_padding(mut self, end: usize) -> Self {
        self.pad_end = end;
        self
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.c_in * self.multiplier
    }

    /// Apply to an NCHW f32 tensor.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `act(conv(x) + bias + residual)`; `residual` has the output's shape.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        x.contiguous()?
            .apply_op2_no_bwd(&residual.contiguous()?, &ResidualDepthwise(self))
    }

    fn run(
        &self,
        src: &[f32],
        shape: &Shape,
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = shape.dims4()?;
        if c != self.c_in {
            bail!("depthwise: {c} input channels, expected {}", self.c_in);
        }
        let oh = conv_out_len_asym(h, self.kh, self.stride, self.padding, self.pad_end)?;
        let ow = conv_out_len_asym(w, self.kw, self.stride, self.padding, self.pad_end)?;
        let c_out = self.out_channels();
        if let Some(r) = residual {
            if r.len() != b * c_out * oh * ow {
                bail!(
                    "depthwise: residual of {} elements, output {b}×{c_out}×{oh}×{ow}",
                    r.len()
                );
            }
        }
        let mut out = vec![0f32; b * c_out * oh * ow];
        // At least ~64 K multiply-adds per rayon task: small late-stage planes (7×7)
        // would otherwise cost more in task hand-offs than in arithmetic.
        let per_plane = (oh * ow * self.kh * self.kw).max(1);
        let min_planes = (65_536 / per_plane).max(1);
        out.par_chunks_mut(oh * ow)
            .with_min_len(min_planes)
            .enumerate()
            .for_each_init(Scratch::default, |scratch, (plane, dst)| {
                let (img, oc) = (plane / c_out, plane % c_out);
                let ic = oc / self.multiplier;
                let off = (img * c + ic) * h * w;
                let res = residual.map(|r| &r[plane * oh * ow..(plane + 1) * oh * ow]);
                let src = &src[off..off + h * w];
                self.plane(src, (h, w), oc, dst, ow, res, scratch);
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c_out, oh, ow))))
    }

    /// One output plane. The zero-padded input plane is split into its s×s phases
    /// (phase `(py, px)` holds padded rows `py, py+s, ...` and columns `px, px+s, ...`,
    /// each phase `hq × wq`), so tap `(ky, kx)` of output `(oy, ox)` reads phase
    /// `(ky % s, kx % s)` at `(oy + ky/s, ox + kx/s)`: for the whole plane that is ONE
    /// contiguous slice at the phase pitch `wq`. Each tap is then one multiply-add over
    /// `(oh-1)·wq + ow` values into an accumulator with the same pitch (the values that
    /// land in the pitch's extra columns are discarded), at any stride.
    #[allow(clippy::too_many_arguments)]
    fn plane(
        &self,
        src: &[f32],
        (h, w): (usize, usize),
        oc: usize,
        out: &mut [f32],
        ow: usize,
        residual: Option<&[f32]>,
        scratch: &mut Scratch,
    ) {
        let (s, p, kh, kw) = (self.stride, self.padding, self.kh, self.kw);
        let taps = &self.weight[oc * kh * kw..(oc + 1) * kh * kw];
        let (hq, wq) = (
            (h + p + self.pad_end).div_ceil(s),
            (w + p + self.pad_end).div_ceil(s),
        );
        let phase = hq * wq;
        let padded = &mut scratch.padded;
        padded.clear();
        padded.resize(s * s * phase, 0.0);
        for y in 0..h {
            let srow = &src[y * w..(y + 1) * w];
            let (py, r) = ((y + p) % s, (y + p) / s);
            if s == 1 {
                padded[r * wq + p..r * wq + p + w].copy_from_slice(srow);
                continue;
            }
            for px in 0..s {
                // Input columns x with (x + p) % s == px land at column (x + p) / s.
                let x0 = (px + s - p % s) % s;
                if x0 >= w {
                    continue;
                }
                let c0 = (x0 + p) / s;
                let row = (py * s + px) * phase + r * wq;
                let dst = &mut padded[row + c0..row + wq];
                let from = &srow[x0..];
                if s == 2 {
                    // `step_by` costs ~15 instructions per element; pairs vectorise.
                    let pairs = from.chunks_exact(2);
                    let last = pairs.remainder().first().copied();
                    let n = pairs.len();
                    for (d, v) in dst.iter_mut().zip(pairs) {
                        *d = v[0];
                    }
                    if let (Some(v), Some(d)) = (last, dst.get_mut(n)) {
                        *d = v;
                    }
                } else {
                    for (d, v) in dst.iter_mut().zip(from.iter().step_by(s)) {
                        *d = *v;
                    }
                }
            }
        }
        let oh = out.len() / ow;
        let n = (oh - 1) * wq + ow;
        let acc = &mut scratch.acc;
        acc.clear();
        acc.resize(n, self.bias[oc]);
        for ky in 0..kh {
            let row = (ky % s) * s * phase + (ky / s) * wq;
            for kx in 0..kw {
                let wv = taps[ky * kw + kx];
                let start = row + (kx % s) * phase + kx / s;
                super::sys::axpy(acc, &padded[start..], wv);
            }
        }
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            let arow = &acc[oy * wq..oy * wq + ow];
            match residual {
                Some(r) => orow
                    .iter_mut()
                    .zip(arow.iter().zip(&r[oy * ow..(oy + 1) * ow]))
                    .for_each(|(o, (a, r))| *o = a + r),
                None => orow.copy_from_slice(arow),
            }
        }
        self.act.apply(out);
    }
}

/// Per-task buffers of [`DepthwiseConv2d::plane`], reused across the planes of a task.
#[derive(Default)]
struct Scratch {
    padded: Vec<f32>,
    acc: Vec<f32>,
}

impl CustomOp1 for DepthwiseConv2d {
    fn name(&self) -> &'static str {
        "coreml-depthwise-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name())?;
        self.run(src, layout.shape(), None)
    }
}

/// [`DepthwiseConv2d::forward_add`]: the residual plus bias is the accumulator's start.
struct ResidualDepthwise<'a>(&'a DepthwiseConv2d);

impl CustomOp2 for ResidualDepthwise<'_> {
    fn name(&self) -> &'static str {
        "coreml-depthwise-conv2d-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s1, l1, self.name())?;
        let res = contiguous_f32(s2, l2, self.name())?;
        self.0.run(src, l1.shape(), Some(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition, in f64: every output sums its taps over the zero-padded input.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        (b, c, h, w): (usize, usize, usize, usize),
        m: usize,
        k: usize,
        s: usize,
        (p, pe): (usize, usize),
        wt: &[f32],
        bias: &[f32],
        res: Option<&[f32]>,
    ) -> Vec<f32> {
        let (oh, ow) = ((h + p + pe - k) / s + 1, (w + p + pe - k) / s + 1);
        let mut out = Vec::new();
        for img in 0..b {
            for oc in 0..c * m {
                let ic = oc / m;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut a = bias[oc] as f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (
                                    (oy * s + ky) as isize - p as isize,
                                    (ox * s + kx) as isize - p as isize,
                                );
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    let v = x[((img * c + ic) * h + iy as usize) * w + ix as usize];
                                    a += wt[(oc * k + ky) * k + kx] as f64 * v as f64;
                                }
                            }
                        }
                        let i = out.len();
                        out.push((a + res.map_or(0.0, |r| r[i] as f64)) as f32);
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn phase_split_matches_the_definition_at_any_stride_and_padding() {
        // (batch, channels, multiplier, k, stride, padding begin, padding end, h, w)
        let cases = [
            (1, 3, 1, 3, 2, 1, 1, 7, 9),
            (2, 2, 2, 3, 2, 0, 1, 8, 6),
            (1, 2, 1, 5, 2, 1, 2, 11, 10),
            (1, 3, 1, 3, 3, 2, 0, 10, 13),
            (1, 1, 3, 7, 2, 3, 3, 5, 4),
            (1, 2, 1, 5, 4, 2, 2, 9, 17),
            (1, 2, 1, 3, 1, 1, 1, 1, 5),
            (1, 1, 1, 1, 2, 0, 0, 6, 7),
        ];
        for (i, &(b, c, m, k, s, p, pe, h, w)) in cases.iter().enumerate() {
            let x = values(b * c * h * w, i as u32);
            let wt = values(c * m * k * k, 100 + i as u32);
            let bias = values(c * m, 200 + i as u32);
            let op = DepthwiseConv2d::from_parts(
                c,
                m,
                k,
                k,
                s,
                p,
                wt.clone(),
                bias.clone(),
                Activation::Identity,
            )
            .unwrap()
            .with_end_padding(pe);
            let shape = Shape::from((b, c, h, w));
            let want = naive(&x, (b, c, h, w), m, k, s, (p, pe), &wt, &bias, None);
            let (got, got_shape) = op.run(&x, &shape, None).unwrap();
            let CpuStorage::F32(got) = got else {
                panic!("f32 output expected")
            };
            let (oh, ow) = ((h + p + pe - k) / s + 1, (w + p + pe - k) / s + 1);
            assert_eq!(got_shape.dims(), &[b, c * m, oh, ow], "case {i}");
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-5, "case {i}: L∞ {d}");

            let res = values(want.len(), 300 + i as u32);
            let want = naive(&x, (b, c, h, w), m, k, s, (p, pe), &wt, &bias, Some(&res));
            let (got, _) = op.run(&x, &shape, Some(&res)).unwrap();
            let CpuStorage::F32(got) = got else {
                panic!("f32 output expected")
            };
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-5, "case {i} with residual: L∞ {d}");
        }
    }
}
