//! `coreml-bridge`: embeddings, image classification, any prepared model,
//! benchmarks and telemetry, through the router (Core ML first where it
//! exists, Candle on the CPU otherwise).
//!
//! ```text
//! coreml-bridge embed "A cat sits on the mat." "A kitten rests on a rug." "Stocks fell."
//! coreml-bridge classify tests/fixtures/images/chelsea.png
//! coreml-bridge run --model m.safetensors --architecture bert --input in.safetensors --output out.safetensors
//! coreml-bridge bench minilm
//! coreml-bridge report --format prometheus
//! coreml-bridge parity
//! coreml-bridge inspect tests/fixtures/mlpackage/small_cnn_fp32.mlpackage
//! coreml-bridge diff a.mlpackage b.mlpackage

//! coreml-bridge cache ls
//! coreml-bridge gates --soak 60
//! ```
//!
//! Every command takes `--json`: stdout is then one JSON document, the
//! command's report or `{"error": ...}`; a command that reported and then
//! fails (a gate, a cache entry) exits 1 with the reason on stderr. Set `COREML_HELPER` to the helper binary
//! to use Core ML; `RUST_LOG=coreml_bridge=info` shows the router's events.

mod app;
mod bench;
mod cache;
mod classify;
mod embed;
mod embed_package;
mod inspect;

mod gates;
mod parity;
mod report;
mod run;

use clap::{Args, Parser, Subcommand};
use coreml_bridge::inference::ComputeUnits;

/// Options of every command.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Compute units to ask Core ML for: all, cpu_only, cpu_and_gpu, cpu_and_ne.
    #[arg(long, global = true, default_value = "all", value_parser = app::parse_units)]
    pub compute_units: ComputeUnits,
    /// Do not start the Core ML helper; Candle serves.
    #[arg(long, global = true)]
    pub no_coreml: bool,
}

#[derive(Debug, Parser)]
#[command(
    name = "coreml-bridge",
    version,
    about = "Core ML from Rust, with Candle as ground truth and fallback"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sentence embeddings (all-MiniLM-L6-v2) and their cosine-similarity matrix.
    Embed(embed::EmbedArgs),
    /// Top-5 ImageNet labels of an image (EfficientNet-Lite0).
    Classify(classify::ClassifyArgs),
    /// Any prepared model: tensors from and to safetensors files.
    Run(run::RunArgs),
    /// Latency percentiles of a model on each available engine.
    Bench(bench::BenchArgs),
    /// Telemetry of the last commands: table, JSON or Prometheus text.
    Report(report::ReportArgs),
    /// L∞/RMSE of every engine that runs here against PyTorch FP32 (`make models` golden files).
    Parity(parity::ParityArgs),
    /// What an .mlpackage holds: I/O schema, op histogram, dynamic shapes, unsupported ops, weights.
    Inspect(inspect::InspectArgs),
    /// Two .mlpackages side by side: schemas, op histograms and weights.
    Diff(inspect::DiffArgs),

    /// The compiled-model cache: ls, verify, gc, clear.
    Cache(cache::CacheArgs),
    /// Gates A–D of the plan as one table (Core ML checks say when they cannot run here).
    Gates(gates::GatesArgs),
}

fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Runs the command; the process exits only after the runtime is dropped, so every
/// supervisor, helper and shared-memory region is released on every exit path
/// (a closed stdout included: `out!` unwinds to here instead of exiting).
fn main() {
    init_tracing();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(command(cli))));
    drop(rt);
    let code = match outcome {
        Ok(code) => code,
        Err(p) if p.is::<app::StdoutClosed>() => 0,
        Err(p) => std::panic::resume_unwind(p),
    };
    std::process::exit(code);
}

async fn command(cli: Cli) -> i32 {
    let json = cli.global.json;
    let result = match cli.command {
        Command::Embed(a) => embed::run(cli.global, a).await,
        Command::Classify(a) => classify::run(cli.global, a).await,
        Command::Run(a) => run::run(cli.global, a).await,
        Command::Bench(a) => bench::run(cli.global, a).await,
        Command::Report(a) => report::run(cli.global, a),
        Command::Parity(a) => parity::run(cli.global, a).await,
        Command::Inspect(a) => inspect::run(cli.global, a),
        Command::Diff(a) => inspect::run_diff(cli.global, a),

        Command::Cache(a) => cache::run(cli.global, a),
        Command::Gates(a) => gates::run(cli.global, a).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            if json && !app::json_printed() {
                app::print_json(&serde_json::json!({ "error": e }));
            } else {
                eprintln!("error: {e}");
            }
            1
        }
    }
}
