//! `pad` (constant, reflect, replicate) and `cumsum` (exclusive, reverse):
//! index arithmetic along one axis at a time.
//!
//! ```
//! use coreml_mil::ops::pad::{pad_indices, PadMode};
//! // reflect: [a b c] padded 2 before, 1 after -> [c b a b c b]
//! assert_eq!(pad_indices(3, 2, 1, PadMode::Reflect).unwrap(), vec![2, 1, 0, 1, 2, 1]);
//! assert_eq!(pad_indices(3, 2, 1, PadMode::Replicate).unwrap(), vec![0, 0, 0, 1, 2, 2]);
//! ```

use candle_core::{DType, Device, Tensor};

use super::terr;
use crate::executor::Ctx;
use crate::host::norm_axis;

/// How `pad` fills the border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    /// Mirror without repeating the edge (NumPy `reflect`).
    Reflect,
    /// Repeat the edge (NumPy `edge`).
    Replicate,
}

/// Source index of every output position along an axis of size `n` padded
/// by `before` and `after` (reflect and replicate only).
pub fn pad_indices(
    n: usize,
    before: usize,
    after: usize,
    mode: PadMode,
) -> Result<Vec<u32>, String> {
    if n == 0 {
        return Err("cannot pad an empty axis".into());
    }
    if mode == PadMode::Reflect && (before >= n || after >= n) {
        return Err(format!(
            "reflect pad ({before}, {after}) must be smaller than the axis ({n})"
        ));
    }
    let n = n as i64;
    Ok((-(before as i64)..n + after as i64)
        .map(|i| {
            let j = match mode {
                PadMode::Replicate | PadMode::Constant => i.clamp(0, n - 1),
                PadMode::Reflect if i < 0 => -i,
                PadMode::Reflect if i >= n => 2 * (n - 1) - i,
                PadMode::Reflect => i,
            };
            j as u32
        })
        .collect())
}

fn pad(c: &Ctx) -> Result<Tensor, String> {
    let x = c.t("x")?;
    let pads = c.ints("pad")?.ok_or("missing pad")?;
    if pads.len() % 2 != 0 || pads.len() / 2 > x.rank() || pads.iter().any(|&p| p < 0) {
        return Err(format!("pad {pads:?} does not fit rank {}", x.rank()));
    }
    let mode = match c.string("mode")?.as_deref().unwrap_or("constant") {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        m => return Err(format!("pad mode {m:?} is not supported")),
    };
    let value = c.float("constant_val", 0.0)?;
    // The pairs apply to the last len/2 axes.
    let first = x.rank() - pads.len() / 2;
    let mut y = x;
    for (k, pair) in pads.chunks(2).enumerate() {
        let (axis, before, after) = (first + k, pair[0] as usize, pair[1] as usize);
        if before == 0 && after == 0 {
            continue;
        }
        y = match mode {
            PadMode::Constant => {
                let piece = |len: usize| {
                    let mut shape = y.dims().to_vec();
                    shape[axis] = len;
                    Tensor::full(value as f32, shape, &Device::Cpu)
                        .and_then(|t| t.to_dtype(y.dtype()))
                };
                let mut parts = vec![];
                if before > 0 {
                    parts.push(piece(before).map_err(terr)?);
                }
                parts.push(y.clone());
                if after > 0 {
                    parts.push(piece(after).map_err(terr)?);
                }
                Tensor::cat(&parts, axis).map_err(terr)?
            }
            _ => {
                let idx = pad_indices(y.dims()[axis], before, after, mode)?;
                let idx = Tensor::new(idx, &Device::Cpu).map_err(terr)?;
                y.index_select(&idx, axis).map_err(terr)?
            }
        };
    }
    Ok(y)
}

fn reversed(t: &Tensor, axis: usize) -> candle_core::Result<Tensor> {
    let n = t.dims()[axis] as u32;
    let idx = Tensor::new((0..n).rev().collect::<Vec<u32>>(), &Device::Cpu)?;
    t.index_select(&idx, axis)
}

/// Running sum along `axis`, computed in f64 and returned in `x`'s dtype.
fn cumsum(c: &Ctx) -> Result<Tensor, String> {
    let x = c.t("x")?;
    let axis = norm_axis(c.int("axis", 0)?, x.rank())?;
    let (exclusive, reverse) = (c.flag("exclusive")?, c.flag("reverse")?);
    let run = || -> candle_core::Result<Tensor> {
        let mut v = x.to_dtype(DType::F64)?;
        if reverse {
            v = reversed(&v, axis)?;
        }
        // A sequential scan: exact for integers and stable for floats.
        let moved = v.transpose(axis, v.rank() - 1)?.contiguous()?;
        let dims = moved.dims().to_vec();
        let n = *dims.last().unwrap_or(&1);
        let mut data = moved.flatten_all()?.to_vec1::<f64>()?;
        for row in data.chunks_mut(n.max(1)) {
            let mut acc = 0.0;
            for e in row {
                let before = acc;
                acc += *e;
                *e = if exclusive { before } else { acc };
            }
        }
        let mut y = Tensor::from_vec(data, dims, &Device::Cpu)?
            .transpose(axis, v.rank() - 1)?
            .contiguous()?;
        if reverse {
            y = reversed(&y, axis)?;
        }
        y.to_dtype(x.dtype())
    };
    run().map_err(terr)
}

/// `Some(result)` if `t` is `pad` or `cumsum`.
pub(crate) fn eval(c: &Ctx, t: &str) -> Result<Option<Tensor>, String> {
    match t {
        "pad" => pad(c).map(Some),
        "cumsum" => cumsum(c).map(Some),
        _ => Ok(None),
    }
}
