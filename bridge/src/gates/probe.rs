//! What the gates measure of a process without Instruments: resident set,
//! open descriptors, threads and mapped shared-memory regions (Linux
//! `/proc`), and the least-squares slope of a series.
//!
//! ```
//! use coreml_bridge::gates::probe::{sample, slope};
//!
//! let me = sample(std::process::id()).expect("/proc of this process");
//! assert!(me.rss_bytes > 0 && me.threads.unwrap() >= 1 && me.fds.unwrap() >= 3);
//! assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
//! ```

use serde::Serialize;

/// One sample of a process. Counts the OS does not let us read (a helper
/// that made itself non-dumpable hides its `/proc/<pid>/fd`) are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Open file descriptors.
    pub fds: Option<usize>,
    /// Threads.
    pub threads: Option<usize>,
    /// Distinct shared-memory regions of the bridge mapped (memfd or `/dev/shm`).
    pub shm_regions: Option<usize>,
}

/// Samples process `pid`; `None` when it is gone or there is no `/proc`.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    let rss_bytes = field("VmRSS:")? * 1024;
    let threads = field("Threads:").map(|t| t as usize);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count());
    let shm_regions = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok().map(|maps| {
        let mut inodes: Vec<&str> = maps
            .lines()
            .filter(|l| l.contains("/memfd:coreml-bridge-region") || l.contains("/dev/shm/"))
            .filter_map(|l| l.split_whitespace().nth(4))
            .collect();
        inodes.sort_unstable();
        inodes.dedup();
        inodes.len()
    });
    Some(Sample { rss_bytes, fds, threads, shm_regions })
}

/// The least-squares slope of `y` over `x` (0 for fewer than two points or no spread).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Nearest-rank percentile of unsorted durations (µs); 0 when empty.
pub fn percentile_us(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil().max(1.0) as usize;
    samples[rank.min(samples.len()) - 1]
}
