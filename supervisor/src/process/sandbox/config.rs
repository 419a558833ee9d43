//! What to restrict in the helper: [`SandboxConfig`], its defaults, and the
//! system paths every helper may use. Building the kernel objects from it is
//! [`SandboxConfig::prepare`](super::SandboxConfig::prepare).
//!
//! ```
//! use coreml_supervisor::{SandboxConfig, DEFAULT_HARD_MEMORY_LIMIT};
//!
//! let cfg = SandboxConfig::default().read_only("/opt/models").read_write("/var/cache/app");
//! assert!(cfg.enabled && cfg.seccomp && cfg.landlock);
//! assert_eq!(cfg.memory_max, Some(DEFAULT_HARD_MEMORY_LIMIT));
//! assert!(!cfg.env_allowed("SSH_AUTH_SOCK"));
//! assert!(!SandboxConfig::disabled().enabled);
//! ```

use std::path::PathBuf;

use super::UnsandboxedHelper;

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
}
