//! `parity`: every engine that can run here, on the golden inputs that
//! `make models` wrote, against the PyTorch FP32 outputs: one table of L∞
//! and RMSE with the plan's budgets. Exits non-zero when a result is over
//! its budget or an engine fails; engines that cannot run here are listed as
//! not run, with why.
//!
//! ```text
//! $ coreml-bridge parity
//! MODEL             ENGINE        VARIANT  OUTPUT     L∞        RMSE      BUDGET          RESULT
//! resnet50          candle        fp32     logits     9.5e-6    2.1e-6    L∞ ≤ 1e-4       ok
//! resnet50          coreml        6 pkgs   -          -         -         -               not run: Core ML needs macOS (this is linux x86_64)
//! ```
//!
//! Inputs: `$COREML_BRIDGE_CACHE/models/<model>/golden.json` (which engine
//! architecture and weights, the budgets, the variants built) with
//! `golden_inputs.safetensors` and `golden_outputs.safetensors` beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use coreml_bridge::candle::CandleEngine;
use coreml_bridge::inference::{
    DType, Deadline, InferenceEngine, ModelArtifact, PrepareOptions, Tensor, TensorMap,
};
use coreml_bridge::telemetry::table::TextTable;
use coreml_mil::MilEngine;
use coreml_mlpackage::description::FeatureKind;
use serde::Deserialize;
use serde_json::json;

use crate::app;
use crate::Global;

/// Candle in FP32 against PyTorch FP32 (the plan's budget).
pub const CANDLE_FP32_LINF: f64 = 1e-4;

/// The MIL executor's rows.
const MIL: &str = "mil";

#[derive(Debug, Args)]
pub struct ParityArgs {
    /// Where `make models` put the packages and golden files
    /// [default: $COREML_BRIDGE_CACHE/models].
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Only this model (repeatable), e.g. resnet50, all_minilm_l6_v2.
    #[arg(long = "model")]
    pub models: Vec<String>,
}

/// `golden.json`, as convert.py writes it.
#[derive(Debug, Deserialize)]
struct Golden {
    model: String,
    #[serde(default)]
    source_weights_sha256: Option<String>,
    #[serde(default)]
    candle: Option<CandleSide>,
    #[serde(default)]
    variants: serde_json::Map<String, serde_json::Value>,
    /// Budget name -> {linf, rmse}.
    #[serde(default)]
    budgets: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct CandleSide {
    architecture: String,
    /// Relative to `$COREML_BRIDGE_CACHE/weights`.
    weights: String,
    /// Candle output name -> golden output name.
    outputs: std::collections::BTreeMap<String, String>,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub model: String,
    pub engine: String,
    pub variant: String,
    pub output: String,
    pub metrics: Option<Metrics>,
    pub budget: Option<Budget>,
    pub result: Verdict,
}

/// What happened to a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Ok,
    OverBudget,
    Failed(String),
    NotRun(String),
}

impl Verdict {
    fn text(&self) -> String {
        match self {
            Verdict::Ok => "ok".into(),
            Verdict::OverBudget => "OVER BUDGET".into(),
            Verdict::Failed(why) => format!("FAILED: {why}"),
            Verdict::NotRun(why) => format!("not run: {why}"),
        }
    }

    /// Whether the command should exit non-zero.
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::OverBudget | Verdict::Failed(_))
    }
}

/// L∞ and RMSE of `got` against `want`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub linf: f64,
    pub rmse: f64,
}

/// Upper bounds; `None` is not gated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub linf: Option<f64>,
    pub rmse: Option<f64>,
}

impl Budget {
    /// Whether `m` is within the budget (a NaN never is).
    pub fn admits(&self, m: &Metrics) -> bool {
        let ok = |v: f64, b: Option<f64>| b.is_none_or(|b| v <= b);
        !m.linf.is_nan() && !m.rmse.is_nan() && ok(m.linf, self.linf) && ok(m.rmse, self.rmse)
    }

    fn text(&self) -> String {
        let mut parts = vec![];
        if let Some(l) = self.linf {
            parts.push(format!("L∞ ≤ {l:.0e}"));
        }
        if let Some(r) = self.rmse {
            parts.push(format!("RMSE ≤ {r:.0e}"));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }
}

/// L∞ and RMSE; an error when the shapes differ or a tensor is not numeric.
pub fn compare(got: &Tensor, want: &Tensor) -> Result<Metrics, String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, reference {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let g = got.to_f64_vec().map_err(|e| e.to_string())?;
    let w = want.to_f64_vec().map_err(|e| e.to_string())?;
    let (mut linf, mut sq) = (0.0f64, 0.0f64);
    for (a, b) in g.iter().zip(&w) {
        let d = (a - b).abs();
        // NaN propagates: max() would drop it.
        linf = if d.is_nan() || linf.is_nan() {
            f64::NAN
        } else {
            linf.max(d)
        };
        sq += d * d;
    }
    let n = g.len().max(1) as f64;
    Ok(Metrics {
        linf,
        rmse: (sq / n).sqrt(),
    })
}

fn models_dir(args: &ParityArgs) -> PathBuf {
    args.models_dir
        .clone()
        .unwrap_or_else(|| app::cache_root().join("models"))
}

fn load_goldens(dir: &Path, only: &[String]) -> Result<Vec<(PathBuf, Golden)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "{}: {e}: run `make models` first (it writes the golden files)",
            dir.display()
        )
    })?;
    let mut out = vec![];
    for entry in entries.flatten() {
        let path = entry.path().join("golden.json");
        if !path.is_file() {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let g: Golden =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if only.is_empty() || only.contains(&g.model) {
            out.push((entry.path(), g));
        }
    }
    out.sort_by(|a, b| a.1.model.cmp(&b.1.model));
    if out.is_empty() {
        return Err(if only.is_empty() {
            format!(
                "no golden files under {}: run `make models` first",
                dir.display()
            )
        } else {
            format!("no golden files for {only:?} under {}", dir.display())
        });
    }
    for name in only {
        if !out.iter().any(|(_, g)| &g.model == name) {
            return Err(format!(
                "no golden files for {name} under {}",
                dir.display()
            ));
        }
    }
    Ok(out)
}

fn row(model: &str, engine: &str, variant: &str, output: &str, result: Verdict) -> Row {
    Row {
        model: model.into(),
        engine: engine.into(),
        variant: variant.into(),
        output: output.into(),
        metrics: None,
        budget: None,
        result,
    }
}

/// Candle on the golden inputs, one row per compared output.
async fn candle_rows(
    engine: &Arc<dyn InferenceEngine>,
    units: coreml_bridge::inference::ComputeUnits,
    dir: &Path,
    g: &Golden,
    c: &CandleSide,
) -> Vec<Row> {
    let fail = |why: String| vec![row(&g.model, "candle", "fp32", "-", Verdict::Failed(why))];
    let weights = app::cache_root().join("weights").join(&c.weights);
    if !weights.is_file() {
        return vec![row(
            &g.model,
            "candle",
            "fp32",
            "-",
            Verdict::NotRun(format!(
                "{} is missing: run `make assets`",
                weights.display()
            )),
        )];
    }
    let artifact = match ModelArtifact::from_path(&weights) {
        Ok(a) => a,
        Err(e) => return fail(e.to_string()),
    };
    if let Some(want) = &g.source_weights_sha256 {
        match artifact.compute_sha256() {
            Ok(d) if &d.to_string() == want => {}
            Ok(d) => {
                return fail(format!(
                "{} has sha256 {d}, the packages were converted from {want}: rerun `make models`",
                weights.display()
            ))
            }
            Err(e) => return fail(e.to_string()),
        }
    }
    let read = |name: &str| {
        TensorMap::read_safetensors(dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let (inputs, golden) = match (
        read("golden_inputs.safetensors"),
        read("golden_outputs.safetensors"),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let options = PrepareOptions::new(units)
        .with_architecture(&c.architecture)
        .with_model_name(&g.model)
        .with_max_batch(1);
    let model = match engine.prepare(&artifact, &options).await {
        Ok(m) => m,
        Err(e) => return fail(format!("prepare: {e}")),
    };
    // The packages take int32 token ids; cast to what the engine declares.
    let mut cast = TensorMap::new();
    for spec in &model.schema.inputs {
        match inputs.get(&spec.name).map(|t| t.cast(spec.dtype)) {
            Some(Ok(t)) => {
                cast.insert(spec.name.clone(), t);
            }
            Some(Err(e)) => return fail(format!("input {}: {e}", spec.name)),
            None => return fail(format!("golden inputs have no {}", spec.name)),
        }
    }
    let out = match engine
        .infer(&model, cast, Deadline::after(Duration::from_secs(600)))
        .await
    {
        Ok(o) => o,
        Err(e) => return fail(format!("infer: {e}")),
    };
    let _ = engine.unload(&model).await;
    let budget = Budget {
        linf: Some(CANDLE_FP32_LINF),
        rmse: None,
    };
    c.outputs
        .iter()
        .map(|(candle_name, golden_name)| {
            let mut r = row(&g.model, "candle", "fp32", candle_name, Verdict::Ok);
            r.budget = Some(budget);
            match (out.get(candle_name), golden.get(golden_name)) {
                (Some(got), Some(want)) => match compare(got, want) {
                    Ok(m) => {
                        r.result = if budget.admits(&m) {
                            Verdict::Ok
                        } else {
                            Verdict::OverBudget
                        };
                        r.metrics = Some(m);
                    }
                    Err(e) => r.result = Verdict::Failed(e),
                },
                (None, _) => r.result = Verdict::Failed(format!("candle gave no {candle_name}")),
                (_, None) => r.result = Verdict::Failed(format!("no golden {golden_name}")),
            }
            r
        })
        .collect()
}

/// The rows of one model: Candle where it has the architecture, and the
/// engines that cannot run here.
async fn model_rows(
    engine: &Arc<dyn InferenceEngine>,
    units: coreml_bridge::inference::ComputeUnits,
    dir: &Path,
    g: &Golden,
) -> Vec<Row> {
    let mut rows = match &g.candle {
        Some(c) => candle_rows(engine, units, dir, g, c).await,
        None => vec![row(
            &g.model,
            "candle",
            "fp32",
            "-",
            Verdict::NotRun("no Candle implementation of this model".into()),
        )],
    };
    let built: Vec<&String> = g
        .variants
        .iter()
        .filter(|(_, v)| matches!(v["status"].as_str(), Some("built" | "cached")))
        .map(|(k, _)| k)
        .collect();
    let pkgs = format!("{} pkgs", built.len());
    rows.push(row(
        &g.model,
        "coreml",
        &pkgs,
        "-",
        Verdict::NotRun(format!(
            "Core ML needs macOS (this is {} {})",
            std::env::consts::OS,
            std::env::consts::ARCH
        )),
    ));
    rows.extend(mil_rows(dir, g).await);
    rows
}

/// `golden.json`'s budget named `key` (`fp32`, `fp16`, `int8`, `int4`).
fn budget_of(g: &Golden, key: &str) -> Option<Budget> {
    let b = g.budgets.get(key)?;
    Some(Budget {
        linf: b["linf"].as_f64(),
        rmse: b["rmse"].as_f64(),
    })
}

/// `text` with Python's non-standard JSON numbers (`NaN`, `Infinity`,
/// `-Infinity`, which `json.dump` writes for a constant-hazard report's
/// `min`/`max`) made `null` outside strings, so that serde_json reads the rest.
fn python_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_string {
            if let Some(word) = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|w| rest.starts_with(w))
            {
                out.push_str("null");
                rest = &rest[word.len()..];
                continue;
            }
        }
        match c {
            '"' if !escaped => in_string = !in_string,
            _ => {}
        }
        escaped = in_string && c == '\\' && !escaped;
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Golden pixel values (normalised) back to what an image input of `variant`
/// receives: `p = ((x·std + mean) − bias) / scale`, from the variant's manifest.
fn image_pixels(dir: &Path, variant: &str, x: &Tensor) -> Result<Tensor, String> {
    let path = dir.join(format!("{variant}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: serde_json::Value = serde_json::from_str(&python_json(&text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let img = &m["image_input"];
    let f = |v: &serde_json::Value| v.as_f64().ok_or(format!("{}: image_input", path.display()));
    let scale = f(&img["scale"])?;
    let list = |v: &serde_json::Value, default: f64| -> Result<Vec<f64>, String> {
        match v.as_array() {
            None => Ok(vec![default; 3]),
            Some(a) => a.iter().map(f).collect(),
        }
    };
    let bias = list(&img["bias"], 0.0)?;
    let mean = list(&img["folded_in_program"]["mean"], 0.0)?;
    let std = list(&img["folded_in_program"]["std"], 1.0)?;
    let shape = x.shape().to_vec();
    let (c, hw) = (
        shape.get(1).copied().unwrap_or(1),
        shape[2..].iter().product::<usize>(),
    );
    let v = x.to_f64_vec().map_err(|e| e.to_string())?;
    let p: Vec<f32> = v
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let ch = (i / hw.max(1)) % c.max(1);
            let at = |l: &[f64], d: f64| l.get(ch).copied().unwrap_or(d);
            (((x * at(&std, 1.0) + at(&mean, 0.0)) - at(&bias, 0.0)) / scale) as f32
        })
        .collect();
    Tensor::new(shape, p).map_err(|e| e.to_string())
}

/// The MIL executor on every package built for the model, against PyTorch
/// FP32 with the variant's budget.
async fn mil_rows(dir: &Path, g: &Golden) -> Vec<Row> {
    let engine: Arc<dyn InferenceEngine> = Arc::new(MilEngine::new().without_warm_up());
    let read = |name: &str| {
        TensorMap::read_safetensors(dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let (inputs, golden) = match (
        read("golden_inputs.safetensors"),
        read("golden_outputs.safetensors"),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => {
            return vec![row(&g.model, MIL, "-", "-", Verdict::Failed(e))];
        }
    };
    let mut rows = vec![];
    for (variant, v) in &g.variants {
        if !matches!(v["status"].as_str(), Some("built" | "cached")) {
            continue;
        }
        let fail = |why: String| row(&g.model, MIL, variant, "-", Verdict::Failed(why));
        let pkg = dir.join(format!("{variant}.mlpackage"));
        if !pkg.is_dir() {
            let why = format!("{} is missing: rerun `make models`", pkg.display());
            rows.push(row(&g.model, MIL, variant, "-", Verdict::NotRun(why)));
            continue;
        }
        let artifact = match ModelArtifact::from_path(&pkg) {
            Ok(a) => a,
            Err(e) => {
                rows.push(fail(e.to_string()));
                continue;
            }
        };
        let options = PrepareOptions::default().with_model_name(format!("{}/{variant}", g.model));
        let model = match engine.prepare(&artifact, &options).await {
            Ok(m) => m,
            Err(e) => {
                rows.push(fail(format!("prepare: {e}")));
                continue;
            }
        };
        // Image inputs take pixels; the golden inputs are normalised tensors.
        let images: Vec<String> = match coreml_mlpackage::Package::open(&pkg) {
            Ok(p) => p
                .description
                .inputs
                .iter()
                .filter(|f| matches!(f.kind, FeatureKind::Image(_)))
                .map(|f| f.name.clone())
                .collect(),
            Err(e) => {
                rows.push(fail(e.to_string()));
                continue;
            }
        };
        let mut feed = TensorMap::new();
        let mut missing = None;
        for spec in &model.schema.inputs {
            let t = match inputs.get(&spec.name) {
                None => Err(format!("golden inputs have no {}", spec.name)),
                Some(t) if images.contains(&spec.name) => image_pixels(dir, variant, t),
                Some(t) => Ok(t.clone()),
            }
            .and_then(|t| {
                t.cast(spec.dtype)
                    .map_err(|e| format!("input {}: {e}", spec.name))
            });
            match t {
                Ok(t) => {
                    feed.insert(spec.name.clone(), t);
                }
                Err(e) => missing = Some(e),
            }
        }
        if let Some(e) = missing {
            rows.push(fail(e));
            let _ = engine.unload(&model).await;
            continue;
        }
        let out = engine
            .infer(&model, feed, Deadline::after(Duration::from_secs(600)))
            .await;
        let _ = engine.unload(&model).await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                rows.push(fail(format!("infer: {e}")));
                continue;
            }
        };
        let budget = v["budget"].as_str().and_then(|k| budget_of(g, k));
        for spec in &model.schema.outputs {
            let mut r = row(&g.model, MIL, variant, &spec.name, Verdict::Ok);
            r.budget = budget;
            match (out.get(&spec.name), golden.get(&spec.name)) {
                (Some(got), Some(want)) => {
                    match compare(&got.cast(DType::F32).unwrap_or_else(|_| got.clone()), want) {
                        Ok(m) => {
                            r.result = if budget.is_none_or(|b| b.admits(&m)) {
                                Verdict::Ok
                            } else {
                                Verdict::OverBudget
                            };
                            r.metrics = Some(m);
                        }
                        Err(e) => r.result = Verdict::Failed(e),
                    }
                }
                (None, _) => r.result = Verdict::Failed(format!("no output {}", spec.name)),
                (_, None) => continue,
            }
            rows.push(r);
        }
    }
    rows
}

pub async fn run(global: Global, args: ParityArgs) -> Result<(), String> {
    let dir = models_dir(&args);
    let goldens = load_goldens(&dir, &args.models)?;
    let engine: Arc<dyn InferenceEngine> = Arc::new(CandleEngine::new());
    let mut rows = vec![];
    for (path, g) in &goldens {
        let spinner = app::spinner(&global, &format!("parity {}", g.model));
        rows.extend(model_rows(&engine, global.compute_units, path, g).await);
        spinner.finish_and_clear();
    }
    let failures = rows.iter().filter(|r| r.result.is_failure()).count();
    if global.json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "model": r.model, "engine": r.engine, "variant": r.variant, "output": r.output,
                    "linf": r.metrics.map(|m| m.linf), "rmse": r.metrics.map(|m| m.rmse),
                    "budget": r.budget.map(|b| json!({"linf": b.linf, "rmse": b.rmse})),
                    "result": r.result.text(),
                })
            })
            .collect();
        app::print_json(&json!({ "models_dir": dir, "rows": list, "failures": failures }));
    } else {
        crate::out_part!("{}", render(&rows));
    }
    if failures > 0 {
        return Err(format!(
            "parity: {failures} result(s) over budget or failed"
        ));
    }
    Ok(())
}

/// The table as text.
pub fn render(rows: &[Row]) -> String {
    let mut t = TextTable::new(&[
        "MODEL", "ENGINE", "VARIANT", "OUTPUT", "L∞", "RMSE", "BUDGET", "RESULT",
    ]);
    let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2e}"));
    for r in rows {
        t.row(vec![
            r.model.clone(),
            r.engine.clone(),
            r.variant.clone(),
            r.output.clone(),
            num(r.metrics.map(|m| m.linf)),
            num(r.metrics.map(|m| m.rmse)),
            r.budget.map_or("-".into(), |b| b.text()),
            r.result.text(),
        ]);
    }
    t.render("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(vec![v.len()], v.to_vec()).unwrap()
    }

    #[test]
    fn python_json_numbers_become_null_outside_strings() {
        let text = r#"{"min": -Infinity, "max": [Infinity, NaN], "note": "NaN \" -Infinity", "scale": 1.5}"#;
        assert!(serde_json::from_str::<serde_json::Value>(text).is_err());
        let v: serde_json::Value = serde_json::from_str(&python_json(text)).unwrap();
        assert!(v["min"].is_null() && v["max"][0].is_null() && v["max"][1].is_null());
        assert_eq!(v["note"], "NaN \" -Infinity");
        assert_eq!(v["scale"], 1.5);
    }

    #[test]
    fn metrics_are_linf_and_rmse() {
        let m = compare(&t(&[1.0, 2.0, 3.0, 4.0]), &t(&[1.0, 2.5, 3.0, 3.0])).unwrap();
        assert_eq!(m.linf, 1.0);
        assert!((m.rmse - (1.25f64 / 4.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_nan_is_over_any_budget() {
        let m = compare(&t(&[f32::NAN, 0.0]), &t(&[0.0, 0.0])).unwrap();
        assert!(m.linf.is_nan());
        let b = Budget {
            linf: Some(1.0),
            rmse: None,
        };
        assert!(!b.admits(&m));
    }

    #[test]
    fn budgets_gate_both_metrics() {
        let fp16 = Budget {
            linf: Some(1e-2),
            rmse: Some(1e-3),
        };
        assert!(fp16.admits(&Metrics {
            linf: 9e-3,
            rmse: 9e-4
        }));
        assert!(!fp16.admits(&Metrics {
            linf: 2e-2,
            rmse: 9e-4
        }));
        assert!(!fp16.admits(&Metrics {
            linf: 9e-3,
            rmse: 2e-3
        }));
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let e = compare(&t(&[1.0, 2.0]), &t(&[1.0, 2.0, 3.0])).unwrap_err();
        assert!(e.contains("shape"), "{e}");
    }

    #[test]
    fn missing_models_dir_says_what_to_run() {
        let dir = std::env::temp_dir().join("coreml-bridge-parity-no-such-dir");
        let e = load_goldens(&dir, &[]).unwrap_err();
        assert!(e.contains("make models"), "{e}");
    }
}
