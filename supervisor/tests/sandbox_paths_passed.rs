//! With `pass_to_helper` (the macOS default) the supervisor tells a helper that
//! sandboxes itself which paths to allow: `--sandbox-read` / `--sandbox-write` per
//! configured path, `--no-sandbox` when the sandbox is off, nothing when the option
//! is off. Every helper under test accepts the flags and serves. (The Rust test
//! helper's `--probe-sandbox` reports the flags it received.)
mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use coreml_supervisor::{HelperCommand, HelperProcess, SandboxConfig, Supervisor};

fn received_flags(sandbox: &SandboxConfig) -> Vec<String> {
    let cmd = HelperCommand::new(common::rust_helper_path()).arg("--probe-sandbox");
    let (_helper, mut sock) = HelperProcess::spawn(&cmd, sandbox).expect("spawn");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).expect("probe output");
    out.lines()
        .filter_map(|l| l.strip_prefix("self_sandbox_arg="))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_paths_passed() {
    common::watchdog(Duration::from_secs(60), async {
        let before = common::snapshot();
        let models = tempfile::tempdir().expect("tempdir");
        let cache = tempfile::tempdir().expect("tempdir");
        let path = |p: &Path| p.display().to_string();

        let mut cfg = SandboxConfig::default()
            .read_only(models.path())
            .read_write(cache.path());
        cfg.pass_to_helper = true;
        assert_eq!(
            received_flags(&cfg),
            [
                format!("--sandbox-read {}", path(models.path())),
                format!("--sandbox-write {}", path(cache.path())),
            ]
        );
        cfg.enabled = false;
        assert_eq!(received_flags(&cfg), ["--no-sandbox"]);
        cfg.enabled = true;
        cfg.pass_to_helper = false;
        assert!(received_flags(&cfg).is_empty());

        for h in common::helpers() {
            let mut cfg = common::config(&h);
            cfg.sandbox = cfg
                .sandbox
                .read_only(models.path())
                .read_write(cache.path());
            cfg.sandbox.pass_to_helper = true;
            let sup = Supervisor::start(cfg)
                .await
                .unwrap_or_else(|e| panic!("[{}] refused the sandbox flags: {e}", h.name));
            sup.ping().await.expect("ping");
            sup.shutdown().await;
        }
        common::assert_clean(&before, "sandbox flags").await;
    })
    .await;
}
