//! Direct depthwise conv2d: one NCHW plane per task, bias and activation fused.
//!
//! candle 0.11.1 runs `groups = channels` as one tiled-im2col convolution per channel
//! followed by a `cat` (a 7×7 depthwise over 48 channels at 56²: 22 ms). This kernel
//! copies each plane once into a zero-padded buffer (split into its s column phases when
//! the stride s > 1), then adds each kernel tap to each output row as one contiguous
//! multiply-add (vectorised by the compiler, AVX2-wide where available), parallel over
//! planes on the rayon pool (≈1 ms). A channel multiplier (out = in × m) is supported.
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
            .for_each(|(plane, dst)| {
                let (img, oc) = (plane / c_out, plane % c_out);
                let ic = oc / self.multiplier;
                let off = (img * c + ic) * h * w;
                let res = residual.map(|r| &r[plane * oh * ow..(plane + 1) * oh * ow]);
                super::sys::with_avx2(|| {
                    self.plane(&src[off..off + h * w], h, w, oc, dst, ow, res)
                });
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c_out, oh, ow))))
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn plane(
        &self,
        src: &[f32],
        h: usize,
        w: usize,
        oc: usize,
        out: &mut [f32],
        ow: usize,
        residual: Option<&[f32]>,
    ) {
        let (s, p, kh, kw) = (self.stride, self.padding, self.kh, self.kw);
        let taps = &self.weight[oc * kh * kw..(oc + 1) * kh * kw];
        // Zero-padded copy of the plane, split into its s column phases: phase ph of
        // padded row y holds padded columns ph, ph+s, ph+2s, ... Tap (ky, kx) of output
        // row oy then reads phase kx % s of padded row oy·s + ky from column kx / s on,
        // one contiguous slice of `ow` values with no bounds arithmetic.
        let (hp, wpad) = (h + p + self.pad_end, w + p + self.pad_end);
        let wp = wpad.div_ceil(s);
        let mut padded = vec![0f32; s * hp * wp];
        let mut prow = vec![0f32; wpad];
        for y in 0..h {
            let srow = &src[y * w..(y + 1) * w];
            if s == 1 {
                padded[(y + p) * wp + p..(y + p) * wp + p + w].copy_from_slice(srow);
                continue;
            }
            prow[p..p + w].copy_from_slice(srow);
            for ph in 0..s {
                let dst = &mut padded[(ph * hp + y + p) * wp..(ph * hp + y + p + 1) * wp];
                for (d, v) in dst.iter_mut().zip(prow.iter().skip(ph).step_by(s)) {
                    *d = *v;
                }
            }
        }
        let bias = self.bias[oc];
        let oh = out.len() / ow;
        if s == 1 {
            // Stride 1: accumulate into a buffer with the padded row pitch, so that each
            // tap is ONE contiguous multiply-add over the whole plane (the values that
            // land in the pitch's extra columns are discarded).
            let n = (oh - 1) * wp + ow;
            let mut acc = vec![bias; n];
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = taps[ky * kw + kx];
                    let start = ky * wp + kx;
                    for (a, v) in acc.iter_mut().zip(&padded[start..start + n]) {
                        *a += wv * v;
                    }
                }
            }
            for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
                let arow = &acc[oy * wp..oy * wp + ow];
                match residual {
                    Some(r) => orow
                        .iter_mut()
                        .zip(arow.iter().zip(&r[oy * ow..(oy + 1) * ow]))
                        .for_each(|(o, (a, r))| *o = a + r),
                    None => orow.copy_from_slice(arow),
                }
                self.act.apply_inline(orow);
            }
            return;
        }
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            match residual {
                Some(r) => orow
                    .iter_mut()
                    .zip(&r[oy * ow..(oy + 1) * ow])
                    .for_each(|(o, r)| *o = r + bias),
                None => orow.fill(bias),
            }
            for ky in 0..kh {
                let y = oy * s + ky;
                for kx in 0..kw {
                    let start = ((kx % s) * hp + y) * wp + kx / s;
                    let srow = &padded[start..start + ow];
                    let wv = taps[ky * kw + kx];
                    for (o, v) in orow.iter_mut().zip(srow) {
                        *o += wv * v;
                    }
                }
            }
            self.act.apply_inline(orow);
        }
    }
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
