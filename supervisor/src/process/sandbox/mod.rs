//! The Linux sandbox applied to the helper between fork and exec, and the report of
//! which parts the kernel let us apply.
//!
//! ```
//! use coreml_supervisor::SandboxConfig;
//!
//! let cfg = SandboxConfig::default()
//!     .read_only("/opt/models")
//!     .read_write(std::env::temp_dir());
//! let (prepared, report) = cfg.prepare(&[], &[], 0).unwrap();
//! // On Linux every part is either applied or says why not; elsewhere nothing applies.
//! println!("{report}");
//! drop(prepared);
//! ```
//!
//! The concept is split by file: [`config`] (what to restrict), [`report`] (what
//! the kernel let us apply), and the Linux half of [`SandboxConfig::prepare`]
//! (`linux.rs`: Landlock paths, the seccomp allow-list, namespaces, the memory
//! cgroup). The mechanisms themselves live in the sibling modules
//! [`landlock`](crate::process::landlock), [`seccomp`](crate::process::seccomp)
//! and [`cgroup`](crate::process::cgroup); the fork-exec hook that enforces
//! them in the child is in `crate::sys`.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub mod config;
pub mod report;

pub use config::{
    SandboxConfig, DEFAULT_ENV_ALLOW, DEFAULT_HARD_MEMORY_LIMIT, SYSTEM_READ_ONLY,
    SYSTEM_READ_WRITE,
};
pub use report::{Applied, SandboxReport};

/// Errors while preparing the sandbox in the parent.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Landlock ruleset creation or a rule failed.
    #[error("landlock: {0}")]
    Landlock(String),
    /// The seccomp filter could not be compiled.
    #[error("seccomp: {0}")]
    Seccomp(String),
}

/// The helper said in `Hello` that it is not sandboxed, and the configuration
/// requires it to be ([`SandboxConfig::require_sandboxed_hello`]).
#[derive(Debug, thiserror::Error)]
#[error("the helper reports that it is not sandboxed; refusing it (set SandboxConfig::require_sandboxed_hello = false only for a helper you trust)")]
pub struct UnsandboxedHelper;

/// Kernel objects built in the parent, consumed by the fork-exec hook.
#[derive(Debug, Default)]
pub struct PreparedSandbox {
    pub(crate) landlock_fd: Option<OwnedFd>,
    #[cfg(target_os = "linux")]
    pub(crate) seccomp: Vec<seccompiler::BpfProgram>,
    pub(crate) nofile: Option<u64>,
    pub(crate) no_core: bool,
    pub(crate) no_new_privs: bool,
    /// `unshare` flags.
    pub(crate) unshare: i32,
    pub(crate) drop_caps: bool,
    pub(crate) close_fds: bool,
    /// The memory cgroup the helper joins before exec.
    #[cfg(target_os = "linux")]
    pub(crate) cgroup: Option<crate::process::cgroup::MemoryCgroup>,
    /// `RLIMIT_DATA` backstop when there is no cgroup.
    pub(crate) data_limit: Option<u64>,
}

impl SandboxConfig {
    /// Builds the kernel objects. `read_only` are the helper's files and its
    /// launcher paths; `execute` the files the helper's first exec runs (the
    /// program or launcher, and its ELF interpreter); `exec_path` the address of
    /// the path the supervisor passes to that exec. Paths that do not exist are
    /// skipped.
    pub fn prepare(
        &self,
        read_only: &[PathBuf],
        execute: &[PathBuf],
        exec_path: u64,
    ) -> Result<(PreparedSandbox, SandboxReport), SandboxError> {
        let mut prepared = PreparedSandbox::default();
        let mut report = SandboxReport::default();
        if !self.enabled {
            return Ok((prepared, report));
        }
        prepared.no_core = true;
        prepared.nofile = Some(self.max_open_files);
        report.core_dumps_off = Applied::Yes;
        report.open_files_limit = Applied::Yes;
        report.env_cleared = Applied::Yes;
        let not_linux = || Applied::Unsupported("not Linux".into());
        report.no_new_privs = not_linux();
        report.landlock = not_linux();
        report.network = not_linux();
        report.namespaces = not_linux();
        report.capabilities_dropped = not_linux();
        report.fds_closed = not_linux();
        report.memory_limit = Applied::Disabled;
        #[cfg(target_os = "linux")]
        linux::prepare(
            self,
            read_only,
            execute,
            exec_path,
            &mut prepared,
            &mut report,
        )?;
        #[cfg(not(target_os = "linux"))]
        let _ = (read_only, execute, exec_path);
        Ok((prepared, report))
    }
}

#[cfg(target_os = "linux")]
mod linux;
