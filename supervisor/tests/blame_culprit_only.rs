//! A kill is charged to the request whose deadline passed: it fails with
//! `Timeout{Predict}`; a request in flight beside it is retried on the next
//! helper and, when its own deadline passes while it waits for that restart,
//! fails with `Timeout{Restart}`, never with the culprit's stage.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blame_culprit_only() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            // A slow restart: the bystander's deadline passes while it waits.
            cfg.restart.initial_backoff = Duration::from_millis(1500);
            cfg.restart.max_backoff = Duration::from_millis(1500);
            let sup = common::start(&h, cfg).await;
            let hung = sup
                .load("diag:echo?shape=4&fault=hang", None)
                .await
                .expect("load");
            let slow = sup
                .load("diag:sleep?ms=2000&shape=4", None)
                .await
                .expect("load");
            let x = [0u8; 16];
            let inputs = [("x", &x[..])];
            let (culprit, bystander) = tokio::join!(
                sup.predict_with_deadline(hung.id, &inputs, Duration::from_millis(300)),
                async {
                    // Sent after the culprit, so the culprit's deadline passes first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    sup.predict_with_deadline(slow.id, &inputs, Duration::from_millis(1000))
                        .await
                }
            );
            assert!(
                matches!(
                    culprit,
                    Err(Error::Timeout {
                        stage: Stage::Predict,
                        ..
                    })
                ),
                "[{}] culprit: {culprit:?}",
                h.name
            );
            assert!(
                matches!(
                    bystander,
                    Err(Error::Timeout {
                        stage: Stage::Restart,
                        ..
                    })
                ),
                "[{}] bystander: {bystander:?}",
                h.name
            );
            assert!(
                sup.stats().retried >= 1,
                "[{}] the bystander was retried",
                h.name
            );
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
