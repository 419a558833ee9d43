//! Two sandbox parts no escape probe reaches: inherited descriptors and
//! capabilities. The app holds a descriptor without close-on-exec (a secrets file,
//! as a careless library might leave one); the helper must start with only
//! stdin, stdout, stderr and its socket (`close_range` before exec). The test runs
//! as root, so the helper would hold every capability after exec; it must hold
//! none (bounding, ambient, permitted, effective and inheritable sets emptied).
//! With the sandbox disabled the same probe sees the leaked descriptor, which
//! shows the probe can see one.
mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::time::Duration;

use coreml_supervisor::{Applied, HelperCommand, HelperProcess, SandboxConfig};

fn probe(cfg: &SandboxConfig) -> String {
    let cmd = HelperCommand::new(common::rust_helper_path()).arg("--probe-sandbox");
    let (helper, mut sock) = HelperProcess::spawn(&cmd, cfg).expect("spawn probe");
    if cfg.enabled {
        assert_eq!(helper.sandbox().fds_closed, Applied::Yes);
        assert_eq!(helper.sandbox().capabilities_dropped, Applied::Yes);
    }
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).expect("probe output");
    out
}

fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} line in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherited_fds_closed_and_capabilities_dropped() {
    common::watchdog(Duration::from_secs(30), async {
        let secret = tempfile::tempfile().expect("tempfile");
        common::sys::clear_cloexec(secret.as_fd()).expect("clear FD_CLOEXEC");
        let leaked = {
            use std::os::fd::AsRawFd;
            secret.as_raw_fd().to_string()
        };

        let out = probe(&SandboxConfig::default());
        eprintln!("sandboxed probe:\n{out}");
        assert_eq!(
            value(&out, "open_fds"),
            "0,1,2,3",
            "only stdio and the socket"
        );
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(value(&out, cap), "0000000000000000", "{cap}");
        }

        // Unsandboxed, the leak and root's capabilities are visible to the same probe.
        let out = probe(&SandboxConfig::disabled());
        let fds = value(&out, "open_fds");
        assert!(
            fds.split(',').any(|f| f == leaked),
            "the unsandboxed helper inherits fd {leaked}: {fds}"
        );
        if common::running_as_root() {
            assert_ne!(value(&out, "CapEff"), "0000000000000000", "{out}");
        }
        drop(secret);
    })
    .await;
}
