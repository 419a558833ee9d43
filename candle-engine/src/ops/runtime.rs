//! One-time CPU runtime set-up: thread count and allocator, fixed before candle's first call.
//!
//! candle 0.11.1 asks `get_num_threads()` on every matmul; unless `RAYON_NUM_THREADS` is
//! set, that parses `/proc/cpuinfo` each time (≈9,300 times per FastViT forward, 2.4× of
//! its run time). [`init_cpu_runtime`] decides the count once, publishes it through
//! `RAYON_NUM_THREADS`, builds rayon's global pool with it, keeps candle's spinning
//! elementwise pool off (`CANDLE_NUM_THREADS=1` unless set), and tunes malloc.
//!
//! ```
//! use coreml_candle::ops::runtime::{init_cpu_runtime, cpu_threads};
//! let n = init_cpu_runtime(Some(2));
//! assert!(n >= 1);
//! assert_eq!(cpu_threads(), n); // later calls return the cached value
//! ```

use std::sync::OnceLock;

/// Settings fixed on first use, for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuRuntime {
    /// Threads used by candle, gemm and our kernels.
    pub threads: usize,
    /// Whether glibc accepted the malloc thresholds.
    pub malloc_tuned: bool,
}

static RUNTIME: OnceLock<CpuRuntime> = OnceLock::new();

/// Environment switch to keep glibc's allocator defaults (`COREML_BRIDGE_MALLOC_TUNING=0`).
pub const MALLOC_TUNING_ENV: &str = "COREML_BRIDGE_MALLOC_TUNING";

/// Fix the CPU thread count and allocator settings once; idempotent, returns the count.
///
/// Precedence: an existing positive `RAYON_NUM_THREADS` wins, then `requested`, then
/// [`std::thread::available_parallelism`] (one syscall, cgroup-aware). Call it before
/// the first candle operation (the engine constructor does): the environment variable is
/// written here, while no other thread of ours reads it yet.
pub fn init_cpu_runtime(requested: Option<usize>) -> usize {
    RUNTIME
        .get_or_init(|| {
            let from_env = std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n > 0);
            let threads = from_env
                .or(requested.filter(|&n| n > 0))
                .unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                });
            if from_env != Some(threads) {
                // candle reads this variable on every matmul; once it is set, its
                // fallback (parsing /proc/cpuinfo) is never reached. Rust's env
                // functions take a process-wide lock, and candle reads the variable
                // through them.
                std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
            }
            // candle runs elementwise ops of ≥64 K elements on its own barrier pool, whose
            // CANDLE_NUM_THREADS−1 workers spin 25,000 `pause`s after every op and so
            // compete with rayon's workers (and anything else) for the cores. Our kernels
            // do the heavy elementwise work in their epilogues, so keep candle's few
            // remaining elementwise ops on the calling thread unless told otherwise
            // (measured: MiniLM 43 vs 97–142 ms on a busy 2-core VM, vision models equal).
            if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
                std::env::set_var("CANDLE_NUM_THREADS", "1");
            }
            // Fails only if the global pool already exists (someone else built it
            // first); rayon then keeps its own pool, which is still correct.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build_global();
            let malloc_tuned = match std::env::var(MALLOC_TUNING_ENV).as_deref() {
                Ok("0") => false,
                _ => super::sys::tune_malloc(),
            };
            CpuRuntime {
                threads,
                malloc_tuned,
            }
        })
        .threads
}

/// The cached thread count (initialising with defaults on first use).
pub fn cpu_threads() -> usize {
    match RUNTIME.get() {
        Some(rt) => rt.threads,
        None => init_cpu_runtime(None),
    }
}

/// The settings in force, if [`init_cpu_runtime`] has run.
pub fn cpu_runtime() -> Option<CpuRuntime> {
    RUNTIME.get().copied()
}
