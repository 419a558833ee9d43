//! An input slot the helper still references (`inputs_retained`) is not reused
//! until its `InputsReleased` arrives, even while other predictions allocate
//! slots; then it returns to the arena. Rust test helper only: the `retain` key of
//! docs/diagnostics.md is not in every helper yet.
mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_released_before_reuse() {
    common::watchdog(Duration::from_secs(30), async {
        let h = common::helpers().remove(0);
        let before = common::snapshot();
        let sup = common::start(&h, common::config(&h)).await;
        let held = sup
            .load("diag:echo?shape=4096&retain=400", None)
            .await
            .expect("load retain");
        let churn = sup
            .load("diag:add?c=1&shape=4096", None)
            .await
            .expect("load add");
        let idle = sup.stats().shm_in_use;

        let x = vec![0xA5u8; 4096 * 4];
        let p = sup.predict(held.id, &[("x", &x)]).await.expect("predict");
        assert_eq!(p.output("y").unwrap().to_vec(), x);
        drop(p);
        let retained = sup.stats().shm_in_use;
        assert!(
            retained > idle,
            "input slot returned before InputsReleased: {idle} -> {retained}"
        );

        // Many allocations while the helper holds the input: the helper re-reads its
        // input at release time and exits 7 if any of them landed in it.
        let t = Instant::now();
        let mut n = 0u32;
        while t.elapsed() < Duration::from_millis(300) {
            let v: Vec<f32> = (0..4096).map(|i| (i + n) as f32).collect();
            let p = sup
                .predict(churn.id, &[("x", &common::f32_bytes(&v))])
                .await
                .expect("churn");
            assert_eq!(p.output("y").unwrap().to_f32()[0], n as f32 + 1.0);
            n += 1;
        }
        // Released after ~400 ms: the slot comes back, the helper never saw a change.
        let t = Instant::now();
        while sup.stats().shm_in_use > idle {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "never released: {:?}",
                sup.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = sup.stats();
        assert_eq!(
            (s.restarts, s.generation),
            (0, 1),
            "the helper saw its retained input change"
        );
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "retain").await;
    })
    .await;
}
