//! A helper that segfaults on every prediction: the breaker stays closed
//! through the warm-up (each request still answered, by Candle), then opens
//! on repeated helper crashes; Candle keeps answering correctly and the
//! events say why.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::BreakerState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_helper_crashes_open_the_breaker_after_warmup() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let rig = HelperRig::start(RigOptions::new("diag:add?c=3&fault=segv", 3.0)).await;
        for i in 0..10 {
            assert_eq!(rig.infer(i as f32, Duration::from_secs(5)).await, "candle", "request {i}");
            assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed), "closed through warm-up");
        }
        assert_eq!(rig.infer(10.0, Duration::from_secs(5)).await, "candle");
        assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Open));
        let before = rig.engine.supervisor().stats().restarts;
        for i in 0..10 {
            assert_eq!(rig.infer(i as f32, Duration::from_secs(5)).await, "candle");
        }
        assert_eq!(rig.engine.supervisor().stats().restarts, before, "no request reaches the helper while open");

        let events = rig.events();
        let crash_fallbacks = events.iter().filter(|e| e.contains("Core ML failed (helper_crash)")).count();
        assert_eq!(crash_fallbacks, 11, "every crashed request fell back with its reason: {events:#?}");
        assert!(
            events.iter().any(|e| e.contains("breaker opened:") && e.contains("helper crashes within")),
            "{events:#?}"
        );
        assert!(events.iter().any(|e| e.contains("served by candle instead of coreml: breaker open:")), "{events:#?}");
        let snap = rig.router.telemetry().snapshot();
        let m = snap.model(&rig.name).unwrap();
        assert_eq!(m.engine("coreml").unwrap().failures["helper_crash"], 11);
        assert_eq!(m.fallbacks["primary_failed"], 11);
        assert_eq!(m.fallbacks["breaker_open"], 10);
        assert_eq!(m.engine("candle").unwrap().successes, 21);
        rig.shutdown().await;
    })
    .await
    .expect("watchdog: test hung");
}
