//! Which parts of the sandbox are in force: [`Applied`] per part, gathered in
//! [`SandboxReport`] (telemetry, the `HelperStarted` event, `stats().sandbox`).
//!
//! ```
//! use coreml_supervisor::{Applied, SandboxReport};
//!
//! let mut report = SandboxReport::default();
//! report.landlock = Applied::Partially("kernel Landlock ABI 5".into());
//! report.network = Applied::Yes;
//! assert!(report.landlock.in_force());
//! assert!(report.not_enforced().iter().any(|p| p.starts_with("landlock: partial")));
//! assert!(report.to_string().contains("seccomp=yes"));
//! ```

use std::fmt;

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
