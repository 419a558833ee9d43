//! A model that hangs on its reload is killed at its own load budget and marked
//! failed; the other model comes back within that budget plus the restart, not
//! after it forever. Rust test helper only (the `armed` key).
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_one_model_hangs() {
    common::watchdog(Duration::from_secs(60), async {
        let h = &common::helpers()[0];
        let before = common::snapshot();
        let armed = std::env::temp_dir().join(format!("reload-hang-armed-{}", std::process::id()));
        let _ = std::fs::remove_file(&armed);
        let mut cfg = common::config(h);
        cfg.deadlines.load = Duration::from_millis(700);
        let sup = common::start(h, cfg).await;
        let uri = format!(
            "diag:echo?shape=4&fault=hang&at=load&armed={}",
            armed.display()
        );
        let bad = sup.load(&uri, None).await.expect("load (not armed)");
        let echo = sup
            .load("diag:echo?shape=8", None)
            .await
            .expect("load echo");
        std::fs::write(&armed, b"").expect("arm");
        let t = Instant::now();
        sup.kill_helper();
        let e = sup
            .predict_with_deadline(echo.id, &[("x", &[7u8; 32])], Duration::from_secs(5))
            .await
            .expect("echo after restart");
        assert_eq!(e.output("y").unwrap().to_vec(), vec![7u8; 32]);
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "took {:?}",
            t.elapsed()
        );
        drop(e);
        match sup.predict(bad.id, &[("x", &[1u8; 16])]).await {
            Err(Error::ModelFailed { model, reason, .. }) => {
                assert_eq!(model, bad.id.0);
                assert!(reason.contains("load timed out"), "{reason}");
            }
            other => panic!("predict on the hung model: {other:?}"),
        }
        std::fs::remove_file(&armed).expect("disarm");
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "rust").await;
    })
    .await;
}
