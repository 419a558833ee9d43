//! The request queue is bounded: with `max_in_flight` requests at the helper the
//! rest wait (back-pressure) and all complete; a caller whose deadline passes while
//! waiting gets a typed Timeout for the queue stage and the helper is not killed.
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounded_queue() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.max_in_flight = 2;
            let sup = common::start(&h, cfg).await;
            let slow = sup
                .load("diag:sleep?ms=100&shape=8", None)
                .await
                .expect("load");
            let t = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..8u8 {
                let sup = sup.clone();
                tasks.push(tokio::spawn(async move {
                    let x = vec![i; 32];
                    let p = sup.predict(slow.id, &[("x", &x)]).await.expect("predict");
                    assert_eq!(p.output("y").unwrap().to_vec(), x);
                    sup.stats().in_flight
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(sup.stats().in_flight <= 2);
            // Waits behind the queue past its own deadline: typed queue timeout.
            let r = sup
                .predict_with_deadline(slow.id, &[("x", &[0u8; 32])], Duration::from_millis(50))
                .await;
            assert!(
                matches!(
                    r,
                    Err(Error::Timeout {
                        stage: Stage::Queue,
                        ..
                    })
                ),
                "[{}] {r:?}",
                h.name
            );
            for t in tasks {
                assert!(t.await.expect("task") <= 2);
            }
            // 8 sleeps of 100 ms, two at a time: at least 4 rounds.
            assert!(t.elapsed() >= Duration::from_millis(400));
            assert_eq!(
                sup.stats().restarts,
                0,
                "[{}] a queue timeout must not kill the helper",
                h.name
            );
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
