//! Fail closed (the macOS rule, tested on Linux through the cfg-independent
//! setting): with `require_sandboxed_hello` a helper whose `Hello` says it is not
//! sandboxed is refused with `SpawnError::Unsandboxed` and killed; the same helper
//! saying it is sandboxed is accepted, and an app that opts out accepts both.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, HandshakeError, SpawnError, Supervisor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_hello_required() {
    common::watchdog(Duration::from_secs(60), async {
        let h = &common::helpers()[0]; // the Rust test helper: reports sandboxed = false
        let before = common::snapshot();
        assert_eq!(
            coreml_supervisor::SandboxConfig::default().require_sandboxed_hello,
            cfg!(target_os = "macos"),
            "default: required on macOS only"
        );

        let mut cfg = common::config(h);
        cfg.sandbox.require_sandboxed_hello = true;
        match Supervisor::start(cfg).await {
            Ok(_) => panic!("an unsandboxed helper was accepted"),
            Err(Error::Start(HandshakeError::Spawn(SpawnError::Unsandboxed(e)))) => {
                assert!(e.to_string().contains("not sandboxed"), "{e}")
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
        common::assert_clean(&before, "refused helper").await;

        let mut cfg = common::config(h);
        cfg.sandbox.require_sandboxed_hello = true;
        cfg.helper = cfg.helper.env("COREML_TEST_HELLO_SANDBOXED", "1");
        let sup = common::start(h, cfg).await;
        assert_eq!(
            sup.stats().sandbox.and_then(|s| s.helper_self_sandboxed),
            Some(true)
        );
        sup.shutdown().await;
        drop(sup);

        let mut cfg = common::config(h);
        cfg.sandbox.require_sandboxed_hello = false;
        let sup = common::start(h, cfg).await;
        assert_eq!(
            sup.stats().sandbox.and_then(|s| s.helper_self_sandboxed),
            Some(false)
        );
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "accepted helpers").await;
    })
    .await;
}
