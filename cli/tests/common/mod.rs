//! Running the `coreml-bridge` binary in tests: the weights cache from
//! `make assets`, a private telemetry directory, and a watchdog.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

pub fn cache() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/coreml-bridge")
        })
}

/// The MiniLM weights directory, or a panic naming the script that fetches it.
pub fn minilm_dir() -> PathBuf {
    let d = cache().join("weights/all-minilm-l6-v2");
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "config.json",
        "sentence_bert_config.json",
    ] {
        assert!(
            d.join(f).exists(),
            "{} is missing: run `make assets` first",
            d.join(f).display()
        );
    }
    d
}

/// Runs the CLI without a Core ML helper, telemetry under `tele`, under a watchdog.
pub fn cli(tele: &Path, args: &[&str]) -> Output {
    let (tx, rx) = mpsc::channel();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.args(args)
        .env_remove("COREML_HELPER")
        .env_remove("RUST_LOG")
        .env("COREML_BRIDGE_CACHE", cache())
        .env("COREML_BRIDGE_TELEMETRY_DIR", tele);
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run coreml-bridge"));
    });
    rx.recv_timeout(Duration::from_secs(300))
        .expect("watchdog: the CLI hung")
}

/// The JSON document of a successful run.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The repository's `tests/fixtures/<rel>`. CARGO_MANIFEST_DIR is read at run time
/// first: a cached test binary built from another checkout would look there.
pub fn fixture(rel: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let p = dir.join("../tests/fixtures").join(rel);
    assert!(p.exists(), "missing committed fixture {}", p.display());
    p
}

/// The Rust test helper: `COREML_TEST_HELPER_BIN`, else
/// `target/<profile>/coreml-test-helper` (built with the workspace; built here
/// when a single test binary runs without it).
pub fn test_helper() -> PathBuf {
    if let Some(p) = std::env::var_os("COREML_TEST_HELPER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .to_owned();
    let bin = profile_dir.join("coreml-test-helper");
    if !bin.exists() {
        let target = profile_dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "coreml-test-helper"])
            .env("CARGO_TARGET_DIR", target)
            .status()
            .expect("running cargo build -p coreml-test-helper");
        assert!(
            status.success() && bin.exists(),
            "could not build {}",
            bin.display()
        );
    }
    bin
}
