//! A `.mlpackage` with no hand-written Candle model is served through the
//! router by the MIL executor (the fallback chain's second engine), with the
//! package's schema validated before anything runs.

mod common;

use std::path::Path;

use common::{cli, fixture, json};
use coreml_bridge::inference::{Tensor, TensorMap};

/// The fixture's golden input and output (`image` -> `logits`).
fn golden() -> (Vec<f32>, Vec<f32>) {
    let g: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("mlpackage/small_cnn_fp32.golden.json")).unwrap(),
    )
    .unwrap();
    let v = |x: &serde_json::Value| -> Vec<f32> {
        x["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap() as f32)
            .collect()
    };
    (v(&g["inputs"]["image"]), v(&g["outputs"]["logits"]))
}

fn run(dir: &Path, input: TensorMap) -> std::process::Output {
    let (inp, out) = (dir.join("in.safetensors"), dir.join("out.safetensors"));
    input.write_safetensors(&inp).unwrap();
    let pkg = fixture("mlpackage/small_cnn_fp32.mlpackage");
    cli(
        dir,
        &[
            "--json",
            "--no-coreml",
            "run",
            "--model",
            pkg.to_str().unwrap(),
            "--architecture",
            "small-cnn",
            "--name",
            "small_cnn",
            "--input",
            inp.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    )
}

#[test]
fn a_package_without_a_candle_model_is_served_by_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let (x, want) = golden();
    let input = TensorMap::new().with("image", Tensor::new(vec![1, 3, 8, 8], x).unwrap());
    let v = json(&run(dir.path(), input));
    assert_eq!(v["model"], "small_cnn");
    assert!(v["served_by"].as_str().is_some_and(|s| s != "none"), "{v}");
    let out = TensorMap::read_safetensors(dir.path().join("out.safetensors")).unwrap();
    let got = out.f32("logits").unwrap();
    assert_eq!(got.len(), want.len());
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-4, "executor output differs from NumPy by {err}");
}

#[test]
fn the_package_schema_is_validated_before_the_executor_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = TensorMap::new().with(
        "image",
        Tensor::new(vec![1, 3, 8, 7], vec![0f32; 3 * 8 * 7]).unwrap(),
    );
    let out = run(dir.path(), input);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("image") && e.contains('8') && e.contains('7'),
        "{e}"
    );
}
