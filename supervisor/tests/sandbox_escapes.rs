//! A hostile helper tries every escape docs/security.md lists (the Rust test
//! helper's `--probe-escapes` mode): a setsid child, a Unix connect to a socket
//! outside the allowed paths, netlink, AF_PACKET and inet sockets, signalling the
//! app, reading the app's environment, maps and fd list, ptrace and
//! process_vm_readv, writing `/dev/shm`, reading `/etc/shadow`, opening a file
//! under the user's home, fork, exec, namespaces, mounts, keys, BPF, perf,
//! io_uring. Each must be denied. What the kernel could not enforce is listed
//! (and then the matching escapes fail the test instead of passing silently).
mod common;

use std::io::Read;
use std::time::Duration;

use coreml_supervisor::{HelperCommand, HelperProcess, SandboxConfig};

/// Every line the probe must print, each `denied`.
const ESCAPES: &[&str] = &[
    "setsid_child",
    "fork",
    "setsid",
    "setpgid",
    "unix_connect_outside",
    "socket_unix",
    "socket_netlink",
    "socket_packet",
    "socket_inet",
    "socket_inet6",
    "socketpair",
    "signal_parent",
    "tgkill_parent",
    "read_parent_environ",
    "read_parent_maps",
    "list_parent_fds",
    "read_parent_fd_link",
    "ptrace_parent",
    "process_vm_readv_parent",
    "write_dev_shm",
    "list_dev_shm",
    "read_etc_shadow",
    "read_etc_passwd",
    "open_home_file",
    "env_ssh_auth_sock",
    "unshare",
    "mount",
    "keyctl",
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "memfd_create",
    "clone3",
    "exec_other",
    "exec_self",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_escapes_denied() {
    common::watchdog(Duration::from_secs(30), async {
        let before = common::snapshot();
        // A listening socket outside every allowed path (an "agent" socket).
        let outside = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let sock_path = outside.path().join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock_path).expect("bind");
        // A file under the user's home.
        let home = std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .expect("HOME");
        let home_file = tempfile::NamedTempFile::new_in(&home).expect("file under HOME");
        std::fs::write(home_file.path(), b"secret").unwrap();
        // The app's environment holds an agent socket the helper must not inherit.
        std::env::set_var("SSH_AUTH_SOCK", &sock_path);

        let cmd = HelperCommand::new(common::rust_helper_path())
            .arg("--probe-escapes")
            .env("COREML_PROBE_UNIX", &sock_path)
            .env("COREML_PROBE_HOME_FILE", home_file.path());
        let mut cfg = SandboxConfig::default().read_write(std::env::temp_dir());
        // This probe attaches no region by name (protocol v2 passes descriptors).
        cfg.shm_by_name = false;
        let (helper, mut sock) = HelperProcess::spawn(&cmd, &cfg).expect("spawn probe");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).expect("probe output");
        let report = helper.sandbox().clone();
        let status = helper.wait().await;

        let not_enforced = report.not_enforced();
        eprintln!("sandbox: {report}");
        eprintln!("not enforced by this kernel/configuration: {not_enforced:#?}");
        eprintln!("probe:\n{out}");
        let mut failures = Vec::new();
        for name in ESCAPES {
            let line = out.lines().find(|l| l.split('=').next() == Some(name));
            match line {
                Some(l) if l.starts_with(&format!("{name}=denied")) => {}
                Some(l) => failures.push(l.to_owned()),
                None => failures.push(format!(
                    "{name}: no line (the probe was replaced or died; status {status:?})"
                )),
            }
        }
        assert!(
            failures.is_empty(),
            "escapes not denied: {failures:#?}\nparts not enforced: {not_enforced:#?}"
        );
        // The exec attempts failed, so the probe ran to its end and exited normally.
        assert!(status.success(), "probe status {status:?}");
        std::env::remove_var("SSH_AUTH_SOCK");
        drop((sock, listener, home_file, outside));
        common::assert_clean(&before, "escape probe").await;
    })
    .await;
}
