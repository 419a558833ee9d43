//! `classify`: an image in; the top-5 ImageNet labels out.
//!
//! ```text
//! $ coreml-bridge classify chelsea.png
//! served by candle
//!   1.  61.2%  [285] Egyptian cat
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use coreml_bridge::candle::labels;
use coreml_bridge::candle::preprocess::ImagePreprocessor;
use coreml_bridge::inference::{Deadline, InferenceEngine, TensorMap};
use serde_json::json;

use crate::app::{self, App};
use crate::Global;

/// Model name in telemetry.
pub const MODEL: &str = "efficientnet-lite0";

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The image (PNG or JPEG).
    pub image: PathBuf,
    /// Weights [default: <cache>/weights/efficientnet-lite0/model.safetensors].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// A Core ML version of the model to try first.
    #[arg(long)]
    pub coreml_model: Option<PathBuf>,
    /// How many labels.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Classify the image this many times, one request after another, printing
    /// who served each request and how long it took (a stream to watch the
    /// router through a helper fault; the labels shown are the last request's).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Deadline of each request in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    pub deadline_ms: u64,
}

pub async fn run(global: Global, args: ClassifyArgs) -> Result<(), String> {
    let weights = args
        .weights
        .clone()
        .unwrap_or_else(|| app::weights_dir(MODEL).join("model.safetensors"));
    let pixels = ImagePreprocessor::efficientnet_lite()
        .tensor_from_files(&[&args.image])
        .map_err(|e| app::tensor_file_error(&args.image, &e, "give a PNG or JPEG image"))?;
    let named: Vec<&std::path::Path> = [Some(weights.as_path()), args.coreml_model.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let app = App::start(global, &named).await?;
    let model = app
        .prepare(
            MODEL,
            &weights,
            MODEL,
            args.coreml_model.as_deref(),
            Some(1),
        )
        .await?;
    let names = labels::imagenet();
    let mut out = None;
    let mut stream = Vec::new();
    for i in 0..args.repeat {
        let t0 = std::time::Instant::now();
        let r = app
            .router
            .infer(
                &model,
                TensorMap::new().with("pixel_values", pixels.clone()),
                Deadline::after(Duration::from_millis(args.deadline_ms)),
            )
            .await
            .map_err(|e| format!("classifying (request {i}): {e}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let by = app.served_by(MODEL);
        let best = labels::top_k(r.f32("logits").map_err(|e| e.to_string())?, 1);
        let label = best
            .first()
            .and_then(|&(c, _)| names.get(c).copied())
            .unwrap_or("?");
        if args.repeat > 1 && !app.global.json {
            crate::out!("  request {i:>2}: served by {by:<6} in {ms:>8.1} ms: {label}");
        }
        stream.push(json!({ "request": i, "served_by": by, "ms": ms, "top1": label }));
        out = Some(r);
    }
    let out = out.ok_or("no request was made")?;
    let logits = out.f32("logits").map_err(|e| e.to_string())?;
    let top: Vec<(usize, f32)> = labels::top_k(logits, args.top);
    let served = app.served_by(MODEL);
    app.save_telemetry("classify");
    if app.global.json {
        let labels: Vec<_> = top
            .iter()
            .map(|&(i, p)| json!({ "class": i, "label": names.get(i).copied().unwrap_or("?"), "probability": p }))
            .collect();
        app::print_json(&json!({
            "model": MODEL,
            "image": args.image,
            "served_by": served,
            "notice": app.notice(),
            "top": labels,
            "requests": stream,
        }));
        return Ok(());
    }
    crate::out!(
        "served by {served}: top-{} of {}",
        top.len(),
        args.image.display()
    );
    for (rank, (i, p)) in top.iter().enumerate() {
        let cat = if labels::CAT_CLASSES.contains(i) {
            "  (a cat class)"
        } else {
            ""
        };
        crate::out!(
            "  {}. {:>6.2}%  [{i:>3}] {}{cat}",
            rank + 1,
            p * 100.0,
            names.get(*i).copied().unwrap_or("?")
        );
    }
    Ok(())
}
