//! `coreml-bridge embed` served out of process: the Rust helper runs
//! MiniLM's MIL-builder package (`make mil-packages`: int32 ids, 128 tokens,
//! batch 1) with the MIL executor. The tokenizer's i64 ids of sentences of
//! different lengths are narrowed, padded to 128 under the attention mask,
//! and the batch goes row by row; the embeddings match the in-process Candle
//! model's (L∞ ≤ 1e-4). A sentence longer than the package's 128 tokens is
//! truncated to it, with a note, on both engines alike.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use coreml_bridge::telemetry::snapshot::Snapshot;

fn package() -> PathBuf {
    let p = common::minilm_dir().join("mil-builder.mlpackage");
    assert!(
        p.join("Manifest.json").exists(),
        "{} is missing: run `make mil-packages` first",
        p.display()
    );
    p
}

/// `coreml-bridge --json embed ARGS` with the helper (or `--no-coreml`), under a watchdog.
fn embed(tele: &Path, helper: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.arg("--json");
    match helper {
        Some(h) => {
            cmd.env("COREML_HELPER", h);
        }
        None => {
            cmd.env_remove("COREML_HELPER").arg("--no-coreml");
        }
    }
    cmd.arg("embed")
        .args(args)
        .env_remove("RUST_LOG")
        .env("COREML_BRIDGE_CACHE", common::cache())
        .env("COREML_BRIDGE_TELEMETRY_DIR", tele);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run coreml-bridge"));
    });
    rx.recv_timeout(Duration::from_secs(600))
        .expect("watchdog: the CLI hung")
}

fn embeddings(v: &serde_json::Value) -> Vec<Vec<f32>> {
    v["embeddings"]
        .as_array()
        .expect("embeddings")
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn linf(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0f32, f32::max)
}

#[test]
fn a_batch_of_sentences_is_embedded_by_the_helper_like_candle_does() {
    let pkg = package();
    let dir = tempfile::tempdir().unwrap();
    let sentences = [
        "A man is playing a guitar.",
        "Someone is playing an instrument on a small stage in front of a cheering crowd.",
        "The stock market fell.",
    ];
    let mut args = vec!["--coreml-model", pkg.to_str().unwrap()];
    args.extend(sentences);
    let out = embed(dir.path(), Some(&common::test_helper()), &args);
    let v = common::json(&out);
    let said = |v: &serde_json::Value| format!("notice {}, max_len {}", v["notice"], v["max_len"]);
    assert_eq!(v["served_by"], "coreml", "{}", said(&v));
    assert_eq!(v["max_len"], 128, "the package's sequence length");
    assert_eq!(v["dimensions"], 384);
    // Every row went to the helper, one prediction each.
    let snap: Snapshot = serde_json::from_slice(
        &std::fs::read(dir.path().join("last-embed.json")).expect("saved telemetry"),
    )
    .unwrap();
    let m = snap
        .model("all-minilm-l6-v2")
        .expect("the model's telemetry");
    let coreml = m.engine("coreml").expect("coreml served");
    assert_eq!((coreml.successes, coreml.inferences), (3, 3), "{m:?}");
    assert!(
        m.engine("candle").is_none_or(|c| c.inferences == 0),
        "{m:?}"
    );

    let cpu = common::json(&embed(dir.path(), None, &sentences));
    assert_eq!(cpu["served_by"], "candle", "{}", said(&cpu));
    let err = linf(&embeddings(&v), &embeddings(&cpu));
    assert!(err <= 1e-4, "helper vs in-process Candle: L∞ {err}");
}

#[test]
fn a_sentence_longer_than_the_package_is_truncated_to_it_on_both_engines() {
    let pkg = package();
    let dir = tempfile::tempdir().unwrap();
    let long = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let out = embed(
        dir.path(),
        Some(&common::test_helper()),
        &["--coreml-model", pkg.to_str().unwrap(), long.trim()],
    );
    let v = common::json(&out);
    assert_eq!(v["served_by"], "coreml", "notice: {}", v["notice"]);
    assert_eq!(v["truncated"][0]["kept"], 128, "{}", v["truncated"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "only the first 128 are embedded (limit from the Core ML package's `input_ids`"
        ),
        "{stderr}"
    );
    let cpu = common::json(&embed(dir.path(), None, &["--max-len", "128", long.trim()]));
    let err = linf(&embeddings(&v), &embeddings(&cpu));
    assert!(err <= 1e-4, "helper vs in-process Candle: L∞ {err}");
}
