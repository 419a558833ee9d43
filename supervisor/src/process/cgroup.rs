//! A memory cgroup per helper: the kernel's hard memory limit. cgroup v2
//! (`memory.max`, `memory.swap.max = 0`, `memory.oom.group`, `cgroup.kill`) where
//! the v2 hierarchy has the memory controller, else the v1 memory controller
//! (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`). The helper joins its
//! group itself between fork and exec (it writes `0` to `cgroup.procs`), so even
//! its first allocation is charged. The group is removed when the last handle
//! drops, after the helper was reaped.
//!
//! ```no_run
//! # #[cfg(target_os = "linux")] {
//! use coreml_supervisor::cgroup::MemoryCgroup;
//!
//! match MemoryCgroup::create(512 << 20, None) {
//!     Ok(g) => println!("{} (peak so far {:?})", g.describe(), g.peak()),
//!     Err(why) => println!("no memory cgroup: {why}"),
//! }
//! # }
//! ```
//!
//! Where a group can be made: as root, or where the app's own cgroup (or the
//! `cgroup_parent` the app names) is delegated to its user with the memory
//! controller enabled for its children; see docs/security.md, "Memory limits".
//! Groups left by a crashed app (named after its pid) are removed by the next
//! supervisor that creates one in the same parent.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Which hierarchy holds the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The unified hierarchy.
    V2,
    /// The v1 memory controller.
    V1,
}

/// One helper's memory cgroup; removed on drop.
#[derive(Debug)]
pub struct MemoryCgroup {
    dir: PathBuf,
    version: CgroupVersion,
    limit: u64,
}

const PREFIX: &str = "coreml-helper-";

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
}

/// `(mount point, mount root, is v2, super options)` of the cgroup mounts in a
/// `mountinfo` text.
fn mounts(info: &str) -> Vec<(PathBuf, String, bool, String)> {
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split_whitespace().collect();
        let post: Vec<&str> = post.split_whitespace().collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let v2 = post[0] == "cgroup2";
        if v2 || post[0] == "cgroup" {
            out.push((pre[4].into(), pre[3].to_owned(), v2, post[2].to_owned()));
        }
    }
    out
}

/// This process's own cgroup directories for the memory controller, v2 first,
/// read from `/proc/self/mountinfo` and `/proc/self/cgroup` under the
/// filesystem root `root` (`/` in production; a fake tree in tests). Each
/// directory is a candidate parent for helper groups; [`MemoryCgroup::create_in`]
/// takes the first that works.
///
/// ```
/// use coreml_supervisor::cgroup::{own_memory_dirs, CgroupVersion};
///
/// let root = tempfile::tempdir().unwrap();
/// std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
/// std::fs::write(root.path().join("proc/self/mountinfo"),
///     "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n").unwrap();
/// std::fs::write(root.path().join("proc/self/cgroup"), "0::/user.slice/app\n").unwrap();
/// assert_eq!(own_memory_dirs(root.path()),
///     [(CgroupVersion::V2, root.path().join("sys/fs/cgroup/user.slice/app"))]);
/// ```
pub fn own_memory_dirs(root: &Path) -> Vec<(CgroupVersion, PathBuf)> {
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
    let me = read("proc/self/cgroup");
    let mounts = mounts(&read("proc/self/mountinfo"));
    let mut out = Vec::new();
    let join = |mount: &Path, mount_root: &str, path: &str| {
        let rel = path.strip_prefix(mount_root).unwrap_or(path);
        root.join(mount.strip_prefix("/").unwrap_or(mount))
            .join(rel.trim_start_matches('/'))
    };
    if let Some(path) = me.lines().find_map(|l| l.strip_prefix("0::")) {
        if let Some((m, mount_root, ..)) = mounts.iter().find(|m| m.2) {
            out.push((CgroupVersion::V2, join(m, mount_root, path)));
        }
    }
    for line in me.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrl.split(',').any(|c| c == "memory") {
            let m = mounts
                .iter()
                .find(|m| !m.2 && m.3.split(',').any(|o| o == "memory"));
            if let Some((m, mount_root, ..)) = m {
                out.push((CgroupVersion::V1, join(m, mount_root, path)));
            }
        }
    }
    out
}

/// Whether children of the v2 group `dir` get the memory controller (enabling
/// it if the group allows that).
fn v2_memory_for_children(dir: &Path) -> bool {
    let has = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map(|s| s.split_whitespace().any(|c| c == "memory"))
            .unwrap_or(false)
    };
    has("cgroup.subtree_control")
        || (has("cgroup.controllers")
            && std::fs::write(dir.join("cgroup.subtree_control"), "+memory").is_ok())
}

/// Removes empty groups left by supervisors that no longer run.
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !crate::sys::process_alive(pid) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

impl MemoryCgroup {
    /// Creates a group limited to `limit` bytes under `parent` (a delegated v2
    /// directory) or, without one, under this process's own cgroup.
    pub fn create(limit: u64, parent: Option<&Path>) -> Result<Self, String> {
        let candidates = match parent {
            Some(p) => vec![(CgroupVersion::V2, p.to_path_buf())],
            None => own_memory_dirs(Path::new("/")),
        };
        Self::create_in(limit, &candidates)
    }

    /// Creates a group limited to `limit` bytes in the first of `candidates`
    /// (from [`own_memory_dirs`]) that takes one: a v2 directory only if its
    /// children get the memory controller. The error lists why each failed.
    pub fn create_in(limit: u64, candidates: &[(CgroupVersion, PathBuf)]) -> Result<Self, String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut why = vec!["no cgroup hierarchy with the memory controller".to_owned()];
        for &(version, ref dir) in candidates {
            if version == CgroupVersion::V2 && !v2_memory_for_children(dir) {
                why.push(format!(
                    "{}: memory controller not enabled for children",
                    dir.display()
                ));
                continue;
            }
            sweep(dir);
            let name = format!(
                "{PREFIX}{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let group = Self {
                dir: dir.join(name),
                version,
                limit,
            };
            if let Err(e) = std::fs::create_dir(&group.dir) {
                why.push(format!("{}: {e}", group.dir.display()));
                continue;
            }
            let set = match version {
                CgroupVersion::V2 => write(&group.dir.join("memory.max"), &limit.to_string()),
                CgroupVersion::V1 => {
                    write(&group.dir.join("memory.limit_in_bytes"), &limit.to_string())
                }
            };
            if let Err(e) = set {
                why.push(e);
                continue; // `group` drops here and removes the directory.
            }
            // Best effort: no swap beyond the limit, and kill the whole group on OOM.
            match version {
                CgroupVersion::V2 => {
                    let _ = write(&group.dir.join("memory.swap.max"), "0");
                    let _ = write(&group.dir.join("memory.oom.group"), "1");
                }
                CgroupVersion::V1 => {
                    let _ = write(
                        &group.dir.join("memory.memsw.limit_in_bytes"),
                        &limit.to_string(),
                    );
                }
            }
            return Ok(group);
        }
        Err(why.join("; "))
    }

    /// The group's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file the helper writes `0` to, to join the group.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The hierarchy, directory and limit, for the report.
    pub fn describe(&self) -> String {
        let v = match self.version {
            CgroupVersion::V2 => "cgroup v2 memory.max",
            CgroupVersion::V1 => "cgroup v1 memory.limit_in_bytes",
        };
        format!("{v}={} MiB", self.limit >> 20)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The hierarchy.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    fn read_u64(&self, file: &str) -> Option<u64> {
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The group's peak memory in bytes (`memory.peak`, or v1
    /// `memory.max_usage_in_bytes`), if the kernel reports it.
    pub fn peak(&self) -> Option<u64> {
        match self.version {
            CgroupVersion::V2 => self.read_u64("memory.peak"),
            CgroupVersion::V1 => self.read_u64("memory.max_usage_in_bytes"),
        }
    }

    /// How many processes the kernel's OOM killer killed in the group.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            CgroupVersion::V2 => "memory.events",
            CgroupVersion::V1 => "memory.oom_control",
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGKILL to every process in the group (v2 `cgroup.kill`; v1 one by one).
    pub fn kill_all(&self) {
        if self.version == CgroupVersion::V2
            && std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        let procs = std::fs::read_to_string(self.procs_file()).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            let _ = crate::sys::kill_pid(pid, libc::SIGKILL);
        }
    }
}

impl MemoryCgroup {
    /// Removes the group's directory (idempotent). Empty once the helper is
    /// reaped; a straggler is killed first.
    pub fn remove(&self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            self.kill_all();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tracing::warn!(dir = %self.dir.display(), "memory cgroup not removed");
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}
