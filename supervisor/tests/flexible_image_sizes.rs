//! Image features of flexible size (protocol 2.1, section 4: an image spec's
//! `shape_ranges` or `enumerated_shapes`) against the Rust helper's image model: the
//! supervisor passes an image of any size the feature takes, in padded rows, and the helper
//! computes on that size; a size the feature does not take is a typed error before anything
//! is sent, and the helper keeps serving.
mod common;

use std::time::Duration;

use coreml_supervisor::schema::ImageError;
use coreml_supervisor::{Error, ImageBytes};

/// A `w`×`h` BGRA image whose pixel (r, c) is B = r, G = c, R = r + c, dense rows.
fn bgra(w: usize, h: usize) -> Vec<u8> {
    (0..h)
        .flat_map(|r| (0..w).flat_map(move |c| [r as u8, c as u8, (r + c) as u8, 255]))
        .collect()
}

/// The per-channel mean of `0.5 * pixel + [-1, 0, 1]` (R, G, B) of [`bgra`].
fn mean(w: usize, h: usize) -> Vec<f32> {
    mean_with(w, h, [-1.0, 0.0, 1.0], 0.5)
}

/// The per-channel mean of `scale * pixel + bias` (R, G, B) of [`bgra`].
fn mean_with(w: usize, h: usize, bias: [f64; 3], scale: f64) -> Vec<f32> {
    let n = (w * h) as f64;
    let sum = |f: &dyn Fn(usize, usize) -> usize| {
        (0..h)
            .flat_map(|r| (0..w).map(move |c| (r, c)))
            .map(|(r, c)| f(r, c) as f64)
            .sum::<f64>()
    };
    [sum(&|r, c| r + c), sum(&|_, c| c), sum(&|r, _| r)]
        .iter()
        .zip(bias)
        .map(|(s, b)| (scale * s / n + b) as f32)
        .collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flexible_image_sizes() {
    common::watchdog(Duration::from_secs(30), async {
        let h = &common::helpers()[0]; // the image model is the Rust helper's
        let before = common::snapshot();
        let sup = common::start(h, common::config(h)).await;
        let budget = Duration::from_secs(3);

        // A range: heights 2..=6, widths 3..=20, default 3x5.
        let m = sup
            .load(
                "diag:image?shape=3x5&range=2-6x3-20&format=bgra8&scale=0.5&bias=-1,0,1&out=mean",
                None,
            )
            .await
            .expect("load a flexible image model");
        let x = &m.inputs[0];
        assert_eq!(x.shape_ranges, vec![[2, 6], [3, 20], [4, 4]]);
        assert_eq!(m.outputs[0].shape, vec![1, 3]);
        for (w, ht) in [(5, 3), (3, 2), (20, 6), (17, 4)] {
            let data = bgra(w, ht);
            let image = ImageBytes::new(&data, w * 4).sized(w as u64, ht as u64);
            let p = sup
                .predict_images(m.id, &[], &[("x", image)], budget)
                .await
                .unwrap_or_else(|e| panic!("{w}x{ht}: {e}"));
            let y = p.output("y").unwrap().to_f32();
            assert!(
                close(&y, &mean(w, ht)),
                "{w}x{ht}: {y:?} != {:?}",
                mean(w, ht)
            );
        }
        // The default size needs no size; dense bytes are the default size.
        let p = sup.predict(m.id, &[("x", &bgra(5, 3))]).await.unwrap();
        assert!(close(&p.output("y").unwrap().to_f32(), &mean(5, 3)));
        // Outside the range: a typed error naming the sizes, nothing sent.
        for (w, ht) in [(21, 3), (5, 7), (2, 2)] {
            let data = bgra(w, ht);
            let image = ImageBytes::new(&data, w * 4).sized(w as u64, ht as u64);
            let r = sup.predict_images(m.id, &[], &[("x", image)], budget).await;
            match r {
                Err(Error::Image {
                    source: ImageError::SizeNotAllowed { allowed, .. },
                    ..
                }) => assert_eq!(allowed, "3..20 x 2..6"),
                other => panic!("{w}x{ht}: {other:?}"),
            }
        }
        // The bytes must fit the size the request gives.
        let data = bgra(5, 3);
        let image = ImageBytes::new(&data, 20).sized(6, 3);
        let r = sup.predict_images(m.id, &[], &[("x", image)], budget).await;
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

        // Enumerated sizes: 3x5 and 9x16 only.
        let e = sup
            .load(
                "diag:image?shape=3x5&sizes=3x5,9x16&format=bgra8&scale=0.5&bias=-1,0,1&out=mean",
                None,
            )
            .await
            .expect("load an enumerated image model");
        assert_eq!(
            e.inputs[0].enumerated_shapes,
            vec![vec![3, 5, 4], vec![9, 16, 4]]
        );
        let data = bgra(16, 9);
        let image = ImageBytes::new(&data, 16 * 4).sized(16, 9);
        let p = sup
            .predict_images(e.id, &[], &[("x", image)], budget)
            .await
            .expect("an enumerated size");
        assert!(close(&p.output("y").unwrap().to_f32(), &mean(16, 9)));
        let data = bgra(9, 16);
        let image = ImageBytes::new(&data, 9 * 4).sized(9, 16);
        let r = sup.predict_images(e.id, &[], &[("x", image)], budget).await;
        assert!(
            matches!(
                r,
                Err(Error::Image {
                    source: ImageError::SizeNotAllowed { .. },
                    ..
                })
            ),
            "{r:?}"
        );

        // A fixed image feature refuses another size too.
        let fixed = sup
            .load("diag:image?shape=3x5&format=bgra8&out=mean", None)
            .await
            .expect("load a fixed image model");
        let data = bgra(6, 3);
        let image = ImageBytes::new(&data, 6 * 4).sized(6, 3);
        let r = sup
            .predict_images(fixed.id, &[], &[("x", image)], budget)
            .await;
        assert!(matches!(r, Err(Error::Image { .. })), "{r:?}");
        // The helper still serves after every refusal.
        let p = sup.predict(fixed.id, &[("x", &bgra(5, 3))]).await.unwrap();
        assert!(close(
            &p.output("y").unwrap().to_f32(),
            &mean_with(5, 3, [0.0; 3], 1.0)
        ));

        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, &h.name).await;
    })
    .await;
}
