//! Image-typed models of flexible size through the Core ML engine (the Rust test helper's
//! image model with `range=` or `sizes=`): callers see the size range in the schema, an image
//! of any size the model takes is answered on that size, and a size it does not take is an
//! error before the helper sees it.

mod common;

use std::time::Duration;

use coreml_bridge::coreml::image::ImagePreprocessing;
use coreml_bridge::inference::{
    ComputeUnits, Deadline, Dim, InferError, InferenceEngine, ModelArtifact, ModelFormat, PrepareOptions, Tensor,
    TensorMap,
};

fn image(h: usize, w: usize) -> Tensor {
    let data: Vec<u8> =
        (0..h * w).flat_map(|i| [(i * 7 % 256) as u8, (i * 13 % 256) as u8, (255 - i % 256) as u8]).collect();
    Tensor::new(vec![h, w, 3], data).unwrap()
}

/// The per-channel mean of the Candle side's input: what `out=mean` computes.
fn want(img: &Tensor) -> Vec<f32> {
    let pre = ImagePreprocessing { scale: 0.5, bias: [-1.0, 0.0, 1.0], normalize: None };
    let x = pre.candle_input(img).unwrap();
    let n = x.shape()[2] * x.shape()[3];
    x.as_slice::<f32>()
        .unwrap()
        .chunks(n)
        .map(|c| c.iter().map(|v| *v as f64).sum::<f64>() / n as f64)
        .map(|m| m as f32)
        .collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flexible_image_models_take_every_size_they_allow_and_no_other() {
    let _watchdog = common::Watchdog::new("flexible_image_sizes", Duration::from_secs(90));
    let dir = tempfile::tempdir().unwrap();
    let engine = common::helper::diag_engine(dir.path()).await;
    let deadline = || Deadline::after(Duration::from_secs(5));
    let prepare = |uri: String| {
        let e = &engine;
        async move {
            let artifact = ModelArtifact::new(ModelFormat::MlPackage, uri);
            e.prepare(&artifact, &PrepareOptions::new(ComputeUnits::CpuOnly).with_model_name("flex")).await
        }
    };
    let q = "format=bgra8&scale=0.5&bias=-1,0,1&out=mean";

    let range = prepare(format!("diag:image?shape=3x5&range=2-6x3-20&{q}")).await.expect("prepare a range");
    let x = range.schema.input("x").unwrap();
    assert_eq!(x.shape, vec![Dim::range(2, 6), Dim::range(3, 20), Dim::Fixed(3)]);
    for (h, w) in [(3, 5), (2, 3), (6, 20), (4, 17)] {
        let img = image(h, w);
        let y = engine.infer(&range, TensorMap::new().with("x", img.clone()), deadline()).await;
        let y = y.unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
        assert!(close(y.f32("y").unwrap(), &want(&img)), "{w}x{h}");
    }
    let r = engine.infer(&range, TensorMap::new().with("x", image(7, 5)), deadline()).await;
    assert!(matches!(r, Err(InferError::Invalid(_))), "{r:?}");

    let sizes = prepare(format!("diag:image?shape=3x5&sizes=3x5,9x16&{q}")).await.expect("prepare sizes");
    assert_eq!(sizes.schema.input("x").unwrap().shape, vec![Dim::range(3, 9), Dim::range(5, 16), Dim::Fixed(3)]);
    let img = image(9, 16);
    let y = engine.infer(&sizes, TensorMap::new().with("x", img.clone()), deadline()).await.expect("9x16");
    assert!(close(y.f32("y").unwrap(), &want(&img)));
    // Within the envelope but not an enumerated size: refused by the supervisor, typed.
    let r = engine.infer(&sizes, TensorMap::new().with("x", image(9, 9)), deadline()).await;
    let e = r.expect_err("9x9 is not one of the sizes");
    assert!(e.to_string().contains("not one the model takes"), "{e}");
    // The model keeps serving.
    assert!(engine.infer(&sizes, TensorMap::new().with("x", image(3, 5)), deadline()).await.is_ok());
    engine.shutdown().await;
}
