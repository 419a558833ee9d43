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
use coreml_bridge::candle::text::TextTokenizer;
use coreml_bridge::inference::Deadline;
use serde_json::json;

use crate::app::{self, App};
use crate::Global;

/// Model name in telemetry.
pub const MODEL: &str = "all-minilm-l6-v2";

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
    /// Maximum tokens per sentence.
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
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

pub async fn run(global: Global, args: EmbedArgs) -> Result<(), String> {
    let dir = args
        .model_dir
        .clone()
        .unwrap_or_else(|| app::weights_dir(MODEL));
    let tokenizer = TextTokenizer::from_file(dir.join("tokenizer.json"), args.max_len)
        .map_err(|e| format!("{e} (run `make assets` first)"))?;
    let app = App::start(global).await?;
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
    let texts: Vec<&str> = args.sentences.iter().map(String::as_str).collect();
    let inputs = tokenizer.encode_batch(&texts).map_err(|e| e.to_string())?;
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
