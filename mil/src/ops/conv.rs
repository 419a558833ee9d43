//! conv (1-D/2-D; valid, same, same_lower and custom padding; groups;
//! dilation) and conv_transpose. Dense and depthwise convolutions with equal
//! strides, symmetric padding and no dilation run on the Candle engine's
//! kernels (im2col + gemm, direct depthwise), built once per op and cached;
//! everything else goes through a general im2col + candle matmul.
//!
//! ```
//! use coreml_mil::ops::conv::{pads_for, PadSpec};
//! // "same" with stride 2 on 7 rows and a 3-row kernel: total 2, split 1 + 1.
//! let p = pads_for(&PadSpec::new("same", vec![]), [7, 6], [3, 3], [2, 2], [1, 1]).unwrap();
//! assert_eq!(p, [1, 1, 0, 1]);
//! ```

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use coreml_candle::ops::activation::Activation;
use coreml_candle::ops::conv_gemm::DenseConv2d;
use coreml_candle::ops::depthwise::DepthwiseConv2d;
use coreml_mlpackage::ArgRef;

use super::terr;
use crate::executor::Ctx;
use crate::host::Host;

/// A prepared engine kernel.
#[derive(Debug)]
pub enum Kernel {
    Dense(DenseConv2d),
    Depthwise(DepthwiseConv2d),
}

/// `pad_type` and `pad` of a conv or pool.
#[derive(Debug, Clone)]
pub struct PadSpec {
    kind: String,
    pad: Vec<i64>,
}

impl PadSpec {
    /// From a pad type name and the custom pads.
    pub fn new(kind: &str, pad: Vec<i64>) -> Self {
        Self {
            kind: kind.to_string(),
            pad,
        }
    }

    pub(crate) fn from_ctx(c: &Ctx) -> Result<Self, String> {
        Ok(Self::new(
            c.string("pad_type")?.as_deref().unwrap_or("valid"),
            c.ints("pad")?.unwrap_or_default(),
        ))
    }
}

/// Pads `[top, bottom, left, right]` for a 2-D window.
pub fn pads_for(
    spec: &PadSpec,
    input: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    dil: [usize; 2],
) -> Result<[usize; 4], String> {
    match spec.kind.as_str() {
        "valid" => Ok([0; 4]),
        "custom" => {
            if spec.pad.len() != 4 || spec.pad.iter().any(|&p| p < 0) {
                return Err(format!(
                    "custom pad {:?} needs 4 non-negative entries",
                    spec.pad
                ));
            }
            Ok([
                spec.pad[0] as usize,
                spec.pad[1] as usize,
                spec.pad[2] as usize,
                spec.pad[3] as usize,
            ])
        }
        kind @ ("same" | "same_lower") => {
            let mut out = [0; 4];
            for a in 0..2 {
                let keff = (k[a] - 1) * dil[a] + 1;
                let total =
                    ((input[a].div_ceil(s[a]).max(1) - 1) * s[a] + keff).saturating_sub(input[a]);
                let before = if kind == "same" {
                    total / 2
                } else {
                    total.div_ceil(2)
                };
                out[2 * a] = before;
                out[2 * a + 1] = total - before;
            }
            Ok(out)
        }
        other => Err(format!("unknown pad_type {other:?}")),
    }
}

fn pair(v: Option<Vec<i64>>, one_d: bool) -> Result<[usize; 2], String> {
    match v {
        None => Ok([1, 1]),
        Some(v) if one_d && v.len() == 1 && v[0] > 0 => Ok([1, v[0] as usize]),
        Some(v) if !one_d && v.len() == 2 && v.iter().all(|&x| x > 0) => {
            Ok([v[0] as usize, v[1] as usize])
        }
        Some(v) => Err(format!("bad strides/dilations {v:?}")),
    }
}

fn is_const(c: &Ctx, name: &str) -> bool {
    match c.op.param(name) {
        None => true,
        Some(ArgRef::Value(_)) => true,
        Some(ArgRef::Name(n)) => c.exe.consts_contain(n),
    }
}

struct Geometry {
    s: [usize; 2],
    dil: [usize; 2],
    spec: PadSpec,
    groups: usize,
}

fn geometry(c: &Ctx, one_d: bool) -> Result<Geometry, String> {
    let mut spec = PadSpec::from_ctx(c)?;
    if one_d && spec.kind == "custom" && spec.pad.len() == 2 {
        spec.pad = vec![0, 0, spec.pad[0], spec.pad[1]];
    }
    Ok(Geometry {
        s: pair(c.ints("strides")?, one_d)?,
        dil: pair(c.ints("dilations")?, one_d)?,
        spec,
        groups: c.int("groups", 1)?.max(1) as usize,
    })
}

/// conv; `index` keys the kernel cache.
pub(crate) fn conv(c: &Ctx, index: usize) -> Result<Tensor, String> {
    let mut x = c.t("x")?.to_dtype(DType::F32).map_err(terr)?;
    let mut w = c.t("weight")?.to_dtype(DType::F32).map_err(terr)?;
    let one_d = x.rank() == 3;
    if one_d {
        x = x.unsqueeze(2).map_err(terr)?;
        w = w.unsqueeze(2).map_err(terr)?;
    }
    if x.rank() != 4 || w.rank() != 4 {
        return Err(format!(
            "only 1-D and 2-D convolutions are implemented (x rank {})",
            x.rank()
        ));
    }
    let g = geometry(c, one_d)?;
    let (n, cin, ih, iw) = x.dims4().map_err(terr)?;
    let (cout, cpg, kh, kw) = w.dims4().map_err(terr)?;
    if cin != cpg * g.groups || cout % g.groups != 0 {
        return Err(format!(
            "weight {:?} does not fit {cin} input channels in {} groups",
            w.dims(),
            g.groups
        ));
    }
    let p = pads_for(&g.spec, [ih, iw], [kh, kw], g.s, g.dil)?;
    let bias = c
        .opt("bias")?
        .map(|b| b.to_dtype(DType::F32))
        .transpose()
        .map_err(terr)?;
    let fast = g.dil == [1, 1]
        && g.s[0] == g.s[1]
        && p.iter().all(|&v| v == p[0])
        && is_const(c, "weight")
        && is_const(c, "bias");
    let y = if fast && (g.groups == 1 || (g.groups == cin && cpg == 1)) {
        let kernel = c
            .exe
            .kernel((index, p), || {
                if g.groups == 1 {
                    DenseConv2d::new(&w, bias.as_ref(), g.s[0], p[0], Activation::Identity)
                        .map(Kernel::Dense)
                } else {
                    DepthwiseConv2d::new(
                        &w,
                        bias.as_ref(),
                        g.groups,
                        g.s[0],
                        p[0],
                        Activation::Identity,
                    )
                    .map(Kernel::Depthwise)
                }
            })
            .map_err(terr)?;
        match &*kernel {
            Kernel::Dense(k) => k.forward(&x),
            Kernel::Depthwise(k) => k.forward(&x),
        }
        .map_err(terr)?
    } else {
        general(
            &x,
            &w,
            bias.as_ref(),
            &g,
            p,
            (n, cin, ih, iw),
            (cout, cpg, kh, kw),
        )?
    };
    if one_d {
        y.squeeze(2).map_err(terr)
    } else {
        Ok(y)
    }
}

#[allow(clippy::too_many_arguments)]
fn general(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &Geometry,
    p: [usize; 4],
    (n, cin, ih, iw): (usize, usize, usize, usize),
    (cout, cpg, kh, kw): (usize, usize, usize, usize),
) -> Result<Tensor, String> {
    let keff = [(kh - 1) * g.dil[0] + 1, (kw - 1) * g.dil[1] + 1];
    let oh = (ih + p[0] + p[1])
        .checked_sub(keff[0])
        .ok_or("kernel larger than the padded input")?
        / g.s[0]
        + 1;
    let ow = (iw + p[2] + p[3])
        .checked_sub(keff[1])
        .ok_or("kernel larger than the padded input")?
        / g.s[1]
        + 1;
    let h = Host::from_tensor(x).map_err(terr)?;
    let opg = cout / g.groups;
    let kk = cpg * kh * kw;
    let mut outs = Vec::with_capacity(n);
    for b in 0..n {
        let mut per_group = Vec::with_capacity(g.groups);
        for gi in 0..g.groups {
            let mut cols = vec![0f32; kk * oh * ow];
            for ci in 0..cpg {
                let plane = &h.data[((b * cin) + gi * cpg + ci) * ih * iw..][..ih * iw];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let row = (ci * kh + ky) * kw + kx;
                        for oy in 0..oh {
                            let y = (oy * g.s[0] + ky * g.dil[0]) as isize - p[0] as isize;
                            if y < 0 || y >= ih as isize {
                                continue;
                            }
                            for ox in 0..ow {
                                let xx = (ox * g.s[1] + kx * g.dil[1]) as isize - p[2] as isize;
                                if xx >= 0 && xx < iw as isize {
                                    cols[row * oh * ow + oy * ow + ox] =
                                        plane[y as usize * iw + xx as usize];
                                }
                            }
                        }
                    }
                }
            }
            let cols = Tensor::from_vec(cols, (kk, oh * ow), &Device::Cpu).map_err(terr)?;
            let wg = w
                .narrow(0, gi * opg, opg)
                .and_then(|t| t.reshape((opg, kk)))
                .map_err(terr)?;
            per_group.push(wg.matmul(&cols).map_err(terr)?);
        }
        outs.push(Tensor::cat(&per_group, 0).map_err(terr)?);
    }
    let mut y = Tensor::stack(&outs, 0)
        .and_then(|t| t.reshape((n, cout, oh, ow)))
        .map_err(terr)?;
    if let Some(b) = bias {
        y = y
            .broadcast_add(&b.reshape((1, cout, 1, 1)).map_err(terr)?)
            .map_err(terr)?;
    }
    Ok(y)
}

/// conv_transpose: weight `[Cin, Cout/groups, *K]`.
pub(crate) fn conv_transpose(c: &Ctx) -> Result<Tensor, String> {
    let mut x = c.t("x")?.to_dtype(DType::F32).map_err(terr)?;
    let mut w = c.t("weight")?.to_dtype(DType::F32).map_err(terr)?;
    let one_d = x.rank() == 3;
    if one_d {
        x = x.unsqueeze(2).map_err(terr)?;
        w = w.unsqueeze(2).map_err(terr)?;
    }
    if x.rank() != 4 || w.rank() != 4 {
        return Err("only 1-D and 2-D transposed convolutions are implemented".into());
    }
    let g = geometry(c, one_d)?;
    let (n, cin, ih, iw) = x.dims4().map_err(terr)?;
    let (wcin, opg, kh, kw) = w.dims4().map_err(terr)?;
    if wcin != cin || cin % g.groups != 0 {
        return Err(format!(
            "weight {:?} does not fit {cin} input channels",
            w.dims()
        ));
    }
    let ipg = cin / g.groups;
    let cout = opg * g.groups;
    let fh = (ih - 1) * g.s[0] + (kh - 1) * g.dil[0] + 1;
    let fw = (iw - 1) * g.s[1] + (kw - 1) * g.dil[1] + 1;
    let p = match g.spec.kind.as_str() {
        "valid" => [0; 4],
        "custom" => pads_for(&g.spec, [ih, iw], [kh, kw], g.s, g.dil)?,
        "same" | "same_lower" => {
            let (th, tw) = (
                fh.saturating_sub(ih * g.s[0]),
                fw.saturating_sub(iw * g.s[1]),
            );
            let lower = g.spec.kind == "same_lower";
            let split = |t: usize| {
                if lower {
                    (t.div_ceil(2), t / 2)
                } else {
                    (t / 2, t - t / 2)
                }
            };
            let ((a, b), (l, r)) = (split(th), split(tw));
            [a, b, l, r]
        }
        k => return Err(format!("unknown pad_type {k:?}")),
    };
    let (oh, ow) = (
        fh.checked_sub(p[0] + p[1])
            .ok_or("pads larger than the output")?,
        fw.checked_sub(p[2] + p[3])
            .ok_or("pads larger than the output")?,
    );
    let xh = Host::from_tensor(&x).map_err(terr)?;
    let wh = Host::from_tensor(&w).map_err(terr)?;
    let mut out = vec![0f32; n * cout * oh * ow];
    for b in 0..n {
        for ci in 0..cin {
            let gi = ci / ipg;
            let plane = &xh.data[(b * cin + ci) * ih * iw..][..ih * iw];
            for co in 0..opg {
                let dst = &mut out[(b * cout + gi * opg + co) * oh * ow..][..oh * ow];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = wh.data[((ci * opg + co) * kh + ky) * kw + kx];
                        for y in 0..ih {
                            let fy = (y * g.s[0] + ky * g.dil[0]) as isize - p[0] as isize;
                            if fy < 0 || fy >= oh as isize {
                                continue;
                            }
                            for xx in 0..iw {
                                let fx = (xx * g.s[1] + kx * g.dil[1]) as isize - p[2] as isize;
                                if fx >= 0 && fx < ow as isize {
                                    dst[fy as usize * ow + fx as usize] += plane[y * iw + xx] * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let mut y = Tensor::from_vec(out, (n, cout, oh, ow), &Device::Cpu).map_err(terr)?;
    if let Some(bias) = c.opt("bias")? {
        y = y
            .broadcast_add(
                &bias
                    .to_dtype(DType::F32)
                    .and_then(|b| b.reshape((1, cout, 1, 1)))
                    .map_err(terr)?,
            )
            .map_err(terr)?;
    }
    if one_d {
        y.squeeze(2).map_err(terr)
    } else {
        Ok(y)
    }
}

impl crate::executor::Executor {
    pub(crate) fn kernel(
        &self,
        key: (usize, [usize; 4]),
        build: impl FnOnce() -> candle_core::Result<Kernel>,
    ) -> candle_core::Result<Arc<Kernel>> {
        let mut m = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = m.get(&key) {
            return Ok(k.clone());
        }
        let k = Arc::new(build()?);
        m.insert(key, k.clone());
        Ok(k)
    }
}
