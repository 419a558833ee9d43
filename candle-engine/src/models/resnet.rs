//! ResNet-50 (torchvision `resnet50` weight names) on our kernels: every BatchNorm folded
//! into its convolution at load, convolutions as im2col + gemm with bias and ReLU fused,
//! and each bottleneck's residual add + ReLU fused into its last 1×1 convolution.
//!
//! ```no_run
//! use candle_core::Device;
//! use coreml_candle::models::resnet::ResNet50;
//! use coreml_candle::models::vision_assets::{seeded_input, weights_path, VisionModel};
//! use coreml_candle::ops::conv_layer::Kernels;
//! let path = weights_path(VisionModel::ResNet50)?;
//! let model = ResNet50::from_safetensors(&path, Kernels::FAST, &Device::Cpu)?;
//! let logits = model.forward(&seeded_input(1, &[1, 3, 224, 224])?)?;
//! assert_eq!(logits.dims(), &[1, 1000]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use crate::ops::activation::Activation;
use crate::ops::bn_fold::BatchNormParams;
use crate::ops::conv_layer::{Conv2dLayer, Kernels};
use crate::ops::conv_params::ConvParams;
use crate::ops::runtime;
use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use std::path::Path;

const BN_EPS: f64 = 1e-5;

/// Conv (no bias) + BatchNorm under `conv` / `bn` names, folded into one layer.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    vb: &VarBuilder,
    conv: &str,
    bn: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    act: Activation,
    kernels: Kernels,
) -> Result<Conv2dLayer> {
    let mut p = ConvParams::load(&vb.pp(conv), c_in, c_out, k, 1, stride, k / 2, false)?;
    p.fold_bn(&BatchNormParams::load(&vb.pp(bn), c_out, BN_EPS)?)?;
    Conv2dLayer::build(p, act, kernels, vb.device())
}

/// torchvision `Bottleneck` (expansion 4, stride on the 3×3 conv).
#[derive(Debug, Clone)]
struct Bottleneck {
    conv1: Conv2dLayer,
    conv2: Conv2dLayer,
    /// ReLU fused: applied after the residual add.
    conv3: Conv2dLayer,
    downsample: Option<Conv2dLayer>,
}

impl Bottleneck {
    fn load(vb: &VarBuilder, c_in: usize, width: usize, stride: usize, k: Kernels) -> Result<Self> {
        let c_out = width * 4;
        let relu = Activation::Relu;
        let downsample = if stride != 1 || c_in != c_out {
            let ds = vb.pp("downsample");
            Some(conv_bn(
                &ds,
                "0",
                "1",
                c_in,
                c_out,
                1,
                stride,
                Activation::Identity,
                k,
            )?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv_bn(vb, "conv1", "bn1", c_in, width, 1, 1, relu, k)?,
            conv2: conv_bn(vb, "conv2", "bn2", width, width, 3, stride, relu, k)?,
            conv3: conv_bn(vb, "conv3", "bn3", width, c_out, 1, 1, relu, k)?,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv2.forward(&self.conv1.forward(x)?)?;
        match &self.downsample {
            Some(ds) => self.conv3.forward_add(&y, &ds.forward(x)?),
            None => self.conv3.forward_add(&y, x),
        }
    }
}

/// ResNet-50 for 3-channel NCHW f32 input (224×224 in the benchmarks).
#[derive(Debug, Clone)]
pub struct ResNet50 {
    stem: Conv2dLayer,
    blocks: Vec<Bottleneck>,
    fc: Linear,
}

impl ResNet50 {
    /// Build from torchvision-named weights (`conv1`, `bn1`, `layer1.0.conv1`, ..., `fc`).
    pub fn load(vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        runtime::init_cpu_runtime(None);
        let stem = conv_bn(&vb, "conv1", "bn1", 3, 64, 7, 2, Activation::Relu, kernels)?;
        let mut blocks = Vec::with_capacity(16);
        let mut c_in = 64;
        for (i, (&n, &width)) in [3usize, 4, 6, 3]
            .iter()
            .zip(&[64usize, 128, 256, 512])
            .enumerate()
        {
            let layer = vb.pp(format!("layer{}", i + 1));
            for b in 0..n {
                let stride = if b == 0 && i > 0 { 2 } else { 1 };
                blocks.push(Bottleneck::load(
                    &layer.pp(b),
                    c_in,
                    width,
                    stride,
                    kernels,
                )?);
                c_in = width * 4;
            }
        }
        let fc = candle_nn::linear(2048, 1000, vb.pp("fc"))?;
        Ok(Self { stem, blocks, fc })
    }

    /// Load a safetensors file of torchvision names.
    pub fn from_safetensors(path: &Path, kernels: Kernels, dev: &Device) -> Result<Self> {
        Self::load(super::vision_assets::load_var_builder(path, dev)?, kernels)
    }

    /// Logits `(batch, 1000)` for an NCHW f32 input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.stem.forward(x)?;
        // torchvision: MaxPool2d(3, stride 2, padding 1). The input is post-ReLU, so edge
        // replication gives the same maxima as -inf padding.
        let mut x = x
            .pad_with_same(D::Minus1, 1, 1)?
            .pad_with_same(D::Minus2, 1, 1)?
            .max_pool2d_with_stride(3, 2)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let pooled = x.flatten_from(2)?.mean(D::Minus1)?;
        self.fc.forward(&pooled)
    }
}

/// The registry entry (ResNet-50 on [`Kernels::FAST`]); see [`super::vision_model`].
pub fn registration() -> crate::registry::Registration {
    super::vision_model::resnet50_registration()
}
