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

use std::time::Duration;

use clap::Args;
use coreml_bridge::cache::ModelCache;
use coreml_bridge::gates::subject::{HelperSubject, SubjectModel};
use coreml_bridge::gates::{run_all, table, GateConfig, Verdict};
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
    pub model: Option<std::path::PathBuf>,
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
    let subject = HelperSubject::new(
        sup.clone(),
        cache,
        model,
        Duration::from_secs_f64(args.sla_ms / 1000.0),
    );
    let gcfg = GateConfig {
        cycles: args.cycles,
        inferences: args.inferences,
        soak: Duration::from_secs_f64(args.soak),
        ..GateConfig::default()
    };
    let reports = run_all(&subject, &gcfg).await;
    sup.shutdown().await;
    if global.json {
        app::print_json(
            &serde_json::json!({ "subject": subject_line(&subject), "gates": reports }),
        );
    } else {
        out!("{}", subject_line(&subject));
        out!("{}", table(&reports));
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| matches!(r.verdict(), Verdict::Fail { .. }))
        .map(|r| r.gate.to_string())
        .collect();
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
