//! Transformer-encoder kernels on plain f32 buffers: a linear layer with its weight laid
//! out for the gemm at load and its epilogue (bias, residual, GELU) fused, LayerNorm over
//! rows, and multi-head attention with a vectorised softmax and a NaN-free padding mask.
//!
//! ```
//! use coreml_candle::ops::activation::Activation;
//! use coreml_candle::ops::transformer::{attention, layer_norm_rows, Linear};
//! // y = x·Wᵀ + b with W = [[1, 2], [3, 4], [5, 6]] (PyTorch's [out, in]), b = [0, 0, 1].
//! let lin = Linear::new(&[1., 2., 3., 4., 5., 6.], vec![0., 0., 1.], 2, 3, Activation::Identity).unwrap();
//! let y = lin.forward(&[1., 1.], 1);
//! assert_eq!(y, vec![3., 7., 12.]);
//! // LayerNorm of [1, 3] is [-1, 1] (γ = 1, β = 0).
//! let mut r = vec![1f32, 3.];
//! layer_norm_rows(&mut r, 2, &[1., 1.], &[0., 0.], 1e-12);
//! assert!((r[0] + 1.0).abs() < 1e-5 && (r[1] - 1.0).abs() < 1e-5);
//! // One head of width 1, two tokens, the second masked out: the first attends to itself.
//! let qkv = [1f32, 1., 10., 1., 1., 20.]; // rows [q, k, v]
//! let ctx = attention(&qkv, 1, 2, 1, 1, &[1, 0]);
//! assert_eq!(ctx, vec![10., 10.]);
//! ```
//!
//! The padding mask removes masked keys from the softmax (probability exactly 0) instead
//! of adding a large negative number, so no score can overflow to `-inf` and no row can
//! turn into `0/0`; a row whose keys are all masked attends uniformly, which is what
//! Hugging Face's `finfo.min` mask yields.

use super::activation::{exp_approx, Activation};
use super::{runtime, sys};
use candle_core::{bail, Result};
use rayon::prelude::*;

/// `y = act(x·Wᵀ + b)`: PyTorch's `nn.Linear` with the weight stored `[in, out]`
/// row-major at load (the gemm's right operand, unit stride along the output).
#[derive(Debug, Clone)]
pub struct Linear {
    d_in: usize,
    d_out: usize,
    /// `[d_in, d_out]` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    act: Activation,
}

impl Linear {
    /// From PyTorch's weight `[d_out, d_in]` (row-major) and bias `[d_out]`.
    pub fn new(
        weight: &[f32],
        bias: Vec<f32>,
        d_in: usize,
        d_out: usize,
        act: Activation,
    ) -> Result<Self> {
        if weight.len() != d_in * d_out || bias.len() != d_out || d_in == 0 || d_out == 0 {
            bail!(
                "linear: weight {} / bias {} elements for {d_out}×{d_in}",
                weight.len(),
                bias.len()
            );
        }
        let mut t = vec![0f32; d_in * d_out];
        for (o, row) in weight.chunks_exact(d_in).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                t[i * d_out + o] = w;
            }
        }
        Ok(Self {
            d_in,
            d_out,
            weight: t,
            bias,
            act,
        })
    }

    /// Several linears over the same input fused into one (`[q; k; v]`): weights and
    /// biases concatenated along the output.
    pub fn concat(parts: &[Linear]) -> Result<Self> {
        let Some(first) = parts.first() else {
            bail!("linear: nothing to concatenate")
        };
        if parts
            .iter()
            .any(|p| p.d_in != first.d_in || p.act != first.act)
        {
            bail!("linear: concatenated parts differ in input width or activation");
        }
        let d_out: usize = parts.iter().map(|p| p.d_out).sum();
        let mut weight = Vec::with_capacity(first.d_in * d_out);
        for i in 0..first.d_in {
            for p in parts {
                weight.extend_from_slice(&p.weight[i * p.d_out..(i + 1) * p.d_out]);
            }
        }
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Ok(Self {
            d_in: first.d_in,
            d_out,
            weight,
            bias,
            act: first.act,
        })
    }

    /// Multiply the output columns `cols` (weights and bias) by `s` (the attention
    /// scale folded into the query projection).
    pub fn scale_outputs(&mut self, cols: std::ops::Range<usize>, s: f32) {
        for row in self.weight.chunks_exact_mut(self.d_out) {
            row[cols.clone()].iter_mut().for_each(|w| *w *= s);
        }
        self.bias[cols].iter_mut().for_each(|b| *b *= s);
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// `act(x·Wᵀ + b)` for `rows` rows of `x` (`[rows, d_in]`).
    ///
    /// # Panics
    /// If `x` is not `rows × d_in`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * self.d_out);
        for _ in 0..rows {
            out.extend_from_slice(&self.bias);
        }
        self.accumulate(x, rows, &mut out);
        out
    }

    /// `act(residual + x·Wᵀ + b)`, written over `residual` (`[rows, d_out]`).
    pub fn forward_add(&self, x: &[f32], rows: usize, residual: &mut [f32]) {
        assert_eq!(residual.len(), rows * self.d_out, "linear: residual shape");
        for r in residual.chunks_exact_mut(self.d_out) {
            r.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
        }
        self.accumulate(x, rows, residual);
    }

    /// `dst += x·Wᵀ`, then the activation; parallel over blocks of output columns, each
    /// task packing only its slice of the weight and applying the epilogue while the
    /// block is in cache.
    fn accumulate(&self, x: &[f32], rows: usize, dst: &mut [f32]) {
        assert_eq!(x.len(), rows * self.d_in, "linear: input shape");
        let (n, k) = (self.d_out, self.d_in);
        let threads = runtime::cpu_threads();
        // Column blocks of at least 64 outputs, a multiple of 16 (one AVX-512 register).
        let parts = if threads > 1 {
            (2 * threads).min(n / 64).max(1)
        } else {
            1
        };
        let bounds: Vec<usize> = (0..=parts)
            .map(|i| if i == parts { n } else { (i * n / parts) & !15 })
            .collect();
        let blocks = sys::split_columns(dst, rows, n, &bounds);
        let act = self.act;
        blocks.into_par_iter().for_each(|mut b| {
            let c0 = b.col0();
            b.gemm(k, x, k, &self.weight[c0..], n, true);
            if act != Activation::Identity {
                for r in 0..rows {
                    act.apply(b.row_mut(r));
                }
            }
        });
    }
}

/// LayerNorm over each row of `x` (`[rows, width]`) in place.
pub fn layer_norm_rows(x: &mut [f32], width: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    assert!(
        gamma.len() == width && beta.len() == width,
        "layer norm: width"
    );
    let one = |row: &mut [f32]| {
        sys::with_avx2(|| {
            let n = width as f32;
            let mean = row.iter().sum::<f32>() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        })
    };
    if x.len() >= 1 << 14 {
        x.par_chunks_mut(width).for_each(one);
    } else {
        x.chunks_mut(width).for_each(one);
    }
}

/// Softmax of `row` in place over the keys where `keep` is true; masked keys get 0.
/// A row with no kept key becomes uniform.
#[inline(always)]
fn masked_softmax(row: &mut [f32], keep: &[bool]) {
    let max = row
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(v, _)| *v)
        .fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        let u = 1.0 / row.len() as f32;
        row.fill(u);
        return;
    }
    let mut sum = 0.0f32;
    for (v, k) in row.iter_mut().zip(keep) {
        let e = exp_approx(*v - max);
        *v = if *k { e } else { 0.0 };
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Multi-head self-attention core: `softmax(Q·Kᵀ + mask)·V` per batch item and head, with
/// the scale already folded into Q.
///
/// `qkv` is `[batch·seq, 3·hidden]` (`[q | k | v]` per row, heads contiguous within each);
/// `mask` is `[batch·seq]`, nonzero for real tokens. Returns the context `[batch·seq, hidden]`.
///
/// # Panics
/// If the buffer sizes do not match.
pub fn attention(
    qkv: &[f32],
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    mask: &[i64],
) -> Vec<f32> {
    let hidden = heads * head_dim;
    assert_eq!(qkv.len(), batch * seq * 3 * hidden, "attention: qkv shape");
    assert_eq!(mask.len(), batch * seq, "attention: mask shape");
    let keep: Vec<bool> = mask.iter().map(|&m| m != 0).collect();
    // One task per (batch item, head): its [seq, head_dim] slice of the context.
    let mut parts: Vec<Vec<f32>> = (0..batch * heads)
        .into_par_iter()
        .map_init(Vec::new, |scores, bh| {
            let (b, h) = (bh / heads, bh % heads);
            let base = &qkv[b * seq * 3 * hidden..(b + 1) * seq * 3 * hidden];
            let keep = &keep[b * seq..(b + 1) * seq];
            let q = sys::MatRef {
                data: &base[h * head_dim..],
                rs: 3 * hidden,
                cs: 1,
            };
            // Kᵀ: element (d, j) is K[j, d].
            let kt = sys::MatRef {
                data: &base[hidden + h * head_dim..],
                rs: 1,
                cs: 3 * hidden,
            };
            let v = sys::MatRef {
                data: &base[2 * hidden + h * head_dim..],
                rs: 3 * hidden,
                cs: 1,
            };
            scores.resize(seq * seq, 0.0);
            sys::sgemm_view(seq, seq, head_dim, scores, seq, q, kt, false);
            sys::with_avx2(|| {
                for row in scores.chunks_exact_mut(seq) {
                    masked_softmax(row, keep);
                }
            });
            let mut ctx = vec![0f32; seq * head_dim];
            let p = sys::MatRef {
                data: &scores[..],
                rs: seq,
                cs: 1,
            };
            sys::sgemm_view(seq, head_dim, seq, &mut ctx, head_dim, p, v, false);
            ctx
        })
        .collect();
    let mut out = vec![0f32; batch * seq * hidden];
    for (bh, part) in parts.iter_mut().enumerate() {
        let (b, h) = (bh / heads, bh % heads);
        for (t, src) in part.chunks_exact(head_dim).enumerate() {
            let row = (b * seq + t) * hidden + h * head_dim;
            out[row..row + head_dim].copy_from_slice(src);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_attention(qkv: &[f32], seq: usize, heads: usize, hd: usize, mask: &[i64]) -> Vec<f32> {
        let hidden = heads * hd;
        let mut out = vec![0f32; seq * hidden];
        for h in 0..heads {
            for i in 0..seq {
                let q = &qkv[i * 3 * hidden + h * hd..][..hd];
                let s: Vec<f64> = (0..seq)
                    .map(|j| {
                        let k = &qkv[j * 3 * hidden + hidden + h * hd..][..hd];
                        let d: f64 = q.iter().zip(k).map(|(a, b)| (a * b) as f64).sum();
                        if mask[j] != 0 {
                            d
                        } else {
                            d + f32::MIN as f64
                        }
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    let v: f64 = (0..seq)
                        .map(|j| e[j] / z * qkv[j * 3 * hidden + 2 * hidden + h * hd + d] as f64)
                        .sum();
                    out[i * hidden + h * hd + d] = v as f32;
                }
            }
        }
        out
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn attention_matches_a_naive_reference_with_padding() {
        let (seq, heads, hd) = (7, 3, 5);
        let qkv = pseudo(seq * 3 * heads * hd, 7);
        let mask = [1, 1, 1, 1, 1, 0, 0];
        let got = attention(&qkv, 1, seq, heads, hd, &mask);
        let want = naive_attention(&qkv, seq, heads, hd, &mask);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "L∞ {err}");
    }

    #[test]
    fn fully_masked_row_is_finite_and_uniform() {
        let (seq, heads, hd) = (4, 2, 3);
        // Huge scores: an additive -large mask would overflow here.
        let qkv: Vec<f32> = pseudo(seq * 3 * heads * hd, 3)
            .iter()
            .map(|v| v * 1e18)
            .collect();
        let got = attention(&qkv, 1, seq, heads, hd, &[0, 0, 0, 0]);
        assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
        // Uniform weights: every query row gets the mean of V.
        let hidden = heads * hd;
        for d in 0..hidden {
            let mean: f32 = (0..seq)
                .map(|j| qkv[j * 3 * hidden + 2 * hidden + d])
                .sum::<f32>()
                / seq as f32;
            for i in 0..seq {
                let v = got[i * hidden + d];
                assert!(
                    (v - mean).abs() <= 1e-6 * mean.abs().max(1.0),
                    "{v} vs {mean}"
                );
            }
        }
    }

    #[test]
    fn fused_linear_equals_separate_ones_with_gelu_epilogue() {
        let (d_in, rows) = (24, 5);
        let w1 = pseudo(70 * d_in, 1);
        let w2 = pseudo(90 * d_in, 2);
        let a = Linear::new(&w1, pseudo(70, 3), d_in, 70, Activation::Gelu).unwrap();
        let b = Linear::new(&w2, pseudo(90, 4), d_in, 90, Activation::Gelu).unwrap();
        let x = pseudo(rows * d_in, 5);
        let fused = Linear::concat(&[a.clone(), b.clone()])
            .unwrap()
            .forward(&x, rows);
        let (ya, yb) = (a.forward(&x, rows), b.forward(&x, rows));
        for r in 0..rows {
            assert_eq!(&fused[r * 160..r * 160 + 70], &ya[r * 70..(r + 1) * 70]);
            assert_eq!(
                &fused[r * 160 + 70..(r + 1) * 160],
                &yb[r * 90..(r + 1) * 90]
            );
        }
        // And against the definition.
        let want: f32 = (0..d_in).map(|i| x[i] * w1[i]).sum::<f32>() + pseudo(70, 3)[0];
        let want = crate::ops::activation::gelu_erf(want);
        assert!((ya[0] - want).abs() < 1e-5, "{} vs {want}", ya[0]);
    }
}
