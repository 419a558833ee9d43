//! `--probe-sandbox`: reports what the sandbox allows, one `key=value` line each.
//!
//! ```text
//! net_inet=denied
//! read_denied_path=denied      # COREML_PROBE_DENIED, a file outside the allowed paths
//! write_allowed_dir=ok         # COREML_PROBE_ALLOWED, a read-write directory
//! list_self_fd=ok              # its own /proc entry is listable
//! NoNewPrivs=1
//! Seccomp=2
//! max_open_files=256
//! max_core=0
//! self_sandbox_arg=--sandbox-read /models   # one per flag the supervisor passed
//! open_fds=0,1,2,3             # every descriptor open at start (the listing's own left out)
//! CapEff=0000000000000000      # and CapPrm, CapInh, CapBnd, CapAmb from /proc/self/status
//! ```

use std::io::Write;
use std::os::unix::net::UnixStream;

/// The descriptors this process holds, ascending, comma-separated; the one the
/// listing itself opens (a link to this very `/proc/<pid>/fd`) is left out.
/// `unreadable` when `/proc/self/fd` cannot be listed.
fn open_fds() -> String {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return "unreadable".into();
    };
    let me = format!("/proc/{}/fd", std::process::id());
    let mut fds: Vec<u32> = dir
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).map_or(true, |t| t != std::path::Path::new(&me)))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn verdict<T, E>(r: Result<T, E>) -> &'static str {
    if r.is_ok() {
        "ok"
    } else {
        "denied"
    }
}

pub fn run(mut out: UnixStream, self_sandbox: &[String]) {
    let mut lines = Vec::new();
    for a in self_sandbox {
        lines.push(format!("self_sandbox_arg={a}"));
    }
    lines.push(format!(
        "net_inet={}",
        verdict(std::net::UdpSocket::bind("127.0.0.1:0"))
    ));
    if let Some(p) = std::env::var_os("COREML_PROBE_DENIED") {
        lines.push(format!("read_denied_path={}", verdict(std::fs::read(p))));
    }
    if let Some(d) = std::env::var_os("COREML_PROBE_ALLOWED") {
        let f = std::path::Path::new(&d).join("probe-write");
        lines.push(format!(
            "write_allowed_dir={}",
            verdict(std::fs::write(&f, b"x"))
        ));
    }
    // Its own /proc entry stays listable (the rest of /proc is not).
    lines.push(format!(
        "list_self_fd={}",
        verdict(std::fs::read_dir("/proc/self/fd"))
    ));
    lines.push(format!("open_fds={}", open_fds()));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in [
        "NoNewPrivs",
        "Seccomp",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
    ] {
        if let Some(l) = status.lines().find(|l| l.starts_with(&format!("{key}:"))) {
            lines.push(format!("{key}={}", l[key.len() + 1..].trim()));
        }
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    for (label, key) in [
        ("Max open files", "max_open_files"),
        ("Max core file size", "max_core"),
    ] {
        if let Some(l) = limits.lines().find(|l| l.starts_with(label)) {
            let soft = l[label.len()..].split_whitespace().next().unwrap_or("?");
            lines.push(format!("{key}={soft}"));
        }
    }
    let _ = out.write_all((lines.join("\n") + "\n").as_bytes());
}
