//! Predictions in flight when another request crashes the helper are retried once
//! on the restarted helper and succeed; only the crashing request fails.
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_retried_after_crash() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let slow = sup
                .load("diag:sleep?ms=200&shape=64", None)
                .await
                .expect("load sleep");
            let crash = sup
                .load("diag:echo?shape=64&fault=segv", None)
                .await
                .expect("load segv");
            let mut tasks = Vec::new();
            for i in 0..4u8 {
                let (sup, id) = (sup.clone(), slow.id);
                tasks.push(tokio::spawn(async move {
                    let x = vec![i; 256];
                    let t = Instant::now();
                    let p = sup.predict(id, &[("x", &x)]).await;
                    (x, p, t.elapsed())
                }));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = sup.predict(crash.id, &[("x", &[0u8; 256])]).await;
            assert!(
                matches!(
                    r,
                    Err(Error::HelperCrashed {
                        stage: Stage::Predict,
                        ..
                    })
                ),
                "[{}] culprit got {r:?}",
                h.name
            );
            for t in tasks {
                let (x, p, took) = t.await.expect("task");
                let p = p.unwrap_or_else(|e| panic!("[{}] innocent request failed: {e}", h.name));
                assert_eq!(p.output("y").unwrap().to_vec(), x, "[{}] content", h.name);
                assert!(took < Duration::from_secs(3), "[{}] took {took:?}", h.name);
            }
            let s = sup.stats();
            assert!(s.retried >= 4 && s.restarts >= 1, "[{}] {s:?}", h.name);
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
