//! MiniLM and DistilBERT against PyTorch (fixtures from scripts/gen_parity_text.py), and
//! MiniLM on paragraphs past 128 and 256 tokens at the limit sentence-transformers reads
//! from the model's sentence_bert_config.json.

mod assets;

use std::time::Duration;

use coreml_candle::text::limit::{LimitSource, SeqLimit};
use coreml_candle::text::TextTokenizer;
use coreml_candle::CandleEngine;
use coreml_inference::{Deadline, InferenceEngine, PrepareOptions, TensorMap};

const TOL: f32 = 1e-4;

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(assets::fixture("parity/text.json")).unwrap())
        .unwrap()
}

fn strings(key: &str) -> Vec<String> {
    meta()[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn sentences() -> Vec<String> {
    strings("sentences")
}

fn minilm_dir() -> std::path::PathBuf {
    assets::require(assets::weights_dir().join("all-minilm-l6-v2/sentence_bert_config.json"));
    assets::weights_dir().join("all-minilm-l6-v2")
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

/// The model's own limit, read as sentence-transformers reads it.
fn minilm_tokenizer() -> TextTokenizer {
    let limit = SeqLimit::for_model_dir(&minilm_dir(), None).unwrap();
    assert_eq!(limit.source, LimitSource::SentenceBertConfig);
    assert_eq!(
        limit.tokens as u64,
        meta()["max_seq_length"].as_u64().unwrap()
    );
    TextTokenizer::from_file(minilm_dir().join("tokenizer.json"), limit.tokens).unwrap()
}

#[test]
fn long_paragraphs_tokenize_and_truncate_like_sentence_transformers() {
    let fx = assets::parity("minilm_long");
    let p = strings("paragraphs");
    let want_tokens: Vec<usize> = meta()["paragraph_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as usize)
        .collect();
    // One paragraph between 128 and 256 tokens, one past 256.
    assert!(128 < want_tokens[0] && want_tokens[0] <= 256 && want_tokens[1] > 256);
    let enc = minilm_tokenizer()
        .encode_batch_counted(&p.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(
        enc.inputs.get("input_ids").unwrap(),
        fx.get("input_ids").unwrap()
    );
    assert_eq!(
        enc.inputs.get("attention_mask").unwrap(),
        fx.get("attention_mask").unwrap()
    );
    assert_eq!(enc.tokens, want_tokens);
    assert_eq!(enc.truncated(), vec![(1, want_tokens[1])]);
}

#[test]
fn minilm_long_paragraphs_match_sentence_transformers() {
    let fx = assets::parity("minilm_long");
    let want = fx.f32("embedding").unwrap().to_vec();
    let p = strings("paragraphs");
    assets::run(180, async {
        let engine = CandleEngine::new();
        let opts = PrepareOptions::default().with_architecture("all-minilm-l6-v2");
        let m = engine.prepare(&assets::minilm(), &opts).await.unwrap();
        let infer = |inputs: TensorMap| {
            let (engine, m) = (&engine, &m);
            async move {
                engine
                    .infer(m, inputs, Deadline::after(Duration::from_secs(120)))
                    .await
                    .unwrap()
                    .f32("embedding")
                    .unwrap()
                    .to_vec()
            }
        };
        // The batch of both (256 positions), as the fixture ran it.
        let got = infer(inputs_of(&fx)).await;
        let err = assets::linf(&got, &want);
        assert!(err <= TOL, "long MiniLM L-inf {err:e} > {TOL:e}");
        // Each paragraph alone, tokenised in Rust at the model's limit: the shorter one
        // at its own length (no padding), the longer one cut at 256.
        let tok = minilm_tokenizer();
        for (i, text) in p.iter().enumerate() {
            let one = infer(tok.encode_batch(&[text.as_str()]).unwrap()).await;
            let err = assets::linf(&one, &want[i * 384..(i + 1) * 384]);
            assert!(err <= TOL, "paragraph {i} alone: L-inf {err:e} > {TOL:e}");
        }
        // The old default of 128 tokens embeds both differently: this test can tell.
        let short = TextTokenizer::from_file(minilm_dir().join("tokenizer.json"), 128).unwrap();
        for (i, text) in p.iter().enumerate() {
            let one = infer(short.encode_batch(&[text.as_str()]).unwrap()).await;
            let err = assets::linf(&one, &want[i * 384..(i + 1) * 384]);
            assert!(
                err > 100.0 * TOL,
                "paragraph {i} at 128 tokens: L-inf only {err:e}"
            );
        }
        eprintln!("long MiniLM parity L-inf {:e}", assets::linf(&got, &want));
    });
}
