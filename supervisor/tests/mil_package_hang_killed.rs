//! A real ML Program package whose predict hangs (at its second request): the
//! supervisor kills the helper at the deadline (typed Timeout), restarts it, the
//! package serves its golden output again, nothing leaks.
mod common;
mod package;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mil_package_hang_killed() {
    common::watchdog(Duration::from_secs(90), async {
        let h = common::helpers().remove(0);
        let golden = package::golden();
        let before = common::snapshot();
        let sup = common::start(&h, package::readable(common::config(&h))).await;
        let m = sup
            .load(&package::uri("fault=hang&after=1"), None)
            .await
            .expect("load package");
        let x = golden.image.clone();
        let out = sup
            .predict(m.id, &[("image", &x)])
            .await
            .expect("first predict");
        package::assert_golden(
            &out.output("logits").unwrap().to_vec(),
            &golden,
            "first predict",
        );
        drop(out);
        let budget = Duration::from_millis(500);
        let t = Instant::now();
        let r = sup
            .predict_with_deadline(m.id, &[("image", &x)], budget)
            .await;
        let took = t.elapsed();
        assert!(
            matches!(
                r,
                Err(Error::Timeout {
                    stage: Stage::Predict,
                    ..
                })
            ),
            "second predict: expected Timeout, got {r:?}"
        );
        assert!(
            took <= budget + Duration::from_millis(1500),
            "took {took:?}"
        );
        common::wait_generation(&sup, 2, Duration::from_secs(20)).await;
        let out = sup
            .predict(m.id, &[("image", &x)])
            .await
            .expect("predict after restart");
        package::assert_golden(
            &out.output("logits").unwrap().to_vec(),
            &golden,
            "after restart",
        );
        drop(out);
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "mil package hang").await;
    })
    .await;
}
