//! Binary ops with NumPy broadcasting, comparisons and unary activations.
//!
//! ```
//! // Exercised through the fixture packages (tests/golden.rs).
//! assert!(coreml_mil::ops::SUPPORTED.contains(&"gelu"));
//! ```

use candle_core::{DType, Tensor};

use super::terr;
use crate::executor::Ctx;

fn same_dtype(x: Tensor, y: Tensor) -> Result<(Tensor, Tensor), String> {
    if x.dtype() == y.dtype() {
        return Ok((x, y));
    }
    Ok((
        x.to_dtype(DType::F32).map_err(terr)?,
        y.to_dtype(DType::F32).map_err(terr)?,
    ))
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// `Some(result)` if `t` is an elementwise op.
pub(crate) fn eval(c: &Ctx, t: &str) -> Result<Option<Tensor>, String> {
    let binary = matches!(
        t,
        "add"
            | "sub"
            | "mul"
            | "real_div"
            | "maximum"
            | "minimum"
            | "pow"
            | "floor_div"
            | "equal"
            | "not_equal"
            | "less"
            | "less_equal"
            | "greater"
            | "greater_equal"
            | "logical_and"
            | "logical_or"
    );
    if binary {
        let (x, y) = same_dtype(c.t("x")?, c.t("y")?)?;
        let r = match t {
            "add" => x.broadcast_add(&y),
            "sub" => x.broadcast_sub(&y),
            "mul" => x.broadcast_mul(&y),
            "real_div" => x
                .to_dtype(DType::F32)
                .and_then(|x| x.broadcast_div(&y.to_dtype(DType::F32)?)),
            "floor_div" => x
                .to_dtype(DType::F32)
                .and_then(|x| x.broadcast_div(&y.to_dtype(DType::F32)?)?.floor()),
            "maximum" => x.broadcast_maximum(&y),
            "minimum" => x.broadcast_minimum(&y),
            "pow" => {
                let x = x.to_dtype(DType::F32).map_err(terr)?;
                let y = y.to_dtype(DType::F32).map_err(terr)?;
                if y.elem_count() == 1 {
                    let e = y
                        .flatten_all()
                        .and_then(|v| v.to_vec1::<f32>())
                        .map_err(terr)?[0];
                    x.powf(e as f64)
                } else {
                    x.broadcast_pow(&y)
                }
            }
            "equal" => x.broadcast_eq(&y),
            "not_equal" => x.broadcast_ne(&y),
            "less" => x.broadcast_lt(&y),
            "less_equal" => x.broadcast_le(&y),
            "greater" => x.broadcast_gt(&y),
            "greater_equal" => x.broadcast_ge(&y),
            "logical_and" => x.ne(0u8).and_then(|a| a.broadcast_mul(&y.ne(0u8)?)),
            "logical_or" => x.ne(0u8).and_then(|a| a.broadcast_maximum(&y.ne(0u8)?)),
            _ => unreachable!(),
        };
        return r.map(Some).map_err(terr);
    }
    let unary = matches!(
        t,
        "relu"
            | "relu6"
            | "sigmoid"
            | "tanh"
            | "silu"
            | "leaky_relu"
            | "clip"
            | "gelu"
            | "exp"
            | "sqrt"
            | "rsqrt"
            | "log"
            | "abs"
            | "erf"
            | "softplus"
            | "elu"
            | "floor"
            | "ceil"
            | "round"
            | "square"
            | "sin"
            | "cos"
            | "sign"
            | "inverse"
            | "identity"
            | "logical_not"
    );
    if !unary {
        return Ok(None);
    }
    let x = c.t("x")?;
    let r = match t {
        "identity" => Ok(x),
        "logical_not" => x.eq(0u8),
        "relu" => coreml_candle::ops::activation::relu(&x.contiguous().map_err(terr)?),
        "relu6" => x.clamp(0f32, 6f32),
        "sigmoid" => sigmoid(&x),
        "tanh" => x.tanh(),
        "silu" => x.silu(),
        "leaky_relu" => {
            let a = c.float("alpha", 0.01)?;
            x.relu()
                .and_then(|p| p.broadcast_add(&x.minimum(0f32)?.affine(a, 0.0)?))
        }
        "clip" => x.clamp(c.float("alpha", 0.0)? as f32, c.float("beta", 1.0)? as f32),
        "gelu" => match c.string("mode")?.as_deref().unwrap_or("EXACT") {
            "EXACT" => coreml_candle::ops::activation::gelu(&x.contiguous().map_err(terr)?),
            "TANH_APPROXIMATION" => x.gelu(),
            "SIGMOID_APPROXIMATION" => x
                .affine(1.702, 0.0)
                .and_then(|s| sigmoid(&s))
                .and_then(|s| x.mul(&s)),
            m => return Err(format!("unknown gelu mode {m:?}")),
        },
        "exp" => x.exp(),
        "sqrt" => x.sqrt(),
        "rsqrt" => {
            let eps = c.float("epsilon", 1e-12)?;
            x.affine(1.0, eps).and_then(|v| v.sqrt()?.recip())
        }
        "inverse" => {
            let eps = c.float("epsilon", 1e-4)?;
            x.affine(1.0, eps).and_then(|v| v.recip())
        }
        "log" => {
            let eps = c.float("epsilon", 0.0)?;
            x.affine(1.0, eps).and_then(|v| v.log())
        }
        "abs" => x.abs(),
        "erf" => x.erf(),
        "softplus" => x.exp().and_then(|e| (e + 1.0)?.log()),
        "elu" => {
            let a = c.float("alpha", 1.0)?;
            let neg = x
                .minimum(0f32)
                .and_then(|m| (m.exp()? - 1.0)?.affine(a, 0.0));
            x.relu().and_then(|p| p.add(&neg?))
        }
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        "round" => x.round(),
        "square" => x.sqr(),
        "sin" => x.sin(),
        "cos" => x.cos(),
        "sign" => x.sign(),
        _ => unreachable!(),
    };
    r.map(Some).map_err(terr)
}
