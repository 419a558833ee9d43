//! Resident-memory sampling of the helper and its descendants with `sysinfo`, with a
//! high-water mark.
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

/// Samples the resident set size of a process tree.
#[derive(Debug)]
pub struct MemoryWatcher {
    system: Option<System>,
    high_water: u64,
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
        }
    }

    /// RSS in bytes of `root` plus all its descendants (0 if it no longer exists or
    /// the process table cannot be read). Updates the high-water mark.
    pub fn sample(&mut self, root: u32) -> u64 {
        let Some(sys) = self.system.as_mut() else {
            return 0;
        };
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let procs = sys.processes();
        let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for (pid, p) in procs {
            if let Some(parent) = p.parent() {
                children.entry(parent).or_default().push(*pid);
            }
        }
        let mut seen = HashSet::new();
        let mut stack = vec![Pid::from_u32(root)];
        let mut total = 0u64;
        while let Some(pid) = stack.pop() {
            if !seen.insert(pid) {
                continue;
            }
            // Threads show up as processes on Linux: count only thread-group leaders.
            if let Some(p) = procs.get(&pid) {
                if p.thread_kind().is_none() {
                    total += p.memory();
                }
            }
            if let Some(c) = children.get(&pid) {
                stack.extend(c.iter().copied());
            }
        }
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
