//! linear, matmul, softmax, normalisations, reductions, pooling, upsampling.
//!
//! ```
//! assert!(coreml_mil::ops::SUPPORTED.contains(&"layer_norm"));
//! ```

use candle_core::{DType, Device, Tensor, D};

use super::conv::{pads_for, PadSpec};
use super::terr;
use crate::executor::Ctx;
use crate::host::{norm_axis, Host};

fn axes(c: &Ctx, name: &str, rank: usize) -> Result<Option<Vec<usize>>, String> {
    match c.ints(name)? {
        None => Ok(None),
        Some(v) => {
            let mut a = v
                .iter()
                .map(|&x| norm_axis(x, rank))
                .collect::<Result<Vec<_>, _>>()?;
            a.sort();
            a.dedup();
            Ok(Some(a))
        }
    }
}

/// Reshapes a per-channel `[C]` (or `[..]`) parameter to broadcast on `dims` at `axes`.
fn along(p: &Tensor, rank: usize, ax: &[usize], dims: &[usize]) -> candle_core::Result<Tensor> {
    let shape: Vec<usize> = (0..rank)
        .map(|i| if ax.contains(&i) { dims[i] } else { 1 })
        .collect();
    p.reshape(shape)
}

fn normalise(x: &Tensor, ax: &[usize], eps: f64) -> candle_core::Result<Tensor> {
    let mut mean = x.clone();
    for &a in ax.iter().rev() {
        mean = mean.mean_keepdim(a)?;
    }
    let xc = x.broadcast_sub(&mean)?;
    let mut var = xc.sqr()?;
    for &a in ax.iter().rev() {
        var = var.mean_keepdim(a)?;
    }
    xc.broadcast_div(&(var + eps)?.sqrt()?)
}

/// `Some(result)` if `t` is one of these ops.
pub(crate) fn eval(c: &Ctx, t: &str) -> Result<Option<Tensor>, String> {
    let r = match t {
        "linear" => {
            let x = c.t("x")?;
            let w = c.t("weight")?;
            let y = x.broadcast_matmul(&w.t().map_err(terr)?).map_err(terr)?;
            match c.opt("bias")? {
                Some(b) => y.broadcast_add(&b),
                None => Ok(y),
            }
        }
        "matmul" => {
            let mut x = c.t("x")?;
            let mut y = c.t("y")?;
            let (vx, vy) = (x.rank() == 1, y.rank() == 1);
            if vx {
                x = x.unsqueeze(0).map_err(terr)?;
            }
            if vy {
                y = y.unsqueeze(1).map_err(terr)?;
            }
            if c.flag("transpose_x")? {
                x = x.transpose(D::Minus1, D::Minus2).map_err(terr)?;
            }
            if c.flag("transpose_y")? {
                y = y.transpose(D::Minus1, D::Minus2).map_err(terr)?;
            }
            let (x, y) = if x.dtype() == y.dtype() {
                (x, y)
            } else {
                (
                    x.to_dtype(DType::F32).map_err(terr)?,
                    y.to_dtype(DType::F32).map_err(terr)?,
                )
            };
            let mut r = x
                .contiguous()
                .and_then(|x| x.broadcast_matmul(&y.contiguous()?))
                .map_err(terr)?;
            if vy {
                r = r.squeeze(D::Minus1).map_err(terr)?;
            }
            if vx {
                let k = r.rank() - if vy { 1 } else { 2 };
                r = r.squeeze(k).map_err(terr)?;
            }
            Ok(r)
        }
        "softmax" => {
            let x = c.t("x")?;
            let a = norm_axis(c.int("axis", -1)?, x.rank())?;
            x.max_keepdim(a)
                .and_then(|m| x.broadcast_sub(&m)?.exp())
                .and_then(|e| e.broadcast_div(&e.sum_keepdim(a)?))
        }
        "layer_norm" => {
            let x = c.t("x")?;
            let r = x.rank();
            let ax = axes(c, "axes", r)?.unwrap_or_else(|| (0..r).collect());
            let mut y = normalise(&x, &ax, c.float("epsilon", 1e-5)?).map_err(terr)?;
            if let Some(g) = c.opt("gamma")? {
                y = y
                    .broadcast_mul(&along(&g, r, &ax, x.dims()).map_err(terr)?)
                    .map_err(terr)?;
            }
            if let Some(b) = c.opt("beta")? {
                y = y
                    .broadcast_add(&along(&b, r, &ax, x.dims()).map_err(terr)?)
                    .map_err(terr)?;
            }
            Ok(y)
        }
        "batch_norm" | "instance_norm" => {
            let x = c.t("x")?;
            let r = x.rank();
            let eps = c.float("epsilon", 1e-5)?;
            let mut y = if t == "batch_norm" {
                let m = along(&c.t("mean")?, r, &[1], x.dims()).map_err(terr)?;
                let v = along(&c.t("variance")?, r, &[1], x.dims()).map_err(terr)?;
                x.broadcast_sub(&m)
                    .and_then(|d| d.broadcast_div(&(v + eps)?.sqrt()?))
                    .map_err(terr)?
            } else {
                normalise(&x, &(2..r).collect::<Vec<_>>(), eps).map_err(terr)?
            };
            if let Some(g) = c.opt("gamma")? {
                y = y
                    .broadcast_mul(&along(&g, r, &[1], x.dims()).map_err(terr)?)
                    .map_err(terr)?;
            }
            if let Some(b) = c.opt("beta")? {
                y = y
                    .broadcast_add(&along(&b, r, &[1], x.dims()).map_err(terr)?)
                    .map_err(terr)?;
            }
            Ok(y)
        }
        "reduce_mean" | "reduce_sum" | "reduce_max" | "reduce_min" | "reduce_prod"
        | "reduce_l2_norm" => {
            let x = c.t("x")?;
            let r = x.rank();
            let ax = axes(c, "axes", r)?.unwrap_or_else(|| (0..r).collect());
            let keep = c.flag("keep_dims")?;
            let mut y = if t == "reduce_l2_norm" {
                x.sqr().map_err(terr)?
            } else {
                x.clone()
            };
            for &a in ax.iter().rev() {
                y = match t {
                    "reduce_mean" => y.mean_keepdim(a),
                    "reduce_max" => y.max_keepdim(a),
                    "reduce_min" => y.min_keepdim(a),
                    "reduce_prod" => prod_keepdim(&y, a),
                    _ => y.sum_keepdim(a),
                }
                .map_err(terr)?;
            }
            if t == "reduce_l2_norm" {
                y = y.sqrt().map_err(terr)?;
            }
            if !keep {
                let shape: Vec<usize> = (0..r)
                    .filter(|i| !ax.contains(i))
                    .map(|i| x.dims()[i])
                    .collect();
                y = y.reshape(shape).map_err(terr)?;
            }
            Ok(y)
        }
        "reduce_argmax" => {
            let x = c.t("x")?;
            let a = norm_axis(c.int("axis", -1)?, x.rank())?;
            let y = x.argmax_keepdim(a).map_err(terr)?;
            if c.flag("keep_dims")? {
                Ok(y)
            } else {
                y.squeeze(a)
            }
        }
        "max_pool" | "avg_pool" => return pool(c, t == "max_pool").map(Some),
        "upsample_nearest_neighbor" => {
            let x = c.t("x")?;
            let (sh, sw) = (
                c.float("scale_factor_height", 1.0)?,
                c.float("scale_factor_width", 1.0)?,
            );
            let (h, w) = (x.dims()[x.rank() - 2], x.dims()[x.rank() - 1]);
            x.upsample_nearest2d(
                (h as f64 * sh).floor() as usize,
                (w as f64 * sw).floor() as usize,
            )
        }
        "upsample_bilinear" => return bilinear(c).map(Some),
        _ => return Ok(None),
    };
    r.map(Some).map_err(terr)
}

fn prod_keepdim(y: &Tensor, a: usize) -> candle_core::Result<Tensor> {
    let n = y.dims()[a];
    let mut acc = y.narrow(a, 0, 1)?;
    for i in 1..n {
        acc = acc.mul(&y.narrow(a, i, 1)?)?;
    }
    Ok(acc)
}

fn pool(c: &Ctx, max: bool) -> Result<Tensor, String> {
    let x = c.t("x")?;
    if x.rank() != 4 {
        return Err(format!(
            "only 2-D pooling is implemented (rank {} input)",
            x.rank()
        ));
    }
    let k = c.ints("kernel_sizes")?.ok_or("missing kernel_sizes")?;
    let s = c.ints("strides")?.unwrap_or(vec![1, 1]);
    if k.len() != 2 || s.len() != 2 || k.iter().chain(&s).any(|&v| v <= 0) {
        return Err("kernel_sizes and strides need two positive entries".into());
    }
    let (k, s) = (
        [k[0] as usize, k[1] as usize],
        [s[0] as usize, s[1] as usize],
    );
    if c.flag("ceil_mode")? {
        return Err("ceil_mode is not implemented".into());
    }
    let exclude = c.flag("exclude_padding_from_average")?;
    let h = Host::from_tensor(&x).map_err(terr)?;
    let (n, ch, ih, iw) = (h.shape[0], h.shape[1], h.shape[2], h.shape[3]);
    let p = pads_for(&PadSpec::from_ctx(c)?, [ih, iw], k, s, [1, 1])?;
    let oh = (ih + p[0] + p[1])
        .checked_sub(k[0])
        .ok_or("kernel larger than the padded input")?
        / s[0]
        + 1;
    let ow = (iw + p[2] + p[3])
        .checked_sub(k[1])
        .ok_or("kernel larger than the padded input")?
        / s[1]
        + 1;
    let mut out = vec![0f32; n * ch * oh * ow];
    for plane in 0..n * ch {
        let src = &h.data[plane * ih * iw..(plane + 1) * ih * iw];
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut acc, mut cnt) = (if max { f32::NEG_INFINITY } else { 0.0 }, 0usize);
                for ky in 0..k[0] {
                    let y = (oy * s[0] + ky) as isize - p[0] as isize;
                    if y < 0 || y >= ih as isize {
                        continue;
                    }
                    for kx in 0..k[1] {
                        let xx = (ox * s[1] + kx) as isize - p[2] as isize;
                        if xx < 0 || xx >= iw as isize {
                            continue;
                        }
                        let v = src[y as usize * iw + xx as usize];
                        if max {
                            acc = acc.max(v)
                        } else {
                            acc += v
                        }
                        cnt += 1;
                    }
                }
                out[(plane * oh + oy) * ow + ox] = if max {
                    acc
                } else {
                    acc / if exclude { cnt.max(1) } else { k[0] * k[1] } as f32
                };
            }
        }
    }
    Tensor::from_vec(out, (n, ch, oh, ow), &Device::Cpu).map_err(terr)
}

fn bilinear(c: &Ctx) -> Result<Tensor, String> {
    let x = c.t("x")?;
    let (sh, sw) = (
        c.float("scale_factor_height", 1.0)?,
        c.float("scale_factor_width", 1.0)?,
    );
    let align = c.flag("align_corners")?;
    let half = c
        .bools("half_pixel_centers")?
        .and_then(|v| v.first().copied())
        .unwrap_or(!align);
    let h = Host::from_tensor(&x).map_err(terr)?;
    let r = h.shape.len();
    let (ih, iw) = (h.shape[r - 2], h.shape[r - 1]);
    let (oh, ow) = (
        (ih as f64 * sh).floor() as usize,
        (iw as f64 * sw).floor() as usize,
    );
    let coords = |o: usize, i: usize, scale: f64| -> Vec<(usize, usize, f32)> {
        (0..o)
            .map(|d| {
                let src = if align {
                    if o > 1 {
                        d as f64 * (i as f64 - 1.0) / (o as f64 - 1.0)
                    } else {
                        0.0
                    }
                } else if half {
                    ((d as f64 + 0.5) / scale - 0.5).max(0.0)
                } else {
                    d as f64 / scale
                };
                let lo = (src.floor() as usize).min(i - 1);
                let hi = (lo + 1).min(i - 1);
                (lo, hi, (src - lo as f64) as f32)
            })
            .collect()
    };
    let (cy, cx) = (coords(oh, ih, sh), coords(ow, iw, sw));
    let planes = h.data.len() / (ih * iw).max(1);
    let mut out = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let s = &h.data[p * ih * iw..(p + 1) * ih * iw];
        for &(y0, y1, fy) in &cy {
            for &(x0, x1, fx) in &cx {
                let top = s[y0 * iw + x0] * (1.0 - fx) + s[y0 * iw + x1] * fx;
                let bot = s[y1 * iw + x0] * (1.0 - fx) + s[y1 * iw + x1] * fx;
                out.push(top * (1.0 - fy) + bot * fy);
            }
        }
    }
    let mut shape = h.shape.clone();
    shape[r - 2] = oh;
    shape[r - 1] = ow;
    Tensor::from_vec(out, shape, &Device::Cpu).map_err(terr)
}
