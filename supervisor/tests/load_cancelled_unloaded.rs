//! A load whose caller gives up is not leaked in the helper: the late `Loaded` is
//! answered with an `Unload`, so the helper ends up with only the models the
//! supervisor knows. Rust test helper only (`load_ms` is not in the Swift helper).
mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_cancelled_unloaded() {
    common::watchdog(Duration::from_secs(30), async {
        let h = &common::helpers()[0];
        let before = common::snapshot();
        let sup = common::start(h, common::config(h)).await;
        let kept = sup.load("diag:echo?shape=4", None).await.expect("load");
        let slow = sup.load("diag:echo?shape=4&load_ms=300", None);
        let r = tokio::time::timeout(Duration::from_millis(50), slow).await;
        assert!(r.is_err(), "the slow load answered within 50 ms: {r:?}");
        assert_eq!(sup.models().len(), 1, "a cancelled load is not registered");
        // The helper answers Loaded at ~300 ms; the supervisor unloads it.
        let t = Instant::now();
        loop {
            let s = sup.helper_stats().await.expect("stats");
            if s.models_loaded == 1 && t.elapsed() > Duration::from_millis(300) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the helper still has {} models loaded",
                s.models_loaded
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(sup.stats().generation, 1, "no restart was needed");
        let p = sup
            .predict(kept.id, &[("x", &[5u8; 16])])
            .await
            .expect("predict");
        assert_eq!(p.output("y").unwrap().to_vec(), vec![5u8; 16]);
        drop(p);
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "rust").await;
    })
    .await;
}
