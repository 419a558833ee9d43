//! The Linux sandbox applied to the helper between fork and exec, and the report of
//! which parts the kernel let us apply.
//!
//! ```
//! use coreml_supervisor::SandboxConfig;
//!
//! let cfg = SandboxConfig::default()
//!     .read_only("/opt/models")
//!     .read_write(std::env::temp_dir());
//! let (prepared, report) = cfg.prepare(&[]).unwrap();
//! // On Linux every part is either applied or says why not; elsewhere nothing applies.
//! println!("{report}");
//! drop(prepared);
//! ```

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What to restrict in the helper. Defaults: everything on, 256 open files.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Master switch (off = only the process group and fd 3 are set up).
    pub enabled: bool,
    /// `RLIMIT_NOFILE` for the helper.
    pub max_open_files: u64,
    /// Deny `socket(AF_INET|AF_INET6)` and `io_uring_setup` with seccomp.
    pub deny_network: bool,
    /// Restrict the filesystem with Landlock (where the kernel supports it).
    pub landlock: bool,
    /// Extra read-only paths (model inputs, the launcher root, ...).
    pub read_only: Vec<PathBuf>,
    /// Read-write paths (staging and cache directories).
    pub read_write: Vec<PathBuf>,
    /// Also tell the helper which paths to allow, for helpers that sandbox
    /// themselves: `--sandbox-read PATH` per read-only path, `--sandbox-write PATH`
    /// per read-write path, or `--no-sandbox` when `enabled` is off (see
    /// [`SandboxConfig::helper_args`]). The Swift helper builds its Seatbelt profile
    /// from them on macOS. Default: on for macOS, off elsewhere (where the
    /// supervisor applies the sandbox itself, before exec).
    pub pass_to_helper: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_open_files: 256,
            deny_network: true,
            landlock: true,
            read_only: Vec::new(),
            read_write: Vec::new(),
            pass_to_helper: cfg!(target_os = "macos"),
        }
    }
}

/// System paths every helper may read and execute: loader, libraries, locale data.
pub const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc",
    "/proc",
    "/sys/devices/system/cpu",
    "/dev/urandom",
    "/dev/random",
];

/// Read-write paths every helper needs: the POSIX shared-memory directory, so it can
/// `shm_open` the regions the supervisor attaches, and the null devices.
pub const SYSTEM_READ_WRITE: &[&str] = &["/dev/shm", "/dev/null", "/dev/zero"];

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReport {
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: Applied,
    /// `RLIMIT_CORE = 0`.
    pub core_dumps_off: Applied,
    /// `RLIMIT_NOFILE`.
    pub open_files_limit: Applied,
    /// Landlock filesystem restriction (with the kernel ABI number when in force).
    pub landlock: Applied,
    /// The seccomp network filter.
    pub network: Applied,
    /// The helper's own `Hello.sandboxed` (macOS helpers sandbox themselves).
    pub helper_self_sandboxed: Option<bool>,
}

impl fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no_new_privs={} core_dumps_off={} open_files_limit={} landlock={} network={}",
            self.no_new_privs,
            self.core_dumps_off,
            self.open_files_limit,
            self.landlock,
            self.network
        )?;
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

/// Kernel objects built in the parent, consumed by the fork-exec hook.
#[derive(Debug, Default)]
pub struct PreparedSandbox {
    pub(crate) landlock_fd: Option<OwnedFd>,
    #[cfg(target_os = "linux")]
    pub(crate) seccomp: Option<seccompiler::BpfProgram>,
    pub(crate) nofile: Option<u64>,
    pub(crate) no_core: bool,
    pub(crate) no_new_privs: bool,
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
            ..Self::default()
        }
    }

    /// Builds the kernel objects. `extra_read_only` are the helper program and its
    /// launcher paths. Paths that do not exist are skipped.
    pub fn prepare(
        &self,
        extra_read_only: &[PathBuf],
    ) -> Result<(PreparedSandbox, SandboxReport), SandboxError> {
        let mut prepared = PreparedSandbox::default();
        if !self.enabled {
            let report = SandboxReport {
                no_new_privs: Applied::Disabled,
                core_dumps_off: Applied::Disabled,
                open_files_limit: Applied::Disabled,
                landlock: Applied::Disabled,
                network: Applied::Disabled,
                helper_self_sandboxed: None,
            };
            return Ok((prepared, report));
        }
        prepared.no_core = true;
        prepared.nofile = Some(self.max_open_files);
        let mut report = SandboxReport {
            no_new_privs: Applied::Unsupported("not Linux".into()),
            core_dumps_off: Applied::Yes,
            open_files_limit: Applied::Yes,
            landlock: Applied::Unsupported("not Linux".into()),
            network: Applied::Unsupported("not Linux".into()),
            helper_self_sandboxed: None,
        };
        #[cfg(target_os = "linux")]
        {
            prepared.no_new_privs = true;
            report.no_new_privs = Applied::Yes;
            report.landlock = if self.landlock {
                let mut ro: Vec<PathBuf> = SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect();
                ro.extend(extra_read_only.iter().cloned());
                ro.extend(self.read_only.iter().cloned());
                let mut rw: Vec<PathBuf> = SYSTEM_READ_WRITE.iter().map(PathBuf::from).collect();
                rw.extend(self.read_write.iter().cloned());
                let (fd, applied) = linux::landlock_ruleset(&ro, &rw)?;
                prepared.landlock_fd = fd;
                applied
            } else {
                Applied::Disabled
            };
            report.network = if self.deny_network {
                prepared.seccomp = Some(linux::network_filter()?);
                Applied::Yes
            } else {
                Applied::Disabled
            };
        }
        #[cfg(not(target_os = "linux"))]
        let _ = extra_read_only;
        Ok((prepared, report))
    }
}

/// Keeps only paths that exist (Landlock rules need an open fd).
fn existing(paths: &[PathBuf]) -> Vec<&Path> {
    paths
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| p.exists())
        .collect()
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use landlock::{
        path_beneath_rules, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr,
        RulesetCreatedAttr, ABI,
    };
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };
    use std::collections::BTreeMap;

    pub(super) fn landlock_ruleset(
        ro: &[PathBuf],
        rw: &[PathBuf],
    ) -> Result<(Option<OwnedFd>, Applied), SandboxError> {
        let kernel = crate::sys::landlock_abi();
        if kernel <= 0 {
            return Ok((None, Applied::Unsupported("kernel has no Landlock".into())));
        }
        let abi = ABI::V5;
        let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
        let read = AccessFs::from_read(abi);
        let all = AccessFs::from_all(abi);
        let created = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(all)
            .map_err(|e| err(&e))?
            .create()
            .map_err(|e| err(&e))?
            .add_rules(path_beneath_rules(existing(ro), read))
            .map_err(|e| err(&e))?
            .add_rules(path_beneath_rules(existing(rw), all))
            .map_err(|e| err(&e))?;
        let fd: Option<OwnedFd> = created.into();
        let applied = match fd {
            None => Applied::Unsupported("ruleset not created".into()),
            Some(_) if kernel < 5 => {
                Applied::Partially(format!("kernel Landlock ABI {kernel} < 5"))
            }
            Some(_) => Applied::Yes,
        };
        Ok((fd, applied))
    }

    pub(super) fn network_filter() -> Result<BpfProgram, SandboxError> {
        let err = |e: &dyn std::fmt::Display| SandboxError::Seccomp(e.to_string());
        let family = |af: i32| -> Result<SeccompRule, SandboxError> {
            let cond =
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, af as u64)
                    .map_err(|e| err(&e))?;
            SeccompRule::new(vec![cond]).map_err(|e| err(&e))
        };
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        rules.insert(
            libc::SYS_socket,
            vec![family(libc::AF_INET)?, family(libc::AF_INET6)?],
        );
        rules.insert(libc::SYS_io_uring_setup, vec![]);
        let arch = std::env::consts::ARCH.try_into().map_err(|e| err(&e))?;
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EACCES as u32),
            arch,
        )
        .map_err(|e| err(&e))?;
        filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| err(&e))
    }
}
