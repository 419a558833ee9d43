//! The fast lane: a caller spins for its own reply only while that is cheap. Quick
//! models are served through it with correct results; a model whose helper-side
//! time exceeds the spin budget drops out after its first reply; `reply_spin =
//! ZERO` turns the lane off; nothing leaks either way.
mod common;

use std::time::Duration;

use coreml_supervisor::DEFAULT_REPLY_SPIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_lane_replies() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            for (lane, spin) in common::lanes() {
                let before = common::snapshot();
                let mut cfg = common::config(&h);
                cfg.reply_spin = spin;
                let sup = common::start(&h, cfg).await;
                let echo = sup.load("diag:echo?shape=64", None).await.expect("load");
                // The first prediction also maps the arena's region in the helper.
                let warm = sup.predict(echo.id, &[("x", &[0u8; 256])]).await;
                warm.expect("warm-up predict");
                let base = sup.stats();
                for i in 0..200u32 {
                    let x: Vec<f32> = (0..64).map(|k| (i * 64 + k) as f32).collect();
                    let bytes = common::f32_bytes(&x);
                    let p = sup
                        .predict(echo.id, &[("x", &bytes)])
                        .await
                        .expect("predict");
                    assert_eq!(p.output("y").unwrap().to_f32(), x, "[{}] #{i}", h.name);
                }
                sup.ping().await.expect("ping");
                let s = sup.stats();
                let (fast, slow) = (
                    s.fast_replies - base.fast_replies,
                    s.slow_replies - base.slow_replies,
                );
                if spin.is_zero() {
                    assert_eq!(
                        (s.fast_replies, s.slow_replies),
                        (0, 0),
                        "[{} via {lane}] the lane is off",
                        h.name
                    );
                } else {
                    // 201 eligible requests; an echo of 256 bytes answers within the
                    // budget nearly always, but a busy machine may make some late.
                    assert_eq!(fast + slow, 201, "[{}] {s:?}", h.name);
                    assert!(fast > 0, "[{}] no reply took the fast lane", h.name);
                }
                sup.shutdown().await;
                drop(sup);
                common::assert_clean(&before, &format!("[{}] {lane}", h.name)).await;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_models_leave_the_fast_lane() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            let mut cfg = common::config(&h);
            cfg.reply_spin = DEFAULT_REPLY_SPIN;
            let sup = common::start(&h, cfg).await;
            // Sleeps 20 ms per prediction: 200 times the spin budget.
            let slow = sup
                .load("diag:sleep?ms=20&shape=4", None)
                .await
                .expect("load");
            // Map the arena's region in the helper first (a fast control request).
            let echo = sup.load("diag:echo?shape=4", None).await.expect("load");
            let warm = sup.predict(echo.id, &[("x", &[0u8; 16])]).await;
            warm.expect("warm-up predict");
            let base = sup.stats();
            for _ in 0..5 {
                sup.predict(slow.id, &[("x", &[0u8; 16])])
                    .await
                    .expect("predict");
            }
            let s = sup.stats();
            // Only the first prediction (no history yet) spins, and misses.
            assert_eq!(
                (
                    s.fast_replies - base.fast_replies,
                    s.slow_replies - base.slow_replies
                ),
                (0, 1),
                "[{}] {s:?}",
                h.name
            );
            sup.shutdown().await;
        }
    })
    .await;
}
