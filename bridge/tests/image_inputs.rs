//! Image-typed models through the Core ML engine over the Rust test helper's image model
//! (protocol 2.1): the caller passes an HWC RGB image (a tensor, or a decoded PNG file), the
//! engine hands the helper BGRA pixels through shared memory, and the helper's
//! `scale * pixel + bias` equals what the Candle side gets from the same image through
//! `ImagePreprocessing::candle_input`, so a fallback between the two sees the same numbers.
//! An image output comes back as the HWC RGB image.

mod common;

use std::time::Duration;

use coreml_bridge::coreml::image::{decode_file, ImagePreprocessing};
use coreml_bridge::inference::{
    ComputeUnits, DType, Deadline, Dim, InferenceEngine, ModelArtifact, ModelFormat, PrepareOptions, Tensor, TensorMap,
};

/// A 5x4 RGB image with distinct channels.
fn image() -> Tensor {
    let (h, w) = (4usize, 5usize);
    let data: Vec<u8> =
        (0..h * w).flat_map(|i| [(i * 7 % 256) as u8, (i * 13 % 256) as u8, (255 - i * 3) as u8]).collect();
    Tensor::new(vec![h, w, 3], data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_models_take_hwc_images_and_match_the_candle_side_preprocessing() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let engine = common::helper::diag_engine(dir.path()).await;
        let deadline = || Deadline::after(Duration::from_secs(5));
        let e = &engine;
        let prepare = |uri: &str, name: &str| {
            let artifact = ModelArtifact::new(ModelFormat::MlPackage, uri);
            let options = PrepareOptions::new(ComputeUnits::CpuOnly).with_model_name(name);
            async move { e.prepare(&artifact, &options).await }
        };

        // EfficientNet-Lite's preprocessing, as the model pipeline's manifest records it.
        let manifest = serde_json::json!({"scale": 1.0 / 128.0, "bias": [-127.0 / 128.0, -127.0 / 128.0, -127.0 / 128.0],
                                          "color": "RGB", "folded_in_program": null});
        let pre = ImagePreprocessing::from_manifest(&manifest).unwrap();
        let uri = format!("diag:image?shape=4x5&format=bgra8&scale={}&bias={}", 1.0 / 128.0, -127.0 / 128.0);
        let model = prepare(&uri, "image").await.expect("prepare the image model");
        let x = model.schema.input("x").unwrap();
        assert_eq!(x.dtype, DType::U8);
        assert_eq!(x.shape, vec![Dim::Fixed(4), Dim::Fixed(5), Dim::Fixed(3)], "the caller's HWC RGB image");

        let img = image();
        let y = engine.infer(&model, TensorMap::new().with("x", img.clone()), deadline()).await.expect("infer");
        let y = y.get("y").unwrap();
        assert_eq!(y.shape(), &[1, 3, 4, 5]);
        let candle = pre.candle_input(&img).unwrap();
        assert_eq!(y.as_slice::<f32>().unwrap(), candle.as_slice::<f32>().unwrap(), "same numbers on both sides");

        // A decoded PNG gives the same result as its pixels.
        let png = dir.path().join("x.png");
        image::RgbImage::from_raw(5, 4, img.as_bytes().to_vec()).unwrap().save(&png).unwrap();
        let decoded = decode_file(&png, Some((5, 4))).unwrap();
        assert_eq!(decoded, img);
        let y2 = engine.infer(&model, TensorMap::new().with("x", decoded), deadline()).await.unwrap();
        assert_eq!(y2.get("y").unwrap(), y);

        // A wrong size is refused before the helper sees it; the model keeps serving.
        let small = Tensor::new(vec![4, 4, 3], vec![0u8; 48]).unwrap();
        assert!(engine.infer(&model, TensorMap::new().with("x", small), deadline()).await.is_err());

        // An image output comes back as the HWC RGB image it is.
        let echo = prepare("diag:image?shape=4x5&format=bgra8&out=image", "image-echo").await.expect("prepare echo");
        assert_eq!(echo.schema.output("y").unwrap().shape, vec![Dim::Fixed(4), Dim::Fixed(5), Dim::Fixed(3)]);
        let back = engine.infer(&echo, TensorMap::new().with("x", img.clone()), deadline()).await.unwrap();
        assert_eq!(back.get("y").unwrap(), &img);
        engine.shutdown().await;
    })
    .await
    .expect("watchdog");
}
