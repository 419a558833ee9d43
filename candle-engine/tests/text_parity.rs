//! MiniLM and DistilBERT against PyTorch (fixtures from scripts/gen_parity_text.py).

mod assets;

use std::time::Duration;

use coreml_candle::text::TextTokenizer;
use coreml_candle::CandleEngine;
use coreml_inference::{Deadline, InferenceEngine, PrepareOptions, TensorMap};

const TOL: f32 = 1e-4;

fn sentences() -> Vec<String> {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(assets::fixture("parity/text.json")).unwrap(),
    )
    .unwrap();
    meta["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn inputs_of(fixture: &TensorMap) -> TensorMap {
    TensorMap::new()
        .with("input_ids", fixture.get("input_ids").unwrap().clone())
        .with(
            "attention_mask",
            fixture.get("attention_mask").unwrap().clone(),
        )
}

#[test]
fn rust_tokenizer_matches_hugging_face() {
    let fx = assets::parity("minilm");
    let tok = TextTokenizer::from_file(
        assets::weights_dir().join("all-minilm-l6-v2/tokenizer.json"),
        128,
    )
    .unwrap();
    let s = sentences();
    let enc = tok
        .encode_batch(&s.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(enc.get("input_ids").unwrap(), fx.get("input_ids").unwrap());
    assert_eq!(
        enc.get("attention_mask").unwrap(),
        fx.get("attention_mask").unwrap()
    );
}

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let fx = assets::parity("minilm");
    assets::run(120, async {
        let engine = CandleEngine::new();
        let opts = PrepareOptions::default().with_architecture("all-minilm-l6-v2");
        let m = engine.prepare(&assets::minilm(), &opts).await.unwrap();
        let out = engine
            .infer(&m, inputs_of(&fx), Deadline::after(Duration::from_secs(60)))
            .await
            .unwrap();
        let got = out.f32("embedding").unwrap();
        let want = fx.f32("embedding").unwrap();
        let err = assets::linf(got, want);
        assert!(err <= TOL, "MiniLM L-inf {err:e} > {TOL:e}");
        // Unit length, and the first sentence alone gives the same embedding as in the padded batch.
        for row in got.chunks(384) {
            let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "norm {n}");
        }
        let tok = TextTokenizer::from_file(
            assets::weights_dir().join("all-minilm-l6-v2/tokenizer.json"),
            128,
        )
        .unwrap();
        let single = tok.encode_batch(&[sentences()[0].as_str()]).unwrap();
        let one = engine
            .infer(&m, single, Deadline::after(Duration::from_secs(60)))
            .await
            .unwrap();
        let err = assets::linf(one.f32("embedding").unwrap(), &want[..384]);
        assert!(err <= TOL, "single vs batched L-inf {err:e}");
        eprintln!("MiniLM parity L-inf {:e}", assets::linf(got, want));
    });
}

#[test]
fn distilbert_hidden_states_match_transformers() {
    let fx = assets::parity("distilbert");
    assets::run(180, async {
        let engine = CandleEngine::new();
        let m = engine
            .prepare(
                &assets::distilbert(),
                &PrepareOptions::default().with_architecture("distilbert"),
            )
            .await
            .unwrap();
        let out = engine
            .infer(
                &m,
                inputs_of(&fx),
                Deadline::after(Duration::from_secs(120)),
            )
            .await
            .unwrap();
        let got = out.get("last_hidden_state").unwrap();
        assert_eq!(got.shape(), fx.get("last_hidden_state").unwrap().shape());
        let err = assets::linf(
            got.as_slice::<f32>().unwrap(),
            fx.f32("last_hidden_state").unwrap(),
        );
        assert!(err <= TOL, "DistilBERT L-inf {err:e} > {TOL:e}");
        let spread = fx
            .f32("last_hidden_state")
            .unwrap()
            .iter()
            .fold(0f32, |a, v| a.max(v.abs()));
        assert!(
            spread > 0.5,
            "reference outputs are not trivial (max |v| = {spread})"
        );
        eprintln!("DistilBERT parity L-inf {err:e}");
    });
}
