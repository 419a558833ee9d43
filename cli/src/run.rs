//! `run`: any prepared model, tensors from and to safetensors files.
//!
//! ```text
//! $ coreml-bridge run --model weights/minilm/model.safetensors --architecture bert \
//!       --input tokens.safetensors --output embedding.safetensors
//! served by candle: wrote embedding f32[2, 384] to embedding.safetensors
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use coreml_bridge::inference::{Deadline, InferenceEngine, TensorMap};
use serde_json::json;

use crate::app::{self, App};
use crate::Global;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Candle artifact (.safetensors) or a Core ML one (.mlpackage, .mlmodelc).
    #[arg(long)]
    pub model: PathBuf,
    /// Architecture of a Candle artifact (bert, distilbert, efficientnet-lite0, resnet50, fastvit-t8).
    #[arg(long)]
    pub architecture: String,
    /// A Core ML version of the model to try first.
    #[arg(long)]
    pub coreml_model: Option<PathBuf>,
    /// Name in telemetry [default: the file stem].
    #[arg(long)]
    pub name: Option<String>,
    /// Input tensors (safetensors).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the output tensors (safetensors).
    #[arg(long)]
    pub output: PathBuf,
    /// Deadline of the request in milliseconds. A Core ML model the command
    /// names is waited for (while the helper compiles and loads it) at most
    /// half of it; past that the CPU answers.
    #[arg(long, default_value_t = 60_000)]
    pub deadline_ms: u64,
}

pub async fn run(global: Global, args: RunArgs) -> Result<(), String> {
    let inputs = TensorMap::read_safetensors(&args.input).map_err(|e| {
        app::tensor_file_error(
            &args.input,
            &e,
            "--input takes the model's input tensors as a safetensors file",
        )
    })?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.model
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    });
    let named: Vec<&std::path::Path> = [Some(args.model.as_path()), args.coreml_model.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let mut app = App::start(global, &named).await?;
    // A one-shot command: a Core ML model it names answers once ready (the
    // helper compiles it first), not the CPU meanwhile; but the request keeps
    // its deadline, so the wait takes at most half of it and the CPU has the rest.
    let half = Duration::from_millis(args.deadline_ms / 2);
    app.coreml_wait = Some(crate::embed::COREML_WAIT.min(half));
    let model = app
        .prepare(
            &name,
            &args.model,
            &args.architecture,
            args.coreml_model.as_deref(),
            None,
        )
        .await?;
    let out = app
        .router
        .infer(
            &model,
            inputs,
            Deadline::after(Duration::from_millis(args.deadline_ms)),
        )
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    out.write_safetensors(&args.output).map_err(|e| {
        app::tensor_file_error(&args.output, &e, "--output must be a writable file path")
    })?;
    let served = app.served_by(&name);
    app.save_telemetry("run");
    let tensors: Vec<_> = out
        .iter()
        .map(|(n, t)| json!({ "name": n, "dtype": t.dtype().to_string(), "shape": t.shape() }))
        .collect();
    if app.global.json {
        app::print_json(&json!({
            "model": name,
            "served_by": served,
            "notice": app.notice(),
            "output": args.output,
            "tensors": tensors,
        }));
    } else {
        for (n, t) in out.iter() {
            crate::out!(
                "served by {served}: wrote {n} {}{:?} to {}",
                t.dtype(),
                t.shape(),
                args.output.display()
            );
        }
    }
    Ok(())
}
