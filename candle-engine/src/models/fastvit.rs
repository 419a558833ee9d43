//! FastViT-T8 from timm's non-reparameterised weights, reparameterised at load as timm's
//! `reparameterize_model` does, and run on our kernels.
//!
//! Load-time folding: every MobileOne block (k×k conv + BN, 1×1 scale branch + BN,
//! identity BN) becomes one conv; each RepMixer (`x + γ·(mixer(x) − norm(x))`) becomes one
//! 3×3 depthwise conv; each patch embedding's 7×7 and 3×3 depthwise branches become one
//! 7×7; each block's layer scale is folded into its `fc2`, whose output lands on the
//! residual inside the gemm. GELU is fused into the conv epilogues.
//!
//! ```no_run
//! use candle_core::Device;
//! use coreml_candle::models::fastvit::FastVit;
//! use coreml_candle::models::vision_assets::{seeded_input, weights_path, VisionModel};
//! use coreml_candle::ops::conv_layer::Kernels;
//! let path = weights_path(VisionModel::FastVitT8)?;
//! let model = FastVit::t8_from_safetensors(&path, Kernels::FAST, &Device::Cpu)?;
//! let logits = model.forward(&seeded_input(1, &[1, 3, 224, 224])?)?;
//! assert_eq!(logits.dims(), &[1, 1000]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use crate::ops::activation::{self, Activation};
use crate::ops::bn_fold::BatchNormParams;
use crate::ops::conv_layer::{Conv2dLayer, Kernels};
use crate::ops::conv_params::ConvParams;
use crate::ops::runtime;
use candle_core::{bail, Device, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use std::path::Path;

const BN_EPS: f64 = 1e-5;

/// Stage widths, depths and MLP ratio of a RepMixer-only FastViT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastVitConfig {
    /// Channels per stage.
    pub dims: [usize; 4],
    /// Blocks per stage.
    pub depths: [usize; 4],
    /// MLP hidden = dim · ratio.
    pub mlp_ratio: usize,
    /// Classifier outputs.
    pub num_classes: usize,
}

impl FastVitConfig {
    /// timm `fastvit_t8`.
    pub fn t8() -> Self {
        Self {
            dims: [48, 96, 192, 384],
            depths: [2, 2, 4, 2],
            mlp_ratio: 3,
            num_classes: 1000,
        }
    }
}

/// Conv + BN (`<name>.conv`, `<name>.bn`) folded; timm `ConvNormAct` with symmetric padding.
#[allow(clippy::too_many_arguments)]
fn conv_norm(
    vb: &VarBuilder,
    c_in: usize,
    c_out: usize,
    k: usize,
    groups: usize,
    stride: usize,
) -> Result<ConvParams> {
    let pad = ((stride - 1) + (k - 1)) / 2;
    let mut p = ConvParams::load(&vb.pp("conv"), c_in, c_out, k, groups, stride, pad, false)?;
    p.fold_bn(&BatchNormParams::load(&vb.pp("bn"), c_out, BN_EPS)?)?;
    Ok(p)
}

/// timm `MobileOneBlock` (one conv branch at most, as in FastViT) folded into one conv.
/// Its SE module, if any, is left to the caller (`final_conv` only in FastViT).
fn mobileone(
    vb: &VarBuilder,
    c_in: usize,
    c_out: usize,
    k: usize,
    groups: usize,
    stride: usize,
) -> Result<ConvParams> {
    if vb.contains_tensor("reparam_conv.weight") {
        bail!(
            "{}: already reparameterised weights are not supported",
            vb.prefix()
        );
    }
    if vb.contains_tensor("conv_kxk.1.conv.weight") {
        bail!(
            "{}: more than one conv branch is not supported",
            vb.prefix()
        );
    }
    let pad = ((stride - 1) + (k - 1)) / 2;
    let mut p = ConvParams::zeros(c_in, c_out, groups, k, stride, pad);
    if vb.contains_tensor("conv_kxk.0.conv.weight") {
        p.add(&conv_norm(
            &vb.pp("conv_kxk.0"),
            c_in,
            c_out,
            k,
            groups,
            stride,
        )?)?;
    }
    if k > 1 && vb.contains_tensor("conv_scale.conv.weight") {
        let scale = conv_norm(&vb.pp("conv_scale"), c_in, c_out, 1, groups, stride)?;
        p.add(&scale.pad_to(k)?)?;
    }
    if c_in == c_out && stride == 1 && vb.contains_tensor("identity.weight") {
        let mut id = ConvParams::identity(c_out, groups, k, stride, pad);
        id.fold_bn(&BatchNormParams::load(&vb.pp("identity"), c_out, BN_EPS)?)?;
        p.add(&id)?;
    }
    Ok(p)
}

/// timm `SqueezeExcite` (fc1 → ReLU → fc2 → sigmoid gate) on a globally pooled input.
#[derive(Debug, Clone)]
struct SqueezeExcite {
    fc1: Linear,
    fc2: Linear,
}

impl SqueezeExcite {
    fn load(vb: &VarBuilder, c: usize) -> Result<Self> {
        let lin = |name: &str| -> Result<Linear> {
            let w = vb.pp(name).get_unchecked("weight")?;
            let (o, i) = (w.dim(0)?, w.dim(1)?);
            let w = w.reshape((o, i))?;
            Ok(Linear::new(w, Some(vb.pp(name).get(o, "bias")?)))
        };
        let (fc1, fc2) = (lin("fc1")?, lin("fc2")?);
        if fc2.weight().dims() != [c, fc1.weight().dim(0)?] {
            bail!("{}: SE shapes do not match {c} channels", vb.prefix());
        }
        Ok(Self { fc1, fc2 })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, _, _) = x.dims4()?;
        let s = x.flatten_from(2)?.mean(D::Minus1)?;
        let s = self.fc2.forward(&self.fc1.forward(&s)?.relu()?)?;
        let gate = candle_nn::ops::sigmoid(&s)?.reshape((b, c, 1, 1))?;
        x.broadcast_mul(&gate)
    }
}

/// `RepMixerBlock`: reparameterised token mixer, then `x + γ·fc2(gelu(fc1(dw7x7(x))))`.
#[derive(Debug, Clone)]
struct RepMixerBlock {
    mixer: Conv2dLayer,
    conv: Conv2dLayer,
    fc1: Conv2dLayer,
    /// Layer scale folded in; the residual is added inside the kernel.
    fc2: Conv2dLayer,
}

impl RepMixerBlock {
    fn load(vb: &VarBuilder, dim: usize, ratio: usize, k: Kernels) -> Result<Self> {
        let dev = vb.device();
        let tm = vb.pp("token_mixer");
        // timm RepMixer.reparameterize: w = id + γ·(W_mixer − W_norm), b = γ·(b_mixer − b_norm).
        let mut mixer = mobileone(&tm.pp("mixer"), dim, dim, 3, dim, 1)?;
        mixer.sub(&mobileone(&tm.pp("norm"), dim, dim, 3, dim, 1)?)?;
        mixer.scale_out(
            &tm.get((dim, 1, 1), "layer_scale.gamma")?
                .flatten_all()?
                .to_vec1()?,
        )?;
        mixer.add(&ConvParams::identity(dim, dim, 3, 1, 1))?;

        let mlp = vb.pp("mlp");
        let hidden = dim * ratio;
        let conv = conv_norm(&mlp.pp("conv"), dim, dim, 7, dim, 1)?;
        let fc1 = ConvParams::load(&mlp.pp("fc1"), dim, hidden, 1, 1, 1, 0, true)?;
        let mut fc2 = ConvParams::load(&mlp.pp("fc2"), hidden, dim, 1, 1, 1, 0, true)?;
        fc2.scale_out(
            &vb.get((dim, 1, 1), "layer_scale.gamma")?
                .flatten_all()?
                .to_vec1()?,
        )?;
        Ok(Self {
            mixer: Conv2dLayer::build(mixer, Activation::Identity, k, dev)?,
            conv: Conv2dLayer::build(conv, Activation::Identity, k, dev)?,
            fc1: Conv2dLayer::build(fc1, Activation::Gelu, k, dev)?,
            fc2: Conv2dLayer::build(fc2, Activation::Identity, k, dev)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.mixer.forward(x)?;
        let h = self.fc1.forward(&self.conv.forward(&x)?)?;
        self.fc2.forward_add(&h, &x)
    }
}

/// `PatchEmbed`: reparameterised 7×7 (+3×3) stride-2 depthwise, then a 1×1 MobileOne + GELU.
#[derive(Debug, Clone)]
struct PatchEmbed {
    large: Conv2dLayer,
    proj: Conv2dLayer,
}

impl PatchEmbed {
    fn load(vb: &VarBuilder, c_in: usize, c_out: usize, k: Kernels) -> Result<Self> {
        let lk = vb.pp("proj.0");
        if lk.contains_tensor("se.fc1.weight") {
            bail!(
                "{}: patch-embed SE is not supported (not in fastvit_t8)",
                lk.prefix()
            );
        }
        let mut large = conv_norm(&lk.pp("large_conv"), c_in, c_out, 7, c_in, 2)?;
        if lk.contains_tensor("small_conv.conv.weight") {
            large.add(&conv_norm(&lk.pp("small_conv"), c_in, c_out, 3, c_in, 2)?.pad_to(7)?)?;
        }
        let proj = mobileone(&vb.pp("proj.1"), c_out, c_out, 1, 1, 1)?;
        Ok(Self {
            large: Conv2dLayer::build(large, Activation::Identity, k, vb.device())?,
            proj: Conv2dLayer::build(proj, Activation::Gelu, k, vb.device())?,
        })
    }
}

/// FastViT with RepMixer stages only (t8, t12, s12 layouts).
#[derive(Debug, Clone)]
pub struct FastVit {
    stem: Vec<Conv2dLayer>,
    /// `(downsample, blocks)` per stage.
    stages: Vec<(Option<PatchEmbed>, Vec<RepMixerBlock>)>,
    final_conv: Conv2dLayer,
    se: SqueezeExcite,
    fast_gelu: bool,
    head: Linear,
}

impl FastVit {
    /// Build from timm-named, non-reparameterised weights.
    pub fn load(cfg: &FastVitConfig, vb: VarBuilder, k: Kernels) -> Result<Self> {
        runtime::init_cpu_runtime(None);
        let dev = vb.device().clone();
        let d0 = cfg.dims[0];
        let gelu = Activation::Gelu;
        let stem_vb = vb.pp("stem");
        let stem = vec![
            Conv2dLayer::build(mobileone(&stem_vb.pp(0), 3, d0, 3, 1, 2)?, gelu, k, &dev)?,
            Conv2dLayer::build(mobileone(&stem_vb.pp(1), d0, d0, 3, d0, 2)?, gelu, k, &dev)?,
            Conv2dLayer::build(mobileone(&stem_vb.pp(2), d0, d0, 1, 1, 1)?, gelu, k, &dev)?,
        ];
        for i in 0..3 {
            if stem_vb.pp(i).contains_tensor("se.fc1.weight") {
                bail!("stem.{i}: SE is not supported (not in fastvit_t8)");
            }
        }
        let mut stages = Vec::with_capacity(4);
        for (i, (&dim, &depth)) in cfg.dims.iter().zip(&cfg.depths).enumerate() {
            let svb = vb.pp(format!("stages.{i}"));
            if svb.contains_tensor("pos_emb.pos_enc.weight")
                || svb.contains_tensor("blocks.0.norm.weight")
            {
                bail!("stage {i}: attention / positional-encoding stages are not supported");
            }
            let down = if i > 0 {
                Some(PatchEmbed::load(
                    &svb.pp("downsample"),
                    cfg.dims[i - 1],
                    dim,
                    k,
                )?)
            } else {
                None
            };
            let blocks = (0..depth)
                .map(|b| RepMixerBlock::load(&svb.pp(format!("blocks.{b}")), dim, cfg.mlp_ratio, k))
                .collect::<Result<Vec<_>>>()?;
            stages.push((down, blocks));
        }
        let (d3, feat) = (cfg.dims[3], cfg.dims[3] * 2);
        let fvb = vb.pp("final_conv");
        let final_conv = Conv2dLayer::build(
            mobileone(&fvb, d3, feat, 3, d3, 1)?,
            Activation::Identity,
            k,
            &dev,
        )?;
        let se = SqueezeExcite::load(&fvb.pp("se"), feat)?;
        let head = candle_nn::linear(feat, cfg.num_classes, vb.pp("head.fc"))?;
        Ok(Self {
            stem,
            stages,
            final_conv,
            se,
            fast_gelu: k.fast_gelu,
            head,
        })
    }

    /// timm `fastvit_t8` from a safetensors file.
    pub fn t8_from_safetensors(path: &Path, k: Kernels, dev: &Device) -> Result<Self> {
        let vb = super::vision_assets::load_var_builder(path, dev)?;
        Self::load(&FastVitConfig::t8(), vb, k)
    }

    /// Logits `(batch, classes)` for an NCHW f32 input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for conv in &self.stem {
            x = conv.forward(&x)?;
        }
        for (down, blocks) in &self.stages {
            if let Some(pe) = down {
                x = pe.proj.forward(&pe.large.forward(&x)?)?;
            }
            for block in blocks {
                x = block.forward(&x)?;
            }
        }
        // MobileOne order: conv → SE → GELU.
        let x = self.se.forward(&self.final_conv.forward(&x)?)?;
        let x = if self.fast_gelu {
            activation::gelu(&x)?
        } else {
            x.gelu_erf()?
        };
        let pooled = x.flatten_from(2)?.mean(D::Minus1)?;
        self.head.forward(&pooled)
    }
}

/// The registry entry (FastViT-T8 on [`Kernels::FAST`]); see [`super::vision_model`].
pub fn registration() -> crate::registry::Registration {
    super::vision_model::fastvit_t8_registration()
}
