//! A helper that goes silent in `Load` is killed at the caller's load deadline
//! (`load_with_deadline`, at most the configured load budget), not at the
//! configured one: the load fails with `Timeout{Load}` in time, the model is not
//! registered, the helper restarts and the models loaded before still serve.
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_silent_bounded() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.deadlines.load = Duration::from_secs(20);
            let sup = common::start(&h, cfg).await;
            let add = sup
                .load("diag:add?c=1&shape=2", None)
                .await
                .expect("load add");
            let budget = Duration::from_millis(400);
            let t = Instant::now();
            let r = sup
                .load_with_deadline("diag:echo?fault=hang&at=load", None, budget)
                .await;
            let took = t.elapsed();
            assert!(
                matches!(
                    r,
                    Err(Error::Timeout {
                        stage: Stage::Load,
                        ..
                    })
                ),
                "[{}] {r:?}",
                h.name
            );
            assert!(
                took < budget + Duration::from_millis(1500),
                "[{}] a silent Load took {took:?} with a budget of {budget:?}",
                h.name
            );
            assert_eq!(sup.models().len(), 1);
            let p = sup
                .predict(add.id, &[("x", &common::f32_bytes(&[1.0, 2.0]))])
                .await
                .unwrap_or_else(|e| panic!("[{}] {e}", h.name));
            assert_eq!(p.output("y").unwrap().to_f32(), vec![2.0, 3.0]);
            assert!(sup.stats().generation >= 2);
            drop(p);
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
