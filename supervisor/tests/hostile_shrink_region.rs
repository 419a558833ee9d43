//! A helper that `ftruncate`s a region to 0 bytes (what crashed the app with
//! SIGBUS under protocol v1): the size seals refuse, the request gets a typed
//! error, the app keeps running and the next prediction works.
mod common;

use std::time::Duration;

use coreml_supervisor::schema::ErrorCode;
use coreml_supervisor::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_shrink_region() {
    common::watchdog(Duration::from_secs(60), async {
        // The `shrink-region` fault exists in the Rust test helper only.
        for h in common::helpers().into_iter().filter(|h| h.name == "rust") {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let bad = sup
                .load("diag:echo?shape=4096&fault=shrink-region", None)
                .await
                .expect("load");
            let x = common::f32_bytes(&vec![1.5; 4096]);
            let r = sup.predict(bad.id, &[("x", &x)]).await;
            match &r {
                Err(Error::Helper { code, message, .. })
                    if *code == ErrorCode::SHM_FAILED && message.contains("refused") => {}
                other => panic!("[{}] the helper could shrink a region: {other:?}", h.name),
            }
            // Same regions, same helper: still whole and usable.
            let good = sup
                .load("diag:add?c=1&shape=4096", None)
                .await
                .expect("load");
            let p = sup.predict(good.id, &[("x", &x)]).await.expect("predict");
            assert!(p.output("y").unwrap().to_f32().iter().all(|v| *v == 2.5));
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
