//! The Linux half of [`SandboxConfig::prepare`](super::SandboxConfig::prepare):
//! Landlock paths, the seccomp allow-list, namespaces and the memory limit, each
//! with its report entry.
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! let (_prepared, report) = coreml_supervisor::SandboxConfig::default().prepare(&[], &[], 0).unwrap();
//! assert!(report.network.in_force() && report.no_new_privs.in_force());
//! # }
//! ```

use std::path::PathBuf;

use super::{
    Applied, PreparedSandbox, SandboxConfig, SandboxError, SandboxReport, SYSTEM_READ_ONLY,
    SYSTEM_READ_WRITE,
};
use crate::process::{cgroup::MemoryCgroup, landlock::Paths, seccomp};

pub(super) fn prepare(
    cfg: &SandboxConfig,
    read_only: &[PathBuf],
    execute: &[PathBuf],
    exec_path: u64,
    prepared: &mut PreparedSandbox,
    report: &mut SandboxReport,
) -> Result<(), SandboxError> {
    prepared.no_new_privs = true;
    report.no_new_privs = Applied::Yes;
    prepared.close_fds = true;
    report.fds_closed = Applied::Yes;
    prepared.drop_caps = true;
    report.capabilities_dropped = Applied::Yes;
    report.landlock = if cfg.landlock {
        let mut paths = Paths {
            read_only: SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect(),
            read_write: SYSTEM_READ_WRITE.iter().map(PathBuf::from).collect(),
            read_files: vec!["/proc".into()],
            execute: execute.to_vec(),
        };
        paths.read_only.extend(read_only.iter().cloned());
        paths.read_only.extend(cfg.read_only.iter().cloned());
        paths.read_write.extend(cfg.read_write.iter().cloned());
        let (fd, applied) = paths.ruleset()?;
        prepared.landlock_fd = fd;
        applied
    } else {
        Applied::Disabled
    };
    report.network = if cfg.seccomp {
        prepared.seccomp = seccomp::allow_list(&seccomp::SeccompOptions {
            exec_path,
            allow_fork: cfg.allow_fork,
        })?;
        if cfg.allow_fork {
            Applied::Partially("fork allowed (test-only switch)".into())
        } else {
            Applied::Yes
        }
    } else {
        Applied::Disabled
    };
    report.namespaces = if cfg.namespaces {
        let (flags, applied) = namespaces();
        prepared.unshare = flags;
        applied
    } else {
        Applied::Disabled
    };
    report.memory_limit = match cfg.memory_max {
        None => Applied::Disabled,
        Some(limit) => match MemoryCgroup::create(limit, cfg.cgroup_parent.as_deref()) {
            Ok(group) => {
                tracing::debug!(cgroup = %group.describe(), "helper memory cgroup");
                prepared.cgroup = Some(group);
                Applied::Yes
            }
            Err(why) => {
                prepared.data_limit = Some(limit);
                Applied::Partially(format!(
                    "RLIMIT_DATA={} MiB backstop only (no memory cgroup: {why})",
                    limit >> 20
                ))
            }
        },
    };
    Ok(())
}

/// Which namespaces the helper can get: net+ipc when the supervisor holds
/// CAP_SYS_ADMIN, else user+net+ipc when unprivileged user namespaces exist.
/// No pid namespace: the helper would have to become the namespace's init
/// (an extra fork); Landlock scoping and seccomp already keep it from
/// signalling or inspecting other processes.
fn namespaces() -> (i32, Applied) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let base = libc::CLONE_NEWNET | libc::CLONE_NEWIPC;
    let no_pid = "no pid namespace (seccomp and Landlock scoping cover signals and ptrace)";
    const CAP_SYS_ADMIN: u32 = 21;
    if cap_eff & (1 << CAP_SYS_ADMIN) != 0 {
        return (base, Applied::Partially(format!("net, ipc; {no_pid}")));
    }
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let userns = read("/proc/sys/user/max_user_namespaces").is_some_and(|v| v != "0")
        && read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|v| v != "0");
    if userns {
        (
            base | libc::CLONE_NEWUSER,
            Applied::Partially(format!("user, net, ipc; {no_pid}")),
        )
    } else {
        (
            0,
            Applied::Unsupported("no CAP_SYS_ADMIN and no unprivileged user namespaces".into()),
        )
    }
}
