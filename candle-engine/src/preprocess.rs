//! Image preprocessing: resize the shorter side, centre-crop, normalise, CHW.
//!
//! ```
//! use coreml_candle::preprocess::ImagePreprocessor;
//!
//! let img = image::DynamicImage::new_rgb8(400, 300);
//! let t = ImagePreprocessor::imagenet().tensor(&[img]).unwrap();
//! assert_eq!(t.shape(), &[1, 3, 224, 224]);
//! // Black pixels normalise to -mean/std.
//! let v = t.as_slice::<f32>().unwrap()[0];
//! assert!((v - (-0.485 / 0.229)).abs() < 1e-6);
//! ```
//!
//! Resizing uses the `image` crate's bilinear filter (`Triangle`), which
//! matches PIL's bilinear closely but not bit for bit: parity tests feed
//! models preprocessed tensors, and only end-to-end checks (the cat photo)
//! go through this module.

use std::path::Path;

use coreml_inference::{Tensor, TensorError};
use image::imageops::FilterType;
use image::DynamicImage;

/// How to turn images into `pixel_values: f32[B, 3, crop, crop]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagePreprocessor {
    /// The shorter side is resized to this first.
    pub resize_shorter: u32,
    /// Then the centre `crop × crop` square is kept.
    pub crop: u32,
    /// Per-channel mean, on pixel values scaled to `0..=1`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, same scale.
    pub std: [f32; 3],
}

impl ImagePreprocessor {
    /// torchvision/timm ImageNet defaults: 256 → 224, ImageNet mean/std.
    pub const fn imagenet() -> Self {
        Self {
            resize_shorter: 256,
            crop: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// EfficientNet-Lite (TF-Lite checkpoints): 256 → 224, `(p - 127) / 128` on 0..255.
    pub const fn efficientnet_lite() -> Self {
        Self {
            resize_shorter: 256,
            crop: 224,
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
        }
    }

    /// Resized and cropped RGB image, before normalisation.
    pub fn resize_and_crop(&self, img: &DynamicImage) -> image::RgbImage {
        let (w, h) = (img.width().max(1), img.height().max(1));
        let scale = self.resize_shorter as f64 / w.min(h) as f64;
        let (nw, nh) = (
            ((w as f64 * scale).round() as u32).max(self.crop),
            ((h as f64 * scale).round() as u32).max(self.crop),
        );
        let resized = img.resize_exact(nw, nh, FilterType::Triangle).to_rgb8();
        let (left, top) = ((nw - self.crop) / 2, (nh - self.crop) / 2);
        image::imageops::crop_imm(&resized, left, top, self.crop, self.crop).to_image()
    }

    /// Normalised CHW values of one already-sized RGB image.
    pub fn normalise(&self, rgb: &image::RgbImage) -> Vec<f32> {
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let mut out = vec![0f32; 3 * w * h];
        for (x, y, p) in rgb.enumerate_pixels() {
            for c in 0..3 {
                let v = f32::from(p.0[c]) / 255.0;
                out[c * w * h + y as usize * w + x as usize] = (v - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    /// A batch tensor `f32[B, 3, crop, crop]`.
    pub fn tensor(&self, images: &[DynamicImage]) -> Result<Tensor, TensorError> {
        let c = self.crop as usize;
        let mut data = Vec::with_capacity(images.len() * 3 * c * c);
        for img in images {
            data.extend(self.normalise(&self.resize_and_crop(img)));
        }
        Tensor::new(vec![images.len(), 3, c, c], data)
    }

    /// Reads image files into a batch tensor.
    pub fn tensor_from_files<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Tensor, TensorError> {
        let images = paths
            .iter()
            .map(|p| {
                image::open(p.as_ref()).map_err(|e| TensorError::Io {
                    path: p.as_ref().to_owned(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.tensor(&images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_the_centre_after_resizing_the_shorter_side() {
        // A 512x256 image whose left half is black and right half white:
        // resized to 512x256 (scale 1), the centre 224 crop spans both halves.
        let mut img = image::RgbImage::new(512, 256);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = if x < 256 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            };
        }
        let pre = ImagePreprocessor {
            resize_shorter: 256,
            crop: 224,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let out = pre.resize_and_crop(&DynamicImage::ImageRgb8(img));
        assert_eq!(out.dimensions(), (224, 224));
        assert_eq!(out.get_pixel(0, 100).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(223, 100).0, [255, 255, 255]);
        let v = pre.normalise(&out);
        assert_eq!(v.len(), 3 * 224 * 224);
        assert_eq!(v[100 * 224 + 223], 1.0);
        let lite = ImagePreprocessor::efficientnet_lite();
        let px = image::RgbImage::from_pixel(224, 224, image::Rgb([255, 127, 0]));
        let n = lite.normalise(&px);
        assert!(
            (n[0] - 1.0).abs() < 1e-6
                && n[224 * 224].abs() < 1e-6
                && (n[2 * 224 * 224] + 127.0 / 128.0).abs() < 1e-6
        );
    }
}
