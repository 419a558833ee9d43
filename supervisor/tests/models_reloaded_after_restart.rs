//! After a restart every registered model is loaded again before the new helper
//! takes predictions; a predict issued during the restart waits and succeeds.
mod common;

use std::time::Duration;

use coreml_supervisor::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_reloaded_after_restart() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.restart.initial_backoff = Duration::from_millis(100);
            let sup = common::start(&h, cfg).await;
            let add = sup
                .load("diag:add?c=2.5&shape=3", None)
                .await
                .expect("load add");
            let echo = sup
                .load("diag:echo?dtype=i16&shape=2x2", None)
                .await
                .expect("load echo");
            let mut events = sup.subscribe();
            let pid = sup.stats().pid;
            sup.kill_helper();
            // Issued while the helper is down: waits for the restart, then succeeds.
            let x = common::f32_bytes(&[1.0, -2.0, 0.5]);
            let p = sup
                .predict(add.id, &[("x", &x)])
                .await
                .unwrap_or_else(|e| panic!("[{}] {e}", h.name));
            assert_eq!(p.output("y").unwrap().to_f32(), vec![3.5, 0.5, 3.0]);
            let e = sup
                .predict(echo.id, &[("x", &[1, 2, 3, 4, 5, 6, 7, 8])])
                .await
                .expect("echo");
            assert_eq!(
                e.output("y").unwrap().to_vec(),
                vec![1, 2, 3, 4, 5, 6, 7, 8]
            );
            let mut reloaded = None;
            while let Ok(ev) = events.try_recv() {
                if let Event::HelperStarted {
                    generation,
                    models_reloaded,
                    pid: new_pid,
                    ..
                } = ev
                {
                    assert_ne!(new_pid, pid);
                    reloaded = Some((generation, models_reloaded));
                }
            }
            assert_eq!(reloaded, Some((2, 2)), "[{}] HelperStarted event", h.name);
            drop((p, e));
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
