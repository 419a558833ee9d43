//! Dense conv2d as im2col + `gemm`, with bias (and optionally a residual) written into the
//! output before the product is accumulated, and the activation applied in place.
//!
//! candle 0.11.1 wraps a 1×1 conv in scalar copies around its gemm and runs other kernels
//! through a tiled im2col (≈14 GMAC/s on ResNet-50's 3×3 convs). Here a 1×1/stride-1
//! conv hands the input plane to gemm as is; other shapes build one im2col matrix
//! (in parallel, one row per input channel and tap) and make one gemm call per image.
//!
//! ```
//! use candle_core::{Device, DType, Tensor};
//! use coreml_candle::ops::{activation::Activation, conv_gemm::DenseConv2d};
//! let dev = Device::Cpu;
//! let w = Tensor::ones((2, 3, 3, 3), DType::F32, &dev)?;
//! let b = Tensor::new(&[1.0f32, -100.0], &dev)?;
//! let conv = DenseConv2d::new(&w, Some(&b), 1, 1, Activation::Relu)?;
//! let y = conv.forward(&Tensor::ones((1, 3, 4, 4), DType::F32, &dev)?)?;
//! assert_eq!(y.dims(), &[1, 2, 4, 4]);
//! let v: Vec<f32> = y.flatten_all()?.to_vec1()?;
//! assert_eq!(v[5], 28.0); // interior: 27 taps + bias 1
//! assert_eq!(v[16], 0.0); // second channel: ReLU(27 - 100)
//! # Ok::<(), candle_core::Error>(())
//! ```

use super::activation::Activation;
use super::{contiguous_f32, conv_out_len_asym, runtime, sys};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// A dense (groups = 1) convolution with weights prepared at load time.
#[derive(Debug, Clone)]
pub struct DenseConv2d {
    c_in: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
    /// Zeros after the input (bottom and right); `padding` unless set otherwise.
    pad_end: usize,
    /// `[c_out, c_in·kh·kw]` row-major: the left operand of the gemm.
    weight: Vec<f32>,
    bias: Vec<f32>,
    act: Activation,
}

struct Geometry {
    b: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl DenseConv2d {
    /// From a PyTorch-layout weight `(c_out, c_in, kh, kw)` and optional bias `(c_out)`.
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        act: Activation,
    ) -> Result<Self> {
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        let w = super::bn_fold::tensor_vec(weight)?;
        let b = match bias {
            Some(b) => super::bn_fold::tensor_vec(b)?,
            None => vec![0.0; c_out],
        };
        Self::from_parts(c_in, c_out, kh, kw, stride, padding, w, b, act)
    }

    /// From raw parts: `weight` `[c_out, c_in·kh·kw]`, `bias` `[c_out]`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        c_in: usize,
        c_out: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        act: Activation,
    ) -> Result<Self> {
        if c_in == 0 || c_out == 0 || kh == 0 || kw == 0 || stride == 0 {
            bail!("dense conv: empty shape or zero stride");
        }
        if weight.len() != c_out * c_in * kh * kw || bias.len() != c_out {
            bail!(
                "dense conv: weight {} / bias {} elements for {c_out}×{c_in}×{kh}×{kw}",
                weight.len(),
                bias.len()
            );
        }
        Ok(Self {
            c_in,
            c_out,
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

    /// `act(conv(x) + bias)` for an NCHW f32 tensor.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `act(conv(x) + bias + residual)`; `residual` has the output's shape.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        x.contiguous()?
            .apply_op2_no_bwd(&residual.contiguous()?, &ResidualConv(self))
    }

    fn geometry(&self, shape: &Shape) -> Result<Geometry> {
        let (b, c, h, w) = shape.dims4()?;
        if c != self.c_in {
            bail!("dense conv: {c} input channels, expected {}", self.c_in);
        }
        Ok(Geometry {
            b,
            h,
            w,
            oh: conv_out_len_asym(h, self.kh, self.stride, self.padding, self.pad_end)?,
            ow: conv_out_len_asym(w, self.kw, self.stride, self.padding, self.pad_end)?,
        })
    }

    /// Shared body: `init` fills one image's output before the gemm accumulates into it.
    ///
    /// Parallel over blocks of output pixels (columns) when there are enough of them,
    /// else over blocks of output channels (rows): each task builds its own im2col
    /// slice, runs a single-threaded gemm and its epilogue, so a convolution has one
    /// join point instead of gemm's several, and the im2col data stays in the core's
    /// cache. More blocks than threads let an idle thread take over when the other is
    /// preempted.
    fn run(
        &self,
        src: &[f32],
        g: &Geometry,
        init: impl Fn(usize, &mut Vec<f32>),
    ) -> (CpuStorage, Shape) {
        let n = g.oh * g.ow;
        let k = self.c_in * self.kh * self.kw;
        let m = self.c_out;
        let threads = runtime::cpu_threads();
        let direct = self.kh == 1
            && self.kw == 1
            && self.stride == 1
            && self.padding == 0
            && self.pad_end == 0;
        let col_parts = (4 * threads).min(n / 96);
        let mut out: Vec<f32> = Vec::with_capacity(g.b * m * n);
        let mut cols = Vec::new();
        for img in 0..g.b {
            let x = &src[img * self.c_in * g.h * g.w..(img + 1) * self.c_in * g.h * g.w];
            let start = out.len();
            init(img, &mut out);
            debug_assert_eq!(out.len() - start, m * n);
            let dst = &mut out[start..];
            if threads > 1 && col_parts >= threads {
                let bounds: Vec<usize> = (0..=col_parts).map(|i| i * n / col_parts).collect();
                let blocks = sys::split_columns(dst, m, n, &bounds);
                blocks.into_par_iter().for_each(|mut b| {
                    let (c0, nb) = (b.col0(), b.cols());
                    if direct {
                        b.gemm(k, &self.weight, k, &x[c0..], n, true);
                    } else {
                        let mut buf = vec![0f32; k * nb];
                        for (row, d) in buf.chunks_exact_mut(nb).enumerate() {
                            self.im2col_row(x, g, row, c0, d);
                        }
                        b.gemm(k, &self.weight, k, &buf, nb, true);
                    }
                    for r in 0..m {
                        self.act.apply(b.row_mut(r));
                    }
                });
                continue;
            }
            let rhs: &[f32] = if direct {
                x
            } else {
                cols.resize(k * n, 0.0);
                cols.par_chunks_mut(n)
                    .enumerate()
                    .for_each(|(row, d)| self.im2col_row(x, g, row, 0, d));
                &cols
            };
            let row_parts = (4 * threads).min(m / 16).max(1);
            let rows_per = m.div_ceil(row_parts);
            dst.par_chunks_mut(rows_per * n)
                .enumerate()
                .for_each(|(i, d)| {
                    let rows = d.len() / n;
                    let lhs = &self.weight[i * rows_per * k..];
                    sys::sgemm(rows, n, k, d, lhs, rhs, true, 1);
                    self.act.apply(d);
                });
        }
        let shape = Shape::from((g.b, m, g.oh, g.ow));
        (CpuStorage::F32(out), shape)
    }

    /// One im2col row `(c, ky, kx)` for output pixels `p0 .. p0 + dst.len()`: the input
    /// value under that tap for each pixel, zero where it falls in the padding.
    fn im2col_row(&self, x: &[f32], g: &Geometry, row: usize, p0: usize, dst: &mut [f32]) {
        let (s, p, kh, kw) = (self.stride, self.padding, self.kh, self.kw);
        let (h, w, ow) = (g.h, g.w, g.ow);
        let (c, tap) = (row / (kh * kw), row % (kh * kw));
        let (ky, kx) = (tap / kw, tap % kw);
        let plane = &x[c * h * w..(c + 1) * h * w];
        // Output columns whose input column ix = ox·s + kx − p lies in [0, w).
        let lo = p.saturating_sub(kx).div_ceil(s).min(ow);
        let hi = if w + p > kx {
            ((w + p - kx - 1) / s + 1).min(ow)
        } else {
            0
        };
        let end = p0 + dst.len();
        let mut px = p0;
        while px < end {
            let (oy, ox0) = (px / ow, px % ow);
            let ox1 = ow.min(ox0 + (end - px));
            let seg = &mut dst[px - p0..px - p0 + (ox1 - ox0)];
            px += ox1 - ox0;
            let iy = (oy * s + ky) as isize - p as isize;
            let (a, b) = (lo.clamp(ox0, ox1), hi.clamp(ox0, ox1));
            if iy < 0 || iy >= h as isize || a >= b {
                seg.fill(0.0);
                continue;
            }
            let srow = &plane[iy as usize * w..(iy as usize + 1) * w];
            seg[..a - ox0].fill(0.0);
            seg[b - ox0..].fill(0.0);
            let ix0 = a * s + kx - p;
            let valid = &mut seg[a - ox0..b - ox0];
            if s == 1 {
                valid.copy_from_slice(&srow[ix0..ix0 + (b - a)]);
            } else {
                for (d, v) in valid.iter_mut().zip(srow[ix0..].iter().step_by(s)) {
                    *d = *v;
                }
            }
        }
    }
}

impl CustomOp1 for DenseConv2d {
    fn name(&self) -> &'static str {
        "coreml-dense-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name())?;
        let g = self.geometry(layout.shape())?;
        let n = g.oh * g.ow;
        Ok(self.run(src, &g, |_, out| {
            for &b in &self.bias {
                out.extend(std::iter::repeat_n(b, n));
            }
        }))
    }
}

/// [`DenseConv2d::forward_add`]: the residual plus bias is the gemm's starting value.
struct ResidualConv<'a>(&'a DenseConv2d);

impl CustomOp2 for ResidualConv<'_> {
    fn name(&self) -> &'static str {
        "coreml-dense-conv2d-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let conv = self.0;
        let src = contiguous_f32(s1, l1, self.name())?;
        let res = contiguous_f32(s2, l2, self.name())?;
        let g = conv.geometry(l1.shape())?;
        let expect = [g.b, conv.c_out, g.oh, g.ow];
        if l2.shape().dims() != expect {
            bail!("dense conv: residual {:?}, output {:?}", l2.shape(), expect);
        }
        let n = g.oh * g.ow;
        Ok(conv.run(src, &g, |img, out| {
            let res = &res[img * conv.c_out * n..(img + 1) * conv.c_out * n];
            for (c, r) in res.chunks_exact(n).enumerate() {
                let b = conv.bias[c];
                out.extend(r.iter().map(|v| v + b));
            }
        }))
    }
}
