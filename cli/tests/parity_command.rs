//! `coreml-bridge parity` end to end on a golden directory written here: the
//! EfficientNet-Lite0 weights from `make assets`, a golden output computed by
//! Candle itself (so it is within budget), then the same output nudged past
//! the FP32 budget (non-zero exit, OVER BUDGET), then weights that are not the
//! ones the golden files name (FAILED, stale). Engines that cannot run here
//! are listed as not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use coreml_bridge::candle::CandleEngine;
use coreml_bridge::inference::{
    BlockingEngine, Deadline, ModelArtifact, PrepareOptions, Sha256Digest, Tensor, TensorMap,
};

fn cache() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/coreml-bridge")
        })
}

fn cli(args: &[&str]) -> Output {
    let (tx, rx) = mpsc::channel();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.args(args)
        .env_remove("COREML_HELPER")
        .env("COREML_BRIDGE_CACHE", cache());
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run coreml-bridge"));
    });
    rx.recv_timeout(Duration::from_secs(300))
        .expect("watchdog: the CLI hung")
}

fn pixels() -> Tensor {
    let n = 3 * 224 * 224;
    let px: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
        .collect();
    Tensor::new(vec![1, 3, 224, 224], px).unwrap()
}

/// Writes `<dir>/lite0/golden.json` and the two tensor files; returns the logits.
fn golden_dir(dir: &Path, sha: &str, logits: Option<Vec<f32>>) -> Vec<f32> {
    let weights = cache().join("weights/efficientnet-lite0/model.safetensors");
    assert!(
        weights.exists(),
        "{} is missing: run `make assets` first",
        weights.display()
    );
    let m = dir.join("lite0");
    std::fs::create_dir_all(&m).unwrap();
    let inputs = TensorMap::new().with("pixel_values", pixels());
    inputs
        .write_safetensors(m.join("golden_inputs.safetensors"))
        .unwrap();
    let logits = logits.unwrap_or_else(|| {
        let engine = BlockingEngine::new(CandleEngine::new()).unwrap();
        let artifact = ModelArtifact::from_path(&weights).unwrap();
        let model = engine
            .prepare(
                &artifact,
                &PrepareOptions::default().with_architecture("efficientnet-lite0"),
            )
            .unwrap();
        let out = engine
            .infer(&model, inputs, Deadline::after(Duration::from_secs(120)))
            .unwrap();
        out.f32("logits").unwrap().to_vec()
    });
    TensorMap::new()
        .with(
            "logits",
            Tensor::new(vec![1, 1000], logits.clone()).unwrap(),
        )
        .write_safetensors(m.join("golden_outputs.safetensors"))
        .unwrap();
    let golden = serde_json::json!({
        "format": 1, "model": "efficientnet_lite0", "source_weights_sha256": sha,
        "candle": {"architecture": "efficientnet-lite0", "weights": "efficientnet-lite0/model.safetensors",
                   "outputs": {"logits": "logits"}},
        "variants": {"fp16": {"status": "built"}, "int8": {"status": "cached"}, "w8a8": {"status": "not built"}},
    });
    std::fs::write(m.join("golden.json"), golden.to_string()).unwrap();
    logits
}

/// The table document (on failure the CLI prints `{"error": ...}` after it).
fn rows(out: &Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .next()
        .expect("a JSON document")
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    v["rows"].as_array().unwrap().clone()
}

#[test]
fn parity_gates_on_the_budget_and_lists_what_cannot_run() {
    let weights = cache().join("weights/efficientnet-lite0/model.safetensors");
    let sha = Sha256Digest::of_path(&weights).unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();

    // Golden = Candle's own output: within budget, exit 0.
    let logits = golden_dir(tmp.path(), &sha, None);
    let out = cli(&["parity", "--models-dir", dir, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = rows(&out);
    assert_eq!(r[0]["engine"], "candle");
    assert_eq!(r[0]["result"], "ok");
    assert_eq!(r[0]["linf"].as_f64(), Some(0.0));
    assert_eq!(r[1]["engine"], "coreml");
    assert_eq!(r[1]["variant"], "2 pkgs");
    assert!(r[1]["result"]
        .as_str()
        .unwrap()
        .starts_with("not run: Core ML needs macOS"));
    // The executor's rows: one per built variant, whose packages are not here.
    assert_eq!(r[2]["engine"], "mil");
    assert_eq!(r[2]["variant"], "fp16");
    assert!(
        r[2]["result"].as_str().unwrap().starts_with("not run: ")
            && r[2]["result"]
                .as_str()
                .unwrap()
                .contains("fp16.mlpackage is missing")
    );

    // One logit off by 2e-4 (budget 1e-4): over budget, non-zero exit, text table says so.
    let mut nudged = logits.clone();
    nudged[7] += 2e-4;
    golden_dir(tmp.path(), &sha, Some(nudged));
    let out = cli(&["parity", "--models-dir", dir]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OVER BUDGET"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("over budget"));

    // Weights other than the ones the golden files were made from: failed, stale.
    golden_dir(tmp.path(), &"0".repeat(64), Some(logits));
    let out = cli(&["parity", "--models-dir", dir, "--json"]);
    assert!(!out.status.success());
    let r = rows(&out);
    assert!(
        r[0]["result"]
            .as_str()
            .unwrap()
            .contains("rerun `make models`"),
        "{}",
        r[0]
    );
}

#[test]
fn parity_without_golden_files_says_to_run_make_models() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(&["parity", "--models-dir", tmp.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("make models"), "{err}");
    let out = cli(&[
        "parity",
        "--models-dir",
        tmp.path().to_str().unwrap(),
        "--model",
        "nope",
    ]);
    assert!(!out.status.success());
}
