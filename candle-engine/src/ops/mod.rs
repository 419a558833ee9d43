//! CPU kernels that replace candle 0.11.1's slow paths, as candle custom ops.
//!
//! - [`runtime`]: thread count fixed once (candle otherwise parses `/proc/cpuinfo` on every
//!   matmul) and malloc tuning.
//! - [`depthwise`]: direct depthwise conv2d (stride 1/2, padding, channel multiplier,
//!   fused bias and activation) instead of one convolution per channel.
//! - [`conv_gemm`]: dense conv2d as im2col + `gemm`, bias (and a residual) written into the
//!   output before the product, activation fused.
//! - [`bn_fold`]: BatchNorm folded into the preceding convolution at load time.
//! - [`activation`]: vectorisable erf-GELU and ReLU epilogues.
//! - [`conv_params`]: conv weights as arrays; BN folding, kernel padding, branch sums.
//! - [`conv_layer`]: one convolution layer that picks our kernel or candle's.
//! - [`transformer`]: linear layers with weights laid out at load and fused epilogues,
//!   LayerNorm, multi-head attention with a vectorised, NaN-free masked softmax.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use coreml_candle::ops::{activation::Activation, depthwise::DepthwiseConv2d};
//! let dev = Device::Cpu;
//! // 3×3 depthwise over 4 channels, stride 1, padding 1, bias 0.5, ReLU.
//! let w = Tensor::ones((4, 1, 3, 3), candle_core::DType::F32, &dev)?;
//! let b = Tensor::full(0.5f32, 4, &dev)?;
//! let conv = DepthwiseConv2d::new(&w, Some(&b), 4, 1, 1, Activation::Relu)?;
//! let y = conv.forward(&Tensor::ones((1, 4, 5, 5), candle_core::DType::F32, &dev)?)?;
//! assert_eq!(y.dims(), &[1, 4, 5, 5]);
//! let centre: f32 = y.get(0)?.get(0)?.get(2)?.get(2)?.to_scalar()?;
//! assert_eq!(centre, 9.5);
//! # Ok::<(), candle_core::Error>(())
//! ```

pub mod activation;
pub mod bn_fold;
pub mod conv_gemm;
pub mod conv_layer;
pub mod conv_params;
pub mod depthwise;
pub mod runtime;
pub mod sys;
pub mod transformer;

use candle_core::{bail, CpuStorage, Layout, Result};

/// The f32 elements of a contiguous CPU storage, or an error naming the op.
pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: f32 input expected"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: contiguous input expected"),
    }
}

/// Output size of a convolution along one axis.
pub fn conv_out_len(input: usize, kernel: usize, stride: usize, padding: usize) -> Result<usize> {
    conv_out_len_asym(input, kernel, stride, padding, padding)
}

/// Output size with `begin` zeros before the input and `end` after it (TensorFlow's
/// "SAME" at stride 2 pads one more at the end).
pub fn conv_out_len_asym(
    input: usize,
    kernel: usize,
    stride: usize,
    begin: usize,
    end: usize,
) -> Result<usize> {
    if stride == 0 {
        bail!("conv: stride must be > 0");
    }
    let padded = input + begin + end;
    if padded < kernel {
        bail!("conv: kernel {kernel} larger than padded input {padded}");
    }
    Ok((padded - kernel) / stride + 1)
}
