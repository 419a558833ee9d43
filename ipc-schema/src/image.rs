//! Image features (since 2.1): what a [`TensorSpec`] adds when the model's feature is an
//! image (Core ML's `MLFeatureType.image`, a `CVPixelBuffer` on macOS), and the layout
//! image bytes have in shared memory.
//!
//! An image feature is still a tensor on the wire: its spec's `dtype` and `shape` are those
//! of its pixels, `[height, width, channels]` (HWC, one plane), and a [`TensorRef`] to it has
//! strides `[row, channels, 1]` in elements, where `row ≥ width × channels` may pad each row.
//! [`ImageSpec`] says which pixel format those bytes are in, so the helper can wrap them in a
//! pixel buffer of that format.
//!
//! ```
//! use coreml_ipc_schema::{image_ref, DType, ImageSpec, PixelFormat, TensorSpec};
//!
//! let image = ImageSpec { width: 3, height: 2, pixel_format: PixelFormat::Bgra8 };
//! let spec = TensorSpec::image("image", image);
//! assert_eq!((spec.dtype, spec.shape.clone()), (DType::U8, vec![2, 3, 4]));
//! image.check(&spec).unwrap();
//!
//! // Rows of 12 bytes padded to 64 (IMAGE_ROW_ALIGN), at the start of a slot.
//! let t = image_ref(&image, 7, 16384);
//! assert_eq!(t.strides, vec![64, 4, 1]);
//! assert_eq!(t.len, 64 + 12);
//! image.check_ref(&t).unwrap();
//! ```

use crate::enums::wire_enum;
use crate::{DType, TensorRef, TensorSpec};
use serde::{Deserialize, Serialize};

/// Row alignment, in bytes, of image bytes the supervisor places in shared memory (and of
/// the output slots it offers for images): a pixel buffer can then be made over the slot
/// without a copy.
pub const IMAGE_ROW_ALIGN: u64 = 64;

wire_enum! {
    /// Pixel format of an image feature. Each value names one Core Video pixel format type.
    PixelFormat {
        /// `kCVPixelFormatType_32BGRA`: 4 × u8 per pixel, B G R A.
        Bgra8 = 1,
        /// `kCVPixelFormatType_32ARGB`: 4 × u8 per pixel, A R G B.
        Argb8 = 2,
        /// `kCVPixelFormatType_OneComponent8`: 1 × u8 per pixel (grayscale).
        Gray8 = 3,
        /// `kCVPixelFormatType_OneComponent16Half`: 1 × f16 per pixel (grayscale).
        GrayF16 = 4,
    }
}

impl PixelFormat {
    /// Element type of one channel.
    pub fn dtype(self) -> DType {
        match self {
            PixelFormat::GrayF16 => DType::F16,
            PixelFormat::Bgra8 | PixelFormat::Argb8 | PixelFormat::Gray8 => DType::U8,
        }
    }

    /// Channels per pixel.
    pub fn channels(self) -> u64 {
        match self {
            PixelFormat::Bgra8 | PixelFormat::Argb8 => 4,
            PixelFormat::Gray8 | PixelFormat::GrayF16 => 1,
        }
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> u64 {
        self.channels() * self.dtype().size()
    }

    /// Core Video's four-character code (`OSType`) of the format.
    pub fn os_type(self) -> u32 {
        match self {
            PixelFormat::Bgra8 => u32::from_be_bytes(*b"BGRA"),
            PixelFormat::Argb8 => 0x20,
            PixelFormat::Gray8 => u32::from_be_bytes(*b"L008"),
            PixelFormat::GrayF16 => u32::from_be_bytes(*b"L00h"),
        }
    }

    /// Short name (`bgra8`, `gray_f16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Bgra8 => "bgra8",
            PixelFormat::Argb8 => "argb8",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::GrayF16 => "gray_f16",
        }
    }
}

/// The image part of a [`TensorSpec`] (since 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Pixel format.
    pub pixel_format: PixelFormat,
}

/// Why an image spec or an image's bytes do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The spec's dtype or shape is not `[height, width, channels]` of the pixel format.
    #[error("an image of {width}x{height} {format} is {dtype}{shape:?}, not {spec_dtype}{spec_shape:?}", format = .format.name(), dtype = .format.dtype().name(), spec_dtype = .spec_dtype.name())]
    SpecMismatch {
        /// Image width.
        width: u64,
        /// Image height.
        height: u64,
        /// Its pixel format.
        format: PixelFormat,
        /// The shape it implies.
        shape: Vec<u64>,
        /// The spec's dtype.
        spec_dtype: DType,
        /// The spec's shape.
        spec_shape: Vec<u64>,
    },
    /// A zero width or height.
    #[error("an image of {width}x{height} pixels is empty")]
    Empty {
        /// Width.
        width: u64,
        /// Height.
        height: u64,
    },
    /// A ref whose pixel and channel strides are not `[_, channels, 1]`.
    #[error("image strides {strides:?}: pixels must be packed ([row, {channels}, 1])")]
    NotPacked {
        /// The ref's strides.
        strides: Vec<u64>,
        /// Channels per pixel.
        channels: u64,
    },
    /// A row stride shorter than a row.
    #[error("image rows of {row_bytes} bytes are shorter than {width} pixels ({need} bytes)")]
    RowTooShort {
        /// The row stride in bytes.
        row_bytes: u64,
        /// Width in pixels.
        width: u64,
        /// Bytes one row needs.
        need: u64,
    },
    /// The byte count does not match the size and row stride.
    #[error("image bytes: {len}, expected {expected} ({height} rows of {row_bytes} bytes, the last one {last_row} bytes)")]
    SizeMismatch {
        /// Bytes given.
        len: u64,
        /// Bytes expected.
        expected: u64,
        /// Rows.
        height: u64,
        /// Row stride in bytes.
        row_bytes: u64,
        /// Bytes of the last row (not padded).
        last_row: u64,
    },
    /// A row stride that is not a whole number of elements.
    #[error("row stride of {row_bytes} bytes is not a multiple of the {size}-byte element")]
    RowMisaligned {
        /// The row stride in bytes.
        row_bytes: u64,
        /// Element size.
        size: u64,
    },
    /// Sizes overflow 64 bits.
    #[error("image size overflows u64")]
    Overflow,
    /// A flexible image spec whose sizes are not `[height, width, channels]` of the format.
    #[error("flexible image sizes: {0}")]
    BadSizes(String),
    /// A size the feature does not take.
    #[error("an image of {width}x{height} is not one the model takes ({allowed})")]
    SizeNotAllowed {
        /// Given width.
        width: u64,
        /// Given height.
        height: u64,
        /// The sizes the feature takes.
        allowed: String,
    },
}

impl ImageSpec {
    /// `[height, width, channels]`.
    pub fn shape(&self) -> Vec<u64> {
        vec![self.height, self.width, self.pixel_format.channels()]
    }

    /// Bytes of one unpadded row.
    pub fn row_bytes(&self) -> Result<u64, ImageError> {
        self.width
            .checked_mul(self.pixel_format.bytes_per_pixel())
            .ok_or(ImageError::Overflow)
    }

    /// The row stride the supervisor uses: an unpadded row rounded up to [`IMAGE_ROW_ALIGN`].
    pub fn padded_row_bytes(&self) -> Result<u64, ImageError> {
        let r = self.row_bytes()?;
        r.checked_next_multiple_of(IMAGE_ROW_ALIGN)
            .ok_or(ImageError::Overflow)
    }

    /// The same feature at another size (a flexible feature's request).
    pub fn with_size(&self, width: u64, height: u64) -> ImageSpec {
        ImageSpec {
            width,
            height,
            ..*self
        }
    }

    /// Checks that the feature of `spec` (whose `image` this is) takes an image of
    /// `width`×`height`, and returns the image spec of that size. A fixed feature takes its own
    /// size; a flexible one (section 4: `enumerated_shapes` or `shape_ranges` of the pixels'
    /// `[height, width, channels]`) one of its sizes or any size within its ranges.
    pub fn sized(
        &self,
        spec: &TensorSpec,
        width: u64,
        height: u64,
    ) -> Result<ImageSpec, ImageError> {
        let c = self.pixel_format.channels();
        let fits = if !spec.enumerated_shapes.is_empty() {
            spec.enumerated_shapes.contains(&vec![height, width, c])
        } else if let [h, w, _] = spec.shape_ranges[..] {
            (h[0]..=h[1]).contains(&height) && (w[0]..=w[1]).contains(&width)
        } else {
            (width, height) == (self.width, self.height)
        };
        if !fits {
            return Err(ImageError::SizeNotAllowed {
                width,
                height,
                allowed: Self::allowed(spec, self),
            });
        }
        let sized = self.with_size(width, height);
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        sized.row_bytes()?;
        Ok(sized)
    }

    /// The sizes a feature takes, for messages (`WxH`, `WxH | WxH`, or `W1..W2 x H1..H2`).
    fn allowed(spec: &TensorSpec, image: &ImageSpec) -> String {
        if !spec.enumerated_shapes.is_empty() {
            let sizes: Vec<String> = spec
                .enumerated_shapes
                .iter()
                .map(|s| format!("{}x{}", s.get(1).unwrap_or(&0), s.first().unwrap_or(&0)))
                .collect();
            return sizes.join(" | ");
        }
        if let [h, w, _] = spec.shape_ranges[..] {
            return format!("{}..{} x {}..{}", w[0], w[1], h[0], h[1]);
        }
        format!("{}x{}", image.width, image.height)
    }

    /// A flexible spec's sizes must be `[height, width, channels]` of this format, non-empty
    /// and around the default size.
    fn check_sizes(&self, spec: &TensorSpec) -> Result<(), ImageError> {
        let c = self.pixel_format.channels();
        let bad = |m: String| Err(ImageError::BadSizes(m));
        if !spec.enumerated_shapes.is_empty() && !spec.shape_ranges.is_empty() {
            return bad("both enumerated shapes and ranges".into());
        }
        for s in &spec.enumerated_shapes {
            if s.len() != 3 || s[2] != c || s[0] == 0 || s[1] == 0 {
                return bad(format!("shape {s:?} is not [height, width, {c}]"));
            }
        }
        if !spec.enumerated_shapes.is_empty() && !spec.enumerated_shapes.contains(&self.shape()) {
            return bad("the default size is not one of the enumerated sizes".into());
        }
        if !spec.shape_ranges.is_empty() {
            let [h, w, ch] = spec.shape_ranges[..] else {
                return bad(format!(
                    "{} ranges for [height, width, channels]",
                    spec.shape_ranges.len()
                ));
            };
            if ch != [c, c] || h[0] == 0 || w[0] == 0 || h[0] > h[1] || w[0] > w[1] {
                return bad(format!(
                    "ranges {:?} are not [height, width, {c}..{c}]",
                    spec.shape_ranges
                ));
            }
            if !(h[0]..=h[1]).contains(&self.height) || !(w[0]..=w[1]).contains(&self.width) {
                return bad("the default size is outside the ranges".into());
            }
        }
        Ok(())
    }

    /// Checks that `spec` (whose `image` this is) has the pixels' dtype and shape, and that the
    /// image is not empty.
    pub fn check(&self, spec: &TensorSpec) -> Result<(), ImageError> {
        if self.width == 0 || self.height == 0 {
            return Err(ImageError::Empty {
                width: self.width,
                height: self.height,
            });
        }
        self.row_bytes()?;
        if spec.dtype != self.pixel_format.dtype() || spec.shape != self.shape() {
            return Err(ImageError::SpecMismatch {
                width: self.width,
                height: self.height,
                format: self.pixel_format,
                shape: self.shape(),
                spec_dtype: spec.dtype,
                spec_shape: spec.shape.clone(),
            });
        }
        self.check_sizes(spec)
    }

    /// Checks caller-supplied image bytes: `len` bytes with rows `row_bytes` apart. The last
    /// row may stop at its last pixel or be padded like the others.
    pub fn check_bytes(&self, len: u64, row_bytes: u64) -> Result<(), ImageError> {
        let need = self.row_bytes()?;
        let size = self.pixel_format.dtype().size();
        if row_bytes < need {
            return Err(ImageError::RowTooShort {
                row_bytes,
                width: self.width,
                need,
            });
        }
        if !row_bytes.is_multiple_of(size) {
            return Err(ImageError::RowMisaligned { row_bytes, size });
        }
        let before_last = row_bytes
            .checked_mul(self.height.saturating_sub(1))
            .ok_or(ImageError::Overflow)?;
        let tight = before_last.checked_add(need).ok_or(ImageError::Overflow)?;
        let padded = before_last
            .checked_add(row_bytes)
            .ok_or(ImageError::Overflow)?;
        if len != tight && len != padded {
            return Err(ImageError::SizeMismatch {
                len,
                expected: tight,
                height: self.height,
                row_bytes,
                last_row: need,
            });
        }
        Ok(())
    }

    /// Checks a ref to image bytes: shape `[height, width, channels]`, dtype of the format,
    /// packed pixels and a row stride of at least one row. (Section 5 rules are
    /// [`TensorRef::validate`]'s.)
    pub fn check_ref(&self, t: &TensorRef) -> Result<(), ImageError> {
        let c = self.pixel_format.channels();
        if t.dtype != self.pixel_format.dtype() || t.shape != self.shape() {
            return Err(ImageError::SpecMismatch {
                width: self.width,
                height: self.height,
                format: self.pixel_format,
                shape: self.shape(),
                spec_dtype: t.dtype,
                spec_shape: t.shape.clone(),
            });
        }
        if t.strides.len() != 3 || t.strides[1] != c || t.strides[2] != 1 {
            return Err(ImageError::NotPacked {
                strides: t.strides.clone(),
                channels: c,
            });
        }
        let size = t.dtype.size();
        let row_bytes = t.strides[0].checked_mul(size).ok_or(ImageError::Overflow)?;
        let need = self.row_bytes()?;
        if row_bytes < need && self.height > 1 {
            return Err(ImageError::RowTooShort {
                row_bytes,
                width: self.width,
                need,
            });
        }
        Ok(())
    }
}

/// The ref the supervisor gives an image at `offset` of `region`: rows padded to
/// [`ImageSpec::padded_row_bytes`], the last row unpadded (as section 5 measures `len`).
///
/// # Panics
/// On an image whose size overflows `u64` (check it with [`ImageSpec::check`] first).
pub fn image_ref(image: &ImageSpec, region: u32, offset: u64) -> TensorRef {
    let f = image.pixel_format;
    let size = f.dtype().size();
    let row = image.padded_row_bytes().expect("checked image") / size;
    let shape = image.shape();
    let strides = vec![row, f.channels(), 1];
    let mut t = TensorRef {
        dtype: f.dtype(),
        shape,
        strides,
        region,
        offset,
        len: 0,
    };
    t.len = t.span_bytes().expect("checked image");
    t
}

impl TensorSpec {
    /// The spec of an image feature: the pixels' dtype and `[height, width, channels]`.
    pub fn image(name: impl Into<String>, image: ImageSpec) -> Self {
        TensorSpec {
            name: name.into(),
            dtype: image.pixel_format.dtype(),
            shape: image.shape(),
            enumerated_shapes: vec![],
            shape_ranges: vec![],
            optional: false,
            image: Some(image),
        }
    }

    /// An image feature that takes any size within `[min, max]` of width and height (Core ML's
    /// `MLImageSizeConstraint` of type range); `image` holds the default size.
    pub fn image_range(
        name: impl Into<String>,
        image: ImageSpec,
        width: [u64; 2],
        height: [u64; 2],
    ) -> Self {
        let c = image.pixel_format.channels();
        TensorSpec {
            shape_ranges: vec![height, width, [c, c]],
            ..Self::image(name, image)
        }
    }

    /// An image feature that takes one of `sizes` (`(width, height)`; Core ML's enumerated
    /// image sizes); `image` holds the default size, which is one of them.
    pub fn image_sizes(name: impl Into<String>, image: ImageSpec, sizes: &[(u64, u64)]) -> Self {
        let c = image.pixel_format.channels();
        TensorSpec {
            enumerated_shapes: sizes.iter().map(|&(w, h)| vec![h, w, c]).collect(),
            ..Self::image(name, image)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u64, h: u64, f: PixelFormat) -> ImageSpec {
        ImageSpec {
            width: w,
            height: h,
            pixel_format: f,
        }
    }

    #[test]
    fn formats_have_core_video_codes() {
        assert_eq!(PixelFormat::Bgra8.os_type(), 0x4247_5241);
        assert_eq!(PixelFormat::Argb8.os_type(), 0x20);
        assert_eq!(PixelFormat::Gray8.os_type(), 0x4C30_3038);
        assert_eq!(PixelFormat::GrayF16.os_type(), 0x4C30_3068);
        assert_eq!(PixelFormat::GrayF16.bytes_per_pixel(), 2);
    }

    #[test]
    fn spec_must_be_the_pixels() {
        let i = img(5, 3, PixelFormat::Gray8);
        let mut s = TensorSpec::image("x", i);
        i.check(&s).unwrap();
        s.shape = vec![3, 5];
        assert!(matches!(i.check(&s), Err(ImageError::SpecMismatch { .. })));
        let empty = img(0, 3, PixelFormat::Gray8);
        assert!(matches!(
            empty.check(&TensorSpec::image("x", empty)),
            Err(ImageError::Empty { .. })
        ));
    }

    #[test]
    fn flexible_features_take_their_sizes_and_no_other() {
        let i = img(4, 3, PixelFormat::Bgra8);
        let range = TensorSpec::image_range("x", i, [2, 8], [3, 6]);
        i.check(&range).unwrap();
        assert_eq!(range.shape_ranges, vec![[3, 6], [2, 8], [4, 4]]);
        assert_eq!(
            i.sized(&range, 8, 6).unwrap(),
            img(8, 6, PixelFormat::Bgra8)
        );
        let e = i.sized(&range, 9, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "an image of 9x3 is not one the model takes (2..8 x 3..6)"
        );
        let sizes = TensorSpec::image_sizes("x", i, &[(4, 3), (16, 9)]);
        i.check(&sizes).unwrap();
        assert_eq!(i.sized(&sizes, 16, 9).unwrap().shape(), vec![9, 16, 4]);
        assert!(matches!(
            i.sized(&sizes, 9, 16),
            Err(ImageError::SizeNotAllowed { .. })
        ));
        // A fixed feature takes its own size only.
        let fixed = TensorSpec::image("x", i);
        assert_eq!(i.sized(&fixed, 4, 3).unwrap(), i);
        assert!(i.sized(&fixed, 4, 4).is_err());
        // Sizes that are not the pixels' [height, width, channels] make the spec invalid.
        let mut bad = range.clone();
        bad.shape_ranges[2] = [1, 4];
        assert!(matches!(i.check(&bad), Err(ImageError::BadSizes(_))));
        let outside = TensorSpec::image_range("x", i, [5, 8], [3, 6]);
        assert!(matches!(i.check(&outside), Err(ImageError::BadSizes(_))));
        let mut gray = sizes;
        gray.enumerated_shapes.push(vec![2, 2, 1]);
        assert!(matches!(i.check(&gray), Err(ImageError::BadSizes(_))));
    }

    #[test]
    fn caller_bytes_are_checked_against_size_and_stride() {
        let i = img(3, 2, PixelFormat::Bgra8); // rows of 12 bytes
        i.check_bytes(24, 12).unwrap();
        i.check_bytes(16 + 12, 16).unwrap();
        i.check_bytes(32, 16).unwrap();
        assert!(matches!(
            i.check_bytes(24, 8),
            Err(ImageError::RowTooShort { need: 12, .. })
        ));
        assert!(matches!(
            i.check_bytes(23, 12),
            Err(ImageError::SizeMismatch { expected: 24, .. })
        ));
        let h = img(3, 2, PixelFormat::GrayF16);
        assert!(matches!(
            h.check_bytes(7 + 6, 7),
            Err(ImageError::RowMisaligned { .. })
        ));
        assert_eq!(
            img(u64::MAX, 2, PixelFormat::Bgra8).check_bytes(0, 0),
            Err(ImageError::Overflow)
        );
    }

    #[test]
    fn refs_must_have_packed_pixels() {
        let i = img(3, 2, PixelFormat::Bgra8);
        let t = image_ref(&i, 1, 0);
        t.validate(1 << 14).unwrap();
        i.check_ref(&t).unwrap();
        let mut planar = t.clone();
        planar.strides = vec![64, 1, 16];
        assert!(matches!(
            i.check_ref(&planar),
            Err(ImageError::NotPacked { .. })
        ));
        let mut short = t;
        short.strides[0] = 8;
        assert!(matches!(
            i.check_ref(&short),
            Err(ImageError::RowTooShort { .. })
        ));
    }
}
