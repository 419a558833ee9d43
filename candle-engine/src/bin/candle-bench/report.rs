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

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
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

/// The PyTorch row of `model` with the lowest p50.
fn best_torch<'a>(rows: &'a [Row], model: &str) -> Option<&'a Row> {
    rows.iter()
        .filter(|r| r.model == model && is_torch(r))
        .filter(|r| p50(r).is_some())
        .min_by(|a, b| p50(a).unwrap().total_cmp(&p50(b).unwrap()))
}

/// The Candle section of docs/benchmarks.md.
pub fn markdown(o: &Options, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Candle engine vs PyTorch CPU (issue 4)\n");
    let _ = writeln!(
        s,
        "Written by `cargo run --release -p coreml-candle --bin candle-bench`. Machine: {}, {} cores; \
         {} threads on both sides (`torch.set_num_threads`, `RAYON_NUM_THREADS`); build: {}. \
         One run, {} interleaved rounds (order rotated each round, each case a ~{} ms batch per round, \
         PyTorch and Candle in separate worker processes that idle while the other runs); \
         p50 over all timed forwards, batch 1, same seeded input on both sides (224×224 images; \
         MiniLM: 128 token ids). Load average (1/5/15 min) at start {}, at end {}: other jobs on \
         this shared 2-core VM inflate PyTorch's spinning OpenMP workers far more than Candle's, \
         so the run used nice {} (all workers inherit it).\n",
        cpu_name(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
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
        "| model | fastest PyTorch p50 ms | (which) | Candle engine p50 ms | Candle / PyTorch | target |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let mut models: Vec<&str> = rows.iter().map(|r| r.model).collect();
    models.dedup();
    for m in &models {
        let torch = best_torch(rows, m);
        let engine = rows
            .iter()
            .find(|r| r.model == *m && r.worker == WorkerKind::Candle && r.case.ends_with(":fast"));
        let fmt = |r: Option<&Row>| match r {
            Some(r) => match p50(r) {
                Some(v) => format!("{v:.1}"),
                None => format!("n/a ({})", r.error.as_deref().unwrap_or("no samples")),
            },
            None => "n/a".into(),
        };
        let ratio = match (torch.and_then(p50), engine.and_then(p50)) {
            (Some(t), Some(c)) => format!("**{:.2}×**", c / t),
            _ => "n/a".into(),
        };
        let target = if matches!(*m, "fastvit_t8" | "resnet50") {
            "≤ 1.5×"
        } else {
            "—"
        };
        let _ = writeln!(
            s,
            "| {m} | {} | {} | {} | {ratio} | {target} |",
            fmt(torch),
            torch.map(|r| r.label.as_str()).unwrap_or(""),
            fmt(engine)
        );
    }
    let _ = writeln!(
        s,
        "\nEvery case; the ratio is against the fastest PyTorch row of the model (for FastViT \
         that includes timm's reparameterised model). The Candle rows add the fixes of \
         ../shared/reference/candle-cpu-performance.md one at a time: *stock env* is \
         candle-transformers' model without `RAYON_NUM_THREADS` (candle parses /proc/cpuinfo on \
         every matmul); (a) caches the thread count (`ops::runtime`); then our model \
         structure with BatchNorm folded / timm's reparameterisation at load, still on candle's \
         conv2d; (b) the direct depthwise op; (c) im2col + gemm for dense convs with bias, \
         residual and activation in the kernel; the vectorised GELU. The last rows switch one \
         runtime setting back to its default: glibc's malloc thresholds, and candle's \
         spinning elementwise pool (`CANDLE_NUM_THREADS` = threads). PyTorch runs each model \
         with OpenMP defaults and with `OMP_WAIT_POLICY=PASSIVE` (its spinning workers \
         collapse when another process wants the cores).\n"
    );
    let _ = writeln!(
        s,
        "| model | variant | p50 ms | p10–p90 ms | runs | vs PyTorch |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for m in &models {
        let refs: Vec<f64> = best_torch(rows, m).and_then(p50).into_iter().collect();
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
                "| {m} | {} | {p} | {spread} | {} | {ratio} |",
                r.label,
                r.samples.len()
            );
        }
    }
    s
}

/// Models that lack a PyTorch or a Candle-engine measurement (then the table is not
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
            best_torch(rows, m).is_none() || !engine
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
