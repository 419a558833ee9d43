//! The machine's fp32 peak, measured: a loop of independent fused multiply-adds on every
//! benchmark thread at once, and the CPU's model name and SIMD flags.
//!
//! ```text
//! peak(2, 300 ms) -> Peak { gflops: 281.4, isa: "AVX-512 FMA", threads: 2 }
//! ```
//!
//! Each thread keeps 24 accumulators of 16 lanes (enough independent chains to cover the
//! FMA latency on two ports) and runs `acc = acc·a + b`; one FMA counts two FLOPs, as a
//! model's multiply-accumulates do in the share-of-peak column.

use crate::sys::{fma_block, CHAINS, LANES};
use std::time::{Duration, Instant};

/// Measured peak.
#[derive(Debug, Clone)]
pub struct Peak {
    pub gflops: f64,
    pub isa: &'static str,
    pub threads: usize,
}

/// FLOP/s of one thread for `dur`, with the widest FMA the CPU has.
fn one_thread(dur: Duration) -> (f64, &'static str) {
    let mut acc = [[1.0f32; LANES]; CHAINS];
    // a·x + b with a < 1 keeps the values bounded (no denormals, no infinities).
    let (a, b) = (
        std::hint::black_box(0.999_9f32),
        std::hint::black_box(1e-4f32),
    );
    let t0 = Instant::now();
    let mut flops = 0.0;
    let mut isa = "scalar";
    while t0.elapsed() < dur {
        let (f, i) = fma_block(&mut acc, a, b);
        flops += f;
        isa = i;
    }
    std::hint::black_box(&acc);
    (flops / t0.elapsed().as_secs_f64(), isa)
}

/// Peak of `threads` threads running the loop at once for `dur` (best of 3 tries).
pub fn peak(threads: usize, dur: Duration) -> Peak {
    let mut best = 0.0f64;
    let mut isa = "scalar";
    for _ in 0..3 {
        let total: Vec<(f64, &'static str)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads.max(1))
                .map(|_| s.spawn(move || one_thread(dur)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or((0.0, "?")))
                .collect()
        });
        isa = total.first().map(|t| t.1).unwrap_or(isa);
        best = best.max(total.iter().map(|t| t.0).sum::<f64>());
    }
    Peak {
        gflops: best / 1e9,
        isa,
        threads: threads.max(1),
    }
}

/// `/proc/cpuinfo`'s model name, or the architecture off Linux.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The SIMD flags that matter for fp32 kernels, as /proc/cpuinfo spells them.
pub fn simd_flags() -> String {
    const KEEP: [&str; 9] = [
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
    ];
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("flags"))?.to_string();
            let have: Vec<&str> = line.split(':').nth(1)?.split_whitespace().collect();
            Some(
                KEEP.iter()
                    .filter(|f| have.contains(f))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .unwrap_or_else(|| "?".into())
}
