//! Callers that give up do not take the deadline with them: ten hung predictions
//! whose callers dropped their futures after 50 ms still kill the helper at their
//! own deadline, exactly as if the callers had waited; the slots come back once
//! the helper is reaped and the restarted helper serves. Rust test helper and every
//! helper of `COREML_TEST_HELPERS` (the `hang` fault is common).
mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_hang_killed() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let healthy = sup.load("diag:echo?shape=4", None).await.expect("load");
            let hung = sup
                .load("diag:echo?shape=65536&fault=hang", None)
                .await
                .expect("load hung");
            let pid = sup.stats().pid;
            let x = vec![1u8; 65536 * 4];
            let deadline = Duration::from_millis(600);
            let t = Instant::now();
            for _ in 0..10 {
                let inputs = [("x", &x[..])];
                let call = sup.predict_with_deadline(hung.id, &inputs, deadline);
                let r = tokio::time::timeout(Duration::from_millis(50), call).await;
                assert!(r.is_err(), "[{}] a hung predict answered: {r:?}", h.name);
            }
            assert!(
                sup.stats().shm_in_use > 0,
                "[{}] the slots of abandoned requests stay with the helper",
                h.name
            );
            // Nobody waits any more; the supervisor keeps the deadlines itself.
            while coreml_supervisor::process_alive(pid) {
                assert!(
                    t.elapsed() < deadline + Duration::from_secs(3),
                    "[{}] helper {pid} still alive {:?} after abandoned requests passed their deadline",
                    h.name,
                    t.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                t.elapsed() >= deadline - Duration::from_millis(100),
                "[{}] killed after {:?}, before the first deadline {deadline:?}",
                h.name,
                t.elapsed()
            );
            common::wait_generation(&sup, 2, Duration::from_secs(10)).await;
            let p = sup
                .predict(healthy.id, &[("x", &[3u8; 16])])
                .await
                .unwrap_or_else(|e| panic!("[{}] after the kill: {e}", h.name));
            assert_eq!(p.output("y").unwrap().to_vec(), vec![3u8; 16]);
            drop(p);
            let t = Instant::now();
            while sup.stats().shm_in_use > 0 {
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "[{}] slots not back after the helper was reaped: {:?}",
                    h.name,
                    sup.stats()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
