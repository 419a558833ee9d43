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
}

pub async fn run(global: Global, args: ClassifyArgs) -> Result<(), String> {
    let weights = args
        .weights
        .clone()
        .unwrap_or_else(|| app::weights_dir(MODEL).join("model.safetensors"));
    let pixels = ImagePreprocessor::efficientnet_lite()
        .tensor_from_files(&[&args.image])
        .map_err(|e| app::tensor_file_error(&args.image, &e, "give a PNG or JPEG image"))?;
    let app = App::start(global).await?;
    let model = app
        .prepare(
            MODEL,
            &weights,
            MODEL,
            args.coreml_model.as_deref(),
            Some(1),
        )
        .await?;
    let out = app
        .router
        .infer(
            &model,
            TensorMap::new().with("pixel_values", pixels),
            Deadline::after(Duration::from_secs(60)),
        )
        .await
        .map_err(|e| format!("classifying: {e}"))?;
    let logits = out.f32("logits").map_err(|e| e.to_string())?;
    let names = labels::imagenet();
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
