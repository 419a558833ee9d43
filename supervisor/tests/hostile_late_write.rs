//! A helper that overwrites its output slot after a correct reply: by default the
//! caller's result is a private copy and does not change; with the zero-copy
//! opt-in (`SupervisorConfig::zero_copy_outputs`, for a trusted helper) it is a
//! view of the slot, and the write shows (which is what the default prevents).
mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_late_write() {
    common::watchdog(Duration::from_secs(60), async {
        // The `late-write` fault exists in the Rust test helper only.
        for h in common::helpers().into_iter().filter(|h| h.name == "rust") {
            for zero_copy in [false, true] {
                let mut cfg = common::config(&h);
                cfg.zero_copy_outputs = zero_copy;
                let sup = common::start(&h, cfg).await;
                let m = sup
                    .load("diag:echo?shape=1024&fault=late-write", None)
                    .await
                    .expect("load");
                let x = common::f32_bytes(&vec![7.0; 1024]);
                let p = sup.predict(m.id, &[("x", &x)]).await.expect("predict");
                let y = p.output("y").unwrap();
                assert_eq!(y.is_shared(), zero_copy);
                let first = y.to_vec();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let later = y.to_vec();
                if zero_copy {
                    assert_ne!(first, later, "[{}] the late write did not land", h.name);
                } else {
                    assert_eq!(first, x, "[{}] wrong result", h.name);
                    assert_eq!(later, x, "[{}] a late write changed the result", h.name);
                }
                drop(p);
                sup.shutdown().await;
            }
        }
    })
    .await;
}
