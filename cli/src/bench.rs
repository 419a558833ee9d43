//! `bench`: latency percentiles of a model on each available engine —
//! Candle directly, and the router (which runs Core ML where it can).
//!
//! ```text
//! $ coreml-bridge bench minilm --iterations 30
//! ENGINE          N   P50     P95     P99     MEAN
//! candle          30  9.1ms   9.8ms   10.4ms  9.2ms
//! router->candle  30  9.3ms   10.1ms  10.7ms  9.4ms
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use coreml_bridge::candle::text::TextTokenizer;
use coreml_bridge::inference::{
    Deadline, InferenceEngine, ModelArtifact, PrepareOptions, PreparedModel, Tensor, TensorMap,
};
use coreml_bridge::telemetry::latency::{human_us, StageHistogram};
use coreml_bridge::telemetry::table::TextTable;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::app::{self, App};
use crate::Global;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchModel {
    /// all-MiniLM-L6-v2 at sequence length 128.
    Minilm,
    /// EfficientNet-Lite0 at 224×224.
    EfficientnetLite0,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which model.
    #[arg(value_enum)]
    pub model: BenchModel,
    /// Timed iterations per engine.
    #[arg(long, default_value_t = 30)]
    pub iterations: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Weights directory or file [default: the cache's].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// A Core ML version of the model for the router to try first.
    #[arg(long)]
    pub coreml_model: Option<PathBuf>,
}

fn inputs_for(model: BenchModel, weights: &std::path::Path) -> Result<TensorMap, String> {
    match model {
        BenchModel::Minilm => {
            let file = weights.join("tokenizer.json");
            let tok = TextTokenizer::from_file(&file, 128).map_err(|e| {
                if file.exists() {
                    e.to_string()
                } else {
                    app::file_error(&file, "no such file", app::missing_file_advice(&file))
                }
            })?;
            let long = "the quick brown fox jumps over the lazy dog ".repeat(20);
            tok.encode_batch(&[long.as_str()])
                .map_err(|e| e.to_string())
        }
        BenchModel::EfficientnetLite0 => {
            let n = 3 * 224 * 224;
            let px: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
                .collect();
            Ok(TensorMap::new().with(
                "pixel_values",
                Tensor::new(vec![1, 3, 224, 224], px).map_err(|e| e.to_string())?,
            ))
        }
    }
}

async fn time(
    global: &Global,
    label: &str,
    engine: &dyn InferenceEngine,
    model: &PreparedModel,
    inputs: &TensorMap,
    args: &BenchArgs,
) -> Result<StageHistogram, String> {
    let pb = if global.json {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::new((args.warmup + args.iterations) as u64);
        pb.set_style(
            ProgressStyle::with_template("{msg:16} {bar:30} {pos}/{len}").expect("static template"),
        );
        pb.set_message(label.to_owned());
        pb
    };
    let mut h = StageHistogram::new();
    for i in 0..args.warmup + args.iterations {
        let t = Instant::now();
        engine
            .infer(
                model,
                inputs.clone(),
                Deadline::after(Duration::from_secs(60)),
            )
            .await
            .map_err(|e| format!("{label}: {e}"))?;
        if i >= args.warmup {
            h.record(t.elapsed());
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(h)
}

pub async fn run(global: Global, args: BenchArgs) -> Result<(), String> {
    let (name, arch, file) = match args.model {
        BenchModel::Minilm => ("all-minilm-l6-v2", "bert", "model.safetensors"),
        BenchModel::EfficientnetLite0 => (
            "efficientnet-lite0",
            "efficientnet-lite0",
            "model.safetensors",
        ),
    };
    let dir = args
        .weights
        .clone()
        .unwrap_or_else(|| app::weights_dir(name));
    let (dir, path) = if dir.is_file() {
        (dir.parent().unwrap_or(&dir).to_owned(), dir.clone())
    } else {
        (dir.clone(), dir.join(file))
    };
    let inputs = inputs_for(args.model, &dir)?;

    let candle: Arc<dyn InferenceEngine> = app::candle_engine();
    let artifact = ModelArtifact::from_path(&path).map_err(|e| app::artifact_error(&path, &e))?;
    if !path.exists() {
        return Err(app::file_error(
            &path,
            "no such file",
            app::missing_file_advice(&path),
        ));
    }
    let direct = candle
        .prepare(
            &artifact,
            &PrepareOptions::new(global.compute_units)
                .with_architecture(arch)
                .with_model_name(name),
        )
        .await
        .map_err(|e| format!("candle: {e}"))?;
    let mut rows = vec![(
        "candle".to_owned(),
        time(&global, "candle", candle.as_ref(), &direct, &inputs, &args).await?,
    )];

    let named: Vec<&std::path::Path> = [Some(path.as_path()), args.coreml_model.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let app = App::start(global.clone(), &named).await?;
    let routed = app
        .prepare(name, &path, arch, args.coreml_model.as_deref(), Some(1))
        .await?;
    let h = time(&global, "router", &app.router, &routed, &inputs, &args).await?;
    rows.push((format!("router->{}", app.served_by(name)), h));
    app.save_telemetry("bench");

    if global.json {
        let engines: Vec<_> = rows
            .iter()
            .map(|(e, h)| json!({ "engine": e, "latency_us": h.summary() }))
            .collect();
        app::print_json(
            &json!({ "model": name, "notice": app.notice(), "iterations": args.iterations, "engines": engines }),
        );
        return Ok(());
    }
    let mut t = TextTable::new(&["ENGINE", "N", "P50", "P95", "P99", "MEAN"]);
    for (e, h) in &rows {
        let s = h.summary();
        let mean = s.sum_us.checked_div(s.count).unwrap_or(0);
        t.row(vec![
            e.clone(),
            s.count.to_string(),
            human_us(s.p50_us),
            human_us(s.p95_us),
            human_us(s.p99_us),
            human_us(mean),
        ]);
    }
    crate::out!(
        "{name}: {} iterations after {} warm-up",
        args.iterations,
        args.warmup
    );
    crate::out_part!("{}", t.render(""));
    Ok(())
}
