//! The CLI end to end on the embedded default models (weights from `make
//! assets` in `$COREML_BRIDGE_CACHE`, the cat photo from tests/fixtures): `embed` ranks
//! paraphrases above unrelated sentences, `classify` finds a cat class,
//! `report` renders the saved telemetry in all three formats, and without
//! Core ML each command says on one line that Candle serves, and why.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

fn cache() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/coreml-bridge")
        })
}

fn assets() -> (PathBuf, PathBuf) {
    let c = cache();
    let minilm = c.join("weights/all-minilm-l6-v2");
    let effnet = c.join("weights/efficientnet-lite0/model.safetensors");
    let cat = manifest_dir().join("../tests/fixtures/images/chelsea.png");
    for p in [
        minilm.join("model.safetensors"),
        minilm.join("tokenizer.json"),
        effnet.clone(),
        cat.clone(),
    ] {
        assert!(
            p.exists(),
            "{} is missing: run `make assets` first",
            p.display()
        );
    }
    (minilm, cat)
}

/// Runs the CLI with a private telemetry directory, under a watchdog.
fn cli(tele: &std::path::Path, args: &[&str]) -> Output {
    let (tx, rx) = mpsc::channel();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.args(args)
        .env_remove("COREML_HELPER")
        .env("COREML_BRIDGE_CACHE", cache());
    // Telemetry goes under the cache; keep it per test run.
    cmd.env("COREML_BRIDGE_TELEMETRY_DIR", tele);
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run coreml-bridge"));
    });
    rx.recv_timeout(Duration::from_secs(300))
        .expect("watchdog: the CLI hung")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn embed_classify_and_report_through_the_router() {
    let (_minilm, cat) = assets();
    let tele = tempfile::tempdir().unwrap();

    let out = cli(
        tele.path(),
        &[
            "--json",
            "embed",
            "A man is playing a guitar.",
            "Someone is playing an instrument.",
            "The stock market fell sharply today.",
        ],
    );
    let v = json(&out);
    assert_eq!(v["served_by"], "candle");
    assert!(
        v["notice"]
            .as_str()
            .unwrap()
            .contains("candle serves every model"),
        "{v}"
    );
    assert_eq!(v["dimensions"], 384);
    let s = |i: usize, j: usize| v["similarity"][i][j].as_f64().unwrap();
    assert!((s(0, 0) - 1.0).abs() < 1e-4);
    assert!(
        s(0, 1) > 0.5 && s(0, 2) < 0.2 && s(0, 1) > s(0, 2) + 0.3,
        "{}",
        v["similarity"]
    );

    let text = cli(tele.path(), &["embed", "a cat", "a dog"]);
    assert!(text.status.success());
    let stderr = String::from_utf8_lossy(&text.stderr);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 1, "one line says why Candle serves: {stderr}");
    assert!(
        notes[0].contains("coreml unavailable (")
            && notes[0].ends_with("candle serves every model"),
        "{}",
        notes[0]
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("cosine similarity"));

    let v = json(&cli(
        tele.path(),
        &["--json", "classify", cat.to_str().unwrap()],
    ));
    assert_eq!(v["served_by"], "candle");
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    assert!(
        top.iter()
            .any(|t| (281..=285).contains(&t["class"].as_u64().unwrap())),
        "a cat class in the top-5: {v}"
    );

    let table = cli(tele.path(), &["report"]);
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    for model in ["all-minilm-l6-v2", "efficientnet-lite0"] {
        assert!(
            t.lines()
                .any(|l| l.contains(model) && l.contains("candle") && l.contains(" yes ")),
            "{t}"
        );
    }
    let v = json(&cli(tele.path(), &["report", "--json"]));
    assert!(v["models"].as_array().unwrap().len() >= 2);
    let prom = cli(tele.path(), &["report", "--format", "prometheus"]);
    let p = String::from_utf8_lossy(&prom.stdout);
    assert!(
        p.contains("coreml_bridge_served_info{model=\"efficientnet-lite0\",engine=\"candle\"} 1"),
        "{p}"
    );
    coreml_bridge::telemetry::prometheus::parse(&p).unwrap();
}

#[test]
fn run_takes_tensors_from_and_to_safetensors_and_bench_times_each_engine() {
    let (minilm, _) = assets();
    let dir = tempfile::tempdir().unwrap();
    let tok =
        coreml_bridge::candle::text::TextTokenizer::from_file(minilm.join("tokenizer.json"), 128)
            .unwrap();
    let input = dir.path().join("tokens.safetensors");
    tok.encode_batch(&["A cat sits on the mat.", "A kitten is resting on a rug."])
        .unwrap()
        .write_safetensors(&input)
        .unwrap();
    let output = dir.path().join("out.safetensors");
    let model = minilm.join("model.safetensors");
    let v = json(&cli(
        dir.path(),
        &[
            "--json",
            "run",
            "--model",
            model.to_str().unwrap(),
            "--architecture",
            "bert",
            "--name",
            "minilm-run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
    ));
    assert_eq!(v["served_by"], "candle");
    let out = coreml_bridge::inference::TensorMap::read_safetensors(&output).unwrap();
    let e = out.f32("embedding").unwrap();
    assert_eq!(e.len(), 2 * 384);
    let cos: f32 = e[..384].iter().zip(&e[384..]).map(|(a, b)| a * b).sum();
    assert!(cos > 0.5, "paraphrases are close: {cos}");

    let v = json(&cli(
        dir.path(),
        &[
            "--json",
            "bench",
            "minilm",
            "--iterations",
            "5",
            "--warmup",
            "1",
        ],
    ));
    let engines = v["engines"].as_array().unwrap();
    assert_eq!(engines.len(), 2, "{v}");
    assert_eq!(engines[0]["engine"], "candle");
    assert_eq!(engines[1]["engine"], "router->candle");
    for e in engines {
        let l = &e["latency_us"];
        assert_eq!(l["count"], 5);
        assert!(l["p50_us"].as_u64().unwrap() > 0 && l["p99_us"].as_u64() >= l["p50_us"].as_u64());
    }
}

/// This package's directory. Read at run time (cargo sets it for tests) before the
/// compile-time value: a cached test binary built from another checkout of the
/// workspace (same target dir, older sources) would otherwise look there.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
