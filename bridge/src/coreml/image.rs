//! Images for image-typed models (protocol 2.1). A caller passes an image as a `u8` HWC
//! tensor (`[height, width, 3]` RGB, `[height, width, 1]` grayscale; RGBA is accepted and its
//! alpha dropped) or decodes an image file into one ([`decode_file`]). Towards Core ML the
//! bridge lays it out in the model's pixel format ([`to_pixels`]: BGRA, ARGB, 8-bit or half
//! gray); towards Candle, which runs the same network on `f32[1, C, H, W]`, it applies the
//! model's own image preprocessing ([`ImagePreprocessing`]: the `scale` and per-channel `bias`
//! Core ML applies to 0..255 pixels, then any mean/std the conversion folded into the program),
//! so both engines see the same numbers and the router can fall back from one to the other.
//!
//! ```
//! use coreml_bridge::coreml::image::{to_pixels, ImagePreprocessing};
//! use coreml_bridge::inference::Tensor;
//! use coreml_supervisor::schema::{ImageSpec, PixelFormat};
//!
//! // A 1x2 RGB image: red, then blue.
//! let img = Tensor::new(vec![1, 2, 3], vec![255u8, 0, 0, 0, 0, 255]).unwrap();
//! let spec = ImageSpec { width: 2, height: 1, pixel_format: PixelFormat::Bgra8 };
//! assert_eq!(to_pixels(&img, &spec).unwrap(), vec![0, 0, 255, 255, 255, 0, 0, 255]);
//!
//! // EfficientNet-Lite's preprocessing: (p - 127) / 128, planes R, G, B.
//! let pre = ImagePreprocessing { scale: 1.0 / 128.0, bias: [-127.0 / 128.0; 3], normalize: None };
//! let x = pre.candle_input(&img).unwrap();
//! assert_eq!(x.shape(), &[1, 3, 1, 2]);
//! assert_eq!(x.as_slice::<f32>().unwrap(), &[1.0, -127.0 / 128.0, -127.0 / 128.0, -127.0 / 128.0, -127.0 / 128.0, 1.0]);
//! ```

use coreml_inference::{DType, Tensor};
use coreml_supervisor::schema::{ImageSpec, PixelFormat};

/// Why an image does not fit a model's image feature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageInputError {
    /// Not a `u8` tensor of rank 3.
    #[error("an image is a u8 [height, width, channels] tensor, not {dtype:?}{shape:?}")]
    NotHwc {
        /// The tensor's dtype.
        dtype: DType,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// Height or width differ from the feature's.
    #[error("the image is {width}x{height}, the model takes {want_width}x{want_height}")]
    Size {
        /// Given width.
        width: usize,
        /// Given height.
        height: usize,
        /// The feature's width.
        want_width: u64,
        /// The feature's height.
        want_height: u64,
    },
    /// A channel count that is not 1, 3 or 4.
    #[error("{0} channels: an image has 1 (gray), 3 (RGB) or 4 (RGBA)")]
    Channels(usize),
    /// The preprocessing description is incomplete.
    #[error("image preprocessing: {0}")]
    Preprocessing(String),
    /// The file could not be read or decoded.
    #[error("decoding {path}: {message}")]
    Decode {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// The caller-facing spec of an image feature: `u8 [H, W, 3]` for colour formats, `[H, W, 1]`
/// for 8-bit gray, `f16 [H, W, 1]` for half-float gray.
pub fn api_shape(image: &ImageSpec) -> (DType, Vec<usize>) {
    let (h, w) = (image.height as usize, image.width as usize);
    match image.pixel_format {
        PixelFormat::Bgra8 | PixelFormat::Argb8 => (DType::U8, vec![h, w, 3]),
        PixelFormat::Gray8 => (DType::U8, vec![h, w, 1]),
        PixelFormat::GrayF16 => (DType::F16, vec![h, w, 1]),
    }
}

/// Height, width and channels of a caller's image, checked against the feature's size.
fn hwc(img: &Tensor, spec: Option<&ImageSpec>) -> Result<(usize, usize, usize), ImageInputError> {
    let [h, w, c] = img.shape()[..] else {
        return Err(ImageInputError::NotHwc { dtype: img.dtype(), shape: img.shape().to_vec() });
    };
    if img.dtype() != DType::U8 {
        return Err(ImageInputError::NotHwc { dtype: img.dtype(), shape: img.shape().to_vec() });
    }
    if !matches!(c, 1 | 3 | 4) {
        return Err(ImageInputError::Channels(c));
    }
    if let Some(s) = spec {
        if (h as u64, w as u64) != (s.height, s.width) {
            return Err(ImageInputError::Size { width: w, height: h, want_width: s.width, want_height: s.height });
        }
    }
    Ok((h, w, c))
}

/// R, G, B of pixel `i` of an HWC image with `c` channels (gray repeats its value).
fn rgb(data: &[u8], i: usize, c: usize) -> [u8; 3] {
    let p = &data[i * c..i * c + c];
    if c == 1 {
        [p[0]; 3]
    } else {
        [p[0], p[1], p[2]]
    }
}

/// Luma of an RGB pixel (ITU-R BT.601, what Core Video uses for a gray conversion).
fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

/// The image's pixels in the feature's pixel format, rows dense (the supervisor pads them).
/// An f16 gray image takes an f16 `[H, W, 1]` tensor as it is.
pub fn to_pixels(img: &Tensor, spec: &ImageSpec) -> Result<Vec<u8>, ImageInputError> {
    if spec.pixel_format == PixelFormat::GrayF16 {
        let want = vec![spec.height as usize, spec.width as usize, 1];
        if img.dtype() != DType::F16 || img.shape() != want {
            return Err(ImageInputError::NotHwc { dtype: img.dtype(), shape: img.shape().to_vec() });
        }
        return Ok(img.as_bytes().to_vec());
    }
    let (h, w, c) = hwc(img, Some(spec))?;
    let data = img.as_bytes();
    let n = h * w;
    let mut out = Vec::with_capacity(n * spec.pixel_format.bytes_per_pixel() as usize);
    for i in 0..n {
        let [r, g, b] = rgb(data, i, c);
        match spec.pixel_format {
            PixelFormat::Bgra8 => out.extend_from_slice(&[b, g, r, 255]),
            PixelFormat::Argb8 => out.extend_from_slice(&[255, r, g, b]),
            PixelFormat::Gray8 => out.push(if c == 1 { r } else { luma([r, g, b]) }),
            PixelFormat::GrayF16 => unreachable!("handled above"),
        }
    }
    Ok(out)
}

/// An image output's pixels (dense rows, in the feature's format) as the caller-facing tensor.
pub fn from_pixels(bytes: &[u8], spec: &ImageSpec) -> Result<Tensor, String> {
    let (dtype, shape) = api_shape(spec);
    let n = (spec.height * spec.width) as usize;
    let data: Vec<u8> = match spec.pixel_format {
        PixelFormat::Bgra8 => bytes.chunks_exact(4).take(n).flat_map(|p| [p[2], p[1], p[0]]).collect(),
        PixelFormat::Argb8 => bytes.chunks_exact(4).take(n).flat_map(|p| [p[1], p[2], p[3]]).collect(),
        PixelFormat::Gray8 | PixelFormat::GrayF16 => bytes.to_vec(),
    };
    Tensor::from_bytes(dtype, shape, &data).map_err(|e| e.to_string())
}

/// What an image model does to its pixels before its first layer: `x = scale * p + bias[c]`
/// on 0..=255 RGB values (Core ML's `ImageType` preprocessing), then, if the conversion folded
/// a per-channel normalisation into the program, `(x - mean[c]) / std[c]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagePreprocessing {
    /// Per-pixel scale.
    pub scale: f32,
    /// Per-channel bias, R, G, B.
    pub bias: [f32; 3],
    /// `(mean, std)` folded into the program, if any.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

fn three(v: &serde_json::Value, what: &str) -> Result<[f32; 3], ImageInputError> {
    let bad = || ImageInputError::Preprocessing(format!("`{what}` is not three numbers"));
    let a = v.as_array().ok_or_else(bad)?;
    if a.len() != 3 {
        return Err(bad());
    }
    let mut out = [0f32; 3];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x.as_f64().ok_or_else(bad)? as f32;
    }
    Ok(out)
}

impl ImagePreprocessing {
    /// From the `image_input` object of a converted package's manifest
    /// (`scripts/models/manifests/`): `{"scale", "bias": [r, g, b], "folded_in_program":
    /// null | {"mean": [..], "std": [..]}}`.
    pub fn from_manifest(v: &serde_json::Value) -> Result<Self, ImageInputError> {
        let scale =
            v["scale"].as_f64().ok_or_else(|| ImageInputError::Preprocessing("`scale` is missing".into()))? as f32;
        let bias = three(&v["bias"], "bias")?;
        let normalize = match &v["folded_in_program"] {
            serde_json::Value::Null => None,
            n => Some((three(&n["mean"], "mean")?, three(&n["std"], "std")?)),
        };
        Ok(Self { scale, bias, normalize })
    }

    /// The Candle side's input of a `u8` HWC image: `f32[1, 3, H, W]` (planes R, G, B; a gray
    /// image fills all three), preprocessed as the Core ML model does it.
    pub fn candle_input(&self, img: &Tensor) -> Result<Tensor, ImageInputError> {
        let (h, w, c) = hwc(img, None)?;
        let data = img.as_bytes();
        let n = h * w;
        let mut out = vec![0f32; 3 * n];
        for i in 0..n {
            for (ch, &p) in rgb(data, i, c).iter().enumerate() {
                let mut x = self.scale * p as f32 + self.bias[ch];
                if let Some((mean, std)) = self.normalize {
                    x = (x - mean[ch]) / std[ch];
                }
                out[ch * n + i] = x;
            }
        }
        Tensor::new(vec![1, 3, h, w], out).map_err(|e| ImageInputError::Preprocessing(e.to_string()))
    }
}

/// Decodes a PNG or JPEG file into a `u8 [H, W, 3]` RGB tensor, resized to `width`×`height`
/// (bilinear) when given.
#[cfg(feature = "candle")]
pub fn decode_file(path: &std::path::Path, size: Option<(u32, u32)>) -> Result<Tensor, ImageInputError> {
    let err = |m: String| ImageInputError::Decode { path: path.display().to_string(), message: m };
    let img = image::open(path).map_err(|e| err(e.to_string()))?;
    let img = match size {
        Some((w, h)) if (img.width(), img.height()) != (w, h) => {
            img.resize_exact(w, h, image::imageops::FilterType::Triangle)
        }
        _ => img,
    };
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Tensor::new(vec![h as usize, w as usize, 3], rgb.into_raw()).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(w: u64, h: u64, f: PixelFormat) -> ImageSpec {
        ImageSpec { width: w, height: h, pixel_format: f }
    }

    #[test]
    fn pixels_in_every_format_and_back() {
        let img = Tensor::new(vec![1, 2, 3], vec![10u8, 20, 30, 40, 50, 60]).unwrap();
        let bgra = to_pixels(&img, &spec(2, 1, PixelFormat::Bgra8)).unwrap();
        assert_eq!(bgra, vec![30, 20, 10, 255, 60, 50, 40, 255]);
        let argb = to_pixels(&img, &spec(2, 1, PixelFormat::Argb8)).unwrap();
        assert_eq!(argb, vec![255, 10, 20, 30, 255, 40, 50, 60]);
        assert_eq!(to_pixels(&img, &spec(2, 1, PixelFormat::Gray8)).unwrap(), vec![18, 48]);
        for (bytes, f) in [(bgra, PixelFormat::Bgra8), (argb, PixelFormat::Argb8)] {
            assert_eq!(from_pixels(&bytes, &spec(2, 1, f)).unwrap(), img);
        }
        // RGBA drops alpha; gray repeats.
        let rgba = Tensor::new(vec![1, 1, 4], vec![1u8, 2, 3, 4]).unwrap();
        assert_eq!(to_pixels(&rgba, &spec(1, 1, PixelFormat::Bgra8)).unwrap(), vec![3, 2, 1, 255]);
    }

    #[test]
    fn images_that_do_not_fit_are_typed_errors() {
        let img = Tensor::new(vec![1, 2, 3], vec![0u8; 6]).unwrap();
        assert!(matches!(to_pixels(&img, &spec(3, 1, PixelFormat::Bgra8)), Err(ImageInputError::Size { .. })));
        let two = Tensor::new(vec![1, 2, 2], vec![0u8; 4]).unwrap();
        assert_eq!(to_pixels(&two, &spec(2, 1, PixelFormat::Bgra8)), Err(ImageInputError::Channels(2)));
        let f = Tensor::new(vec![1, 2, 3], vec![0f32; 6]).unwrap();
        assert!(matches!(to_pixels(&f, &spec(2, 1, PixelFormat::Bgra8)), Err(ImageInputError::NotHwc { .. })));
    }

    #[test]
    fn preprocessing_from_the_manifest_matches_core_ml_then_the_folded_normalisation() {
        let m = serde_json::json!({"scale": 0.5, "bias": [1.0, 2.0, 3.0], "color": "RGB",
                                   "folded_in_program": {"mean": [1.0, 1.0, 1.0], "std": [2.0, 2.0, 2.0]}});
        let pre = ImagePreprocessing::from_manifest(&m).unwrap();
        let img = Tensor::new(vec![1, 1, 3], vec![2u8, 4, 6]).unwrap();
        let x = pre.candle_input(&img).unwrap();
        // R: (0.5*2 + 1 - 1) / 2 = 0.5; G: (2 + 2 - 1) / 2 = 1.5; B: (3 + 3 - 1) / 2 = 2.5
        assert_eq!(x.as_slice::<f32>().unwrap(), &[0.5, 1.5, 2.5]);
        let bad = serde_json::json!({"scale": 1.0, "bias": [0.0]});
        assert!(matches!(ImagePreprocessing::from_manifest(&bad), Err(ImageInputError::Preprocessing(_))));
    }
}
