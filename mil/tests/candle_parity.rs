//! The executor on each model's FP32 package matches the hand-written Candle
//! model to L∞ 1e-4, on the golden inputs of `make models`.
//!
//! Reads `$COREML_BRIDGE_CACHE/models/<model>/` (`fp32.mlpackage`,
//! `golden.json`, `golden_inputs.safetensors`) and the Candle weights under
//! `$COREML_BRIDGE_CACHE/weights` (`make assets`). When they are absent the
//! test fails and says what to run; a CI machine without the converted models
//! (they need torch) sets `COREML_BRIDGE_NO_MODEL_PACKAGES=1`, and then the
//! test only reports which models it could not check. The executor's
//! op-level checks that need no torch are in `golden.rs` (fixtures).

use std::path::PathBuf;
use std::time::Duration;

use coreml_candle::CandleEngine;
use coreml_inference::{Deadline, InferenceEngine, ModelArtifact, PrepareOptions, TensorMap};
use coreml_mil::MilEngine;

/// The executor vs Candle, both in f32.
const LINF: f64 = 1e-4;
/// Set to run without the converted models (CI without torch).
const OPTIONAL_ENV: &str = "COREML_BRIDGE_NO_MODEL_PACKAGES";

fn cache() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/coreml-bridge")
        })
}

fn linf(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

async fn check(model: &str) {
    let dir = cache().join("models").join(model);
    let files = ["fp32.mlpackage", "golden.json", "golden_inputs.safetensors"];
    if let Some(missing) = files.iter().map(|f| dir.join(f)).find(|p| !p.exists()) {
        let msg = format!(
            "{} is missing: run `make models` (needs the torch environment), or set {OPTIONAL_ENV}=1 where the converted models cannot be built",
            missing.display()
        );
        if std::env::var_os(OPTIONAL_ENV).is_some() {
            eprintln!("{model}: not checked: {msg}");
            return;
        }
        panic!("{msg}");
    }
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let c = &golden["candle"];
    let arch = c["architecture"]
        .as_str()
        .expect("golden.json names a Candle architecture");
    let weights = cache().join("weights").join(c["weights"].as_str().unwrap());
    assert!(
        weights.is_file(),
        "{} is missing: run `make assets`",
        weights.display()
    );
    let inputs = TensorMap::read_safetensors(dir.join("golden_inputs.safetensors")).unwrap();
    let deadline = || Deadline::after(Duration::from_secs(900));

    let candle = CandleEngine::new();
    let options = PrepareOptions::default()
        .with_architecture(arch)
        .with_max_batch(1);
    let cm = candle
        .prepare(&ModelArtifact::from_path(&weights).unwrap(), &options)
        .await
        .unwrap_or_else(|e| panic!("{model}: Candle prepare: {e}"));
    let mut feed = TensorMap::new();
    for s in &cm.schema.inputs {
        feed.insert(
            s.name.clone(),
            inputs.get(&s.name).unwrap().cast(s.dtype).unwrap(),
        );
    }
    let want = candle.infer(&cm, feed, deadline()).await.unwrap();

    let mil = MilEngine::new();
    let artifact = ModelArtifact::from_path(dir.join("fp32.mlpackage")).unwrap();
    let mm = mil
        .prepare(&artifact, &PrepareOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{model}: executor prepare: {e}"));
    let mut feed = TensorMap::new();
    for s in &mm.schema.inputs {
        feed.insert(
            s.name.clone(),
            inputs.get(&s.name).unwrap().cast(s.dtype).unwrap(),
        );
    }
    let got = mil.infer(&mm, feed, deadline()).await.unwrap();

    let pairs = c["outputs"].as_object().unwrap();
    assert!(!pairs.is_empty());
    for (candle_name, pkg_name) in pairs {
        let w = want
            .get(candle_name)
            .unwrap_or_else(|| panic!("Candle gave no {candle_name}"));
        let g = got
            .get(pkg_name.as_str().unwrap())
            .unwrap_or_else(|| panic!("the executor gave no {pkg_name}"));
        assert_eq!(g.shape(), w.shape(), "{model}.{candle_name}");
        let d = linf(&g.to_f64_vec().unwrap(), &w.to_f64_vec().unwrap());
        eprintln!("{model}.{candle_name}: executor vs Candle L∞ {d:.3e}");
        assert!(
            d <= LINF,
            "{model}.{candle_name}: executor vs Candle L∞ {d:.3e} > {LINF:e}"
        );
    }
}

macro_rules! both {
    ($($t:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $t() {
            check(stringify!($t)).await;
        }
    )*};
}

// distilbert_qa is not here: Candle has its encoder only, and the package
// ends at the QA head (start/end logits), so they share no output.
both!(resnet50, fastvit_t8, efficientnet_lite0, all_minilm_l6_v2);
