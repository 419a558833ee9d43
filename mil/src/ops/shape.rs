//! Shape and indexing ops: reshape, transpose, expand_dims, squeeze, concat,
//! split, tile, slice_by_index, gather, select, cast.
//!
//! ```
//! assert!(coreml_mil::ops::SUPPORTED.contains(&"slice_by_index"));
//! ```

use candle_core::{DType, Device, Tensor};
use coreml_mlpackage::DataType;

use super::terr;
use crate::executor::{internal_dtype, Ctx};
use crate::host::{broadcast_shape, norm_axis, strides, Host};

/// `Some(results)` if `t` is a shape op.
pub(crate) fn eval(c: &Ctx, t: &str) -> Result<Option<Vec<Tensor>>, String> {
    let one = |r: candle_core::Result<Tensor>| r.map(|x| Some(vec![x])).map_err(terr);
    match t {
        "reshape" => {
            let x = c.t("x")?;
            let spec = c.ints("shape")?.ok_or("missing shape")?;
            let shape =
                reshape_target(x.dims(), &spec, c.exe.package().specification_version >= 8)?;
            one(x.reshape(shape))
        }
        "transpose" => {
            let x = c.t("x")?;
            let perm = c.ints("perm")?.ok_or("missing perm")?;
            let perm = perm
                .iter()
                .map(|&p| norm_axis(p, x.rank()))
                .collect::<Result<Vec<_>, _>>()?;
            one(x.permute(perm).and_then(|y| y.contiguous()))
        }
        "expand_dims" => {
            let x = c.t("x")?;
            let axes = c.ints("axes")?.ok_or("missing axes")?;
            let r = x.rank() + axes.len();
            let mut ax = axes
                .iter()
                .map(|&a| norm_axis(a, r))
                .collect::<Result<Vec<_>, _>>()?;
            ax.sort();
            let mut shape = x.dims().to_vec();
            for a in ax {
                shape.insert(a.min(shape.len()), 1);
            }
            one(x.reshape(shape))
        }
        "squeeze" => {
            let x = c.t("x")?;
            let dims = x.dims().to_vec();
            let axes = match c.ints("axes")? {
                Some(a) => a
                    .iter()
                    .map(|&a| norm_axis(a, dims.len()))
                    .collect::<Result<Vec<_>, _>>()?,
                None => (0..dims.len()).collect(),
            };
            let shape: Vec<usize> = dims
                .iter()
                .enumerate()
                .filter(|(i, &d)| !(d == 1 && axes.contains(i)))
                .map(|(_, &d)| d)
                .collect();
            one(x.reshape(shape))
        }
        "concat" => {
            let vals = c.list("values")?;
            let first = vals.first().ok_or("concat without values")?;
            let axis = norm_axis(c.int("axis", 0)?, first.rank())?;
            if c.flag("interleave")? {
                let mut shape = first.dims().to_vec();
                shape[axis] *= vals.len();
                one(Tensor::stack(&vals, axis + 1).and_then(|s| s.reshape(shape)))
            } else {
                one(Tensor::cat(&vals, axis))
            }
        }
        "split" => {
            let x = c.t("x")?;
            let axis = norm_axis(c.int("axis", 0)?, x.rank())?;
            let d = x.dims()[axis];
            let sizes: Vec<usize> = match c.ints("split_sizes")? {
                Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
                None => {
                    let n = c.int("num_splits", c.op.outputs.len() as i64)?.max(1) as usize;
                    let each = d.div_ceil(n);
                    (0..n)
                        .map(|i| each.min(d.saturating_sub(i * each)))
                        .collect()
                }
            };
            if sizes.iter().sum::<usize>() != d {
                return Err(format!("split sizes {sizes:?} do not add up to {d}"));
            }
            let mut out = Vec::new();
            let mut at = 0;
            for s in sizes {
                out.push(x.narrow(axis, at, s).map_err(terr)?);
                at += s;
            }
            Ok(Some(out))
        }
        "tile" => {
            let x = c.t("x")?;
            let reps: Vec<usize> = c
                .ints("reps")?
                .ok_or("missing reps")?
                .iter()
                .map(|&r| r.max(0) as usize)
                .collect();
            one(x.repeat(reps))
        }
        "slice_by_index" => Ok(Some(vec![slice(c)?])),
        "gather" => Ok(Some(vec![gather(c)?])),
        "select" => {
            let (cond, a, b) = (c.t("cond")?, c.t("a")?, c.t("b")?);
            let (a, b) = if a.dtype() == b.dtype() {
                (a, b)
            } else {
                (
                    a.to_dtype(DType::F32).map_err(terr)?,
                    b.to_dtype(DType::F32).map_err(terr)?,
                )
            };
            let s = broadcast_shape(&broadcast_shape(cond.dims(), a.dims())?, b.dims())?;
            let cond = cond
                .ne(0u8)
                .and_then(|x| x.broadcast_as(s.as_slice()))
                .map_err(terr)?;
            let a = a.broadcast_as(s.as_slice()).map_err(terr)?;
            let b = b.broadcast_as(s.as_slice()).map_err(terr)?;
            one(cond
                .contiguous()
                .and_then(|c| c.where_cond(&a.contiguous()?, &b.contiguous()?)))
        }
        "cast" => {
            let x = c.t("x")?;
            let name = c.string("dtype")?.ok_or("missing dtype")?;
            let d = DataType::from_name(&name).ok_or_else(|| format!("unknown dtype {name:?}"))?;
            let r = if d == DataType::Bool {
                x.ne(0f32).or_else(|_| x.ne(0i64))
            } else if d.is_float() {
                x.to_dtype(DType::F32)
            } else {
                // float -> int truncates toward zero (NumPy astype).
                x.to_dtype(DType::F64)
                    .and_then(|v| v.to_dtype(internal_dtype(d)))
            };
            one(r)
        }
        _ => Ok(None),
    }
}

/// The target shape of `reshape`: one −1 inferred; 0 copies an input dim
/// (position-wise in iOS15/16, from the right from iOS17 on).
pub fn reshape_target(dims: &[usize], spec: &[i64], ios17: bool) -> Result<Vec<usize>, String> {
    let total: usize = dims.iter().product();
    let mut out = vec![0usize; spec.len()];
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        out[i] = match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 => {
                if ios17 {
                    let from_right = spec.len() - i;
                    if from_right <= dims.len() {
                        dims[dims.len() - from_right]
                    } else {
                        1
                    }
                } else {
                    *dims.get(i).ok_or("0 in shape beyond the input rank")?
                }
            }
            s if s > 0 => s as usize,
            s => return Err(format!("bad reshape dimension {s} in {spec:?}")),
        };
    }
    if let Some(i) = infer {
        let rest: usize = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, &d)| d)
            .product();
        if rest == 0 || !total.is_multiple_of(rest) {
            return Err(format!("cannot reshape {dims:?} to {spec:?}"));
        }
        out[i] = total / rest;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {dims:?} to {spec:?}"));
    }
    Ok(out)
}

fn slice(c: &Ctx) -> Result<Tensor, String> {
    let x = c.t("x")?;
    let dtype = x.dtype();
    let h = Host::from_tensor(&x).map_err(terr)?;
    let r = h.shape.len();
    let begin = c.ints("begin")?.ok_or("missing begin")?;
    let end = c.ints("end")?.ok_or("missing end")?;
    let stride = c.ints("stride")?.unwrap_or_else(|| vec![1; r]);
    let bm = c.bools("begin_mask")?.unwrap_or_else(|| vec![false; r]);
    let em = c.bools("end_mask")?.unwrap_or_else(|| vec![false; r]);
    let sm = c.bools("squeeze_mask")?.unwrap_or_else(|| vec![false; r]);
    if [
        begin.len(),
        end.len(),
        stride.len(),
        bm.len(),
        em.len(),
        sm.len(),
    ]
    .iter()
    .any(|&l| l != r)
    {
        return Err(format!("begin/end/stride/masks must have {r} entries"));
    }
    let mut idx: Vec<Vec<usize>> = Vec::with_capacity(r);
    let mut shape = Vec::new();
    for a in 0..r {
        let d = h.shape[a] as i64;
        let s = stride[a];
        if s == 0 {
            return Err("stride 0".into());
        }
        let wrap = |v: i64| if v < 0 { v + d } else { v };
        if sm[a] {
            let b = wrap(begin[a]);
            if !(0..d).contains(&b) {
                return Err(format!(
                    "squeezed index {} out of range for axis {a}",
                    begin[a]
                ));
            }
            idx.push(vec![b as usize]);
            continue;
        }
        let (lo, hi) = if s > 0 { (0, d) } else { (-1, d - 1) };
        let b = if bm[a] {
            if s > 0 {
                0
            } else {
                d - 1
            }
        } else {
            wrap(begin[a]).clamp(lo, hi)
        };
        let e = if em[a] {
            if s > 0 {
                d
            } else {
                -1
            }
        } else {
            wrap(end[a]).clamp(lo, hi)
        };
        let mut v = Vec::new();
        let mut i = b;
        while (s > 0 && i < e) || (s < 0 && i > e) {
            v.push(i as usize);
            i += s;
        }
        shape.push(v.len());
        idx.push(v);
    }
    let st = h.strides();
    let mut out = Vec::with_capacity(shape.iter().product());
    let mut pos = vec![0usize; r];
    let total: usize = idx.iter().map(|v| v.len()).product();
    for _ in 0..total {
        out.push(h.data[(0..r).map(|a| idx[a][pos[a]] * st[a]).sum::<usize>()]);
        for a in (0..r).rev() {
            pos[a] += 1;
            if pos[a] < idx[a].len() {
                break;
            }
            pos[a] = 0;
        }
    }
    Tensor::from_vec(out, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(terr)
}

fn gather(c: &Ctx) -> Result<Tensor, String> {
    let x = c.t("x")?;
    let ind = c.t("indices")?;
    let axis = norm_axis(c.int("axis", 0)?, x.rank())?;
    let bd = c.int("batch_dims", 0)?.max(0) as usize;
    let d = x.dims()[axis] as i64;
    let iv: Vec<i64> = ind
        .to_dtype(DType::I64)
        .and_then(|t| t.flatten_all()?.to_vec1::<i64>())
        .map_err(terr)?;
    let mut fixed = Vec::with_capacity(iv.len());
    for &i in &iv {
        let w = if i < 0 { i + d } else { i };
        if !(0..d).contains(&w) {
            return Err(format!(
                "index {i} out of range for axis {axis} of size {d}"
            ));
        }
        fixed.push(w as u32);
    }
    if bd == 0 {
        let flat = Tensor::from_vec(fixed, iv.len(), &Device::Cpu).map_err(terr)?;
        let mut shape = x.dims()[..axis].to_vec();
        shape.extend_from_slice(ind.dims());
        shape.extend_from_slice(&x.dims()[axis + 1..]);
        return x
            .index_select(&flat, axis)
            .and_then(|t| t.reshape(shape))
            .map_err(terr);
    }
    // batch_dims > 0: out[b.., i.., rest] = x[b.., ind[b.., i..], rest]
    let dtype = x.dtype();
    let h = Host::from_tensor(&x).map_err(terr)?;
    if bd > axis || bd > ind.rank() || x.dims()[..bd] != ind.dims()[..bd] {
        return Err("batch_dims must not exceed axis and the batch dims must match".into());
    }
    let batch: usize = x.dims()[..bd].iter().product();
    let mid: usize = x.dims()[bd..axis].iter().product();
    let inner: usize = x.dims()[axis + 1..].iter().product();
    let per_batch = fixed.len() / batch.max(1);
    let mut out = Vec::with_capacity(batch * mid * per_batch * inner);
    let xs = strides(&h.shape);
    let bstride = if bd > 0 { xs[bd - 1] } else { h.data.len() };
    for b in 0..batch {
        for m in 0..mid {
            for k in 0..per_batch {
                let i = fixed[b * per_batch + k] as usize;
                let base = b * bstride + (m * x.dims()[axis] + i) * inner;
                out.extend_from_slice(&h.data[base..base + inner]);
            }
        }
    }
    let mut shape = x.dims()[..axis].to_vec();
    shape.extend_from_slice(&ind.dims()[bd..]);
    shape.extend_from_slice(&x.dims()[axis + 1..]);
    Tensor::from_vec(out, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(terr)
}
