//! A dead helper whose socket is still held by a process out of reach of the
//! group kill (a child it moved to a session of its own) does not stop recovery:
//! past the reap grace the supervisor abandons that generation (closes its end of
//! the socket, keeps its slots out of use), starts the next one, and neither the
//! old connection nor its descriptor is leaked; `shutdown` returns within
//! `deadlines.shutdown + deadlines.reap`. Rust test helper only (`escape-child`).
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreapable_helper_recovers() {
    common::watchdog(Duration::from_secs(60), async {
        let h = &common::helpers()[0];
        let before = common::snapshot();
        let mut cfg = common::config(h);
        cfg.deadlines.reap = Duration::from_millis(300);
        // The escaping child forks and calls setsid, which the seccomp filter denies
        // (sandbox_escapes checks that), and the helper's memory cgroup would kill it
        // with the helper. This test checks the supervisor's own mechanism for a child
        // that escapes anyway, as it could where neither exists (macOS), so both are
        // off here.
        cfg.sandbox.allow_fork = true;
        cfg.sandbox.seccomp = false;
        cfg.sandbox.memory_max = None;
        let bound = cfg.deadlines.shutdown + cfg.deadlines.reap;
        let sup = common::start(h, cfg).await;
        let healthy = sup.load("diag:echo?shape=4", None).await.expect("load");
        // The escaped child outlives the whole test.
        let bad = sup
            .load("diag:echo?shape=4&fault=escape-child&ms=30000", None)
            .await
            .expect("load");
        let t = Instant::now();
        let r = sup
            .predict_with_deadline(bad.id, &[("x", &[0u8; 16])], Duration::from_millis(500))
            .await;
        assert!(
            matches!(
                r,
                Err(Error::Timeout {
                    stage: Stage::Predict,
                    ..
                })
            ),
            "{r:?}"
        );
        common::wait_generation(&sup, 2, Duration::from_secs(3)).await;
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "recovered after {:?}",
            t.elapsed()
        );
        let p = sup
            .predict(healthy.id, &[("x", &[2u8; 16])])
            .await
            .expect("healthy");
        assert_eq!(p.output("y").unwrap().to_vec(), vec![2u8; 16]);
        drop(p);
        // The abandoned generation's slots stay out of use.
        assert!(sup.stats().shm_in_use > 0, "{:?}", sup.stats());
        let t = Instant::now();
        sup.shutdown().await;
        assert!(
            t.elapsed() <= bound + Duration::from_millis(500),
            "shutdown took {:?}",
            t.elapsed()
        );
        drop(sup);
        // Nothing of the abandoned generation is left on our side (its socket, its
        // connection), although the escaped child still holds the other end.
        common::assert_clean(&before, "rust").await;
    })
    .await;
}
