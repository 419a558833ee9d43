//! `coreml-bridge run --deadline-ms 3000` against a helper that goes silent
//! once it has said `Hello` and compiled (it never answers `Load`) returns,
//! answered by Candle, instead of waiting out the helper's load budget
//! (15 minutes by default): preparing Core ML goes on in the background and
//! the process ends with it.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn run_with_a_silent_helper_is_answered_by_candle_within_its_deadline() {
    let minilm = common::minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let tok =
        coreml_bridge::candle::text::TextTokenizer::from_file(minilm.join("tokenizer.json"), 128)
            .unwrap();
    let input = dir.path().join("tokens.safetensors");
    tok.encode_batch(&["A cat sits on the mat."])
        .unwrap()
        .write_safetensors(&input)
        .unwrap();
    let output = dir.path().join("out.safetensors");
    let model = minilm.join("model.safetensors");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.args([
        "--json",
        "run",
        "--model",
        model.to_str().unwrap(),
        "--architecture",
        "bert",
        "--name",
        "minilm-silent",
        // The Core ML side: the test helper says Hello, compiles, then never
        // answers this model's Load.
        "--coreml-model",
        "diag:echo?fault=hang&at=load",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--deadline-ms",
        "3000",
    ])
    .env("COREML_HELPER", common::test_helper())
    .env_remove("COREML_HELPER_LAUNCHER")
    .env_remove("RUST_LOG")
    .env("COREML_BRIDGE_CACHE", common::cache())
    .env("COREML_BRIDGE_TELEMETRY_DIR", dir.path());
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run coreml-bridge"));
    });
    // Watchdog: without the background preparation the command waits for the
    // helper's load budget (15 minutes).
    let out = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("watchdog: `run` still waiting for the silent helper after 120 s");
    let took = start.elapsed();
    let v = common::json(&out);
    assert_eq!(v["served_by"], "candle", "{v}");
    let y = coreml_bridge::inference::TensorMap::read_safetensors(&output).unwrap();
    assert_eq!(y.f32("embedding").unwrap().len(), 384);
    eprintln!("`run --deadline-ms 3000` returned after {took:?}");
    // The whole command (process start, Candle loading the weights, the
    // request) ends within the request's deadline plus a start-up allowance,
    // far from the helper's load budget.
    assert!(took < Duration::from_secs(20), "returned after {took:?}");
}
