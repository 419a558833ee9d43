//! What every command shares: the router (Core ML through the helper when
//! it can, Candle always), where assets live, progress spinners, the
//! one-line notice when Candle serves alone, and saving the telemetry for
//! `report`.
//!
//! ```text
//! $ coreml-bridge embed "a cat" "a dog"
//! note: coreml unavailable (no Core ML on linux x86_64 and no helper binary (COREML_HELPER is unset)): candle serves every model
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coreml_bridge::candle::CandleEngine;
use coreml_bridge::inference::chain::EngineChain;
use coreml_bridge::inference::{
    ArtifactError, ComputeUnits, InferenceEngine, ModelArtifact, PrepareOptions, PreparedModel,
    TensorError,
};
use coreml_bridge::router::{
    Router, HINT_CANDLE_ARTIFACT, HINT_COREML_ARTIFACT, HINT_WAIT_FOR_COREML,
};
use coreml_bridge::setup::{router_from_env, router_with_helper, RouterSetup};
use coreml_mil::MilEngine;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Global;

/// `$COREML_BRIDGE_CACHE`, or `~/.cache/coreml-bridge`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
                .join(".cache/coreml-bridge")
        })
}

/// Where commands save their telemetry: `$COREML_BRIDGE_TELEMETRY_DIR`,
/// else `<cache>/telemetry`.
pub fn telemetry_dir() -> PathBuf {
    std::env::var_os("COREML_BRIDGE_TELEMETRY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_root().join("telemetry"))
}

/// Where the weights of the embedded default models are.
pub fn weights_dir(name: &str) -> PathBuf {
    cache_root().join("weights").join(name)
}

/// How every command names a file in an error: once, then what is wrong and
/// what to do, as one sentence (`README.md: the file extension ... was not
/// recognized as an image format; give a PNG or JPEG image`).
pub fn file_error(path: &Path, problem: impl std::fmt::Display, advice: &str) -> String {
    let problem = problem.to_string();
    let mut chars = problem.chars();
    let problem = match chars.next() {
        // Lower-case a leading capital unless it starts an acronym ("IO error") or a
        // file name ("Manifest.json", "Data/com.apple.CoreML/...": names keep their case).
        Some(c)
            if c.is_uppercase()
                && !chars.next().is_some_and(char::is_uppercase)
                && !problem
                    .split([' ', ':'])
                    .next()
                    .is_some_and(|w| w.contains(['.', '/'])) =>
        {
            c.to_lowercase().chain(problem.chars().skip(1)).collect()
        }
        _ => problem,
    };
    format!("{}: {problem}; {advice}", path.display())
}

/// [`file_error`] for a tensor or image file: a [`TensorError::Io`] already
/// carries the path, so only its message is kept.
pub fn tensor_file_error(path: &Path, e: &TensorError, advice: &str) -> String {
    match e {
        TensorError::Io { message, .. } => file_error(path, message, advice),
        other => file_error(path, other, advice),
    }
}

/// What to do about a missing weights file: fetch the defaults, or fix a path
/// the user gave.
pub fn missing_file_advice(path: &Path) -> &'static str {
    if path.starts_with(cache_root().join("weights")) {
        "run `make assets` (scripts/prepare_test_assets.sh) first"
    } else {
        "check the path"
    }
}

/// A command's context.
pub struct App {
    pub router: Router,
    pub global: Global,
    /// How long `prepare` waits for a Core ML model named on the command
    /// line before the fallback answers (`None`: the router's short grace).
    pub coreml_wait: Option<Duration>,
}

impl App {
    /// Builds the router (and says, once, why Candle serves alone if it does).
    /// `models`: the model files the command names; the sandboxed helper may
    /// read the directories holding them (it is sandboxed before it sees a path).
    pub async fn start(global: Global, models: &[&Path]) -> Result<Self, String> {
        let spinner = spinner(&global, "starting engines");
        let mut setup = RouterSetup::new(cpu_fallback());
        // The sandboxed helper reads models only from here: the downloaded
        // weights, the working directory and the directories of the models named.
        setup.coreml.model_dirs.push(cache_root().join("weights"));
        for m in models {
            let dir = std::path::absolute(m)
                .ok()
                .and_then(|a| a.parent().map(Path::to_path_buf));
            // (Never `/`, which would open the whole filesystem.)
            if let Some(d) = dir.filter(|d| d.parent().is_some()) {
                setup.coreml.model_dirs.push(d);
            }
        }
        // (Not when that is `/`, which would open the whole filesystem.)
        if let Ok(cwd) = std::env::current_dir() {
            if cwd.parent().is_some() {
                setup.coreml.model_dirs.push(cwd);
            }
        }
        let router = if global.no_coreml {
            router_with_helper(Err("disabled with --no-coreml".into()), setup).await
        } else {
            router_from_env(setup).await
        };
        spinner.finish_and_clear();
        if let Some(line) = router.unavailable_notice() {
            if !global.json {
                eprintln!("note: {line}");
            }
        }
        Ok(Self {
            router,
            global,
            coreml_wait: None,
        })
    }

    /// The notice line, if Candle serves alone.
    pub fn notice(&self) -> Option<String> {
        self.router.unavailable_notice()
    }

    /// Prepares a model through the router, with a spinner. `candle` is the
    /// Candle artifact; `coreml` an optional Core ML one.
    pub async fn prepare(
        &self,
        name: &str,
        candle: &Path,
        architecture: &str,
        coreml: Option<&Path>,
        max_batch: Option<usize>,
    ) -> Result<PreparedModel, String> {
        let artifact = ModelArtifact::from_path(candle).map_err(|e| artifact_error(candle, &e))?;
        if !candle.exists() {
            return Err(file_error(
                candle,
                "no such file",
                missing_file_advice(candle),
            ));
        }
        let mut options = PrepareOptions::new(self.global.compute_units)
            .with_model_name(name)
            .with_architecture(architecture)
            .with_prepare_budget(Duration::from_secs(15 * 60));
        if let Some(b) = max_batch {
            options = options.with_max_batch(b);
        }
        // A package with no hand-written Candle model: the fallback chain
        // (Candle, then the MIL executor) gets the package itself.
        if artifact.format.is_core_ml() {
            options = options.with_hint(HINT_CANDLE_ARTIFACT, candle.to_string_lossy());
        }
        let sibling = candle.with_extension("mlpackage");
        if let Some(c) = coreml
            .map(Path::to_path_buf)
            .or_else(|| sibling.exists().then_some(sibling))
        {
            options = options.with_hint(HINT_COREML_ARTIFACT, c.to_string_lossy());
        }
        // A Core ML model named on the command line, as `--coreml-model` or as the model itself.
        if let Some(wait) = self
            .coreml_wait
            .filter(|_| coreml.is_some() || artifact.format.is_core_ml())
        {
            options = options.with_hint(HINT_WAIT_FOR_COREML, wait.as_millis().to_string());
        }
        let spinner = spinner(&self.global, &format!("preparing {name}"));
        let model = self
            .router
            .prepare(&artifact, &options)
            .await
            .map_err(|e| format!("preparing {name}: {e}"));
        spinner.finish_and_clear();
        model
    }

    /// The engine that answered `model`'s latest request.
    pub fn served_by(&self, model: &str) -> String {
        self.router
            .served_by(model)
            .unwrap_or_else(|| "none".into())
    }

    /// Saves the telemetry for `report` (`<cache>/telemetry/last-<command>.json`).
    pub fn save_telemetry(&self, command: &str) {
        let dir = telemetry_dir();
        let snap = self.router.telemetry().snapshot();
        let write = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join(format!("last-{command}.json")), snap.to_json()));
        if let Err(e) = write {
            tracing::warn!("could not save telemetry to {}: {e}", dir.display());
        }
    }
}

/// [`file_error`] for an artifact path the engines cannot take.
pub fn artifact_error(path: &Path, e: &ArtifactError) -> String {
    match e {
        ArtifactError::UnknownFormat { .. } => file_error(
            path,
            "not a model file",
            "give a .safetensors weights file, or a Core ML .mlpackage, .mlmodel or .mlmodelc",
        ),
        ArtifactError::Io { message, .. } => file_error(path, message, "check the path"),
        other => other.to_string(),
    }
}

/// A spinner on stderr (hidden with `--json` or when stderr is not a terminal).
pub fn spinner(global: &Global, message: &str) -> ProgressBar {
    if global.json {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"),
    );
    pb.set_message(message.to_owned());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Parses `--compute-units`.
pub fn parse_units(s: &str) -> Result<ComputeUnits, String> {
    s.parse()
}

/// The unwind payload of a closed stdout: `main` turns it into exit status 0
/// after the runtime (and every region and helper in it) is dropped.
pub struct StdoutClosed;

/// Ends the command because stdout is closed (`| head`), quietly and without
/// skipping destructors (no `process::exit` inside the runtime).
pub fn stdout_closed() -> ! {
    std::panic::resume_unwind(Box::new(StdoutClosed))
}

/// Writes a line to stdout; a closed stdout (`| head`) ends the command quietly.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($t)*).is_err() {
            $crate::app::stdout_closed();
        }
    }};
}

/// Like [`out!`] without the newline.
#[macro_export]
macro_rules! out_part {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout().lock(), $($t)*).is_err() {
            $crate::app::stdout_closed();
        }
    }};
}

/// Whether this run printed its JSON document already.
static JSON_PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints `value` as pretty JSON: the run's one document on stdout.
pub fn print_json(value: &serde_json::Value) {
    JSON_PRINTED.store(true, std::sync::atomic::Ordering::SeqCst);
    out!(
        "{}",
        serde_json::to_string_pretty(value).expect("plain JSON")
    );
}

/// Whether [`print_json`] ran: a command that printed its report and then
/// fails (a gate failed, a cache entry failed verification) says why on
/// stderr, so stdout stays one JSON document.
pub fn json_printed() -> bool {
    JSON_PRINTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// The router's fallback: the hand-written Candle model when there is one,
/// else the MIL executor on the `.mlpackage` (the model's capability report
/// names which engine serves it: `candle` or `mil`).
pub fn cpu_fallback() -> Arc<dyn InferenceEngine> {
    let candle: Arc<dyn InferenceEngine> = Arc::new(CandleEngine::new());
    Arc::new(EngineChain::new(
        "candle",
        vec![candle, Arc::new(MilEngine::new())],
    ))
}

/// The fallback engine alone (for `bench`).
pub fn candle_engine() -> Arc<dyn InferenceEngine> {
    Arc::new(CandleEngine::new())
}
