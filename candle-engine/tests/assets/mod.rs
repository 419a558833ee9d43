//! Test assets: pinned weights from scripts/prepare_test_assets.sh, committed
//! fixtures, and a watchdog. A missing asset fails the test with a message
//! naming the script; nothing is skipped.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use coreml_inference::{ModelArtifact, ModelFormat, Sha256Digest, TensorMap};

pub const PREPARE: &str = "scripts/prepare_test_assets.sh";

/// Pinned sha256 of the weights (same pins as the scripts).
pub const MINILM_SHA: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
pub const DISTILBERT_SHA: &str = "3343cd59e9785c04371dae8a901d911718f4ee6ae1caaa8bcb58656456087de4";
pub const EFFICIENTNET_SHA: &str =
    "fc63b7bf754542293772d9fe7fbcefe10aaa1bb0438926e592515e7e9f525065";

pub fn weights_dir() -> PathBuf {
    let cache = std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/coreml-bridge")
        });
    cache.join("weights")
}

/// The path, or a panic telling how to get it.
pub fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "missing test asset {}: run {PREPARE} (make test does)",
        path.display()
    );
    path
}

fn artifact(dir: &str, sha: &str) -> ModelArtifact {
    let d = weights_dir().join(dir);
    require(d.join("model.safetensors"));
    ModelArtifact::new(ModelFormat::Safetensors, d.join("model.safetensors"))
        .with_sha256(sha.parse::<Sha256Digest>().unwrap())
}

pub fn minilm() -> ModelArtifact {
    require(weights_dir().join("all-minilm-l6-v2/tokenizer.json"));
    artifact("all-minilm-l6-v2", MINILM_SHA)
}

pub fn distilbert() -> ModelArtifact {
    require(weights_dir().join("distilbert-seeded/tokenizer.json"));
    artifact("distilbert-seeded", DISTILBERT_SHA)
}

pub fn efficientnet() -> ModelArtifact {
    artifact("efficientnet-lite0", EFFICIENTNET_SHA)
}

/// The repository's `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    let p = manifest_dir().join("../tests/fixtures").join(rel);
    assert!(p.exists(), "missing committed fixture {}", p.display());
    p
}

pub fn parity(name: &str) -> TensorMap {
    TensorMap::read_safetensors(fixture(&format!("parity/{name}.safetensors")))
        .expect("parity fixture")
}

/// Largest absolute difference.
pub fn linf(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs a future on a multi-threaded runtime, failing after `secs`.
pub fn run<F: Future>(secs: u64, fut: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(secs), fut)
                .await
                .expect("watchdog: test hung")
        })
}

/// This package's directory. Read at run time (cargo sets it for tests) before the
/// compile-time value: a cached test binary built from another checkout of the
/// workspace (same target dir, older sources) would otherwise look there.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
