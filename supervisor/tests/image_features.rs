//! Image features end to end against the Rust helper's image model (protocol 2.1): image
//! bytes with any row stride reach the helper through shared memory in padded rows, the
//! helper reduces them to `scale * pixel + bias` in R, G, B planes; an image output comes back
//! as pixels; bytes that do not fit the feature are a typed error before anything is sent.
mod common;

use std::time::Duration;

use coreml_supervisor::schema::{ImageError, PixelFormat, IMAGE_ROW_ALIGN};
use coreml_supervisor::{Error, ImageBytes};

/// A `w`×`h` BGRA image whose pixel (r, c) is B = r, G = c, R = r + c, A = 255, with rows
/// `stride` bytes apart (junk in the padding).
fn bgra(w: usize, h: usize, stride: usize) -> Vec<u8> {
    let mut v = vec![0xEE; stride * (h - 1) + w * 4];
    for r in 0..h {
        for c in 0..w {
            let p = r * stride + c * 4;
            v[p..p + 4].copy_from_slice(&[r as u8, c as u8, (r + c) as u8, 255]);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_features() {
    common::watchdog(Duration::from_secs(30), async {
        let h = &common::helpers()[0]; // the image model is the Rust helper's
        let before = common::snapshot();
        let sup = common::start(h, common::config(h)).await;
        let (w, ht) = (5usize, 3usize);
        let m = sup
            .load(
                "diag:image?shape=3x5&format=bgra8&scale=0.5&bias=-1,0,1",
                None,
            )
            .await
            .expect("load image model");
        let spec = &m.inputs[0];
        let image = spec.image.expect("the input is described as an image");
        assert_eq!(image.pixel_format, PixelFormat::Bgra8);
        assert_eq!((image.width, image.height), (w as u64, ht as u64));
        assert_eq!(m.outputs[0].image, None);

        // The same image, dense and with padded rows: same result, computed from the pixels.
        let want: Vec<f32> = (0..3)
            .flat_map(|ch| {
                (0..ht).flat_map(move |r| {
                    (0..w).map(move |c| {
                        let px = [(r + c) as f32, c as f32, r as f32][ch]; // R, G, B
                        0.5 * px + [-1.0, 0.0, 1.0][ch]
                    })
                })
            })
            .collect();
        for stride in [w * 4, 24, 100] {
            let data = bgra(w, ht, stride);
            let p = sup
                .predict_images(
                    m.id,
                    &[],
                    &[("x", ImageBytes::new(&data, stride))],
                    Duration::from_secs(3),
                )
                .await
                .unwrap_or_else(|e| panic!("stride {stride}: {e}"));
            let y = p.output("y").unwrap();
            assert_eq!(y.shape(), &[1, 3, ht as u64, w as u64]);
            assert_eq!(y.to_f32(), want, "stride {stride}");
        }
        let dense = bgra(w, ht, w * 4);
        let p = sup
            .predict(m.id, &[("x", &dense)])
            .await
            .expect("dense bytes");
        assert_eq!(p.output("y").unwrap().to_f32(), want);

        // Bytes that do not fit: typed errors, and the helper is still fine afterwards.
        let r = sup
            .predict_images(
                m.id,
                &[],
                &[("x", ImageBytes::new(&dense, 16))],
                Duration::from_secs(3),
            )
            .await;
        assert!(
            matches!(
                r,
                Err(Error::Image {
                    source: ImageError::RowTooShort { .. },
                    ..
                })
            ),
            "{r:?}"
        );
        let r = sup.predict(m.id, &[("x", &dense[..dense.len() - 1])]).await;
        assert!(
            matches!(
                r,
                Err(Error::Image {
                    source: ImageError::SizeMismatch { .. },
                    ..
                })
            ),
            "{r:?}"
        );

        // An image output: the pixels come back in padded rows, equal to the input.
        let echo = sup
            .load("diag:image?shape=3x5&format=bgra8&out=image", None)
            .await
            .expect("load image echo");
        assert_eq!(echo.outputs[0].image, Some(image));
        let data = bgra(w, ht, 40);
        let p = sup
            .predict_images(
                echo.id,
                &[],
                &[("x", ImageBytes::new(&data, 40))],
                Duration::from_secs(3),
            )
            .await
            .expect("image out");
        let y = p.output("y").unwrap();
        assert_eq!(y.shape(), &[ht as u64, w as u64, 4]);
        assert_eq!(
            y.tensor.strides[0] % IMAGE_ROW_ALIGN,
            0,
            "{:?}",
            y.tensor.strides
        );
        assert_eq!(y.to_vec(), bgra(w, ht, w * 4));

        // A grayscale f16 image reduced to one plane.
        let gray = sup
            .load("diag:image?shape=2x2&format=gray_f16&scale=2", None)
            .await
            .expect("load gray");
        let halves: Vec<u8> = [0x3c00u16, 0x4000, 0x3800, 0xc000] // 1, 2, 0.5, -2
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let p = sup.predict(gray.id, &[("x", &halves)]).await.expect("gray");
        assert_eq!(p.output("y").unwrap().to_f32(), vec![2.0, 4.0, 1.0, -4.0]);

        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, &h.name).await;
    })
    .await;
}
