//! Precompiled mode: with `precompiled_only`, a runtime compile of a model
//! file is refused with a typed error before anything reaches the helper (its
//! request count does not move), the helper stays up, and `diag:` URIs, which
//! are not model files, still compile and load. Without the switch the same
//! compile reaches the helper.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, HelperState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompiled_only_refuses_compile() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.precompiled_only = true;
            let sup = common::start(&h, cfg).await;
            let asked = sup.helper_stats().await.expect("stats").requests;
            let refused = sup.compile("/models/resnet50.mlpackage", None).await;
            assert!(
                matches!(&refused, Err(Error::CompileRefused { source_path }) if source_path == "/models/resnet50.mlpackage"),
                "{}: {refused:?}",
                h.name
            );
            // Only the stats request itself reached the helper in between.
            assert_eq!(sup.helper_stats().await.expect("stats").requests, asked + 1, "{}", h.name);
            let c = sup.compile("diag:add?c=1&shape=2", None).await.expect("diag compile");
            sup.load(&c.bundle_path, None).await.expect("diag load");
            assert_eq!(sup.stats().state, HelperState::Ready);
            sup.shutdown().await;
            drop(sup);

            // The switch is what refuses: without it the compile reaches the helper.
            let sup = common::start(&h, common::config(&h)).await;
            let reached = sup.compile("/models/resnet50.mlpackage", None).await;
            assert!(matches!(reached, Err(Error::Helper { .. })), "{}: {reached:?}", h.name);
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
