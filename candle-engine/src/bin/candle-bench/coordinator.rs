//! Starts the worker processes, loads every case, and runs the interleaved rounds.
//!
//! ```text
//! round r: rows rotated by r; each row runs `iters` forwards in its worker, then 50 ms idle
//! ```

use crate::Options;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Which process runs a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    /// scripts/bench_pytorch.py, OpenMP defaults (worker threads spin between regions).
    Torch,
    /// The same with `OMP_WAIT_POLICY=PASSIVE` (workers sleep; robust when the machine
    /// is shared, slower when it is quiet).
    TorchPassive,
    /// scripts/bench/bench_onnxruntime.py: ONNX Runtime's CPU provider on the models
    /// exported from the PyTorch side at opset 17.
    Ort,
    /// Candle with the runtime initialised (thread count cached, malloc tuned).
    Candle,
    /// Candle without `RAYON_NUM_THREADS` and without our runtime init.
    CandleStockEnv,
    /// Candle with the runtime initialised but glibc's malloc defaults.
    CandleMallocDefaults,
    /// Candle with the runtime initialised but candle's elementwise barrier pool on
    /// (`CANDLE_NUM_THREADS` = threads).
    CandleBarrierPool,
}

const ORT_LABEL: &str = "ONNX Runtime (opset 17, CPU provider)";

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub model: &'static str,
    pub label: String,
    pub worker: WorkerKind,
    pub case: &'static str,
    pub iters: usize,
    pub samples: Vec<f64>,
    pub error: Option<String>,
    /// FLOPs of one forward, as the ONNX Runtime worker reports them at load.
    pub flops: Option<f64>,
}

fn row(model: &'static str, worker: WorkerKind, case: &'static str, label: &'static str) -> Row {
    Row {
        model,
        label: label.to_string(),
        worker,
        case,
        iters: 1,
        samples: Vec::new(),
        error: None,
        flops: None,
    }
}

/// The table's rows for the requested models, PyTorch and ONNX Runtime first within each
/// model.
pub fn plan(models: &[String]) -> Vec<Row> {
    use WorkerKind::*;
    let mut rows = Vec::new();
    for m in models {
        match m.as_str() {
            "minilm" => rows.extend([
                row("minilm", Torch, "minilm", "PyTorch"),
                row("minilm", Ort, "minilm", ORT_LABEL),
                row(
                    "minilm",
                    Candle,
                    "minilm:candle",
                    "candle-transformers BERT (before issue 17)",
                ),
                row(
                    "minilm",
                    Candle,
                    "minilm:fast",
                    "own encoder: fused QKV, vectorised GELU/softmax = **engine**",
                ),
                row(
                    "minilm",
                    CandleMallocDefaults,
                    "minilm:fast",
                    "Candle engine, glibc malloc defaults",
                ),
                row(
                    "minilm",
                    CandleBarrierPool,
                    "minilm:fast",
                    "engine, candle's spinning elementwise pool on",
                ),
            ]),
            "fastvit_t8" => rows.extend([
                row(
                    "fastvit_t8",
                    Torch,
                    "fastvit_t8",
                    "PyTorch, timm as loaded (branches)",
                ),
                row(
                    "fastvit_t8",
                    Torch,
                    "fastvit_t8_reparam",
                    "PyTorch, timm reparameterised",
                ),
                row(
                    "fastvit_t8",
                    Ort,
                    "fastvit_t8",
                    "ONNX Runtime (timm reparameterised, opset 17)",
                ),
                row(
                    "fastvit_t8",
                    CandleStockEnv,
                    "fastvit_t8:stock",
                    "candle-transformers fastvit, stock env",
                ),
                row(
                    "fastvit_t8",
                    Candle,
                    "fastvit_t8:stock",
                    "(a) + thread count cached",
                ),
                row(
                    "fastvit_t8",
                    Candle,
                    "fastvit_t8:candle",
                    "+ reparameterised at load, candle kernels",
                ),
                row(
                    "fastvit_t8",
                    Candle,
                    "fastvit_t8:dw",
                    "(b) + direct depthwise op",
                ),
                row(
                    "fastvit_t8",
                    Candle,
                    "fastvit_t8:dw+gemm",
                    "(c) + im2col+gemm conv, fused epilogues",
                ),
                row(
                    "fastvit_t8",
                    Candle,
                    "fastvit_t8:fast",
                    "+ vectorised GELU = **engine**",
                ),
                row(
                    "fastvit_t8",
                    CandleMallocDefaults,
                    "fastvit_t8:fast",
                    "engine, glibc malloc defaults",
                ),
                row(
                    "fastvit_t8",
                    CandleBarrierPool,
                    "fastvit_t8:fast",
                    "engine, candle's spinning elementwise pool on",
                ),
            ]),
            "resnet50" => rows.extend([
                row("resnet50", Torch, "resnet50", "PyTorch (torchvision)"),
                row("resnet50", Ort, "resnet50", ORT_LABEL),
                row(
                    "resnet50",
                    CandleStockEnv,
                    "resnet50:stock",
                    "candle-transformers resnet50, stock env",
                ),
                row(
                    "resnet50",
                    Candle,
                    "resnet50:stock",
                    "(a) + thread count cached",
                ),
                row(
                    "resnet50",
                    Candle,
                    "resnet50:candle",
                    "+ BN folded at load, candle conv2d",
                ),
                row(
                    "resnet50",
                    Candle,
                    "resnet50:fast",
                    "(c) + im2col+gemm conv, fused bias/residual/ReLU = **engine**",
                ),
                row(
                    "resnet50",
                    CandleMallocDefaults,
                    "resnet50:fast",
                    "engine, glibc malloc defaults",
                ),
                row(
                    "resnet50",
                    CandleBarrierPool,
                    "resnet50:fast",
                    "engine, candle's spinning elementwise pool on",
                ),
            ]),
            "efficientnet_lite0" => rows.extend([
                row("efficientnet_lite0", Torch, "efficientnet_lite0", "PyTorch"),
                row("efficientnet_lite0", Ort, "efficientnet_lite0", ORT_LABEL),
                row(
                    "efficientnet_lite0",
                    CandleBarrierPool,
                    "efficientnet_lite0:fast",
                    "engine, candle's spinning elementwise pool on",
                ),
                row(
                    "efficientnet_lite0",
                    Candle,
                    "efficientnet_lite0:fast",
                    "Candle engine",
                ),
            ]),
            _ => {}
        }
    }
    // Every PyTorch case runs twice: OpenMP defaults, and passive waiting.
    let mut out = Vec::with_capacity(rows.len() * 2);
    for r in rows {
        let passive = (r.worker == Torch).then(|| Row {
            worker: TorchPassive,
            label: format!("{}, OMP_WAIT_POLICY=PASSIVE", r.label),
            ..r.clone()
        });
        out.push(r);
        out.extend(passive);
    }
    out
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(kind: WorkerKind, o: &Options) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let threads = o.threads.to_string();
        let mut cmd = match kind {
            WorkerKind::Torch | WorkerKind::TorchPassive => {
                let mut c = Command::new(&o.python);
                c.arg(root.join("scripts/bench_pytorch.py"))
                    .args(["--threads", &threads]);
                c
            }
            WorkerKind::Ort => {
                let mut c = Command::new(&o.python);
                c.arg(root.join("scripts/bench/bench_onnxruntime.py"))
                    .args(["--threads", &threads]);
                c
            }
            _ => {
                let mut c = Command::new(exe);
                c.arg("--worker");
                if kind != WorkerKind::CandleStockEnv {
                    c.arg(&threads);
                }
                c
            }
        };
        cmd.env_remove("RAYON_NUM_THREADS")
            .env_remove("CANDLE_NUM_THREADS");
        if kind == WorkerKind::TorchPassive {
            cmd.env("OMP_WAIT_POLICY", "PASSIVE");
        }
        if kind == WorkerKind::CandleBarrierPool {
            cmd.env("CANDLE_NUM_THREADS", &threads);
        }
        if kind == WorkerKind::CandleMallocDefaults {
            cmd.env("COREML_BRIDGE_MALLOC_TUNING", "0");
        }
        let mut child = cmd
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| match kind {
                WorkerKind::Torch | WorkerKind::TorchPassive | WorkerKind::Ort => format!(
                    "{kind:?} worker: cannot start {} ({e}); create the environment with \
                     `scripts/python_env.sh torch` (make bench does) or pass --python",
                    o.python.display()
                ),
                _ => format!("{kind:?} worker: {e}"),
            })?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    fn request(&mut self, line: &str) -> Result<String, String> {
        writeln!(self.stdin, "{line}").map_err(|e| e.to_string())?;
        self.stdin.flush().map_err(|e| e.to_string())?;
        let mut reply = String::new();
        self.stdout
            .read_line(&mut reply)
            .map_err(|e| e.to_string())?;
        match reply.trim_end() {
            "" => Err("worker exited".into()),
            r if r.starts_with("err") => Err(r.trim_start_matches("err ").to_string()),
            r => Ok(r.to_string()),
        }
    }

    fn times(&mut self, case: &str, n: usize) -> Result<Vec<f64>, String> {
        let reply = self.request(&format!("run {case} {n}"))?;
        reply
            .strip_prefix("times ")
            .ok_or(format!("bad reply {reply:?}"))?
            .split_whitespace()
            .map(|t| t.parse::<f64>().map_err(|e| e.to_string()))
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// Load everything, calibrate batch sizes, run the rounds.
pub fn run(o: &Options) -> Result<Vec<Row>, String> {
    let mut rows = plan(&o.models);
    if rows.is_empty() {
        return Err("no known model requested".into());
    }
    let mut workers: std::collections::HashMap<WorkerKind, Result<Worker, String>> =
        Default::default();
    for r in rows.iter_mut() {
        let w = workers
            .entry(r.worker)
            .or_insert_with(|| Worker::spawn(r.worker, o));
        let w = match w {
            Ok(w) => w,
            Err(e) => {
                r.error = Some(e.clone());
                continue;
            }
        };
        eprintln!("loading {:?} {}", r.worker, r.case);
        match w.request(&format!("load {}", r.case)) {
            Ok(reply) => {
                r.flops = reply
                    .strip_prefix("ok flops ")
                    .and_then(|f| f.trim().parse::<f64>().ok())
            }
            Err(e) => {
                r.error = Some(e);
                continue;
            }
        }
        match w.times(r.case, 3) {
            Ok(t) => {
                let best = t.iter().copied().fold(f64::INFINITY, f64::min).max(0.1);
                r.iters = ((o.batch_ms / best).round() as usize).clamp(1, 25)
            }
            Err(e) => r.error = Some(e),
        }
    }
    // Every model's FLOPs, from the ONNX Runtime row, for the share-of-peak column.
    let flops: Vec<(&'static str, f64)> = rows
        .iter()
        .filter_map(|r| r.flops.map(|f| (r.model, f)))
        .collect();
    for r in rows.iter_mut() {
        r.flops = flops.iter().find(|(m, _)| *m == r.model).map(|f| f.1);
    }
    // Measured while every worker idles between requests.
    let _ = crate::report::PEAK.set(crate::peak::peak(o.threads, Duration::from_millis(300)));
    let _ = crate::report::LOAD_AT_START.set(crate::report::loadavg());
    for round in 0..o.rounds {
        let n = rows.len();
        for i in 0..n {
            let r = &mut rows[(i + round) % n];
            if r.error.is_some() {
                continue;
            }
            let Some(Ok(w)) = workers.get_mut(&r.worker) else {
                continue;
            };
            match w.times(r.case, r.iters) {
                Ok(t) => r.samples.extend(t),
                Err(e) => r.error = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("round {}/{} done", round + 1, o.rounds);
    }
    Ok(rows)
}
