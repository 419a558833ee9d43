//! ResNet-50 and FastViT-T8 against PyTorch (torchvision / timm, eval mode) on the seeded
//! weights and input: L∞ ≤ 1e-4 in FP32. Fixtures: tests/fixtures/parity/<model>.json,
//! written by scripts/gen_parity_vision.py. Weights: scripts/gen_vision_weights.py.

mod support;

use candle_core::{Device, Tensor};
use coreml_candle::models::fastvit::FastVit;
use coreml_candle::models::resnet::ResNet50;
use coreml_candle::models::vision_assets::{seeded_input, weights_path, VisionModel, INPUT_SEED};
use coreml_candle::ops::conv_layer::Kernels;
use support::{max_abs_diff, watchdog};

const TOLERANCE: f32 = 1e-4;

struct Fixture {
    shape: Vec<usize>,
    input_seed: u64,
    output: Tensor,
}

fn fixture(model: VisionModel) -> Fixture {
    let path = manifest_dir()
        .join("../tests/fixtures/parity")
        .join(format!("{}.json", model.key()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (_, pinned) = model.pinned_file().unwrap();
    assert_eq!(
        v["weights"]["sha256"].as_str(),
        Some(pinned.as_str()),
        "fixture was computed from other weights: rerun scripts/gen_parity_vision.py"
    );
    let dims = |key: &str| -> Vec<usize> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect()
    };
    let out: Vec<f32> = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let input = &v["input"];
    Fixture {
        shape: input["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect(),
        input_seed: input["seed"].as_u64().unwrap(),
        output: Tensor::from_vec(out, dims("output_shape"), &Device::Cpu).unwrap(),
    }
}

fn check(model: VisionModel, forward: impl Fn(&Tensor) -> Tensor, label: &str) {
    let f = fixture(model);
    assert_eq!(f.input_seed, INPUT_SEED);
    let got = forward(&seeded_input(f.input_seed, &f.shape).unwrap());
    let d = max_abs_diff(&got, &f.output);
    let scale = support::max_abs(&f.output);
    eprintln!("{} {label}: L∞ {d:.3e} (max |y| {scale:.3})", model.key());
    assert!(
        scale > 1.0,
        "reference logits too small to make 1e-4 meaningful"
    );
    assert!(
        d <= TOLERANCE,
        "{} {label}: L∞ {d} > {TOLERANCE}",
        model.key()
    );
}

#[test]
fn resnet50_matches_torchvision() {
    watchdog(600, || {
        let path = weights_path(VisionModel::ResNet50).unwrap();
        let dev = Device::Cpu;
        for (k, label) in [
            (Kernels::FAST, "our kernels"),
            (Kernels::CANDLE, "candle kernels"),
        ] {
            let m = ResNet50::from_safetensors(&path, k, &dev).unwrap();
            check(VisionModel::ResNet50, |x| m.forward(x).unwrap(), label);
        }
        // candle-transformers' own ResNet-50 reads the same torchvision names.
        let vb = coreml_candle::models::vision_assets::load_var_builder(&path, &dev).unwrap();
        let stock = candle_transformers::models::resnet::resnet50(1000, vb).unwrap();
        check(
            VisionModel::ResNet50,
            |x| x.apply(&stock).unwrap(),
            "candle-transformers",
        );
    });
}

#[test]
fn fastvit_t8_matches_timm() {
    watchdog(600, || {
        let path = weights_path(VisionModel::FastVitT8).unwrap();
        let dev = Device::Cpu;
        let candle_gelu = Kernels {
            fast_gelu: false,
            ..Kernels::FAST
        };
        for (k, label) in [
            (Kernels::FAST, "our kernels"),
            (candle_gelu, "our kernels, candle's GELU"),
            (Kernels::CANDLE, "candle kernels"),
        ] {
            let m = FastVit::t8_from_safetensors(&path, k, &dev).unwrap();
            check(VisionModel::FastVitT8, |x| m.forward(x).unwrap(), label);
        }
        // candle-transformers' fastvit takes the same timm names and reparameterises itself.
        let vb = coreml_candle::models::vision_assets::load_var_builder(&path, &dev).unwrap();
        let cfg = candle_transformers::models::fastvit::Config::t8();
        let stock = candle_transformers::models::fastvit::fastvit(&cfg, 1000, vb).unwrap();
        check(
            VisionModel::FastVitT8,
            |x| x.apply(&stock).unwrap(),
            "candle-transformers",
        );
    });
}

#[test]
fn batched_forward_equals_per_image_forward() {
    watchdog(600, || {
        let dev = Device::Cpu;
        let a = seeded_input(1, &[1, 3, 160, 160]).unwrap();
        let b = seeded_input(2, &[1, 3, 160, 160]).unwrap();
        let ab = Tensor::cat(&[&a, &b], 0).unwrap();
        let fv = FastVit::t8_from_safetensors(
            &weights_path(VisionModel::FastVitT8).unwrap(),
            Kernels::FAST,
            &dev,
        )
        .unwrap();
        let rn = ResNet50::from_safetensors(
            &weights_path(VisionModel::ResNet50).unwrap(),
            Kernels::FAST,
            &dev,
        )
        .unwrap();
        for (name, f) in [
            (
                "fastvit",
                &(|x: &Tensor| fv.forward(x).unwrap()) as &dyn Fn(&Tensor) -> Tensor,
            ),
            ("resnet50", &|x: &Tensor| rn.forward(x).unwrap()),
        ] {
            let both = f(&ab);
            let single = Tensor::cat(&[&f(&a), &f(&b)], 0).unwrap();
            let d = max_abs_diff(&both, &single);
            assert!(
                d < 1e-5,
                "{name}: batch of 2 differs from two singles by {d}"
            );
            assert!(
                max_abs_diff(&f(&a), &f(&b)) > 1e-3,
                "{name}: output ignores its input"
            );
        }
    });
}

#[test]
fn registry_models_run_through_the_engine() {
    use coreml_inference::{BlockingEngine, Deadline, ModelArtifact, PrepareOptions, Sha256Digest};
    watchdog(600, || {
        let engine = BlockingEngine::new(coreml_candle::CandleEngine::new()).unwrap();
        for (model, arch) in [
            (VisionModel::ResNet50, "resnet50"),
            (VisionModel::FastVitT8, "fastvit_t8"),
        ] {
            let path = weights_path(model).unwrap();
            let (_, sha) = model.pinned_file().unwrap();
            let artifact = ModelArtifact::from_path(&path)
                .unwrap()
                .with_sha256(sha.parse::<Sha256Digest>().unwrap());
            let opts = PrepareOptions::default()
                .with_architecture(arch)
                .with_max_batch(2);
            let prepared = engine.prepare(&artifact, &opts).unwrap();
            let f = fixture(model);
            let x = seeded_input(f.input_seed, &f.shape).unwrap();
            let pixels = coreml_inference::Tensor::new(
                f.shape.clone(),
                x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
            .unwrap();
            let inputs = coreml_inference::TensorMap::new().with("pixel_values", pixels);
            let out = engine
                .infer(
                    &prepared,
                    inputs,
                    Deadline::after(std::time::Duration::from_secs(120)),
                )
                .unwrap();
            let got = Tensor::from_vec(
                out.f32("logits").unwrap().to_vec(),
                f.output.dims(),
                &Device::Cpu,
            )
            .unwrap();
            let d = max_abs_diff(&got, &f.output);
            assert!(d <= TOLERANCE, "{arch} through the engine: L∞ {d}");
        }
    });
}

/// This package's directory. Read at run time (cargo sets it for tests) before the
/// compile-time value: a cached test binary built from another checkout of the
/// workspace (same target dir, older sources) would otherwise look there.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
