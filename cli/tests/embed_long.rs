//! `embed` on paragraphs past 128 and 256 tokens: the limit comes from the model's
//! sentence_bert_config.json (256 for all-MiniLM-L6-v2), the embeddings match the
//! PyTorch fixture of sentence-transformers' pipeline (tests/fixtures/parity/minilm_long,
//! scripts/gen_parity_text.py), and a cut sentence is reported on stderr and in `--json`.

mod common;

use common::{cli, fixture, json, minilm_dir};
use coreml_bridge::inference::TensorMap;

const TOL: f32 = 1e-4;

fn paragraphs() -> (Vec<String>, Vec<u64>) {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("parity/text.json")).unwrap())
            .unwrap();
    let p = meta["paragraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let n = meta["paragraph_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    (p, n)
}

fn reference() -> Vec<f32> {
    TensorMap::read_safetensors(fixture("parity/minilm_long.safetensors"))
        .unwrap()
        .f32("embedding")
        .unwrap()
        .to_vec()
}

fn rows(v: &serde_json::Value) -> Vec<f32> {
    v["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn linf(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn long_paragraphs_embed_like_sentence_transformers_and_cuts_are_reported() {
    minilm_dir();
    let (p, tokens) = paragraphs();
    assert!(
        tokens[0] > 128 && tokens[0] <= 256 && tokens[1] > 256,
        "{tokens:?}"
    );
    let tele = tempfile::tempdir().unwrap();
    let out = cli(tele.path(), &["--json", "embed", &p[0], &p[1]]);
    let v = json(&out);
    assert_eq!(v["max_len"], 256, "{}", v["max_len"]);
    assert_eq!(
        v["max_len_source"],
        "sentence_bert_config.json max_seq_length"
    );
    assert_eq!(v["tokens"], serde_json::json!(tokens));
    assert_eq!(
        v["truncated"],
        serde_json::json!([{ "sentence": 1, "tokens": tokens[1], "kept": 256 }])
    );
    let err = linf(&rows(&v), &reference());
    assert!(err <= TOL, "CLI vs PyTorch L-inf {err:e} > {TOL:e}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        vec![format!(
            "note: sentence [1] has {} tokens; only the first 256 are embedded \
             (limit from sentence_bert_config.json max_seq_length)",
            tokens[1]
        )],
        "{stderr}"
    );

    // Text output says the same on stderr, once, next to the Candle notice.
    let text = cli(tele.path(), &["embed", "A short one.", &p[1]]);
    assert!(text.status.success());
    let stderr = String::from_utf8_lossy(&text.stderr);
    let cut: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tokens; only"))
        .collect();
    assert_eq!(cut.len(), 1, "{stderr}");
    assert!(cut[0].starts_with("note: sentence [1] has "), "{stderr}");
}

#[test]
fn max_len_overrides_the_model_limit_within_its_positions() {
    minilm_dir();
    let (p, tokens) = paragraphs();
    let tele = tempfile::tempdir().unwrap();
    let v = json(&cli(
        tele.path(),
        &["--json", "embed", "--max-len", "128", &p[0]],
    ));
    assert_eq!(v["max_len"], 128);
    assert_eq!(v["max_len_source"], "--max-len");
    assert_eq!(
        v["truncated"],
        serde_json::json!([{ "sentence": 0, "tokens": tokens[0], "kept": 128 }])
    );
    // Cut at 128, the paragraph no longer embeds like the reference.
    let err = linf(&rows(&v), &reference()[..384]);
    assert!(err > 100.0 * TOL, "L-inf only {err:e}");

    let v = json(&cli(
        tele.path(),
        &["--json", "embed", "--max-len", "512", &p[1]],
    ));
    assert_eq!(v["truncated"], serde_json::json!([]));
    assert_eq!(v["tokens"], serde_json::json!([tokens[1]]));
}
