//! One convolution layer that runs on our kernels or on candle's, chosen at load time.
//!
//! [`Kernels`] holds the switches; [`Kernels::FAST`] is what the engine uses, the others
//! exist so the benchmark can show what each fix is worth and tests can compare against
//! candle's own implementation on the same weights.
//!
//! ```
//! use candle_core::{Device, DType, Tensor};
//! use coreml_candle::ops::{activation::Activation, conv_layer::{Conv2dLayer, Kernels},
//!     conv_params::ConvParams};
//! let p = ConvParams::identity(8, 8, 3, 1, 1); // depthwise 3×3 identity
//! let x = Tensor::randn(0f32, 1.0, (1, 8, 6, 6), &Device::Cpu)?;
//! for k in [Kernels::FAST, Kernels::CANDLE] {
//!     let conv = Conv2dLayer::build(p.clone(), Activation::Identity, k, &Device::Cpu)?;
//!     let diff = (conv.forward(&x)? - &x)?.abs()?.max_all()?.to_scalar::<f32>()?;
//!     assert_eq!(diff, 0.0);
//! }
//! # Ok::<(), candle_core::Error>(())
//! ```

use super::activation::{self, Activation};
use super::conv_gemm::DenseConv2d;
use super::conv_params::ConvParams;
use super::depthwise::DepthwiseConv2d;
use candle_core::{Device, Result, Tensor};

/// Which implementation each kind of kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// Direct depthwise kernel (else candle's per-group convolutions).
    pub depthwise: bool,
    /// im2col + gemm with fused bias/residual/activation (else candle's conv2d + adds).
    pub dense: bool,
    /// Vectorised erf-GELU (else candle's `gelu_erf`).
    pub fast_gelu: bool,
}

impl Kernels {
    /// All our kernels: what the engine runs.
    pub const FAST: Self = Self {
        depthwise: true,
        dense: true,
        fast_gelu: true,
    };
    /// candle's own conv2d and GELU (after the same load-time folding).
    pub const CANDLE: Self = Self {
        depthwise: false,
        dense: false,
        fast_gelu: false,
    };
}

impl Default for Kernels {
    fn default() -> Self {
        Self::FAST
    }
}

/// A conv2d + bias + activation, on the kernel [`Kernels`] picked for its shape.
#[derive(Debug, Clone)]
pub enum Conv2dLayer {
    /// candle's `conv2d`, then bias, residual and activation as separate ops.
    Candle {
        /// `(c_out, c_in/groups, kh, kw)`.
        weight: Tensor,
        /// `(1, c_out, 1, 1)`.
        bias: Tensor,
        /// Geometry.
        stride: usize,
        /// Zero padding.
        padding: usize,
        /// Groups.
        groups: usize,
        /// Activation.
        act: Activation,
        /// Use our GELU for the activation.
        fast_gelu: bool,
    },
    /// [`DenseConv2d`].
    Dense(DenseConv2d),
    /// [`DepthwiseConv2d`].
    Depthwise(DepthwiseConv2d),
    /// One of our kernels without its GELU epilogue, followed by candle's `gelu_erf`
    /// (`Kernels::fast_gelu == false`).
    CandleGelu(Box<Conv2dLayer>),
}

impl Conv2dLayer {
    /// Build from prepared weights. Grouped convs that are neither dense nor depthwise,
    /// and non-square strides, stay on candle.
    pub fn build(p: ConvParams, act: Activation, k: Kernels, dev: &Device) -> Result<Self> {
        let depthwise = p.groups == p.c_in && p.groups > 1;
        let ours = (k.depthwise && depthwise) || (k.dense && p.groups == 1);
        if ours && act == Activation::Gelu && !k.fast_gelu {
            let inner = Self::build(p, Activation::Identity, k, dev)?;
            return Ok(Self::CandleGelu(Box::new(inner)));
        }
        if k.depthwise && depthwise {
            let op = DepthwiseConv2d::from_parts(
                p.groups,
                p.c_out / p.groups,
                p.kh,
                p.kw,
                p.stride,
                p.padding,
                p.weight,
                p.bias,
                act,
            )?;
            return Ok(Self::Depthwise(op));
        }
        if k.dense && p.groups == 1 {
            let op = DenseConv2d::from_parts(
                p.c_in, p.c_out, p.kh, p.kw, p.stride, p.padding, p.weight, p.bias, act,
            )?;
            return Ok(Self::Dense(op));
        }
        let weight = Tensor::from_vec(p.weight, (p.c_out, p.c_in / p.groups, p.kh, p.kw), dev)?;
        let bias = Tensor::from_vec(p.bias, (1, p.c_out, 1, 1), dev)?;
        Ok(Self::Candle {
            weight,
            bias,
            stride: p.stride,
            padding: p.padding,
            groups: p.groups,
            act,
            fast_gelu: k.fast_gelu,
        })
    }

    /// The same layer with `end` zeros after the input (bottom/right) instead of the
    /// symmetric padding; `None` on candle's conv2d, which pads symmetrically only.
    pub fn with_end_padding(self, end: usize) -> Option<Self> {
        match self {
            Self::Dense(op) => Some(Self::Dense(op.with_end_padding(end))),
            Self::Depthwise(op) => Some(Self::Depthwise(op.with_end_padding(end))),
            Self::CandleGelu(inner) => inner
                .with_end_padding(end)
                .map(|i| Self::CandleGelu(Box::new(i))),
            Self::Candle { .. } => None,
        }
    }

    /// `act(conv(x) + bias)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(op) => op.forward(x),
            Self::Depthwise(op) => op.forward(x),
            Self::CandleGelu(inner) => inner.forward(x)?.gelu_erf(),
            Self::Candle { act, fast_gelu, .. } => {
                Self::candle_act(&self.candle_linear(x)?, *act, *fast_gelu)
            }
        }
    }

    /// `act(conv(x) + bias + residual)`; fused into the gemm's start value when dense.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(op) => op.forward_add(x, residual),
            Self::Depthwise(op) => op.forward_add(x, residual),
            Self::CandleGelu(inner) => inner.forward_add(x, residual)?.gelu_erf(),
            Self::Candle { act, fast_gelu, .. } => {
                Self::candle_act(&(self.candle_linear(x)? + residual)?, *act, *fast_gelu)
            }
        }
    }

    fn candle_linear(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Candle {
                weight,
                bias,
                stride,
                padding,
                groups,
                ..
            } => x
                .conv2d(weight, *padding, *stride, 1, *groups)?
                .broadcast_add(bias),
            _ => unreachable!("candle_linear on a custom kernel"),
        }
    }

    fn candle_act(x: &Tensor, act: Activation, fast_gelu: bool) -> Result<Tensor> {
        match act {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.clamp(0f32, 6f32),
            Activation::Gelu if fast_gelu => activation::gelu(x),
            Activation::Gelu => x.gelu_erf(),
        }
    }
}
