//! The demo packages built with coremltools' MIL builder from the safetensors weights
//! (`scripts/models/mil_builder.py`, no torch) compute what the torch-converted `fp32`
//! packages of `make models` compute: same I/O schema, and outputs on the model
//! pipeline's golden inputs within L∞ 1e-4 of each other (and of PyTorch FP32), both
//! run with the MIL executor (EfficientNet-Lite0's torch package pads explicitly: the
//! executor's `pad` op runs it).
//!
//! The torch-converted packages exist only in `$COREML_BRIDGE_CACHE/models` after
//! `make models`. When one is missing the test fails and says so, unless
//! `COREML_BRIDGE_SKIP_TORCH_PARITY=1` (for CI machines without the torch environment;
//! docs/models.md). The builder packages come from `make mil-packages`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use coreml_inference::{DType, TensorMap};
use coreml_mil::{Executor, Options};

const SKIP_ENV: &str = "COREML_BRIDGE_SKIP_TORCH_PARITY";
const BUDGET: f32 = 1e-4;

fn cache() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/coreml-bridge")
        })
}

fn candle(t: &coreml_inference::Tensor) -> Tensor {
    let shape = t.shape().to_vec();
    match t.dtype() {
        DType::F32 => Tensor::from_vec(t.to_vec::<f32>().unwrap(), shape, &Device::Cpu).unwrap(),
        DType::I32 => Tensor::from_vec(
            t.to_vec::<i32>()
                .unwrap()
                .into_iter()
                .map(i64::from)
                .collect::<Vec<_>>(),
            shape,
            &Device::Cpu,
        )
        .unwrap(),
        d => panic!("golden input of dtype {d}"),
    }
}

fn outputs(pkg: &Path, inputs: &HashMap<String, Tensor>) -> HashMap<String, Vec<f32>> {
    let exe = Executor::load(pkg, Options::default())
        .unwrap_or_else(|e| panic!("{}: {e}", pkg.display()));
    exe.run(inputs)
        .unwrap_or_else(|e| panic!("{}: {e}", pkg.display()))
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn schema(pkg: &Path) -> coreml_inference::IoSchema {
    let p =
        coreml_mlpackage::Package::open(pkg).unwrap_or_else(|e| panic!("{}: {e}", pkg.display()));
    coreml_mil::engine::schema_of(&p).unwrap()
}

fn linf(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Compares one model; `Err` names what is missing.
fn compare(model: &str, weights_dir: &str) -> Result<(), String> {
    let root = cache();
    let builder = root
        .join("weights")
        .join(weights_dir)
        .join("mil-builder.mlpackage");
    let torch = root.join("models").join(model).join("fp32.mlpackage");
    let golden_in = root
        .join("models")
        .join(model)
        .join("golden_inputs.safetensors");
    let golden_out = root
        .join("models")
        .join(model)
        .join("golden_outputs.safetensors");
    // The builder package never depends on torch: missing is a failure, switch or not.
    assert!(
        builder.is_dir(),
        "{} is missing: run `make mil-packages`",
        builder.display()
    );
    for p in [&torch, &golden_in, &golden_out] {
        if !p.exists() {
            return Err(format!(
                "{} is missing: run `make models` (torch environment)",
                p.display()
            ));
        }
    }
    assert_eq!(
        schema(&builder),
        schema(&torch),
        "{model}: the builder package's I/O differs from the torch one's"
    );
    let inputs: HashMap<String, Tensor> = TensorMap::read_safetensors(&golden_in)
        .unwrap()
        .iter()
        .map(|(n, t)| (n.to_string(), candle(t)))
        .collect();
    let ours = outputs(&builder, &inputs);
    let theirs = outputs(&torch, &inputs);
    let golden = TensorMap::read_safetensors(&golden_out).unwrap();
    assert_eq!(ours.len(), golden.len());
    for (name, a) in &ours {
        let b = theirs
            .get(name)
            .unwrap_or_else(|| panic!("{model}: torch package has no `{name}`"));
        let d = linf(a, b);
        println!("{model}.{name}: L∞ builder vs torch package {d:.3e}");
        assert!(
            d <= BUDGET,
            "{model}.{name}: builder vs torch-converted package L∞ {d:e} > {BUDGET:e}"
        );
        let g = linf(
            a,
            &golden
                .get(name)
                .unwrap_or_else(|| panic!("no golden `{name}`"))
                .to_vec::<f32>()
                .unwrap(),
        );
        println!("{model}.{name}: L∞ builder vs PyTorch FP32 {g:.3e}");
        assert!(
            g <= BUDGET,
            "{model}.{name}: builder package vs PyTorch FP32 L∞ {g:e} > {BUDGET:e}"
        );
        // Not a trivially equal pair of constant outputs.
        assert!(
            a.iter().any(|v| v.abs() > 1e-3),
            "{model}.{name}: all-zero output"
        );
    }
    Ok(())
}

fn check(model: &str, weights_dir: &str) {
    if let Err(missing) = compare(model, weights_dir) {
        if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
            println!("{model}: not compared ({SKIP_ENV}=1): {missing}");
            return;
        }
        panic!("{model}: {missing} (or set {SKIP_ENV}=1 where the torch-converted packages cannot exist)");
    }
}

#[test]
fn minilm_builder_package_matches_torch_conversion() {
    check("all_minilm_l6_v2", "all-minilm-l6-v2");
}

#[test]
fn efficientnet_builder_package_matches_torch_conversion() {
    check("efficientnet_lite0", "efficientnet-lite0");
}
