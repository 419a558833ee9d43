//! Dropping the last supervisor handle without `shutdown` kills the helper's whole
//! process group (including a child it forked) and reaps it: no process, zombie,
//! fd or shared-memory segment is left.
mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_kills_helper() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let m = sup.load("diag:echo?shape=16", None).await.expect("load");
            let p = sup
                .predict(m.id, &[("x", &[9u8; 64])])
                .await
                .expect("predict");
            assert_eq!(p.output("y").unwrap().to_vec(), vec![9u8; 64]);
            drop(p);
            let pid = sup.stats().pid;
            assert!(coreml_supervisor::process_alive(pid));
            let clone = sup.clone();
            drop(sup);
            assert!(
                coreml_supervisor::process_alive(pid),
                "a clone still holds the supervisor"
            );
            drop(clone);
            let t = Instant::now();
            while coreml_supervisor::process_alive(pid) {
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "[{}] helper {pid} survived the drop",
                    h.name
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
