//! The Linux sandbox is in force in the helper: no_new_privs, seccomp, no core
//! dumps, the open-files limit, no IPv4/IPv6 sockets, Landlock denying a file
//! outside the allowed paths while a read-write directory stays writable; and the
//! supervisor reports which parts it applied. (Uses the Rust test helper's
//! `--probe-sandbox` mode, which only it has.)
mod common;

use std::io::Read;
use std::time::Duration;

use coreml_supervisor::{Applied, HelperCommand, HelperProcess, SandboxConfig};

fn probe(
    sandbox: &SandboxConfig,
    denied: &std::path::Path,
    allowed: &std::path::Path,
) -> (String, coreml_supervisor::SandboxReport) {
    let cmd = HelperCommand::new(common::rust_helper_path())
        .arg("--probe-sandbox")
        .env("COREML_PROBE_DENIED", denied)
        .env("COREML_PROBE_ALLOWED", allowed);
    let (helper, mut sock) = HelperProcess::spawn(&cmd, sandbox).expect("spawn");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).expect("probe output");
    (out, helper.sandbox().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_applied() {
    common::watchdog(Duration::from_secs(30), async {
        let before = common::snapshot();
        let secret_dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let secret = secret_dir.path().join("secret");
        std::fs::write(&secret, b"model weights").unwrap();
        let rw = tempfile::tempdir().expect("tempdir");

        let cfg = SandboxConfig::default().read_write(rw.path());
        let (out, report) = probe(&cfg, &secret, rw.path());
        assert_eq!(report.no_new_privs, Applied::Yes);
        assert_eq!(report.core_dumps_off, Applied::Yes);
        assert_eq!(report.open_files_limit, Applied::Yes);
        assert_eq!(report.network, Applied::Yes);
        assert!(out.contains("NoNewPrivs=1"), "{out}");
        assert!(out.contains("Seccomp=2"), "{out}");
        assert!(out.contains("max_core=0"), "{out}");
        assert!(out.contains("max_open_files=256"), "{out}");
        assert!(out.contains("net_inet=denied"), "{out}");
        if report.landlock.in_force() {
            assert!(out.contains("read_denied_path=denied"), "{out}");
        } else {
            eprintln!("Landlock not in force on this kernel: {}", report.landlock);
            assert!(out.contains("read_denied_path=ok"), "{out}");
        }
        assert!(out.contains("write_allowed_dir=ok"), "{out}");
        assert!(out.contains("list_self_fd=ok"), "own /proc entry: {out}");

        // Switched off, the same probe sees an unrestricted process.
        let (out, report) = probe(&SandboxConfig::disabled(), &secret, rw.path());
        assert_eq!(report.landlock, Applied::Disabled);
        assert!(
            out.contains("net_inet=ok") && out.contains("read_denied_path=ok"),
            "{out}"
        );
        common::assert_clean(&before, "sandbox").await;
    })
    .await;
}
