//! A helper that crashes while loading a model: the load fails with HelperCrashed
//! naming the load stage, the model is not registered, the helper restarts and the
//! models loaded before are reloaded and serve.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_fault_crash() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let add = sup
                .load("diag:add?c=1&shape=2", None)
                .await
                .expect("load add");
            let r = sup.load("diag:echo?fault=segv&at=load", None).await;
            assert!(
                matches!(
                    r,
                    Err(Error::HelperCrashed {
                        stage: Stage::Load,
                        ..
                    })
                ),
                "[{}] {r:?}",
                h.name
            );
            assert_eq!(sup.models().len(), 1);
            let p = sup
                .predict(add.id, &[("x", &common::f32_bytes(&[1.0, 2.0]))])
                .await
                .expect("predict");
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
