//! ResNet-50 and FastViT-T8 as registry models: `pixel_values: f32[B, 3, 224, 224]` in,
//! `logits: f32[B, 1000]` out, on [`Kernels::FAST`].
//!
//! ```
//! use coreml_candle::registry::Registry;
//! let r = Registry::builtin();
//! assert!(r.find("resnet50").is_some() && r.find("resnet-50").is_some());
//! assert!(r.find("fastvit_t8").is_some() && r.find("fastvit-t8").is_some());
//! ```

use candle_core::{Device, Tensor as CTensor};
use coreml_inference::{DType, Dim, IoSchema, PrepareError, Tensor, TensorMap, TensorSpec};

use super::fastvit::{FastVit, FastVitConfig};
use super::resnet::ResNet50;
use crate::ops::conv_layer::Kernels;
use crate::preprocess::ImagePreprocessor;
use crate::registry::{invalid, CandleModel, LoadContext, Registration};
use crate::tensors::{from_candle, to_candle};

const SIZE: usize = 224;
const CLASSES: usize = 1000;

/// I/O schema shared by the 224×224 ImageNet classifiers: `pixel_values`
/// `[b, 3, 224, 224]` f32 in, `logits` `[b, 1000]` f32 out.
pub(crate) fn classifier_schema(max_batch: usize) -> IoSchema {
    let b = Dim::range(1, max_batch);
    IoSchema::new(
        vec![TensorSpec::new(
            "pixel_values",
            DType::F32,
            vec![b, 3.into(), SIZE.into(), SIZE.into()],
        )
        .batch_capable()],
        vec![TensorSpec::new("logits", DType::F32, vec![b, CLASSES.into()]).batch_capable()],
    )
}

/// Runs `logits` on the `pixel_values` input of a [`classifier_schema`] model.
pub(crate) fn classifier_forward(
    inputs: &TensorMap,
    device: &Device,
    logits: impl FnOnce(&CTensor) -> candle_core::Result<CTensor>,
) -> candle_core::Result<TensorMap> {
    let x = inputs
        .get("pixel_values")
        .ok_or_else(|| candle_core::Error::Msg("missing pixel_values".into()))?;
    let out = logits(&to_candle(x, device)?)?;
    Ok(TensorMap::new().with("logits", from_candle(&out)?))
}

/// Which network a [`VisionClassifier`] runs.
enum Net {
    ResNet50(ResNet50),
    FastVit(FastVit),
}

/// An ImageNet classifier behind the registry's [`CandleModel`] trait.
pub struct VisionClassifier {
    net: Net,
    device: Device,
    max_batch: usize,
}

impl VisionClassifier {
    fn logits(&self, x: &CTensor) -> candle_core::Result<CTensor> {
        match &self.net {
            Net::ResNet50(m) => m.forward(x),
            Net::FastVit(m) => m.forward(x),
        }
    }
}

impl CandleModel for VisionClassifier {
    fn schema(&self) -> IoSchema {
        classifier_schema(self.max_batch)
    }

    fn forward(&self, inputs: &TensorMap) -> candle_core::Result<TensorMap> {
        classifier_forward(inputs, &self.device, |x| self.logits(x))
    }

    fn example_inputs(&self) -> candle_core::Result<TensorMap> {
        let x = super::vision_assets::seeded_input(1, &[1, 3, SIZE, SIZE])?;
        let t = Tensor::new(vec![1, 3, SIZE, SIZE], x.flatten_all()?.to_vec1::<f32>()?)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(TensorMap::new().with("pixel_values", t))
    }
}

fn load_resnet50(ctx: &LoadContext<'_>) -> Result<Box<dyn CandleModel>, PrepareError> {
    let net = ResNet50::load(ctx.var_builder()?, Kernels::FAST)
        .map_err(|e| invalid(format!("resnet50 weights: {e}")))?;
    Ok(Box::new(VisionClassifier {
        net: Net::ResNet50(net),
        device: ctx.device.clone(),
        max_batch: ctx.max_batch(),
    }))
}

fn load_fastvit_t8(ctx: &LoadContext<'_>) -> Result<Box<dyn CandleModel>, PrepareError> {
    let net = FastVit::load(&FastVitConfig::t8(), ctx.var_builder()?, Kernels::FAST)
        .map_err(|e| invalid(format!("fastvit_t8 weights: {e}")))?;
    Ok(Box::new(VisionClassifier {
        net: Net::FastVit(net),
        device: ctx.device.clone(),
        max_batch: ctx.max_batch(),
    }))
}

/// Registry entry of torchvision-named ResNet-50.
pub fn resnet50_registration() -> Registration {
    Registration {
        architecture: "resnet50",
        aliases: &["resnet-50", "resnet_50"],
        load: load_resnet50,
        image_preprocessor: Some(ImagePreprocessor::imagenet()),
    }
}

/// Registry entry of timm-named (non-reparameterised) FastViT-T8.
pub fn fastvit_t8_registration() -> Registration {
    Registration {
        architecture: "fastvit-t8",
        aliases: &["fastvit_t8", "fastvit"],
        load: load_fastvit_t8,
        image_preprocessor: Some(ImagePreprocessor::imagenet()),
    }
}
