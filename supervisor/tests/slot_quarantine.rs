//! The slots of a request that died in flight stay with the dead helper until it
//! is gone (reaped, and its socket closed by every process that held it, since
//! such a process may still map them), and only then go back to the arena.
//! Rust test helper only (`escape-child`).
mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_quarantine() {
    common::watchdog(Duration::from_secs(60), async {
        let h = &common::helpers()[0];
        let before = common::snapshot();
        let mut cfg = common::config(h);
        // Longer than the escaped child lives: the generation ends normally.
        cfg.deadlines.reap = Duration::from_secs(20);
        // The escaping child forks and calls setsid, which the seccomp filter denies
        // (sandbox_escapes checks that), and the helper's memory cgroup would kill it
        // with the helper. This test checks the supervisor's own mechanism for a child
        // that escapes anyway, as it could where neither exists (macOS), so both are
        // off here.
        cfg.sandbox.allow_fork = true;
        cfg.sandbox.seccomp = false;
        cfg.sandbox.memory_max = None;
        let sup = common::start(h, cfg).await;
        let bad = sup
            .load("diag:echo?shape=4096&fault=escape-child&ms=2000", None)
            .await
            .expect("load");
        let pid = sup.stats().pid;
        let t = Instant::now();
        let r = sup
            .predict_with_deadline(bad.id, &[("x", &[0u8; 16384])], Duration::from_millis(300))
            .await;
        assert!(r.is_err(), "{r:?}");
        // The helper is killed and reaped, but a child of it still holds the
        // socket (and our shared memory): the slots stay quarantined.
        while coreml_supervisor::process_alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "too slow to observe: {:?}",
            t.elapsed()
        );
        let held = sup.stats().shm_in_use;
        assert!(
            held >= 2 * 16384,
            "slots back before the helper was gone: {:?}",
            sup.stats()
        );
        // Once the child exits, the generation is gone and the slots come back.
        while sup.stats().shm_in_use > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "slots never came back: {:?}",
                sup.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            t.elapsed() >= Duration::from_millis(1800),
            "back after {:?}",
            t.elapsed()
        );
        common::wait_generation(&sup, 2, Duration::from_secs(5)).await;
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "rust").await;
    })
    .await;
}
