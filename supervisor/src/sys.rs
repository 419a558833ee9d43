//! Every raw system call of the supervisor, each `unsafe` block with its `// SAFETY:`.
//!
//! Nothing outside this module uses `unsafe`. The functions here are thin: they
//! translate return codes into [`std::io::Error`] and leave policy to callers.
//!
//! ```
//! # #[cfg(unix)] {
//! // Liveness of a pid is a plain query (signal 0):
//! assert!(coreml_supervisor::process_alive(std::process::id()));
//! # }
//! ```

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::ptr::NonNull;

/// Converts a `-1` return into the thread's `errno`.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Registers `hook` to run inside the C library's `exit` (after `main` returns or
/// on `std::process::exit`). A failure to register (the table is full) is logged.
pub(crate) fn at_exit(hook: extern "C" fn()) {
    // SAFETY: `hook` is a plain function with C ABI that lives for the whole program
    // and takes no arguments, as atexit requires.
    if unsafe { libc::atexit(hook) } != 0 {
        tracing::warn!("could not register the helper exit hook");
    }
}

/// Whether a process with this pid exists (a zombie counts as existing).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks permission and existence; no memory is passed.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `signal` to every process of the group `pgid`.
pub(crate) fn kill_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid =
        libc::pid_t::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: killpg takes plain integers; the caller guarantees `pgid` is a group it owns
    // (the leader is its unreaped child, so the id cannot have been recycled).
    check(unsafe { libc::killpg(pgid, signal) }).map(drop)
}

/// Blocks until the child `pid` has exited, without reaping it (`WNOWAIT`), so that
/// its pid and process-group id stay reserved until [`reap`].
pub(crate) fn wait_exited_nowait(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: siginfo_t is plain old data, so an all-zero value is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, exclusively borrowed siginfo_t for the duration of the call.
        let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        match check(rc) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reaps the child `pid` and returns its raw wait status.
pub(crate) fn reap(pid: u32) -> io::Result<libc::c_int> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        match check(rc) {
            Ok(_) => return Ok(status),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One non-blocking `recv` on a socket, behind the async runtime's back: tokio's
/// own `try_read` answers `WouldBlock` from its cached readiness without asking
/// the kernel, which a caller spinning for its reply cannot use.
pub(crate) fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call and
    // `fd` is borrowed, so it stays open until recv returns.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Shuts a socket down both ways without closing the descriptor: our reads see
/// end of stream at once, whoever holds the other end.
pub(crate) fn shutdown_socket(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is borrowed, so it stays open for the call; integer arguments only.
    check(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) }).map(drop)
}

/// Waits up to `timeout` for `fd` to be readable (or at end of stream).
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `p` is one valid pollfd for the whole call; `fd` is borrowed, so open.
    let n = check(unsafe { libc::poll(&mut p, 1, ms) })?;
    Ok(n > 0)
}

/// Duplicates `fd` to a number `>= min` with close-on-exec set.
pub(crate) fn dup_above(fd: &OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor and touches no memory.
    let new = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: `new` was just returned by fcntl, is open, and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// What the child does between fork and exec. Built in the parent: the closure
/// below only makes async-signal-safe system calls and never allocates.
pub(crate) struct ChildSetup {
    /// Socket end that becomes fd 3 in the helper (must not be 3 itself).
    pub ipc_fd: RawFd,
    /// `RLIMIT_NOFILE` for the helper.
    pub nofile: Option<u64>,
    /// Set `RLIMIT_CORE` to 0.
    pub no_core: bool,
    /// Set `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// A Landlock ruleset fd to enforce with `landlock_restrict_self`.
    pub landlock_fd: Option<RawFd>,
    /// Compiled seccomp filters to install last, in order (their
    /// `SELF_PID_PLACEHOLDER` is replaced with the child's pid first).
    #[cfg(target_os = "linux")]
    pub seccomp: Vec<seccompiler::BpfProgram>,
    /// The supervisor's pid: the helper gets SIGKILL when the thread that forked
    /// it exits (`PR_SET_PDEATHSIG`), and is not started if the supervisor is
    /// already gone by the time the child runs.
    #[cfg(target_os = "linux")]
    pub parent_pid: libc::pid_t,
    /// A memory cgroup's `cgroup.procs` to join (by writing `0`) before anything else.
    pub cgroup_procs: Option<CString>,
    /// `RLIMIT_DATA` (the memory backstop without a cgroup).
    pub data_limit: Option<u64>,
    /// `unshare` flags (0: none).
    pub unshare: libc::c_int,
    /// Empty the capability bounding, ambient and effective sets.
    pub drop_caps: bool,
    /// Mark every descriptor above 3 close-on-exec (`close_range`).
    pub close_fds: bool,
    /// The exec the hook performs itself, with a path pointer the seccomp filter
    /// knows; `None`: std's own exec follows the hook.
    pub exec: Option<ExecPlan>,
}

/// An `execve` prepared in the parent: C strings and the pointer arrays into them.
pub(crate) struct ExecPlan {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<usize>,
    envp: Vec<usize>,
}

impl ExecPlan {
    /// `path` to run with `argv` (including argv[0]) and exactly `env`.
    pub(crate) fn new(path: CString, argv: Vec<CString>, env: Vec<CString>) -> Self {
        let ptrs = |v: &[CString]| {
            let mut p: Vec<usize> = v.iter().map(|s| s.as_ptr() as usize).collect();
            p.push(0);
            p
        };
        let (a, e) = (ptrs(&argv), ptrs(&env));
        let mut strings = argv;
        strings.extend(env);
        Self {
            path,
            _strings: strings,
            argv: a,
            envp: e,
        }
    }

    /// The address of the path, which the seccomp filter allows `execve` with.
    /// Stable: the string's heap buffer does not move with the plan.
    pub(crate) fn path_address(&self) -> u64 {
        self.path.as_ptr() as u64
    }
}

/// Installs `setup` as the pre-exec hook of `cmd`.
pub(crate) fn install_child_setup(cmd: &mut Command, mut setup: ChildSetup) {
    use std::os::unix::process::CommandExt;
    let hook = move || -> io::Result<()> {
        // SAFETY: dup2 onto 3 replaces whatever fd 3 was in this (forked, single-threaded)
        // child; the result has close-on-exec cleared, so the helper inherits it.
        check(unsafe { libc::dup2(setup.ipc_fd, 3) })?;
        if let Some(procs) = setup.cgroup_procs.as_ref() {
            join_cgroup(procs)?;
        }
        if setup.no_core {
            set_rlimit(libc::RLIMIT_CORE, 0)?;
        }
        if let Some(n) = setup.nofile {
            set_rlimit(libc::RLIMIT_NOFILE, n)?;
        }
        if let Some(n) = setup.data_limit {
            set_rlimit(libc::RLIMIT_DATA, n)?;
        }
        #[cfg(target_os = "linux")]
        {
            // SAFETY: prctl and getppid with integer arguments only.
            check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) })?;
            // SAFETY: getppid takes no arguments and cannot fail.
            if unsafe { libc::getppid() } != setup.parent_pid {
                // The supervisor died between fork and prctl: nobody would kill us.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if setup.unshare != 0 {
                // SAFETY: unshare takes integer flags only.
                check(unsafe { libc::unshare(setup.unshare) })?;
            }
            if setup.close_fds {
                // SAFETY: close_range with CLOEXEC only sets flags on descriptors >= 4;
                // nothing is closed before exec, so no descriptor in use disappears.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_close_range,
                        4u32,
                        u32::MAX,
                        libc::CLOSE_RANGE_CLOEXEC,
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if setup.no_new_privs {
                // SAFETY: prctl with integer arguments only.
                check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
            }
            if let Some(fd) = setup.landlock_fd {
                allow_own_proc(fd)?;
                // SAFETY: landlock_restrict_self takes a ruleset fd opened by the parent
                // (inherited across fork) and flags 0; no memory is passed.
                let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if setup.drop_caps {
                drop_capabilities()?;
            }
            if !setup.seccomp.is_empty() {
                // SAFETY: getpid takes no arguments and cannot fail.
                let me = unsafe { libc::getpid() } as u32;
                for prog in setup.seccomp.iter_mut() {
                    crate::process::seccomp::patch_self_pid(prog, me);
                    seccompiler::apply_filter(prog).map_err(|_| io::Error::last_os_error())?;
                }
            }
        }
        if let Some(plan) = setup.exec.as_ref() {
            // SAFETY: the path, argv and envp arrays were built in the parent, are
            // NUL-terminated strings and NULL-terminated pointer arrays, and live in
            // this closure (copied with the address space by fork). execve only
            // returns on failure.
            unsafe {
                libc::execve(
                    plan.path.as_ptr(),
                    plan.argv.as_ptr().cast(),
                    plan.envp.as_ptr().cast(),
                )
            };
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec. It only calls dup2,
    // open/write/close, setrlimit, prctl, getppid, unshare, close_range,
    // landlock_restrict_self, capset, seccomp and execve (async-signal-safe system
    // calls), reads and patches data captured before the fork, and does not
    // allocate on success.
    unsafe {
        cmd.pre_exec(hook);
    }
}

fn set_rlimit(resource: libc::__rlimit_resource_t, n: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit that lives across the call.
    check(unsafe { libc::setrlimit(resource, &lim) }).map(drop)
}

/// Adds read access to the child's own `/proc/<pid>` to the Landlock ruleset `fd`
/// (only the child can name it: `/proc/self` resolves to the caller). The rest of
/// `/proc` stays out of the ruleset, so the app's `/proc/<pid>` is unreadable.
#[cfg(target_os = "linux")]
fn allow_own_proc(ruleset: RawFd) -> io::Result<()> {
    const RULE_PATH_BENEATH: libc::c_int = 1;
    const READ_FILE_AND_DIR: u64 = (1 << 2) | (1 << 3);
    #[repr(C, packed)]
    struct PathBeneath {
        allowed_access: u64,
        parent_fd: i32,
    }
    // SAFETY: a static NUL-terminated path; O_PATH opens no file contents.
    let dir = check(unsafe {
        libc::open(
            c"/proc/self".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    let attr = PathBeneath {
        allowed_access: READ_FILE_AND_DIR,
        parent_fd: dir,
    };
    // SAFETY: `attr` is a valid landlock_path_beneath_attr for the call; `ruleset` and
    // `dir` are open descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            RULE_PATH_BENEATH,
            &attr as *const PathBeneath,
            0u32,
        )
    };
    let err = io::Error::last_os_error();
    // SAFETY: closing the O_PATH descriptor opened above.
    unsafe { libc::close(dir) };
    if rc != 0 {
        return Err(err);
    }
    Ok(())
}

/// Writes `0` (the calling process) to a cgroup's `cgroup.procs`.
fn join_cgroup(procs: &CStr) -> io::Result<()> {
    // SAFETY: `procs` is a valid NUL-terminated path for the call.
    let fd = check(unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: writing one byte from a static buffer to the fd just opened.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let err = io::Error::last_os_error();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if n != 1 {
        return Err(err);
    }
    Ok(())
}

/// Empties the capability bounding and ambient sets and the current sets, so
/// that a helper started by root holds no capability after exec.
#[cfg(target_os = "linux")]
fn drop_capabilities() -> io::Result<()> {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments; EINVAL past the last capability is expected.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            // EPERM: no CAP_SETPCAP, so nothing to drop from a bounding set we cannot change.
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(e);
            }
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a v3 header and two data structs, both valid for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `phys_footprint` of `pid` (`proc_pid_rusage` with `RUSAGE_INFO_V4`): the
/// memory jetsam charges, GPU and Neural-Engine memory included. Compiled only
/// on macOS; not built or run on the Linux machines this crate is tested on.
#[cfg(target_os = "macos")]
pub(crate) fn phys_footprint(pid: u32) -> Option<u64> {
    let pid = libc::c_int::try_from(pid).ok()?;
    // SAFETY: rusage_info_v4 is plain old data, so an all-zero value is valid.
    let mut info: libc::rusage_info_v4 = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, exclusively borrowed rusage_info_v4 for the call and
    // RUSAGE_INFO_V4 tells the kernel to write exactly that struct.
    let rc = unsafe {
        libc::proc_pid_rusage(
            pid,
            libc::RUSAGE_INFO_V4,
            (&mut info as *mut libc::rusage_info_v4).cast(),
        )
    };
    (rc == 0).then_some(info.ri_phys_footprint)
}

/// Sends `signal` to one process.
pub(crate) fn kill_pid(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill takes plain integers.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Probes the Landlock ABI version of the running kernel (0 = unsupported).
#[cfg(target_os = "linux")]
pub(crate) fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with a null attr, size 0 and the VERSION flag the call only returns the ABI
    // number; no memory is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    rc.max(0)
}

// ---------------------------------------------------------------------------
// Anonymous shared memory and descriptor passing (docs/protocol.md, section 6).
// Regions have no name anyone could open, list or unlink; the helper gets each
// one as a descriptor (`SCM_RIGHTS`) on the first byte of its `AttachRegion` frame.
// ---------------------------------------------------------------------------

/// Creates an anonymous memory file of exactly `len` bytes and seals its size:
/// `memfd_create`, `ftruncate`, then `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`,
/// so neither side can resize it (a shrink would `SIGBUS` the other side's
/// accesses) and nobody can add or remove seals later.
#[cfg(target_os = "linux")]
pub(crate) fn anonymous_region(len: usize) -> io::Result<OwnedFd> {
    let fd = memfd(len)?;
    // SAFETY: fcntl on a descriptor we own, integer arguments only.
    check(unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
    })?;
    Ok(fd)
}

/// A sized memory file with sealing allowed but no seal yet (tests of the
/// truncation backstop create one directly).
#[cfg(target_os = "linux")]
pub(crate) fn memfd(len: usize) -> io::Result<OwnedFd> {
    const NAME: &CStr = c"coreml-bridge-region";
    // SAFETY: `NAME` is a valid NUL-terminated string; the flags are plain integers.
    let fd = check(unsafe {
        libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_len(&fd, len)?;
    Ok(fd)
}

/// Creates an anonymous POSIX shared-memory object of exactly `len` bytes: a
/// random name opened exclusively and unlinked at once, so nothing else can open
/// it and nothing is left behind whatever happens next; then sized once (macOS
/// refuses any later `ftruncate`).
#[cfg(target_os = "macos")]
pub(crate) fn anonymous_region(len: usize) -> io::Result<OwnedFd> {
    let mut attempt = 0u32;
    loop {
        let mut rnd = [0u8; 8];
        // SAFETY: `rnd` is a valid buffer of 8 bytes for the duration of the call.
        unsafe { libc::arc4random_buf(rnd.as_mut_ptr().cast(), rnd.len()) };
        let name = format!("/cmlb-{:016x}\0", u64::from_le_bytes(rnd));
        let c = CStr::from_bytes_with_nul(name.as_bytes()).expect("one trailing NUL");
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let rc = unsafe {
            libc::shm_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if rc == -1 {
            let e = io::Error::last_os_error();
            attempt += 1;
            if e.raw_os_error() == Some(libc::EEXIST) && attempt < 16 {
                continue;
            }
            return Err(e);
        }
        // SAFETY: `rc` was just returned by shm_open and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(rc) };
        // SAFETY: as above; the name is ours (O_EXCL) and is removed at once.
        check(unsafe { libc::shm_unlink(c.as_ptr()) })?;
        set_len(&fd, len)?;
        return Ok(fd);
    }
}

/// `ftruncate` of a descriptor we own.
fn set_len(fd: &OwnedFd, len: usize) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: ftruncate on an fd we own, integer arguments only.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// Shrinks or grows a memory file (tests: what a hostile helper would try).
#[cfg(test)]
pub(crate) fn truncate(fd: &OwnedFd, len: usize) -> io::Result<()> {
    set_len(fd, len)
}

/// The current size of the file behind `fd` (`fstat`).
pub(crate) fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: stat is plain old data, so an all-zero value is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, exclusively borrowed stat for the duration of the call
    // and `fd` is borrowed, so it stays open.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// One non-blocking `sendmsg` of (a prefix of) `buf` on a stream socket with
/// `pass` attached as `SCM_RIGHTS` ancillary data. The descriptor travels with
/// the first byte sent; returns the bytes sent (at least 1 on success).
pub(crate) fn send_with_fd(
    sock: BorrowedFd<'_>,
    buf: &[u8],
    pass: BorrowedFd<'_>,
) -> io::Result<usize> {
    let fd = pass.as_raw_fd();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // u64 elements keep the buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data, so an all-zero value is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `control`, which has room for one cmsghdr with one
    // descriptor (CMSG_SPACE above), so CMSG_FIRSTHDR is non-null and CMSG_DATA
    // stays inside the buffer; the write is unaligned-safe.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: `msg`, `iov`, `control` and `buf` are valid for the whole call; the
    // socket and the passed descriptor are borrowed, so both stay open.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

// --------------------------- end of shared memory ---------------------------

/// A read-write `MAP_SHARED` mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; all access goes through
// bounds-checked copies (`write_at`, `read_at`) or shared byte views, so moving or
// sharing the handle between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: see the Send impl; `&Mapping` only permits copies through raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` read-write and shared.
    pub(crate) fn new(fd: &OwnedFd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh mapping chosen by the kernel (null hint) of an fd we own;
        // the result is checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Self { ptr, len })
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `src` to `offset`. Panics if the range is outside the mapping.
    pub(crate) fn write_at(&self, offset: usize, src: &[u8]) {
        let end = offset.checked_add(src.len()).expect("range overflow");
        assert!(end <= self.len, "write outside mapping");
        // SAFETY: the destination range was bounds-checked above and lies inside our
        // mapping; `src` is a distinct Rust slice, so the ranges do not overlap. The
        // slot allocator hands each range to one owner at a time.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        }
    }

    /// Fills `len` bytes at `offset` with `byte`.
    pub(crate) fn fill(&self, offset: usize, len: usize, byte: u8) {
        let end = offset.checked_add(len).expect("range overflow");
        assert!(end <= self.len, "fill outside mapping");
        // SAFETY: the range was bounds-checked above and lies inside our mapping.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(offset), byte, len) }
    }

    /// A shared view of `len` bytes at `offset`. Panics if out of range.
    pub(crate) fn view(&self, offset: usize, len: usize) -> &[u8] {
        let end = offset.checked_add(len).expect("range overflow");
        assert!(end <= self.len, "view outside mapping");
        // SAFETY: the range is inside the live mapping, which outlives the returned borrow.
        // Bytes have no invalid values, so even a misbehaving helper that writes into the
        // range later can change values but cannot cause an invalid read.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) }
    }
}

impl Mapping {
    /// A writable view of `len` bytes at `offset`. Panics if out of range. Callers
    /// guarantee that no other view of the range exists (the arena gives each range
    /// to one slot, and slots hand out `&mut` views only through `&mut self`).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn view_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        let end = offset.checked_add(len).expect("range overflow");
        assert!(end <= self.len, "view outside mapping");
        // SAFETY: the range is inside the live mapping, which outlives the borrow; the
        // caller guarantees exclusivity within this process (see above). The helper may
        // also write there, but bytes have no invalid values.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; no borrows outlive `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
