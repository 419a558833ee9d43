//! `--probe-escapes`: tries every way out of the sandbox that docs/security.md
//! lists and writes one `name=denied (why)` or `name=ALLOWED (what)` line each to
//! the socket; the test (supervisor/tests/sandbox_escapes.rs) requires `denied`.
//! The last attempt is an exec: if it succeeds, its line is missing.
//!
//! ```text
//! COREML_PROBE_UNIX=/var/tmp/x/agent.sock COREML_PROBE_HOME_FILE=$HOME/.probe \
//!   coreml-test-helper --probe-escapes --ipc-fd 3
//! fork=denied (Operation not permitted (os error 1))
//! socket_inet=denied (...)
//! ...
//! exec=denied (...)
//! ```

use std::io::Write;
use std::os::unix::net::UnixStream;

use crate::sys;

fn line<T: std::fmt::Debug>(name: &str, r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("{name}=ALLOWED ({v:?})"),
        Err(e) => format!("{name}=denied ({e})"),
    }
}

fn socket(domain: i32, ty: i32, proto: i32) -> std::io::Result<i64> {
    let r = sys::raw_syscall(
        libc::SYS_socket,
        [domain as usize, ty as usize, proto as usize, 0, 0, 0],
    );
    if let Ok(fd) = r {
        let _ = sys::raw_syscall(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]);
    }
    r
}

fn unix_connect(path: &str) -> std::io::Result<()> {
    std::os::unix::net::UnixStream::connect(path).map(drop)
}

pub fn run(mut out: UnixStream) {
    // SAFETY-free queries through std and the sys module only.
    let parent = std::os::unix::process::parent_id() as i32;
    let me = std::process::id();
    let mut lines = Vec::new();
    let mut emit = |l: String| {
        let _ = out.write_all((l + "\n").as_bytes());
    };

    lines.push(line(
        "setsid_child",
        sys::fork_setsid_sleeper().inspect(|pid| {
            // A session that escaped the group: take it down again, then report.
            let _ = sys::raw_syscall(
                libc::SYS_kill,
                [*pid as usize, libc::SIGKILL as usize, 0, 0, 0, 0],
            );
        }),
    ));
    lines.push(line(
        "fork",
        sys::raw_syscall(libc::SYS_clone, [libc::SIGCHLD as usize, 0, 0, 0, 0, 0]).inspect(
            |&pid| {
                if pid == 0 {
                    std::process::exit(0);
                }
            },
        ),
    ));
    lines.push(line("setsid", sys::raw_syscall(libc::SYS_setsid, [0; 6])));
    lines.push(line(
        "setpgid",
        sys::raw_syscall(libc::SYS_setpgid, [0, 0, 0, 0, 0, 0]),
    ));
    let path = std::env::var("COREML_PROBE_UNIX").unwrap_or_else(|_| "/run/missing.sock".into());
    lines.push(line("unix_connect_outside", unix_connect(&path)));
    lines.push(line(
        "socket_unix",
        socket(libc::AF_UNIX, libc::SOCK_STREAM, 0),
    ));
    lines.push(line(
        "socket_netlink",
        socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
    ));
    lines.push(line(
        "socket_packet",
        socket(libc::AF_PACKET, libc::SOCK_RAW, 0),
    ));
    lines.push(line(
        "socket_inet",
        socket(libc::AF_INET, libc::SOCK_STREAM, 0),
    ));
    lines.push(line(
        "socket_inet6",
        socket(libc::AF_INET6, libc::SOCK_DGRAM, 0),
    ));
    lines.push(line(
        "socketpair",
        std::os::unix::net::UnixStream::pair().map(drop),
    ));
    lines.push(line(
        "signal_parent",
        sys::raw_syscall(
            libc::SYS_kill,
            [parent as usize, libc::SIGCONT as usize, 0, 0, 0, 0],
        ),
    ));
    lines.push(line(
        "tgkill_parent",
        sys::raw_syscall(
            libc::SYS_tgkill,
            [
                parent as usize,
                parent as usize,
                libc::SIGCONT as usize,
                0,
                0,
                0,
            ],
        ),
    ));
    lines.push(line(
        "read_parent_environ",
        std::fs::read(format!("/proc/{parent}/environ")).map(|b| b.len()),
    ));
    lines.push(line(
        "read_parent_maps",
        std::fs::read(format!("/proc/{parent}/maps")).map(|b| b.len()),
    ));
    lines.push(line(
        "list_parent_fds",
        std::fs::read_dir(format!("/proc/{parent}/fd")).map(|d| d.count()),
    ));
    lines.push(line(
        "read_parent_fd_link",
        std::fs::read_link(format!("/proc/{parent}/fd/0")),
    ));
    // Not an escape the sandbox stops (world-readable, like `ps`): reported only.
    lines.push(line(
        "info_parent_cmdline",
        std::fs::read(format!("/proc/{parent}/cmdline")).map(|b| b.len()),
    ));
    lines.push(line(
        "ptrace_parent",
        sys::raw_syscall(
            libc::SYS_ptrace,
            [libc::PTRACE_ATTACH as usize, parent as usize, 0, 0, 0, 0],
        ),
    ));
    lines.push(line(
        "process_vm_readv_parent",
        sys::read_parent_memory(parent, 0x1000),
    ));
    lines.push(line(
        "write_dev_shm",
        std::fs::write(format!("/dev/shm/cmlb-probe-{me}"), b"x"),
    ));
    let _ = std::fs::remove_file(format!("/dev/shm/cmlb-probe-{me}"));
    lines.push(line(
        "list_dev_shm",
        std::fs::read_dir("/dev/shm").map(|d| d.count()),
    ));
    lines.push(line(
        "read_etc_shadow",
        std::fs::read("/etc/shadow").map(|b| b.len()),
    ));
    lines.push(line(
        "read_etc_passwd",
        std::fs::read("/etc/passwd").map(|b| b.len()),
    ));
    if let Ok(p) = std::env::var("COREML_PROBE_HOME_FILE") {
        lines.push(line("open_home_file", std::fs::read(&p).map(|b| b.len())));
    }
    lines.push(line(
        "env_ssh_auth_sock",
        match std::env::var("SSH_AUTH_SOCK") {
            Ok(v) => Ok(v),
            Err(_) => Err(std::io::Error::other("not inherited")),
        },
    ));
    lines.push(line(
        "unshare",
        sys::raw_syscall(
            libc::SYS_unshare,
            [libc::CLONE_NEWUSER as usize, 0, 0, 0, 0, 0],
        ),
    ));
    lines.push(line("mount", sys::raw_syscall(libc::SYS_mount, [0; 6])));
    lines.push(line(
        "keyctl",
        sys::raw_syscall(libc::SYS_keyctl, [0, 0, 0, 0, 0, 0]),
    ));
    lines.push(line(
        "bpf",
        sys::raw_syscall(libc::SYS_bpf, [0, 0, 0, 0, 0, 0]),
    ));
    lines.push(line(
        "perf_event_open",
        sys::raw_syscall(libc::SYS_perf_event_open, [0; 6]),
    ));
    lines.push(line(
        "io_uring_setup",
        sys::raw_syscall(libc::SYS_io_uring_setup, [1, 0, 0, 0, 0, 0]),
    ));
    lines.push(line(
        "memfd_create",
        sys::raw_syscall(
            libc::SYS_memfd_create,
            [c"x".as_ptr() as usize, 0, 0, 0, 0, 0],
        ),
    ));
    // clone3 must answer ENOSYS (libc then falls back to clone, whose flags the filter reads).
    lines.push(match sys::raw_syscall(libc::SYS_clone3, [0; 6]) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => "clone3=denied (ENOSYS)".into(),
        r => line("clone3", r.map(|_| "not ENOSYS")),
    });
    for l in lines.drain(..) {
        emit(l);
    }
    // Last: an exec of another program, then of the helper itself.
    emit(format!("exec_other=denied ({})", sys::exec("/bin/true")));
    let own = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    emit(format!("exec_self=denied ({})", sys::exec(&own)));
}
