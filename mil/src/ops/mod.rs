//! Operation dispatch. [`SUPPORTED`] is checked at load; `eval` runs one op.
//!
//! * [`elementwise`]: binary ops with broadcasting, comparisons, activations;
//! * [`shape`]: reshape, transpose, expand/squeeze, concat, split, tile,
//!   slice_by_index, gather, select, cast;
//! * [`nn`]: linear, matmul, softmax, norms, reductions, pools, upsampling;
//! * [`conv`]: conv (every pad type, groups, dilation; the engine's dense and
//!   depthwise kernels when they apply) and conv_transpose;
//! * [`pad`]: pad (constant, reflect, replicate) and cumsum;
//! * [`constexpr`]: the dequantisation ops, run once at load.
//!
//! ```
//! assert!(coreml_mil::ops::SUPPORTED.contains(&"conv"));
//! assert!(!coreml_mil::ops::SUPPORTED.contains(&"lstm"));
//! ```

pub mod constexpr;
pub mod conv;
pub mod elementwise;
pub mod nn;
pub mod pad;
pub mod shape;

use std::collections::HashMap;

use candle_core::Tensor;
use coreml_mlpackage::Operation;

use crate::executor::{Ctx, Executor, Val};

/// Every operation type the executor runs.
pub const SUPPORTED: &[&str] = &[
    "const",
    "constexpr_affine_dequantize",
    "constexpr_lut_to_dense",
    "constexpr_blockwise_shift_scale",
    // elementwise
    "add",
    "sub",
    "mul",
    "real_div",
    "maximum",
    "minimum",
    "pow",
    "floor_div",
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "logical_and",
    "logical_or",
    "logical_not",
    "relu",
    "relu6",
    "sigmoid",
    "tanh",
    "silu",
    "leaky_relu",
    "clip",
    "gelu",
    "exp",
    "sqrt",
    "rsqrt",
    "log",
    "abs",
    "erf",
    "softplus",
    "elu",
    "floor",
    "ceil",
    "round",
    "square",
    "sin",
    "cos",
    "sign",
    "inverse",
    "identity",
    // shape
    "reshape",
    "transpose",
    "expand_dims",
    "squeeze",
    "concat",
    "split",
    "tile",
    "slice_by_index",
    "gather",
    "select",
    "cast",
    "pad",
    "cumsum",
    // nn
    "linear",
    "matmul",
    "softmax",
    "layer_norm",
    "batch_norm",
    "instance_norm",
    "reduce_mean",
    "reduce_sum",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_l2_norm",
    "reduce_argmax",
    "max_pool",
    "avg_pool",
    "upsample_nearest_neighbor",
    "upsample_bilinear",
    "conv",
    "conv_transpose",
];

pub(crate) fn terr(e: candle_core::Error) -> String {
    e.to_string()
}

/// Runs operation `index` of `main`.
pub(crate) fn eval(
    exe: &Executor,
    index: usize,
    op: &Operation,
    env: &HashMap<&str, Val>,
) -> Result<Vec<Tensor>, String> {
    let c = Ctx { exe, op, env };
    let t = op.op_type.as_str();
    if let Some(r) = elementwise::eval(&c, t)? {
        return Ok(vec![r]);
    }
    if let Some(r) = shape::eval(&c, t)? {
        return Ok(r);
    }
    if let Some(r) = nn::eval(&c, t)? {
        return Ok(vec![r]);
    }
    if let Some(r) = pad::eval(&c, t)? {
        return Ok(vec![r]);
    }
    match t {
        "conv" => Ok(vec![conv::conv(&c, index)?]),
        "conv_transpose" => Ok(vec![conv::conv_transpose(&c)?]),
        _ => Err(format!("{t} is not implemented")),
    }
}
