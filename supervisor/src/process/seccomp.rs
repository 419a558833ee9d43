//! The helper's seccomp filter: an allow-list of the system calls the Rust test
//! helper and the Swift helper (Swift runtime, Foundation, Dispatch) need, and
//! nothing else. Everything not listed fails with `EPERM`.
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use coreml_supervisor::seccomp::{allow_list, SeccompOptions};
//!
//! let filters = allow_list(&SeccompOptions { exec_path: 0x1000, allow_fork: false }).unwrap();
//! assert_eq!(filters.len(), 2); // `clone3` answered with ENOSYS, then the allow-list
//! # }
//! ```
//!
//! What the list leaves out, on purpose: `socket`, `socketpair`, `connect`, `bind`,
//! `listen`, `accept*` (the helper inherits its one connected socket as fd 3 and
//! receives shared memory as descriptors with `recvmsg`); `fork`, `vfork` and any
//! `clone` without `CLONE_THREAD` (threads only); `clone3` (answered with `ENOSYS`
//! so libc falls back to `clone`, whose flags a filter can read); `execve` except
//! the supervisor's own first exec of the helper (matched by the address of the
//! path it passes; see below) and `execveat`; `setsid`, `setpgid`; `ptrace`,
//! `process_vm_readv`/`writev`; `kill`, `tgkill`, `rt_sigqueueinfo` and friends to
//! any process but the helper itself; `pidfd_*`; `mount`, `umount2`, `pivot_root`,
//! `chroot`, `unshare`, `setns`; `keyctl`, `add_key`, `request_key`; `bpf`;
//! `perf_event_open`; `io_uring_*`; `memfd_create`; `chmod`/`chown` in every form;
//! `setuid` and friends; `capset`; `prctl` except a few options.
//!
//! The first exec: the filter is installed between fork and exec, so the exec of
//! the helper itself must pass it. The supervisor makes that call with a path
//! pointer it knows ([`SeccompOptions::exec_path`]) and the filter allows
//! `execve` only with that first argument. A helper that has code execution could
//! map memory at that address and try again; Landlock then allows executing only
//! the helper's own files (see `landlock.rs`), so the residual is "run the helper
//! again", never another program.
//!
//! The helper's pid is not known when the filter is compiled (before fork), so
//! signal rules compare against [`SELF_PID_PLACEHOLDER`], which the child
//! replaces with its own pid before installing the filter ([`patch_self_pid`]).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule,
};

use crate::process::sandbox::SandboxError;

/// Stand-in for the helper's own pid in compiled filters; see [`patch_self_pid`].
pub const SELF_PID_PLACEHOLDER: u32 = 0x7e5e_1f5a;

/// What the filter depends on.
#[derive(Debug, Clone, Copy)]
pub struct SeccompOptions {
    /// Address of the path the supervisor passes to its one `execve`.
    pub exec_path: u64,
    /// Test-only: allow `clone` without `CLONE_THREAD` (a forked child), for the
    /// fault-injecting helper's `fork-child` fault. Never set it in an app.
    pub allow_fork: bool,
}

fn err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp(e.to_string())
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(err)
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conds).map_err(err)
}

/// System calls allowed with any arguments.
#[rustfmt::skip]
const UNCONDITIONAL: &[libc::c_long] = &[
    // I/O on descriptors the helper holds (Landlock decides what it may open).
    libc::SYS_read, libc::SYS_write, libc::SYS_readv, libc::SYS_writev,
    libc::SYS_pread64, libc::SYS_pwrite64, libc::SYS_preadv, libc::SYS_pwritev,
    libc::SYS_preadv2, libc::SYS_pwritev2, libc::SYS_close, libc::SYS_close_range,
    libc::SYS_openat, libc::SYS_openat2, libc::SYS_fstat, libc::SYS_newfstatat,
    libc::SYS_statx, libc::SYS_lseek, libc::SYS_fcntl, libc::SYS_dup, libc::SYS_dup3,
    libc::SYS_pipe2, libc::SYS_getdents64, libc::SYS_readlinkat, libc::SYS_faccessat,
    libc::SYS_faccessat2, libc::SYS_getcwd, libc::SYS_ftruncate, libc::SYS_fsync,
    libc::SYS_fdatasync, libc::SYS_flock, libc::SYS_fstatfs, libc::SYS_statfs,
    libc::SYS_mkdirat, libc::SYS_unlinkat, libc::SYS_renameat2, libc::SYS_fadvise64,
    // The inherited socket: messages and descriptors (SCM_RIGHTS), no new sockets.
    libc::SYS_sendmsg, libc::SYS_recvmsg, libc::SYS_sendto, libc::SYS_recvfrom,
    libc::SYS_shutdown, libc::SYS_getsockopt, libc::SYS_setsockopt,
    libc::SYS_getsockname, libc::SYS_getpeername,
    // Waiting.
    libc::SYS_ppoll, libc::SYS_pselect6, libc::SYS_epoll_create1, libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait, libc::SYS_epoll_pwait2, libc::SYS_eventfd2,
    libc::SYS_timerfd_create, libc::SYS_timerfd_settime, libc::SYS_timerfd_gettime,
    libc::SYS_nanosleep, libc::SYS_clock_nanosleep, libc::SYS_clock_gettime,
    libc::SYS_clock_getres, libc::SYS_gettimeofday, libc::SYS_sched_yield,
    libc::SYS_futex, libc::SYS_futex_waitv, libc::SYS_membarrier,
    // Memory (Swift runtime and allocators: mmap, madvise, mremap, ...).
    libc::SYS_mmap, libc::SYS_mprotect, libc::SYS_munmap, libc::SYS_mremap,
    libc::SYS_madvise, libc::SYS_msync, libc::SYS_mincore, libc::SYS_brk,
    // Signals to itself (handlers, masks); sending is restricted below.
    libc::SYS_rt_sigaction, libc::SYS_rt_sigprocmask, libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigpending, libc::SYS_rt_sigtimedwait, libc::SYS_rt_sigsuspend,
    libc::SYS_sigaltstack,
    // Threads and identity queries.
    libc::SYS_set_robust_list, libc::SYS_set_tid_address, libc::SYS_rseq,
    libc::SYS_gettid, libc::SYS_getpid, libc::SYS_getppid, libc::SYS_getuid,
    libc::SYS_geteuid, libc::SYS_getgid, libc::SYS_getegid, libc::SYS_getgroups,
    libc::SYS_getresuid, libc::SYS_getresgid, libc::SYS_getpgid, libc::SYS_getsid,
    libc::SYS_getrusage, libc::SYS_sysinfo, libc::SYS_uname, libc::SYS_getrandom,
    libc::SYS_sched_getaffinity, libc::SYS_sched_getparam, libc::SYS_sched_getscheduler,
    libc::SYS_sched_get_priority_max, libc::SYS_sched_get_priority_min,
    libc::SYS_getpriority, libc::SYS_exit, libc::SYS_exit_group, libc::SYS_restart_syscall,
];

/// Legacy x86-64 entry points that glibc or the Swift runtime may still use.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const UNCONDITIONAL_X86_64: &[libc::c_long] = &[
    libc::SYS_open, libc::SYS_stat, libc::SYS_lstat, libc::SYS_access, libc::SYS_pipe,
    libc::SYS_poll, libc::SYS_select, libc::SYS_epoll_create, libc::SYS_epoll_wait,
    libc::SYS_eventfd, libc::SYS_readlink, libc::SYS_dup2, libc::SYS_mkdir,
    libc::SYS_unlink, libc::SYS_rename, libc::SYS_getpgrp, libc::SYS_time,
    libc::SYS_arch_prctl, libc::SYS_getdents, libc::SYS_renameat,
];
#[cfg(not(target_arch = "x86_64"))]
const UNCONDITIONAL_X86_64: &[libc::c_long] = &[];

/// `prctl` options the runtimes use: thread names, the parent-death signal,
/// anonymous-mapping names (glibc 2.39+), the dumpable flag.
const PRCTL_OPTIONS: &[libc::c_int] = &[
    libc::PR_SET_NAME,
    libc::PR_GET_NAME,
    libc::PR_SET_PDEATHSIG,
    libc::PR_GET_PDEATHSIG,
    libc::PR_GET_DUMPABLE,
    libc::PR_SET_VMA,
    libc::PR_GET_NO_NEW_PRIVS,
];

/// `ioctl` requests: terminal queries (`isatty`) and descriptor flags.
const IOCTL_REQUESTS: &[libc::c_ulong] = &[
    libc::TCGETS,
    libc::TIOCGWINSZ,
    libc::FIONBIO,
    libc::FIONREAD,
    libc::FIOCLEX,
    libc::FIONCLEX,
];

/// Builds the filters, to be installed in order: one answering `clone3` with
/// `ENOSYS`, then the allow-list (which must come last: installing a filter
/// needs `seccomp` and `prctl(PR_SET_NO_NEW_PRIVS)`, which it denies). Stacked
/// filters give the most restrictive answer, so `clone3`, allowed by the list,
/// gets `ENOSYS`.
pub fn allow_list(opts: &SeccompOptions) -> Result<Vec<BpfProgram>, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in UNCONDITIONAL.iter().chain(UNCONDITIONAL_X86_64) {
        rules.insert(nr, Vec::new());
    }
    let self_pid = u64::from(SELF_PID_PLACEHOLDER);
    let is_self = |arg| cond(arg, Len::Dword, Op::Eq, self_pid);
    // Threads only: CLONE_THREAD set (or anything, with the test-only switch).
    let thread = cond(
        0,
        Len::Qword,
        Op::MaskedEq(libc::CLONE_THREAD as u64),
        libc::CLONE_THREAD as u64,
    )?;
    let clone_rules = if opts.allow_fork {
        Vec::new()
    } else {
        vec![rule(vec![thread])?]
    };
    rules.insert(libc::SYS_clone, clone_rules);
    // Allowed here so that the other filter's ENOSYS is the answer.
    rules.insert(libc::SYS_clone3, Vec::new());
    rules.insert(
        libc::SYS_execve,
        vec![rule(vec![cond(0, Len::Qword, Op::Eq, opts.exec_path)?])?],
    );
    // Signals: only to the helper itself (its pid as process or thread group).
    rules.insert(libc::SYS_kill, vec![rule(vec![is_self(0)?])?]);
    rules.insert(libc::SYS_tgkill, vec![rule(vec![is_self(0)?])?]);
    rules.insert(libc::SYS_rt_sigqueueinfo, vec![rule(vec![is_self(0)?])?]);
    rules.insert(libc::SYS_rt_tgsigqueueinfo, vec![rule(vec![is_self(0)?])?]);
    // Limits: read its own only (prlimit64(0, res, NULL, old)); raising is denied.
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![
            cond(0, Len::Dword, Op::Eq, 0)?,
            cond(2, Len::Qword, Op::Eq, 0)?,
        ])?],
    );
    rules.insert(libc::SYS_getrlimit, Vec::new());
    rules.insert(
        libc::SYS_prctl,
        PRCTL_OPTIONS
            .iter()
            .map(|&o| rule(vec![cond(0, Len::Dword, Op::Eq, o as u64)?]))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(
        libc::SYS_ioctl,
        IOCTL_REQUESTS
            .iter()
            .map(|&r| rule(vec![cond(1, Len::Dword, Op::Eq, r)?]))
            .collect::<Result<_, _>>()?,
    );
    let arch = std::env::consts::ARCH.try_into().map_err(err)?;
    let allow = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(err)?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let arch = std::env::consts::ARCH.try_into().map_err(err)?;
    let enosys = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    let compile = |f: SeccompFilter| -> Result<BpfProgram, SandboxError> {
        f.try_into().map_err(|e: seccompiler::BackendError| err(e))
    };
    Ok(vec![compile(enosys)?, compile(allow)?])
}

/// Replaces [`SELF_PID_PLACEHOLDER`] in compiled comparisons with `pid`. Runs in
/// the forked child: no allocation, only stores into the existing program.
pub fn patch_self_pid(prog: &mut BpfProgram, pid: u32) {
    for insn in prog.iter_mut() {
        // BPF_JMP | BPF_JEQ | BPF_K comparisons carry the constant in `k`.
        if insn.k == SELF_PID_PLACEHOLDER && insn.code & 0x07 == 0x05 {
            insn.k = pid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_patched_in_every_signal_rule() {
        let mut progs = allow_list(&SeccompOptions {
            exec_path: 0x1234_5678_9abc,
            allow_fork: false,
        })
        .unwrap();
        let count = |p: &BpfProgram, k: u32| p.iter().filter(|i| i.k == k).count();
        assert_eq!(count(&progs[1], SELF_PID_PLACEHOLDER), 4);
        patch_self_pid(&mut progs[1], 4242);
        assert_eq!(count(&progs[1], SELF_PID_PLACEHOLDER), 0);
        assert_eq!(count(&progs[1], 4242), 4);
    }
}
