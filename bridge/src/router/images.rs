//! Image inputs across the fallback. An image-typed Core ML model takes the caller's `u8`
//! HWC image; its Candle twin takes `f32[1, 3, H, W]` after the model's own preprocessing.
//! Given the preprocessing (the hint `router.image_input.<input>`, the `image_input` object of
//! the converted package's manifest), the router presents the image input to callers as Core
//! ML does, and converts it with [`ImagePreprocessing::candle_input`] whenever Candle answers:
//! Core ML down, its breaker open, or still preparing.
//!
//! ```
//! use coreml_bridge::inference::{DType, Dim, IoSchema, PrepareOptions, Tensor, TensorMap, TensorSpec};
//! use coreml_bridge::router::images::{ImageInputs, HINT_IMAGE_INPUT};
//!
//! let options = PrepareOptions::default().with_hint(
//!     format!("{HINT_IMAGE_INPUT}x"),
//!     r#"{"scale": 0.5, "bias": [-1.0, -1.0, -1.0], "folded_in_program": null}"#,
//! );
//! let images = ImageInputs::from_options(&options).unwrap();
//! // Candle's schema: f32[1, 3, 2, 2]; callers see the image Core ML takes.
//! let candle = IoSchema::new(vec![TensorSpec::fixed("x", DType::F32, &[1, 3, 2, 2])], vec![]);
//! let api = images.caller_schema(&candle).unwrap();
//! assert_eq!(api.inputs[0].dtype, DType::U8);
//! assert_eq!(api.inputs[0].shape, vec![Dim::Fixed(2), Dim::Fixed(2), Dim::Fixed(3)]);
//! // A request's image becomes Candle's input: 0.5 * pixel - 1.
//! let img = Tensor::new(vec![2, 2, 3], vec![4u8; 12]).unwrap();
//! let x = images.to_candle(TensorMap::new().with("x", img)).unwrap();
//! assert_eq!(x.get("x").unwrap().shape(), &[1, 3, 2, 2]);
//! assert_eq!(x.f32("x").unwrap(), &[1.0; 12]);
//! ```

use coreml_inference::{DType, Dim, InferError, IoSchema, PrepareOptions, TensorMap, TensorSpec};

use crate::coreml::image::ImagePreprocessing;

/// Prefix of the hint naming an image input's preprocessing: `router.image_input.<input>` =
/// the manifest's `image_input` JSON (`{"scale", "bias": [r, g, b], "folded_in_program"}`).
pub const HINT_IMAGE_INPUT: &str = "router.image_input.";

/// The image inputs of a routed model and their preprocessing (empty for most models).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageInputs(Vec<(String, ImagePreprocessing)>);

impl ImageInputs {
    /// The image inputs the options' hints describe; a hint that is not a valid
    /// preprocessing is an error naming it.
    pub fn from_options(options: &PrepareOptions) -> Result<Self, String> {
        let mut out = Vec::new();
        for (key, value) in &options.hints {
            let Some(input) = key.strip_prefix(HINT_IMAGE_INPUT) else { continue };
            let json: serde_json::Value =
                serde_json::from_str(value).map_err(|e| format!("hint `{key}` is not JSON: {e}"))?;
            let pre = ImagePreprocessing::from_manifest(&json).map_err(|e| format!("hint `{key}`: {e}"))?;
            out.push((input.to_owned(), pre));
        }
        Ok(Self(out))
    }

    /// Whether the model has no image input.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Candle's schema as callers see it: each image input `f32[1, 3, H, W]` becomes the
    /// `u8[H, W, 3]` image (H and W keep their ranges, so a flexible size stays flexible).
    pub fn caller_schema(&self, candle: &IoSchema) -> Result<IoSchema, String> {
        let mut schema = candle.clone();
        for (name, _) in &self.0 {
            let spec = schema
                .inputs
                .iter_mut()
                .find(|s| &s.name == name)
                .ok_or_else(|| format!("image input `{name}` is not an input of the Candle model"))?;
            let [Dim::Fixed(1), Dim::Fixed(3), h, w] = spec.shape[..] else {
                return Err(format!(
                    "image input `{name}`: Candle takes {}{:?}, not f32[1, 3, H, W]",
                    spec.dtype, spec.shape
                ));
            };
            if spec.dtype != DType::F32 {
                return Err(format!("image input `{name}`: Candle takes {}, not f32", spec.dtype));
            }
            *spec = TensorSpec::new(name.clone(), DType::U8, vec![h, w, Dim::Fixed(3)]);
        }
        Ok(schema)
    }

    /// A request's inputs as Candle takes them: each image converted with its preprocessing,
    /// every other input as it is.
    pub fn to_candle(&self, mut inputs: TensorMap) -> Result<TensorMap, InferError> {
        for (name, pre) in &self.0 {
            let Some(img) = inputs.get(name) else { continue };
            let x = pre
                .candle_input(img)
                .map_err(|e| InferError::Backend { message: format!("image input `{name}` for Candle: {e}") })?;
            inputs.insert(name.clone(), x);
        }
        Ok(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_hints_and_candle_shapes_are_explained() {
        let bad = PrepareOptions::default().with_hint(format!("{HINT_IMAGE_INPUT}x"), "{\"scale\": 1}");
        assert!(ImageInputs::from_options(&bad).unwrap_err().contains("router.image_input.x"));
        let ok = PrepareOptions::default()
            .with_hint(format!("{HINT_IMAGE_INPUT}x"), r#"{"scale": 1, "bias": [0, 0, 0], "folded_in_program": null}"#);
        let images = ImageInputs::from_options(&ok).unwrap();
        let nchw = |c| IoSchema::new(vec![TensorSpec::fixed("x", DType::F32, &[1, c, 4, 4])], vec![]);
        assert!(images.caller_schema(&nchw(1)).unwrap_err().contains("f32[1, 3, H, W]"));
        let other = IoSchema::new(vec![TensorSpec::fixed("z", DType::F32, &[1, 3, 4, 4])], vec![]);
        assert!(images.caller_schema(&other).unwrap_err().contains("not an input"));
        assert!(ImageInputs::from_options(&PrepareOptions::default()).unwrap().is_empty());
    }
}
