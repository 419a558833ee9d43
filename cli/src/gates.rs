//! `gates`: gates A–D against the helper `COREML_HELPER` names, through the
//! compiled-model cache, as one table (or `--json`). Exit status 1 when a
//! gate fails; `NOT MEASURABLE` (no Core ML here) is not a failure, and
//! never a pass.
//!
//! ```text
//! $ COREML_HELPER=target/debug/coreml-test-helper coreml-bridge gates --cycles 1000 --soak 10
//! GATE  RESULT          CHECK                                  MEASURED    ...
//! A     PASS            cycles                                 1000        ...
//! C     NOT MEASURABLE  speed-up over CPU                      -           ...: no Core ML on this machine (...)
//! ```
//!
//! A package gets its inputs and Candle's output on them as gate B's reference:
//!
//! ```text
//! $ W=$COREML_BRIDGE_CACHE/weights/all-minilm-l6-v2
//! $ coreml-bridge gates --model $W/mil-builder.mlpackage --inputs $W/mil-builder.example.safetensors \
//!       --candle $W/model.safetensors --architecture bert --output embedding --cycles 20 --soak 10 --sla-ms 5000
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use coreml_bridge::cache::ModelCache;
use coreml_bridge::candle::CandleEngine;
use coreml_bridge::gates::subject::PackageReference;
use coreml_bridge::gates::subject::{HelperSubject, SubjectModel};
use coreml_bridge::gates::{run_all, table, GateConfig, Verdict};
use coreml_bridge::inference::{
    ComputeUnits, Deadline, InferenceEngine, ModelArtifact, PrepareOptions, TensorMap,
};
use coreml_bridge::supervisor::{Supervisor, SupervisorConfig};

use crate::app::{self, cache_root};
use crate::{out, Global};

#[derive(Debug, Args)]
pub struct GatesArgs {
    /// Gate A: compile+load cycles (the plan's 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub cycles: u64,
    /// Gate B: inferences for the p99 and the parity.
    #[arg(long, default_value_t = 2_000)]
    pub inferences: u64,
    /// Gate D: soak length in seconds (one hour by default).
    #[arg(long, default_value_t = 3600.0)]
    pub soak: f64,
    /// Gate B: the model's p99 SLA in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    pub sla_ms: f64,
    /// A `.mlpackage` to gate instead of the diagnostic `add` model (needs a
    /// helper that compiles packages).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// With `--model`: the package's inputs (a safetensors file, the package's names and dtypes).
    #[arg(long, requires = "model")]
    pub inputs: Option<PathBuf>,
    /// With `--inputs`: Candle weights of the same model; their output on the inputs is gate
    /// B's parity reference.
    #[arg(long, requires = "inputs")]
    pub candle: Option<PathBuf>,
    /// The Candle architecture of `--candle`.
    #[arg(long, default_value = "bert")]
    pub architecture: String,
    /// The output compared (the package's and Candle's name).
    #[arg(long, default_value = "embedding")]
    pub output: String,
    /// Gate B's parity budget (L∞).
    #[arg(long, default_value_t = 1e-4)]
    pub parity: f32,
}

/// The package's inputs and Candle's output on them.
async fn reference(args: &GatesArgs) -> Result<Option<PackageReference>, String> {
    let (Some(inputs), Some(weights)) = (&args.inputs, &args.candle) else {
        return Ok(None);
    };
    let given =
        TensorMap::read_safetensors(inputs).map_err(|e| format!("{}: {e}", inputs.display()))?;
    let engine = CandleEngine::new();
    let artifact =
        ModelArtifact::from_path(weights).map_err(|e| format!("{}: {e}", weights.display()))?;
    let options = PrepareOptions::new(ComputeUnits::CpuOnly)
        .with_architecture(&args.architecture)
        .with_max_batch(1);
    let model = engine
        .prepare(&artifact, &options)
        .await
        .map_err(|e| format!("Candle cannot prepare {}: {e}", weights.display()))?;
    let mut cast = TensorMap::new();
    for spec in &model.schema.inputs {
        let t = given
            .get(&spec.name)
            .ok_or_else(|| format!("{} has no input `{}`", inputs.display(), spec.name))?;
        cast.insert(
            spec.name.clone(),
            t.cast(spec.dtype).map_err(|e| e.to_string())?,
        );
    }
    let out = engine
        .infer(&model, cast, Deadline::after(Duration::from_secs(600)))
        .await
        .map_err(|e| format!("Candle: {e}"))?;
    let expected = out
        .f32(&args.output)
        .map_err(|e| format!("Candle's output `{}`: {e}", args.output))?
        .to_vec();
    let _ = engine.unload(&model).await;
    Ok(Some(PackageReference {
        inputs: given
            .iter()
            .map(|(n, t)| (n.to_owned(), t.clone()))
            .collect(),
        output: args.output.clone(),
        expected,
        budget: args.parity,
    }))
}

pub async fn run(global: Global, args: GatesArgs) -> Result<(), String> {
    let bad = |what: &str| format!("--{what} must be a positive finite number");
    if !(args.soak.is_finite() && args.soak > 0.0) {
        return Err(bad("soak"));
    }
    if !(args.sla_ms.is_finite() && args.sla_ms > 0.0) {
        return Err(bad("sla-ms"));
    }
    let mut cfg = SupervisorConfig::from_env().map_err(|_| {
        "no helper: set COREML_HELPER to the helper binary (the test helper serves the diagnostic model)".to_owned()
    })?;
    let dir = cache_root().join("compiled");
    let cache = ModelCache::open(&dir)
        .map_err(|e| app::file_error(&dir, e, "check the directory is writable"))?;
    cfg.staging_dir = cache.staging_dir().map_err(|e| e.to_string())?;
    cfg.sandbox = cfg.sandbox.read_write(cache.root());
    let reference = reference(&args).await?;
    let model = match args.model {
        Some(p) => {
            cfg.sandbox = cfg.sandbox.read_only(p.parent().unwrap_or(p.as_path()));
            SubjectModel::Package(p)
        }
        None => SubjectModel::DiagAdd { c: 2.0 },
    };
    let sup = Supervisor::start(cfg)
        .await
        .map_err(|e| format!("starting the helper: {e}"))?;
    let mut subject = HelperSubject::new(
        sup.clone(),
        cache,
        model,
        Duration::from_secs_f64(args.sla_ms / 1000.0),
    );
    if let Some(r) = reference {
        subject = subject.with_reference(r);
    }
    let gcfg = GateConfig {
        cycles: args.cycles,
        inferences: args.inferences,
        soak: Duration::from_secs_f64(args.soak),
        ..GateConfig::default()
    };
    let reports = run_all(&subject, &gcfg).await;
    // Named while the helper still runs (its Hello says what it is).
    let line = subject_line(&subject);
    sup.shutdown().await;
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| matches!(r.verdict(), Verdict::Fail { .. }))
        .map(|r| r.gate.to_string())
        .collect();
    if global.json {
        app::print_json(
            &serde_json::json!({ "subject": line, "gates": reports, "failed": failed }),
        );
    } else {
        out!("{line}");
        out!("{}", table(&reports));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("gate {} failed", failed.join(", ")))
    }
}

fn subject_line(s: &HelperSubject) -> String {
    use coreml_bridge::gates::subject::GateSubject;
    s.describe()
}
