//! `candle-bench`: Candle vs ONNX Runtime and PyTorch CPU in one run, interleaved, same
//! threads and inputs.
//!
//! The coordinator measures the machine's fp32 peak (an FMA loop), starts worker processes —
//! PyTorch (`scripts/bench_pytorch.py`), ONNX Runtime (`scripts/bench/bench_onnxruntime.py`,
//! models exported from PyTorch at opset 17), Candle
//! with the cached thread count, Candle in the stock environment (no `RAYON_NUM_THREADS`,
//! so candle parses /proc/cpuinfo per matmul), Candle with glibc's malloc defaults — loads
//! every case, then runs rounds in which each case runs a short batch, rotating the
//! order each round. p50 is over all timed runs; the table goes to docs/benchmarks.md.
//!
//! ```text
//! cargo run --release -p coreml-candle --bin candle-bench -- [--rounds 7] [--threads 2]
//!     [--python PATH] [--models resnet50,fastvit_t8,...] [--no-write] [--write-partial]
//! ```

mod coordinator;
mod external;
mod peak;
mod report;
mod sys;
mod worker;

use std::path::PathBuf;

/// Command-line options of the coordinator.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: usize,
    pub threads: usize,
    pub python: PathBuf,
    pub models: Vec<String>,
    pub write: bool,
    pub write_partial: bool,
    pub doc: PathBuf,
    /// Target wall time of one batch of runs of one case.
    pub batch_ms: f64,
}

/// `$COREML_BRIDGE_TORCH_PYTHON`, else the Python of the environment that
/// `scripts/python_env.sh torch` creates (`make bench` runs it first and passes `--python`).
fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("COREML_BRIDGE_TORCH_PYTHON") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("COREML_BRIDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/coreml-bridge")
        });
    cache.join("venv-torch/bin/python")
}

fn parse(args: &[String]) -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut o = Options {
        rounds: 7,
        threads: 2,
        python: default_python(),
        models: ["minilm", "fastvit_t8", "resnet50", "efficientnet_lite0"]
            .map(String::from)
            .to_vec(),
        write: true,
        write_partial: false,
        doc: root.join("docs/benchmarks.md"),
        batch_ms: 400.0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--python" => o.python = PathBuf::from(val()?),
            "--models" => o.models = val()?.split(',').map(String::from).collect(),
            "--batch-ms" => o.batch_ms = val()?.parse().map_err(|e| format!("--batch-ms: {e}"))?,
            "--doc" => o.doc = PathBuf::from(val()?),
            "--no-write" => o.write = false,
            "--write-partial" => o.write_partial = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        // `--worker [threads]`: without a count, the stock environment (no runtime init).
        let threads = args.get(1).and_then(|t| t.parse().ok());
        if let Err(e) = worker::serve(threads) {
            eprintln!("candle-bench worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("candle-bench: {e}");
            std::process::exit(2);
        }
    };
    match coordinator::run(&opts) {
        Ok(results) => {
            let table = report::markdown(&opts, &results);
            println!("{table}");
            let missing = report::incomplete(&results);
            if opts.write && !missing.is_empty() && !opts.write_partial {
                eprintln!(
                    "candle-bench: no PyTorch or Candle numbers for {missing:?}; not writing {} \
                     (--write-partial to write anyway)",
                    opts.doc.display()
                );
                std::process::exit(1);
            }
            if opts.write {
                if let Err(e) = report::write_section(&opts.doc, &table) {
                    eprintln!("candle-bench: writing {}: {e}", opts.doc.display());
                    std::process::exit(1);
                }
                eprintln!("wrote {}", opts.doc.display());
            }
        }
        Err(e) => {
            eprintln!("candle-bench: {e}");
            std::process::exit(1);
        }
    }
}
