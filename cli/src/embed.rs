//! `embed`: sentences in; embeddings and the cosine-similarity matrix out.
//!
//! ```text
//! $ coreml-bridge embed "A man is playing a guitar." "Someone plays the guitar." "The stock market fell."
//! served by candle: 3 embeddings of 384 dimensions
//! cosine similarity
//!         [0]    [1]    [2]
//!   [0]  1.000  0.873  0.021
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use coreml_bridge::candle::text::limit::{LimitError, SeqLimit};
use coreml_bridge::candle::text::{Encoded, TextTokenizer, TokenizerError};
use coreml_bridge::inference::Deadline;
use serde_json::json;

use crate::app::{self, App};
use crate::Global;

/// Model name in telemetry.
pub const MODEL: &str = "all-minilm-l6-v2";

/// How long `embed` waits for the Core ML model of `--coreml-model` to be
/// ready before Candle answers instead.
pub const COREML_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Sentences to embed (at least one).
    #[arg(required = true)]
    pub sentences: Vec<String>,
    /// Directory with model.safetensors, config.json and tokenizer.json
    /// [default: <cache>/weights/all-minilm-l6-v2].
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// A Core ML version of the model (.mlpackage / .mlmodelc) to try first.
    #[arg(long)]
    pub coreml_model: Option<PathBuf>,
    /// Maximum tokens per sentence, special tokens included [default: the
    /// model's own limit, as sentence-transformers reads it from
    /// sentence_bert_config.json: 256 for all-MiniLM-L6-v2].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Print the whole embedding vectors (text output shows the first 6 values).
    #[arg(long)]
    pub full: bool,
}

/// Cosine similarity of every pair of rows.
pub fn cosine_matrix(rows: &[&[f32]]) -> Vec<Vec<f32>> {
    let norm = |v: &[f32]| {
        v.iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE)
    };
    rows.iter()
        .map(|a| {
            rows.iter()
                .map(|b| a.iter().zip(*b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b)))
                .collect()
        })
        .collect()
}

/// The error line for a token limit that cannot be used.
fn limit_error(e: &LimitError) -> String {
    match e {
        LimitError::TooLong {
            requested,
            positions,
            file,
        } => app::file_error(
            file,
            format!("the model has {positions} positions, fewer than --max-len {requested}"),
            &format!("use --max-len {positions} or less"),
        ),
        LimitError::Zero => "--max-len 0 leaves nothing to embed; use 1 or more".into(),
        LimitError::BadConfig { file, message } => app::file_error(
            file,
            format!("not a valid model config ({message})"),
            "restore it from the model's files, or pass --max-len",
        ),
        LimitError::Unknown { dir } => app::file_error(
            dir,
            "no sentence_bert_config.json or config.json to read the token limit from",
            "pass --max-len",
        ),
    }
}

/// One line per sentence longer than the limit of `tokens` (from `source`).
pub fn truncation_notes(truncated: &[(usize, usize)], tokens: usize, source: &str) -> Vec<String> {
    truncated
        .iter()
        .map(|&(i, n)| {
            format!(
                "sentence [{i}] has {n} tokens; only the first {tokens} are embedded (limit from {source})"
            )
        })
        .collect()
}

/// The token limit: the model's (or `--max-len`), or the Core ML package's
/// sequence length when that is shorter (both engines embed the same tokens).
fn token_limit(
    limit: &SeqLimit,
    coreml: Option<&std::path::Path>,
) -> Result<(usize, String), String> {
    let package = match coreml {
        Some(p) => crate::embed_package::max_tokens(p)?.map(|n| (n, p)),
        None => None,
    };
    Ok(match package {
        Some((n, p)) if n < limit.tokens => (
            n,
            format!(
                "the Core ML package's `{}`, {}",
                crate::embed_package::IDS,
                p.display()
            ),
        ),
        _ => (limit.tokens, limit.source.to_string()),
    })
}

pub async fn run(global: Global, args: EmbedArgs) -> Result<(), String> {
    let dir = args
        .model_dir
        .clone()
        .unwrap_or_else(|| app::weights_dir(MODEL));
    let tokenizer_file = dir.join("tokenizer.json");
    if !tokenizer_file.exists() {
        let advice = if args.model_dir.is_some() {
            "--model-dir takes a directory with model.safetensors, config.json and tokenizer.json"
        } else {
            app::missing_file_advice(&tokenizer_file)
        };
        return Err(app::file_error(&tokenizer_file, "no such file", advice));
    }
    let limit = SeqLimit::for_model_dir(&dir, args.max_len).map_err(|e| limit_error(&e))?;
    let (max_len, max_len_source) = token_limit(&limit, args.coreml_model.as_deref())?;
    let tokenizer = TextTokenizer::from_file(&tokenizer_file, max_len).map_err(|e| match e {
        TokenizerError::File { path, message } => app::file_error(
            &path,
            format!("not a tokenizer ({message})"),
            "give the tokenizer.json that comes with the model",
        ),
        other => other.to_string(),
    })?;
    let texts: Vec<&str> = args.sentences.iter().map(String::as_str).collect();
    let encoded = tokenizer
        .encode_batch_counted(&texts)
        .map_err(|e| e.to_string())?;
    let truncated = encoded.truncated();
    for line in truncation_notes(&truncated, max_len, &max_len_source) {
        eprintln!("note: {line}");
    }
    let Encoded { inputs, tokens, .. } = encoded;
    let named: Vec<&std::path::Path> = args.coreml_model.as_deref().into_iter().collect();
    let mut app = App::start(global, &named).await?;
    // A one-shot command: the Core ML model it names answers once ready
    // (the helper compiles it first), not Candle meanwhile.
    app.coreml_wait = Some(COREML_WAIT);
    let batch = args.sentences.len();
    let model = app
        .prepare(
            MODEL,
            &dir.join("model.safetensors"),
            "bert",
            args.coreml_model.as_deref(),
            Some(batch),
        )
        .await?;
    let out = coreml_bridge::inference::InferenceEngine::infer(
        &app.router,
        &model,
        inputs,
        Deadline::after(Duration::from_secs(60)),
    )
    .await
    .map_err(|e| format!("embedding: {e}"))?;
    let emb = out
        .get("embedding")
        .ok_or("the model returned no `embedding`")?;
    let dim = emb.shape().last().copied().unwrap_or(0);
    let values = emb.as_slice::<f32>().map_err(|e| e.to_string())?;
    let rows: Vec<&[f32]> = values.chunks(dim.max(1)).collect();
    let sim = cosine_matrix(&rows);
    let served = app.served_by(MODEL);
    app.save_telemetry("embed");
    if app.global.json {
        app::print_json(&json!({
            "model": MODEL,
            "served_by": served,
            "notice": app.notice(),
            "sentences": args.sentences,
            "max_len": max_len,
            "max_len_source": max_len_source,
            "tokens": tokens,
            "truncated": truncated
                .iter()
                .map(|&(i, n)| json!({ "sentence": i, "tokens": n, "kept": max_len }))
                .collect::<Vec<_>>(),
            "dimensions": dim,
            "embeddings": rows,
            "similarity": sim,
        }));
        return Ok(());
    }
    crate::out!("served by {served}: {batch} embeddings of {dim} dimensions");
    for (i, (s, r)) in args.sentences.iter().zip(&rows).enumerate() {
        let shown = if args.full { r.len() } else { r.len().min(6) };
        let vals: Vec<String> = r[..shown].iter().map(|v| format!("{v:+.4}")).collect();
        let more = if shown < r.len() { ", ..." } else { "" };
        crate::out!("  [{i}] {s}\n      [{}{more}]", vals.join(", "));
    }
    crate::out!("cosine similarity");
    crate::out_part!("       ");
    for j in 0..batch {
        crate::out_part!(" {:>6}", format!("[{j}]"));
    }
    crate::out!();
    for (i, row) in sim.iter().enumerate() {
        crate::out_part!("  {:>4} ", format!("[{i}]"));
        for v in row {
            crate::out_part!(" {v:>6.3}");
        }
        crate::out!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_opposite_rows() {
        let a = [1.0f32, 0.0];
        let b = [2.0f32, 0.0];
        let c = [0.0f32, 3.0];
        let d = [-1.0f32, 0.0];
        let m = cosine_matrix(&[&a, &b, &c, &d]);
        assert!((m[0][1] - 1.0).abs() < 1e-6);
        assert!(m[0][2].abs() < 1e-6);
        assert!((m[0][3] + 1.0).abs() < 1e-6);
        assert_eq!(m.len(), 4);
    }
}
