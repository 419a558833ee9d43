//! Memory sampling of the helper and its descendants, with a high-water mark: the
//! supervisor's soft limit and telemetry. (The hard limit is the kernel's: a
//! memory cgroup or `RLIMIT_DATA`, see [`crate::cgroup`].)
//!
//! What is counted: on Linux the resident set (`sysinfo`) minus the shared-memory
//! pages the helper has mapped (`RssShmem` of `/proc/<pid>/status`). Those are
//! the arena's pages, which the supervisor owns and which would otherwise be
//! charged twice (once to the app, once to the helper); the helper cannot create
//! shared memory of its own under the sandbox (no `memfd_create`, no `/dev/shm`
//! path), so nothing of its own hides there. On macOS the sample is
//! `phys_footprint` (`proc_pid_rusage`, `RUSAGE_INFO_V4`), the figure jetsam
//! charges, which includes GPU and Neural-Engine memory; that code is compiled
//! only on macOS and has not been built or run here.
//!
//! ```
//! use coreml_supervisor::memwatch::MemoryWatcher;
//!
//! let mut w = MemoryWatcher::new();
//! let rss = w.sample(std::process::id());
//! assert!(rss > 0);
//! assert_eq!(w.high_water(), rss);
//! ```

use std::collections::{HashMap, HashSet};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Full process-table scans (to find new descendants) happen every this many
/// samples; in between only the known tree is refreshed (a few `/proc` reads
/// instead of one per process on the machine).
const RESCAN_EVERY: u32 = 20;

/// Samples the resident set size of a process tree.
#[derive(Debug)]
pub struct MemoryWatcher {
    system: Option<System>,
    high_water: u64,
    /// The tree found by the last full scan.
    tree: Vec<Pid>,
    samples: u32,
}

impl Default for MemoryWatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryWatcher {
    /// A watcher with an empty process table.
    pub fn new() -> Self {
        Self {
            system: System::new_with_specifics(sysinfo::RefreshKind::nothing()).ok(),
            high_water: 0,
            tree: Vec::new(),
            samples: 0,
        }
    }

    /// RSS in bytes of `root` plus all its descendants (0 if it no longer exists or
    /// the process table cannot be read). Updates the high-water mark.
    pub fn sample(&mut self, root: u32) -> u64 {
        let Some(sys) = self.system.as_mut() else {
            return 0;
        };
        let root = Pid::from_u32(root);
        let rescan = self.samples.is_multiple_of(RESCAN_EVERY) || self.tree.first() != Some(&root);
        self.samples = self.samples.wrapping_add(1);
        let kind = ProcessRefreshKind::nothing().with_memory();
        if rescan {
            sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
            self.tree = descendants(sys, root);
        } else {
            sys.refresh_processes_specifics(ProcessesToUpdate::Some(&self.tree), true, kind);
        }
        let procs = sys.processes();
        // Threads show up as processes on Linux: count only thread-group leaders.
        let total = self
            .tree
            .iter()
            .filter_map(|pid| procs.get(pid))
            .filter(|p| p.thread_kind().is_none())
            .map(|p| charged(p.pid().as_u32(), p.memory()))
            .sum();
        self.high_water = self.high_water.max(total);
        total
    }

    /// The largest sample so far.
    pub fn high_water(&self) -> u64 {
        self.high_water
    }

    /// Forgets the high-water mark (a new helper).
    pub fn reset(&mut self) {
        self.high_water = 0;
    }
}

/// The memory charged to one process of the tree, given its resident set.
#[cfg(target_os = "linux")]
fn charged(pid: u32, rss: u64) -> u64 {
    rss.saturating_sub(shmem_resident(pid))
}

/// `phys_footprint`, what jetsam charges (falls back to the resident set).
#[cfg(target_os = "macos")]
fn charged(pid: u32, rss: u64) -> u64 {
    crate::sys::phys_footprint(pid).unwrap_or(rss)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn charged(_pid: u32, rss: u64) -> u64 {
    rss
}

/// Resident shared-memory bytes mapped by `pid` (`RssShmem`), 0 if unknown.
#[cfg(target_os = "linux")]
pub fn shmem_resident(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssShmem:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// `root` and every process below it, `root` first.
fn descendants(sys: &System, root: Pid) -> Vec<Pid> {
    let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
    for (pid, p) in sys.processes() {
        if let Some(parent) = p.parent() {
            children.entry(parent).or_default().push(*pid);
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if seen.insert(pid) {
            out.push(pid);
            if let Some(c) = children.get(&pid) {
                stack.extend(c.iter().copied());
            }
        }
    }
    out
}
