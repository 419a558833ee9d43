//! Image features on the predict path (protocol 2.1): a model input or output whose
//! [`TensorSpec`] carries an [`ImageSpec`] is a plane of pixels, `[height, width, channels]`.
//! The caller's image bytes (rows `bytes_per_row` apart, any padding) are checked against the
//! feature's size and pixel format, then copied row by row into a slot whose rows are padded to
//! [`IMAGE_ROW_ALIGN`](coreml_ipc_schema::IMAGE_ROW_ALIGN) bytes, so the helper can make a pixel
//! buffer over the slot without another copy. Image output slots have the same layout.
//!
//! ```no_run
//! # async fn demo(sup: coreml_supervisor::Supervisor, model: coreml_supervisor::ModelId) -> Result<(), coreml_supervisor::Error> {
//! use coreml_supervisor::ImageBytes;
//! use std::time::Duration;
//! // A 2x3 BGRA image whose rows are padded to 16 bytes by the caller's decoder.
//! let pixels = vec![0u8; 16 + 12];
//! let image = ImageBytes::new(&pixels, 16);
//! let p = sup.predict_images(model, &[], &[("image", image)], Duration::from_millis(200)).await?;
//! println!("{:?}", p.output("y").map(|y| y.shape().to_vec()));
//! # Ok(()) }
//! ```

use coreml_ipc_schema::{image_ref, ImageError, ImageSpec, TensorRef, TensorSpec};

use crate::error::Error;
use crate::shm::arena::{AllocError, Arena, Slot};

/// An image for an image input: `data` holds `height` rows, `bytes_per_row` apart, each
/// starting with `width` pixels of the feature's pixel format (the last row may stop there).
#[derive(Debug, Clone, Copy)]
pub struct ImageBytes<'a> {
    /// The pixels.
    pub data: &'a [u8],
    /// Distance between the starts of two rows, in bytes.
    pub bytes_per_row: usize,
    /// `(width, height)` of this image, for a feature of flexible size (checked against the
    /// sizes it takes); `None`: the feature's default size.
    pub size: Option<(u64, u64)>,
}

impl<'a> ImageBytes<'a> {
    /// An image of the feature's default size.
    pub fn new(data: &'a [u8], bytes_per_row: usize) -> Self {
        ImageBytes {
            data,
            bytes_per_row,
            size: None,
        }
    }

    /// The same bytes as an image of `width`×`height` (a feature of flexible size).
    pub fn sized(self, width: u64, height: u64) -> Self {
        ImageBytes {
            size: Some((width, height)),
            ..self
        }
    }
}

/// The image spec of a request's image: the feature's own, or the size the request gives,
/// checked against the sizes the feature takes.
pub(crate) fn request_image(
    spec: &TensorSpec,
    image: &ImageSpec,
    bytes: &ImageBytes<'_>,
) -> Result<ImageSpec, Error> {
    match bytes.size {
        None => Ok(*image),
        Some((w, h)) => image
            .sized(spec, w, h)
            .map_err(|e| image_error(&spec.name, e)),
    }
}

fn image_error(name: &str, source: ImageError) -> Error {
    Error::Image {
        name: name.into(),
        source,
    }
}

/// The image of `spec`, checked against its own dtype and shape; `None` for a multi-array.
pub(crate) fn image_of(spec: &TensorSpec) -> Result<Option<ImageSpec>, Error> {
    let Some(image) = spec.image else {
        return Ok(None);
    };
    image.check(spec).map_err(|e| image_error(&spec.name, e))?;
    Ok(Some(image))
}

/// Copies `bytes` into a fresh slot with padded rows; returns the slot and its ref.
pub(crate) fn place_input(
    arena: &Arena,
    spec: &TensorSpec,
    image: &ImageSpec,
    bytes: ImageBytes<'_>,
) -> Result<(Slot, TensorRef), Error> {
    let row_in = bytes.bytes_per_row as u64;
    image
        .check_bytes(bytes.data.len() as u64, row_in)
        .map_err(|e| image_error(&spec.name, e))?;
    let row = image.row_bytes().map_err(|e| image_error(&spec.name, e))?;
    let (slot, t) = output_slot(arena, spec, image)?;
    slot.intact().map_err(AllocError::from)?;
    let row_out = t.strides[0] * t.dtype.size();
    for r in 0..image.height {
        let from = (r * row_in) as usize;
        slot.write_at(r * row_out, &bytes.data[from..from + row as usize]);
    }
    Ok((slot, t))
}

/// A slot for an image with padded rows and the ref that describes it.
pub(crate) fn output_slot(
    arena: &Arena,
    spec: &TensorSpec,
    image: &ImageSpec,
) -> Result<(Slot, TensorRef), Error> {
    image
        .padded_row_bytes()
        .map_err(|e| image_error(&spec.name, e))?;
    let probe = image_ref(image, 0, 0);
    let slot = arena.alloc(probe.len)?;
    let t = TensorRef {
        region: slot.region_id(),
        offset: slot.offset(),
        ..probe
    };
    Ok((slot, t))
}

/// Checks an image output the helper returned: packed pixels of the feature's format.
pub(crate) fn check_output(image: &ImageSpec, t: &TensorRef) -> Result<(), String> {
    image.check_ref(t).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::arena::ArenaConfig;
    use coreml_ipc_schema::{DType, PixelFormat};

    fn bgra(w: u64, h: u64) -> (TensorSpec, ImageSpec) {
        let i = ImageSpec {
            width: w,
            height: h,
            pixel_format: PixelFormat::Bgra8,
        };
        (TensorSpec::image("image", i), i)
    }

    #[test]
    fn rows_are_repacked_to_the_padded_stride() {
        let arena = Arena::new(ArenaConfig::default()).unwrap();
        let (spec, img) = bgra(3, 2);
        // Caller rows of 16 bytes (12 of pixels, 4 of junk).
        let data: Vec<u8> = (0..28u8).collect();
        let (slot, t) = place_input(&arena, &spec, &img, ImageBytes::new(&data, 16)).unwrap();
        assert_eq!(t.strides, vec![64, 4, 1]);
        assert_eq!(t.dtype, DType::U8);
        t.validate(t.offset + slot.capacity()).unwrap();
        assert_eq!(slot.view_at(0, 12), &data[0..12]);
        assert_eq!(slot.view_at(64, 12), &data[16..28]);
    }

    #[test]
    fn bad_bytes_and_bad_specs_are_typed_errors() {
        let arena = Arena::new(ArenaConfig::default()).unwrap();
        let (spec, img) = bgra(3, 2);
        let short = place_input(&arena, &spec, &img, ImageBytes::new(&[0; 20], 8));
        assert!(matches!(
            short,
            Err(Error::Image {
                source: ImageError::RowTooShort { .. },
                ..
            })
        ));
        let size = place_input(&arena, &spec, &img, ImageBytes::new(&[0; 25], 12));
        assert!(matches!(
            size,
            Err(Error::Image {
                source: ImageError::SizeMismatch { .. },
                ..
            })
        ));
        let mut lying = spec.clone();
        lying.shape = vec![2, 3, 3];
        assert!(matches!(
            image_of(&lying),
            Err(Error::Image {
                source: ImageError::SpecMismatch { .. },
                ..
            })
        ));
    }
}
