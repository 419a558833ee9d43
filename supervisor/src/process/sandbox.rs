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

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// What to restrict in the helper. Defaults: everything on, 256 open files, a
/// [`DEFAULT_HARD_MEMORY_LIMIT`] memory cgroup.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Master switch (off = only the process group and fd 3 are set up).
    pub enabled: bool,
    /// `RLIMIT_NOFILE` for the helper.
    pub max_open_files: u64,
    /// The seccomp allow-list (Linux): no sockets, no fork, no exec, no signals to
    /// other processes, no namespaces, mounts, keys, BPF, perf or io_uring. See
    /// [`crate::seccomp`].
    pub seccomp: bool,
    /// Restrict the filesystem with Landlock (where the kernel supports it), and
    /// scope signals and abstract Unix sockets to the helper (Landlock ABI 6+).
    pub landlock: bool,
    /// New network and IPC namespaces (and a user namespace when the supervisor
    /// is not privileged but unprivileged user namespaces are available).
    pub namespaces: bool,
    /// Extra read-only paths (model inputs, the launcher root, ...).
    pub read_only: Vec<PathBuf>,
    /// Read-write paths (staging and cache directories).
    pub read_write: Vec<PathBuf>,
    /// Let the helper open POSIX shared memory by name in `/dev/shm` (read-write).
    /// Needed only by helpers that attach regions by name (protocol v1); helpers
    /// that receive regions as descriptors need no path at all. Default: on.
    pub shm_by_name: bool,
    /// Environment variables the helper inherits from the app (exact names, or
    /// prefixes ending in `*`); the [`HelperCommand`](crate::HelperCommand)'s own
    /// variables are always set. Default: [`DEFAULT_ENV_ALLOW`].
    pub env_allow: Vec<String>,
    /// The kernel's hard memory limit for the helper in bytes: a memory cgroup
    /// when the supervisor can create one, else `RLIMIT_DATA`. `None`: no hard
    /// limit. The supervisor's sampled soft limit is
    /// [`SupervisorConfig::memory_limit`](crate::SupervisorConfig::memory_limit).
    pub memory_max: Option<u64>,
    /// A delegated cgroup v2 directory to create helper groups in (for desktop
    /// users whose own cgroup cannot have children; see docs/security.md).
    /// `None`: the supervisor's own cgroup.
    pub cgroup_parent: Option<PathBuf>,
    /// Refuse a helper whose `Hello` says it did not sandbox itself. Default: on
    /// for macOS (where the helper applies Seatbelt to itself), off elsewhere
    /// (where the supervisor applies the sandbox before exec). Turn it off only
    /// for a helper the app trusts.
    pub require_sandboxed_hello: bool,
    /// Test-only: let the helper fork (the fault-injecting helper's `fork-child`
    /// fault). Never set it in an app.
    pub allow_fork: bool,
    /// Also tell the helper which paths to allow, for helpers that sandbox
    /// themselves: `--sandbox-read PATH` per read-only path, `--sandbox-write PATH`
    /// per read-write path, or `--no-sandbox` when `enabled` is off (see
    /// [`SandboxConfig::helper_args`]). The Swift helper builds its Seatbelt profile
    /// from them on macOS. Default: on for macOS, off elsewhere (where the
    /// supervisor applies the sandbox itself, before exec).
    pub pass_to_helper: bool,
}

/// Default [`SandboxConfig::memory_max`]: 6 GiB, above the default soft limit
/// ([`DEFAULT_MEMORY_LIMIT`](crate::config::DEFAULT_MEMORY_LIMIT)) so that the
/// supervisor normally stops a growing helper with a typed error before the
/// kernel has to.
pub const DEFAULT_HARD_MEMORY_LIMIT: u64 = 6 << 30;

/// Default [`SandboxConfig::env_allow`]: locale, time zone, search path and
/// temporary directory, logging switches, and the helper's own `COREML_*`
/// settings. Never credentials or agent sockets (`SSH_AUTH_SOCK`, ...).
pub const DEFAULT_ENV_ALLOW: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LOG",
    "COREML_*",
];

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_open_files: 256,
            seccomp: true,
            landlock: true,
            namespaces: true,
            read_only: Vec::new(),
            read_write: Vec::new(),
            shm_by_name: true,
            env_allow: DEFAULT_ENV_ALLOW.iter().map(|s| s.to_string()).collect(),
            memory_max: Some(DEFAULT_HARD_MEMORY_LIMIT),
            cgroup_parent: None,
            require_sandboxed_hello: cfg!(target_os = "macos"),
            allow_fork: false,
            pass_to_helper: cfg!(target_os = "macos"),
        }
    }
}

/// System paths every helper may read (not execute): libraries, locale and time
/// zone data, CPU topology, and only a few named files of `/etc`. `/proc` gets
/// the read-file right only (no listing), the helper's own `/proc/<pid>` full read
/// (added in the child, which alone can name it); the app's `environ`, `maps`,
/// `mem` and fd links stay closed by Landlock's ptrace rule.
pub const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/locale.alias",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/urandom",
    "/dev/random",
];

/// Read-write paths every helper needs: the null devices.
pub const SYSTEM_READ_WRITE: &[&str] = &["/dev/null", "/dev/zero"];

/// The POSIX shared-memory directory ([`SandboxConfig::shm_by_name`]).
pub const SHM_DIR: &str = "/dev/shm";

/// The state of one sandbox part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied in full.
    Yes,
    /// Applied, but the kernel lacks some of the requested rights (Landlock ABI too old).
    Partially(String),
    /// Not applied: switched off in the configuration.
    Disabled,
    /// Not applied: this system cannot (old kernel, other OS).
    Unsupported(String),
}

impl Applied {
    /// Whether the part is in force (fully or partially).
    pub fn in_force(&self) -> bool {
        matches!(self, Applied::Yes | Applied::Partially(_))
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Applied::Yes => f.write_str("yes"),
            Applied::Partially(why) => write!(f, "partial ({why})"),
            Applied::Disabled => f.write_str("disabled"),
            Applied::Unsupported(why) => write!(f, "unsupported ({why})"),
        }
    }
}

/// Which parts of the sandbox the supervisor applied to the helper (telemetry).
/// Every part is either in force or says why not; nothing is reported applied
/// that the kernel refused (a part that fails in the child fails the spawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReport {
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: Applied,
    /// `RLIMIT_CORE = 0`.
    pub core_dumps_off: Applied,
    /// `RLIMIT_NOFILE`.
    pub open_files_limit: Applied,
    /// Landlock filesystem restriction and scoping (with the kernel ABI when partial).
    pub landlock: Applied,
    /// The seccomp allow-list (no sockets, fork, exec, foreign signals, ...).
    pub network: Applied,
    /// Network/IPC (and user) namespaces.
    pub namespaces: Applied,
    /// Capabilities dropped (bounding set emptied before exec).
    pub capabilities_dropped: Applied,
    /// Inherited descriptors above 3 closed at exec (`close_range`).
    pub fds_closed: Applied,
    /// Environment reduced to the allow-list.
    pub env_cleared: Applied,
    /// The kernel's hard memory limit (cgroup, or the `RLIMIT_DATA` backstop).
    pub memory_limit: Applied,
    /// The helper's own `Hello.sandboxed` (macOS helpers sandbox themselves).
    pub helper_self_sandboxed: Option<bool>,
}

impl Default for SandboxReport {
    /// Every part [`Applied::Disabled`].
    fn default() -> Self {
        Self {
            no_new_privs: Applied::Disabled,
            core_dumps_off: Applied::Disabled,
            open_files_limit: Applied::Disabled,
            landlock: Applied::Disabled,
            network: Applied::Disabled,
            namespaces: Applied::Disabled,
            capabilities_dropped: Applied::Disabled,
            fds_closed: Applied::Disabled,
            env_cleared: Applied::Disabled,
            memory_limit: Applied::Disabled,
            helper_self_sandboxed: None,
        }
    }
}

impl SandboxReport {
    /// Every part by name, in a fixed order.
    pub fn parts(&self) -> [(&'static str, &Applied); 10] {
        [
            ("no_new_privs", &self.no_new_privs),
            ("core_dumps_off", &self.core_dumps_off),
            ("open_files_limit", &self.open_files_limit),
            ("landlock", &self.landlock),
            ("seccomp", &self.network),
            ("namespaces", &self.namespaces),
            ("capabilities_dropped", &self.capabilities_dropped),
            ("fds_closed", &self.fds_closed),
            ("env_cleared", &self.env_cleared),
            ("memory_limit", &self.memory_limit),
        ]
    }

    /// The parts that are not in force, with the reason (empty when all are).
    pub fn not_enforced(&self) -> Vec<String> {
        self.parts()
            .iter()
            .filter(|(_, a)| !matches!(a, Applied::Yes))
            .map(|(n, a)| format!("{n}: {a}"))
            .collect()
    }
}

impl fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, a) in self.parts() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{name}={a}")?;
        }
        if let Some(s) = self.helper_self_sandboxed {
            write!(f, " helper_self_sandboxed={s}")?;
        }
        Ok(())
    }
}

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
    /// Adds a read-only path.
    pub fn read_only(mut self, p: impl Into<PathBuf>) -> Self {
        self.read_only.push(p.into());
        self
    }

    /// Adds a read-write path.
    pub fn read_write(mut self, p: impl Into<PathBuf>) -> Self {
        self.read_write.push(p.into());
        self
    }

    /// Checks a helper's `Hello.sandboxed` against
    /// [`SandboxConfig::require_sandboxed_hello`].
    ///
    /// ```
    /// use coreml_supervisor::SandboxConfig;
    /// let mut cfg = SandboxConfig::default();
    /// cfg.require_sandboxed_hello = true;
    /// assert!(cfg.check_hello(false).is_err());
    /// assert!(cfg.check_hello(true).is_ok());
    /// ```
    pub fn check_hello(&self, sandboxed: bool) -> Result<(), UnsandboxedHelper> {
        if self.enabled && self.require_sandboxed_hello && !sandboxed {
            return Err(UnsandboxedHelper);
        }
        Ok(())
    }

    /// Whether the variable `name` may pass from the app to the helper.
    ///
    /// ```
    /// use coreml_supervisor::SandboxConfig;
    /// let cfg = SandboxConfig::default();
    /// assert!(cfg.env_allowed("LC_ALL") && cfg.env_allowed("PATH"));
    /// assert!(!cfg.env_allowed("SSH_AUTH_SOCK") && !cfg.env_allowed("AWS_SECRET_ACCESS_KEY"));
    /// ```
    pub fn env_allowed(&self, name: &str) -> bool {
        if !self.enabled {
            return true;
        }
        self.env_allow.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
    }

    /// The arguments that carry this configuration to a helper that sandboxes
    /// itself; empty unless [`SandboxConfig::pass_to_helper`] is set. Only the
    /// configured paths are passed: the helper adds what it needs itself (its
    /// executable, system libraries, shared memory).
    ///
    /// ```
    /// use coreml_supervisor::SandboxConfig;
    /// let mut cfg = SandboxConfig::default().read_only("/models").read_write("/cache");
    /// cfg.pass_to_helper = true;
    /// let args: Vec<String> = cfg.helper_args().iter().map(|a| a.to_string_lossy().into_owned()).collect();
    /// assert_eq!(args, ["--sandbox-read", "/models", "--sandbox-write", "/cache"]);
    /// cfg.enabled = false;
    /// assert_eq!(cfg.helper_args(), ["--no-sandbox"]);
    /// ```
    pub fn helper_args(&self) -> Vec<std::ffi::OsString> {
        if !self.pass_to_helper {
            return Vec::new();
        }
        if !self.enabled {
            return vec!["--no-sandbox".into()];
        }
        let mut v = Vec::new();
        for p in &self.read_only {
            v.push("--sandbox-read".into());
            v.push(p.clone().into_os_string());
        }
        for p in &self.read_write {
            v.push("--sandbox-write".into());
            v.push(p.clone().into_os_string());
        }
        v
    }

    /// A configuration that applies nothing.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            memory_max: None,
            ..Self::default()
        }
    }

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
#[path = "sandbox_linux.rs"]
mod linux;
