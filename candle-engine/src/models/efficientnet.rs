//! EfficientNet-Lite0 written with candle-nn, loading efficientnet_pytorch
//! weight names (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`,
//! `_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`, `_bn1`, `_fc`).
//!
//! ```
//! use coreml_candle::models::efficientnet::{same_padding, BLOCKS};
//! assert_eq!(BLOCKS.len(), 16);
//! // TensorFlow "SAME": stride 2 on an even size pads one more at the end.
//! assert_eq!(same_padding(224, 3, 2), (0, 1));
//! assert_eq!(same_padding(56, 5, 2), (1, 2));
//! assert_eq!(same_padding(14, 5, 1), (2, 2));
//! ```
//!
//! Lite differs from B0: ReLU6 instead of swish, no squeeze-excitation, stem
//! (32) and head (1280) not scaled. The released weights come from TF-Lite
//! checkpoints: "SAME" padding (asymmetric for stride 2), BatchNorm eps 1e-3,
//! inputs normalised as `(pixel - 127) / 128`
//! ([`ImagePreprocessor::efficientnet_lite`]). BatchNorm is folded into the
//! preceding convolution at load time.
//!
//! Input `pixel_values`: `f32[B, 3, 224, 224]`; output `logits`: `f32[B, 1000]`.

use candle_core::{Device, Module, Tensor as CTensor, D};
use candle_nn::{Linear, VarBuilder};
use coreml_inference::{IoSchema, PrepareError, Tensor, TensorMap};

use crate::ops::activation::Activation;
use crate::ops::bn_fold::BatchNormParams;
use crate::ops::conv_layer::{Conv2dLayer, Kernels};
use crate::ops::conv_params::ConvParams;
use crate::preprocess::ImagePreprocessor;
use crate::registry::{invalid, CandleModel, LoadContext, Registration};

/// The registry entry.
pub fn registration() -> Registration {
    Registration {
        architecture: "efficientnet-lite0",
        aliases: &["efficientnet_lite0", "efficientnet-lite"],
        load,
        image_preprocessor: Some(ImagePreprocessor::efficientnet_lite()),
    }
}

/// One MBConv block: (kernel, stride, expand ratio, in, out).
pub type BlockArgs = (usize, usize, usize, usize, usize);

/// The 16 blocks of Lite0 (stages r1 k3 s1 e1 32→16, r2 k3 s2 e6 →24,
/// r2 k5 s2 →40, r3 k3 s2 →80, r3 k5 s1 →112, r4 k5 s2 →192, r1 k3 s1 →320).
pub const BLOCKS: [BlockArgs; 16] = [
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24),
    (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40),
    (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80),
    (3, 1, 6, 80, 80),
    (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112),
    (5, 1, 6, 112, 112),
    (5, 1, 6, 112, 112),
    (5, 2, 6, 112, 192),
    (5, 1, 6, 192, 192),
    (5, 1, 6, 192, 192),
    (5, 1, 6, 192, 192),
    (3, 1, 6, 192, 320),
];

const BN_EPS: f64 = 1e-3;
const SIZE: usize = 224;
const CLASSES: usize = 1000;

/// TensorFlow "SAME" padding `(before, after)` of one axis.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// A convolution with BatchNorm folded in, TF "SAME" padding, optional ReLU6,
/// on the engine's CPU kernels ([`Conv2dLayer`]: direct depthwise, im2col +
/// gemm for dense, bias and residual fused).
struct ConvBn {
    layer: Conv2dLayer,
    /// Stride 2 on an even-sized input: the same layer padding "SAME" itself
    /// (`(k-2)/2` before, the rest after), instead of a padded copy of the input.
    even: Option<Conv2dLayer>,
    kernel: usize,
    stride: usize,
    /// Symmetric padding the layer applies itself (stride 1).
    inner_padding: usize,
}

impl ConvBn {
    /// `shape` is (in, out, kernel, stride, groups).
    fn load(
        vb: &VarBuilder<'_>,
        conv: &str,
        bn: &str,
        shape: (usize, usize, usize, usize, usize),
        relu6: bool,
        kernels: Kernels,
    ) -> candle_core::Result<Self> {
        let (cin, cout, k, stride, groups) = shape;
        // For stride 1 and odd kernels "SAME" is symmetric: the layer pads itself.
        let inner_padding = if stride == 1 { (k - 1) / 2 } else { 0 };
        let mut p = ConvParams::load(
            &vb.pp(conv),
            cin,
            cout,
            k,
            groups,
            stride,
            inner_padding,
            false,
        )?;
        p.fold_bn(&BatchNormParams::load(&vb.pp(bn), cout, BN_EPS)?)?;
        // ReLU6 runs in the kernel's epilogue (EfficientNet's skip follows the linear
        // projection, which has none).
        let act = if relu6 {
            Activation::Relu6
        } else {
            Activation::Identity
        };
        let even = if stride == 2 && k % 2 == 1 && k >= 2 {
            let mut q = p.clone();
            q.padding = (k - 2) / 2;
            Conv2dLayer::build(q, act, kernels, vb.device())?.with_end_padding(k - 2 - (k - 2) / 2)
        } else {
            None
        };
        let layer = Conv2dLayer::build(p, act, kernels, vb.device())?;
        Ok(Self {
            layer,
            even,
            kernel: k,
            stride,
            inner_padding,
        })
    }

    fn pad(&self, x: &CTensor) -> candle_core::Result<CTensor> {
        if self.stride == 1 && self.kernel % 2 == 1 {
            return Ok(x.clone());
        }
        let (_, _, h, w) = x.dims4()?;
        let (pt, pb) = same_padding(h, self.kernel, self.stride);
        let (pl, pr) = same_padding(w, self.kernel, self.stride);
        debug_assert_eq!(self.inner_padding, 0);
        x.pad_with_zeros(D::Minus2, pt, pb)?
            .pad_with_zeros(D::Minus1, pl, pr)
    }

    /// The layer that pads `x` itself, if there is one for its size.
    fn self_padding(&self, x: &CTensor) -> candle_core::Result<Option<&Conv2dLayer>> {
        let (_, _, h, w) = x.dims4()?;
        Ok(match &self.even {
            Some(l) if h % 2 == 0 && w % 2 == 0 => Some(l),
            _ => None,
        })
    }

    fn forward(&self, x: &CTensor) -> candle_core::Result<CTensor> {
        match self.self_padding(x)? {
            Some(l) => l.forward(x),
            None => self.layer.forward(&self.pad(x)?),
        }
    }

    /// `conv(x) + residual` (no activation: EfficientNet's skip follows the
    /// linear projection).
    fn forward_add(&self, x: &CTensor, residual: &CTensor) -> candle_core::Result<CTensor> {
        match self.self_padding(x)? {
            Some(l) => l.forward_add(x, residual),
            None => self.layer.forward_add(&self.pad(x)?, residual),
        }
    }
}

struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    skip: bool,
}

/// A loaded EfficientNet-Lite0.
pub struct EfficientNetLite0 {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    head: ConvBn,
    fc: Linear,
    device: Device,
    max_batch: usize,
}

impl EfficientNetLite0 {
    /// Builds the model from efficientnet_pytorch-named weights, on the
    /// engine's fast kernels.
    pub fn load(
        vb: &VarBuilder<'_>,
        device: &Device,
        max_batch: usize,
    ) -> candle_core::Result<Self> {
        Self::load_with(vb, device, max_batch, Kernels::FAST)
    }

    /// Same, choosing the kernels (`Kernels::CANDLE` runs candle's own
    /// convolutions, for benchmarks and cross-checks).
    pub fn load_with(
        vb: &VarBuilder<'_>,
        device: &Device,
        max_batch: usize,
        kernels: Kernels,
    ) -> candle_core::Result<Self> {
        let conv = |vb: &VarBuilder<'_>, c: &str, bn: &str, shape, relu6| {
            ConvBn::load(vb, c, bn, shape, relu6, kernels)
        };
        let stem = conv(vb, "_conv_stem", "_bn0", (3, 32, 3, 2, 1), true)?;
        let blocks = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(k, s, e, cin, cout))| {
                let b = vb.pp("_blocks").pp(i);
                let mid = cin * e;
                let expand = (e != 1)
                    .then(|| conv(&b, "_expand_conv", "_bn0", (cin, mid, 1, 1, 1), true))
                    .transpose()?;
                Ok(MbConv {
                    expand,
                    depthwise: conv(&b, "_depthwise_conv", "_bn1", (mid, mid, k, s, mid), true)?,
                    project: conv(&b, "_project_conv", "_bn2", (mid, cout, 1, 1, 1), false)?,
                    skip: s == 1 && cin == cout,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let head = conv(vb, "_conv_head", "_bn1", (320, 1280, 1, 1, 1), true)?;
        let fc = candle_nn::linear(1280, CLASSES, vb.pp("_fc"))?;
        Ok(Self {
            stem,
            blocks,
            head,
            fc,
            device: device.clone(),
            max_batch,
        })
    }

    /// Logits `[B, 1000]` of `pixel_values` `[B, 3, H, W]`.
    pub fn logits(&self, x: &CTensor) -> candle_core::Result<CTensor> {
        let mut x = self.stem.forward(x)?;
        for b in &self.blocks {
            let y = match &b.expand {
                Some(e) => b.depthwise.forward(&e.forward(&x)?)?,
                None => b.depthwise.forward(&x)?,
            };
            x = if b.skip {
                b.project.forward_add(&y, &x)?
            } else {
                b.project.forward(&y)?
            };
        }
        let x = self.head.forward(&x)?.mean((2, 3))?;
        self.fc.forward(&x)
    }
}

fn load(ctx: &LoadContext<'_>) -> Result<Box<dyn CandleModel>, PrepareError> {
    let vb = ctx.var_builder()?;
    let m = EfficientNetLite0::load(&vb, ctx.device, ctx.max_batch())
        .map_err(|e| invalid(format!("efficientnet-lite0 weights: {e}")))?;
    Ok(Box::new(m))
}

impl CandleModel for EfficientNetLite0 {
    fn schema(&self) -> IoSchema {
        super::vision_model::classifier_schema(self.max_batch)
    }

    fn forward(&self, inputs: &TensorMap) -> candle_core::Result<TensorMap> {
        super::vision_model::classifier_forward(inputs, &self.device, |x| self.logits(x))
    }

    fn example_inputs(&self) -> candle_core::Result<TensorMap> {
        let n = 3 * SIZE * SIZE;
        let v: Vec<f32> = (0..n).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect();
        let t = Tensor::new(vec![1, 3, SIZE, SIZE], v)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(TensorMap::new().with("pixel_values", t))
    }
}
