//! A caller that drops its predict future mid-flight: the helper is not blamed, the
//! late reply is accepted (not a protocol violation), and the request's slots stay
//! allocated until the helper has answered, then return to the arena.
mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_cancelled_by_caller() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let slow = sup
                .load("diag:sleep?ms=300&shape=4096", None)
                .await
                .expect("load");
            let idle = sup.stats().shm_in_use;
            let s2 = sup.clone();
            let task = tokio::spawn(async move {
                s2.predict(slow.id, &[("x", &[1u8; 16384])])
                    .await
                    .map(|_| ())
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
            // The helper is still working on it: its slots are not back yet.
            assert!(
                sup.stats().shm_in_use > idle,
                "[{}] slots freed while the helper used them",
                h.name
            );
            let t = Instant::now();
            while sup.stats().shm_in_use > idle {
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "[{}] slots never returned: {:?}",
                    h.name,
                    sup.stats()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                t.elapsed() >= Duration::from_millis(150),
                "[{}] returned too early",
                h.name
            );
            let p = sup
                .predict(slow.id, &[("x", &[2u8; 16384])])
                .await
                .expect("next predict");
            assert_eq!(p.output("y").unwrap().to_vec(), vec![2u8; 16384]);
            drop(p);
            let s = sup.stats();
            assert_eq!(
                (s.restarts, s.generation),
                (0, 1),
                "[{}] helper blamed for a cancelled call",
                h.name
            );
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
