//! A real ML Program package (run by the helper's MIL executor) whose helper dies of
//! SIGSEGV at its third predict: typed HelperCrashed, restart, the package is loaded
//! again and serves its golden output, the healthy model next to it too, nothing leaks.
mod common;
mod package;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mil_package_crash_restarts() {
    common::watchdog(Duration::from_secs(90), async {
        let h = common::helpers().remove(0);
        let golden = package::golden();
        let before = common::snapshot();
        let sup = common::start(&h, package::readable(common::config(&h))).await;
        let healthy = sup
            .load(&package::uri(""), None)
            .await
            .expect("load package");
        let faulty = sup
            .load(&package::uri("fault=segv&after=2"), None)
            .await
            .expect("load faulty package");
        let x = golden.image.clone();
        for i in 0..2 {
            let out = sup
                .predict(faulty.id, &[("image", &x)])
                .await
                .expect("predict before the fault");
            package::assert_golden(
                &out.output("logits").unwrap().to_vec(),
                &golden,
                &format!("predict {i}"),
            );
        }
        match sup.predict(faulty.id, &[("image", &x)]).await {
            Err(Error::HelperCrashed {
                stage: Stage::Predict,
                detail,
            }) => {
                assert!(detail.contains("signal 11"), "{detail}")
            }
            other => panic!("third predict: expected HelperCrashed, got {other:?}"),
        }
        common::wait_generation(&sup, 2, Duration::from_secs(20)).await;
        assert!(sup.stats().restarts >= 1);
        for (id, what) in [
            (healthy.id, "healthy package after restart"),
            (faulty.id, "reloaded package"),
        ] {
            let out = sup
                .predict(id, &[("image", &x)])
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            package::assert_golden(&out.output("logits").unwrap().to_vec(), &golden, what);
        }
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "mil package crash").await;
    })
    .await;
}
