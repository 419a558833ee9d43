//! `mil-bench`: the MIL executor against the hand-written Candle model (and
//! PyTorch, from `mil/scripts/torch_bench.py`'s JSON) on the golden inputs of
//! `make models`, plus each package's load time and memory.
//!
//! ```text
//! cargo run --release -p coreml-mil --bin mil-bench -- --runs 10 --torch-json torch.json
//! ```
//!
//! Prints markdown tables for docs/benchmarks.md. Memory is read from
//! `/proc/self/status` (Linux): RSS split into anonymous and file-backed
//! pages, so a mapped `weight.bin` counted next to its decoded copy shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coreml_candle::CandleEngine;
use coreml_inference::{
    Deadline, InferenceEngine, ModelArtifact, PrepareOptions, PreparedModel, TensorMap,
};
use coreml_mil::MilEngine;

fn cache() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/coreml-bridge")
        })
}

/// (RssAnon, RssFile) in MiB.
fn rss() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (kib("RssAnon:"), kib("RssFile:"))
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

fn feed(model: &PreparedModel, inputs: &TensorMap) -> Result<TensorMap, String> {
    let mut m = TensorMap::new();
    for s in &model.schema.inputs {
        let t = inputs
            .get(&s.name)
            .ok_or_else(|| format!("no golden input {}", s.name))?;
        m.insert(s.name.clone(), t.cast(s.dtype).map_err(|e| e.to_string())?);
    }
    Ok(m)
}

/// p50 and p99 of `runs` inferences (after one warm-up).
async fn time(
    engine: &dyn InferenceEngine,
    model: &PreparedModel,
    inputs: &TensorMap,
    runs: usize,
) -> Result<(Duration, Duration), String> {
    let mut times = vec![];
    for i in 0..=runs {
        let x = feed(model, inputs)?;
        let t = Instant::now();
        engine
            .infer(model, x, Deadline::after(Duration::from_secs(3600)))
            .await
            .map_err(|e| e.to_string())?;
        if i > 0 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let runs: usize = opt("--runs").and_then(|v| v.parse().ok()).unwrap_or(10);
    let only: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && args[i - 1] == "--model")
        .map(|(_, v)| v.clone())
        .collect();
    let variants: Vec<String> = opt("--variants")
        .unwrap_or_else(|| "fp32".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let torch: BTreeMap<String, f64> = opt("--torch-json")
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let root = cache().join("models");
    let mut models: Vec<String> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("golden.json").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    models.sort();
    models.retain(|m| only.is_empty() || only.contains(m));
    if models.is_empty() {
        eprintln!("no models under {}: run `make models`", root.display());
        std::process::exit(1);
    }
    let mil = MilEngine::new().without_warm_up();
    let candle = CandleEngine::new();
    println!("| model | variant | executor p50 / p99 ms | Candle p50 / p99 ms | PyTorch p50 ms | package MiB | load s | RSS anon +MiB | RSS file +MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for m in &models {
        let dir = root.join(m);
        let golden: serde_json::Value = std::fs::read(dir.join("golden.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let inputs = match TensorMap::read_safetensors(dir.join("golden_inputs.safetensors")) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{m}: {e}");
                continue;
            }
        };
        // The hand-written model once per model (FP32).
        let mut candle_cell = "-".to_string();
        if let (Some(arch), Some(w)) = (
            golden["candle"]["architecture"].as_str(),
            golden["candle"]["weights"].as_str(),
        ) {
            let art = ModelArtifact::from_path(cache().join("weights").join(w));
            let opts = PrepareOptions::default()
                .with_architecture(arch)
                .with_max_batch(1);
            if let Ok(art) = art {
                match candle.prepare(&art, &opts).await {
                    Ok(cm) => {
                        candle_cell = match time(&candle, &cm, &inputs, runs).await {
                            Ok((p50, p99)) => format!("{} / {}", ms(p50), ms(p99)),
                            Err(e) => format!("failed: {e}"),
                        };
                        let _ = candle.unload(&cm).await;
                    }
                    Err(e) => candle_cell = format!("failed: {e}"),
                }
            }
        }
        for v in &variants {
            let pkg = dir.join(format!("{v}.mlpackage"));
            if !pkg.is_dir() {
                continue;
            }
            let Ok(art) = ModelArtifact::from_path(&pkg) else {
                continue;
            };
            let before = rss();
            let t = Instant::now();
            let model = match mil.prepare(&art, &PrepareOptions::default()).await {
                Ok(x) => x,
                Err(e) => {
                    println!("| {m} | {v} | failed: {e} | | | | | | |");
                    continue;
                }
            };
            let load = t.elapsed();
            let after = rss();
            let cell = match time(&mil, &model, &inputs, runs).await {
                Ok((p50, p99)) => format!("{} / {}", ms(p50), ms(p99)),
                Err(e) => format!("failed: {e}"),
            };
            let _ = mil.unload(&model).await;
            let torch_cell = torch
                .get(&format!("{m}/fp32"))
                .map_or("-".into(), |v| format!("{v:.1}"));
            println!(
                "| {m} | {v} | {cell} | {} | {} | {:.1} | {:.2} | {:.0} | {:.0} |",
                if v == "fp32" { &candle_cell } else { "-" },
                if v == "fp32" {
                    torch_cell.as_str()
                } else {
                    "-"
                },
                dir_size(&pkg) as f64 / (1u64 << 20) as f64,
                load.as_secs_f64(),
                after.0 - before.0,
                after.1 - before.1,
            );
        }
    }
}
