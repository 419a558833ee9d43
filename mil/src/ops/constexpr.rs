//! The constexpr dequantisation ops, run once at load: affine int8/uint8
//! (iOS16), LUT palettes of 1–8 bits (iOS16 packed indices and iOS18 uintN
//! indices with per-block and vector LUTs), blockwise shift-scale (iOS18).
//!
//! ```
//! use coreml_mil::ops::constexpr::lut_lookup;
//! // iOS16: 2-bit indices packed LSB-first in uint8: [1, 2, 3, 0] = 0b00_11_10_01.
//! assert_eq!(lut_lookup(&[0b0011_1001], &[10.0, 11.0, 12.0, 13.0], 4).unwrap(), vec![11.0, 12.0, 13.0, 10.0]);
//! ```

use candle_core::{Device, Tensor};
use coreml_mlpackage::elements::unpack_bits;
use coreml_mlpackage::Operation;

use crate::executor::{Executor, Val};
use crate::host::{strides, Host};

fn host(exe: &Executor, op: &Operation, name: &str) -> Result<Option<Host>, String> {
    match exe.const_param(op, name)? {
        None => Ok(None),
        Some(Val::T(t)) => Host::from_tensor(&t).map(Some).map_err(|e| e.to_string()),
        Some(Val::S(_)) => Err(format!("{name}: a string where a tensor is expected")),
    }
}

fn req(exe: &Executor, op: &Operation, name: &str) -> Result<Host, String> {
    host(exe, op, name)?.ok_or_else(|| format!("missing parameter {name}"))
}

/// Looks `count` LSB-first packed indices of log2(lut.len()) bits up in `lut`.
pub fn lut_lookup(packed: &[u8], lut: &[f32], count: usize) -> Result<Vec<f32>, String> {
    let n = lut.len();
    if !n.is_power_of_two() || !(2..=256).contains(&n) {
        return Err(format!("lut has {n} entries, not 2^1..2^8"));
    }
    let bits = n.trailing_zeros();
    if packed.len() * 8 < count * bits as usize {
        return Err(format!(
            "{} index bytes for {count} {bits}-bit indices",
            packed.len()
        ));
    }
    Ok(unpack_bits(packed, bits, count)
        .into_iter()
        .map(|i| lut[i as usize])
        .collect())
}

/// Decompresses one constexpr op of `exe`'s program.
pub(crate) fn materialise(exe: &Executor, op: &Operation) -> Result<Tensor, String> {
    let h = match op.op_type.as_str() {
        "constexpr_affine_dequantize" => {
            let q = req(exe, op, "quantized_data")?;
            let zp = req(exe, op, "zero_point")?;
            let sc = req(exe, op, "scale")?;
            let axis = crate::host::norm_axis(
                host(exe, op, "axis")?
                    .and_then(|a| a.data.first().copied())
                    .unwrap_or(0.0) as i64,
                q.shape.len(),
            )?;
            let st = strides(&q.shape);
            let d = q.shape[axis];
            for (name, p) in [("zero_point", &zp), ("scale", &sc)] {
                if p.data.len() != 1 && p.data.len() != d {
                    return Err(format!(
                        "{name} has {} elements; expected 1 or {d}",
                        p.data.len()
                    ));
                }
            }
            let pick = |p: &Host, i: usize| {
                if p.data.len() == 1 {
                    p.data[0]
                } else {
                    p.data[(i / st[axis]) % d]
                }
            };
            let data = q
                .data
                .iter()
                .enumerate()
                .map(|(i, &v)| (v - pick(&zp, i)) * pick(&sc, i))
                .collect();
            Host {
                shape: q.shape,
                data,
            }
        }
        "constexpr_lut_to_dense" if op.param("shape").is_some() => {
            // iOS16: uint8 packed indices, flat lut, uint32 shape.
            let idx = req(exe, op, "indices")?;
            let lut = req(exe, op, "lut")?;
            let shape: Vec<usize> = req(exe, op, "shape")?
                .data
                .iter()
                .map(|&v| v as usize)
                .collect();
            let count: usize = shape.iter().product();
            let packed: Vec<u8> = idx.data.iter().map(|&v| v as u8).collect();
            Host {
                data: lut_lookup(&packed, &lut.data, count)?,
                shape,
            }
        }
        "constexpr_lut_to_dense" => ios18_lut(exe, op)?,
        "constexpr_blockwise_shift_scale" => {
            let data = req(exe, op, "data")?;
            let scale = req(exe, op, "scale")?;
            let offset = host(exe, op, "offset")?;
            let r = data.shape.len();
            if scale.shape.len() != r || offset.as_ref().is_some_and(|o| o.shape != scale.shape) {
                return Err(
                    "scale (and offset) must have data's rank (and each other's shape)".into(),
                );
            }
            let mut bs = vec![1; r];
            for (a, b) in bs.iter_mut().enumerate() {
                if scale.shape[a] == 0 || !data.shape[a].is_multiple_of(scale.shape[a]) {
                    return Err(format!(
                        "data dim {a} ({}) is not a multiple of scale's ({})",
                        data.shape[a], scale.shape[a]
                    ));
                }
                *b = data.shape[a] / scale.shape[a];
            }
            let (ds, ss) = (strides(&data.shape), strides(&scale.shape));
            let out = data
                .data
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let j: usize = (0..r)
                        .map(|a| ((i / ds[a]) % data.shape[a]) / bs[a] * ss[a])
                        .sum();
                    (v - offset.as_ref().map_or(0.0, |o| o.data[j])) * scale.data[j]
                })
                .collect();
            Host {
                shape: data.shape,
                data: out,
            }
        }
        t => return Err(format!("{t} is not a constexpr op this executor knows")),
    };
    Tensor::from_vec(h.data, h.shape, &Device::Cpu).map_err(|e| e.to_string())
}

/// iOS18 `constexpr_lut_to_dense`: indices uintN (full shape), lut
/// `[b0..b_{K-1}, 2^N, V]`, optional `vector_axis`.
fn ios18_lut(exe: &Executor, op: &Operation) -> Result<Host, String> {
    let idx = req(exe, op, "indices")?;
    let lut = req(exe, op, "lut")?;
    let r = idx.shape.len();
    if lut.shape.len() != r + 2 {
        return Err(format!(
            "lut rank {} for indices of rank {r}; expected {}",
            lut.shape.len(),
            r + 2
        ));
    }
    let (entries, v) = (lut.shape[r], lut.shape[r + 1]);
    let mut bs = vec![1; r];
    for (a, b) in bs.iter_mut().enumerate() {
        if lut.shape[a] == 0 || !idx.shape[a].is_multiple_of(lut.shape[a]) {
            return Err(format!(
                "indices dim {a} is not a multiple of the lut's blocks"
            ));
        }
        *b = idx.shape[a] / lut.shape[a];
    }
    let ls = strides(&lut.shape);
    let is = strides(&idx.shape);
    let lookup = |i: usize, k: usize| -> Result<f32, String> {
        let e = idx.data[i] as usize;
        if e >= entries {
            return Err(format!("index {e} beyond the lut's {entries} entries"));
        }
        let base: usize = (0..r)
            .map(|a| ((i / is[a]) % idx.shape[a]) / bs[a] * ls[a])
            .sum();
        Ok(lut.data[base + e * v + k])
    };
    if v == 1 {
        let data = (0..idx.data.len())
            .map(|i| lookup(i, 0))
            .collect::<Result<_, _>>()?;
        return Ok(Host {
            shape: idx.shape,
            data,
        });
    }
    let va = crate::host::norm_axis(
        host(exe, op, "vector_axis")?
            .and_then(|h| h.data.first().copied())
            .ok_or("vector_axis is required when the lut holds vectors")? as i64,
        r,
    )?;
    let mut shape = idx.shape.clone();
    shape[va] *= v;
    let os = strides(&shape);
    let mut data = vec![0f32; idx.data.len() * v];
    for i in 0..idx.data.len() {
        for k in 0..v {
            let o: usize = (0..r)
                .map(|a| {
                    let c = (i / is[a]) % idx.shape[a];
                    (if a == va { c * v + k } else { c }) * os[a]
                })
                .sum();
            data[o] = lookup(i, k)?;
        }
    }
    Ok(Host { shape, data })
}
