//! Percentiles, the markdown tables, and the marked section of docs/benchmarks.md.
//!
//! ```text
//! <!-- candle-bench:begin --> ... <!-- candle-bench:end -->   (replaced on every run)
//! ```

use crate::coordinator::{Row, WorkerKind};
use crate::Options;
use std::fmt::Write as _;
use std::path::Path;

/// `/proc/loadavg` when the rounds started (set by the coordinator).
pub static LOAD_AT_START: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The machine's measured fp32 peak (set by the coordinator before the rounds).
pub static PEAK: std::sync::OnceLock<crate::peak::Peak> = std::sync::OnceLock::new();

/// The 1/5/15-minute load averages, or "?" off Linux.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// This process's nice value (field 19 of /proc/self/stat); workers inherit it.
fn niceness() -> String {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.to_string();
            after.split_whitespace().nth(16).map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

const BEGIN: &str = "<!-- candle-bench:begin -->";
const END: &str = "<!-- candle-bench:end -->";

fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let idx = ((s.len() - 1) as f64 * q).round() as usize;
    s[idx]
}

fn p50(r: &Row) -> Option<f64> {
    (r.error.is_none() && !r.samples.is_empty()).then(|| percentile(&r.samples, 0.5))
}

fn build_flags() -> &'static str {
    if cfg!(target_feature = "avx2") {
        "`-C target-cpu=native` (AVX2/FMA at compile time)"
    } else {
        "default `RUSTFLAGS` (gemm dispatches AVX2/FMA at run time)"
    }
}

fn is_torch(r: &Row) -> bool {
    matches!(r.worker, WorkerKind::Torch | WorkerKind::TorchPassive)
}

fn is_reference(r: &Row) -> bool {
    is_torch(r) || r.worker == WorkerKind::Ort
}

/// The row of `model` with the lowest p50 among those `pick` accepts.
fn fastest<'a>(rows: &'a [Row], model: &str, pick: fn(&Row) -> bool) -> Option<&'a Row> {
    rows.iter()
        .filter(|r| r.model == model && pick(r))
        .filter(|r| p50(r).is_some())
        .min_by(|a, b| p50(a).unwrap().total_cmp(&p50(b).unwrap()))
}

/// The PyTorch row of `model` with the lowest p50.
fn best_torch<'a>(rows: &'a [Row], model: &str) -> Option<&'a Row> {
    fastest(rows, model, is_torch)
}

/// The fastest of PyTorch and ONNX Runtime: what the engine's ratio is against.
fn best_reference<'a>(rows: &'a [Row], model: &str) -> Option<&'a Row> {
    fastest(rows, model, is_reference)
}

fn engine_row<'a>(rows: &'a [Row], model: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.model == model && r.worker == WorkerKind::Candle && r.case.ends_with(":fast"))
}

/// Share of the measured peak a row reached: FLOPs / p50 / peak.
fn share(r: &Row) -> Option<f64> {
    let peak = PEAK.get()?.gflops * 1e9;
    Some(r.flops? / (p50(r)? * 1e-3) / peak)
}

fn fmt_share(r: Option<&Row>) -> String {
    r.and_then(share)
        .map(|s| format!("{:.0}%", s * 100.0))
        .unwrap_or_else(|| "n/a".into())
}

/// The Candle section of docs/benchmarks.md.
pub fn markdown(o: &Options, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Candle engine vs ONNX Runtime and PyTorch CPU (issues 4, 17)\n"
    );
    let peak = PEAK.get();
    let _ = writeln!(
        s,
        "Written by `cargo run --release -p coreml-candle --bin candle-bench`. Machine: {} ({} \
         logical CPUs; SIMD flags: {}); measured fp32 peak on {} threads: **{}** (a loop of \
         independent {} FMAs, one FMA = 2 FLOPs). {} threads on every side \
         (`torch.set_num_threads`, ONNX Runtime `intra_op_num_threads` with one inter-op \
         thread, `RAYON_NUM_THREADS`); build: {}. One run, {} interleaved rounds (order \
         rotated each round, each case a ~{} ms batch per round, PyTorch, ONNX Runtime and \
         Candle in separate worker processes that idle while another runs); p50 over all \
         timed forwards, batch 1, same seeded input on every side (224×224 images; MiniLM: \
         128 token ids). ONNX Runtime runs the PyTorch models exported at opset 17 \
         (scripts/bench/export_onnx.py, cached under `$COREML_BRIDGE_CACHE/onnx`) with every \
         graph optimisation. Share of peak = the model's FLOPs (torch's FlopCounterMode at \
         export: convolutions and matrix products) / p50 / the measured peak. Load average \
         (1/5/15 min) at start {}, at end {}; nice {} (all workers inherit it).\n",
        crate::peak::cpu_name(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        crate::peak::simd_flags(),
        peak.map(|p| p.threads).unwrap_or(o.threads),
        peak.map(|p| format!("{:.0} GFLOP/s", p.gflops))
            .unwrap_or_else(|| "not measured".into()),
        peak.map(|p| p.isa).unwrap_or("?"),
        o.threads,
        build_flags(),
        o.rounds,
        o.batch_ms,
        LOAD_AT_START.get().map(String::as_str).unwrap_or("?"),
        loadavg(),
        niceness()
    );
    let _ = writeln!(
        s,
        "| model | GFLOP | PyTorch p50 ms | ONNX Runtime p50 ms | Candle engine p50 ms | \
         **Candle / fastest** | target | share of peak: PyTorch / ORT / Candle |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let mut models: Vec<&str> = rows.iter().map(|r| r.model).collect();
    models.dedup();
    let fmt = |r: Option<&Row>| match r {
        Some(r) => match p50(r) {
            Some(v) => format!("{v:.1}"),
            None => format!("n/a ({})", r.error.as_deref().unwrap_or("no samples")),
        },
        None => "n/a".into(),
    };
    for m in &models {
        let torch = best_torch(rows, m);
        let ort = fastest(rows, m, |r| r.worker == WorkerKind::Ort).or_else(|| {
            rows.iter()
                .find(|r| r.model == *m && r.worker == WorkerKind::Ort)
        });
        let reference = best_reference(rows, m);
        let engine = engine_row(rows, m);
        let ratio = match (reference.and_then(p50), engine.and_then(p50)) {
            (Some(t), Some(c)) => format!(
                "**{:.2}×** ({})",
                c / t,
                if reference.is_some_and(|r| r.worker == WorkerKind::Ort) {
                    "ORT"
                } else {
                    "PyTorch"
                }
            ),
            _ => "n/a".into(),
        };
        let gflop = rows
            .iter()
            .find_map(|r| (r.model == *m).then_some(r.flops).flatten())
            .map(|f| format!("{:.2}", f / 1e9))
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(
            s,
            "| {m} | {gflop} | {} | {} | {} | {ratio} | ≤ 1.0× (none > 1.3×) | {} / {} / {} |",
            fmt(torch),
            fmt(ort),
            fmt(engine),
            fmt_share(torch),
            fmt_share(ort),
            fmt_share(engine),
        );
    }
    let _ = writeln!(
        s,
        "\nEvery case; the ratio is against the fastest PyTorch or ONNX Runtime row of the \
         model (for FastViT that includes timm's reparameterised model). The Candle rows add \
         the fixes of ../shared/reference/candle-cpu-performance.md one at a time: *stock env* \
         is candle-transformers' model without `RAYON_NUM_THREADS` (candle parses \
         /proc/cpuinfo on every matmul); (a) caches the thread count (`ops::runtime`); then \
         our model structure with BatchNorm folded / timm's reparameterisation at load, \
         still on candle's conv2d; (b) the direct depthwise op; (c) im2col + gemm for dense \
         convs with bias, residual and activation in the kernel; the vectorised GELU. The \
         last rows switch one runtime setting back to its default: glibc's malloc \
         thresholds, and candle's spinning elementwise pool (`CANDLE_NUM_THREADS` = \
         threads). PyTorch runs each model with OpenMP defaults and with \
         `OMP_WAIT_POLICY=PASSIVE` (its spinning workers collapse when another process \
         wants the cores).\n"
    );
    let _ = writeln!(
        s,
        "| model | variant | p50 ms | p10–p90 ms | runs | vs fastest reference | share of peak |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for m in &models {
        let refs: Vec<f64> = best_reference(rows, m).and_then(p50).into_iter().collect();
        for r in rows.iter().filter(|r| r.model == *m) {
            let (p, spread, ratio) = match p50(r) {
                Some(v) => (
                    format!("{v:.1}"),
                    format!(
                        "{:.1}–{:.1}",
                        percentile(&r.samples, 0.1),
                        percentile(&r.samples, 0.9)
                    ),
                    refs.iter()
                        .map(|t| format!("{:.2}×", v / t))
                        .collect::<Vec<_>>()
                        .join(" / "),
                ),
                None => (
                    format!("n/a: {}", r.error.as_deref().unwrap_or("no samples")),
                    "".into(),
                    "".into(),
                ),
            };
            let _ = writeln!(
                s,
                "| {m} | {} | {p} | {spread} | {} | {ratio} | {} |",
                r.label,
                r.samples.len(),
                fmt_share(Some(r))
            );
        }
    }
    s
}

/// Models that lack a PyTorch/ONNX Runtime or a Candle-engine measurement (then the table is not
/// written to the docs unless asked: a machine without the torch venv would otherwise
/// replace real numbers with "n/a").
pub fn incomplete(rows: &[Row]) -> Vec<&'static str> {
    let mut models: Vec<&'static str> = rows.iter().map(|r| r.model).collect();
    models.dedup();
    models
        .into_iter()
        .filter(|m| {
            let engine = rows.iter().any(|r| {
                r.model == *m
                    && r.worker == WorkerKind::Candle
                    && r.case.ends_with(":fast")
                    && p50(r).is_some()
            });
            best_reference(rows, m).is_none() || !engine
        })
        .collect()
}

/// Replace (or append) the marked section of `doc`.
pub fn write_section(doc: &Path, table: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(doc).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{BEGIN}\n{table}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &old[..a], section, &old[b + END.len()..]),
        _ => format!("{}\n{}\n", old.trim_end(), section),
    };
    std::fs::write(doc, new)
}
