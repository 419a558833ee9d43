//! A helper that starts allocating without bound after ten good
//! predictions: the supervisor kills it at its memory limit, that request is
//! answered by Candle, and the helper's memory over its limit opens the
//! breaker.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::{BreakerConfig, BreakerState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_memory_over_its_limit_opens_the_breaker() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let once = dir.path().join("alloc-fired");
        let limit: u64 = 192 << 20;
        let mut o = RigOptions::new(&format!("diag:add?c=1&fault=alloc&after=10&once={}", once.display()), 1.0);
        o.memory_limit = Some(limit);
        // One failure in eleven is below 95 %: relax the success-rate trigger
        // so that this test sees the memory trigger alone.
        o.breaker = BreakerConfig { memory_limit: Some(limit), min_success_rate: 0.5, ..BreakerConfig::default() };
        let rig = HelperRig::start(o).await;
        for i in 0..10 {
            assert_eq!(rig.infer(i as f32, Duration::from_secs(5)).await, "coreml", "request {i}");
        }
        // The 11th makes the helper allocate until the supervisor kills it.
        assert_eq!(rig.infer(10.0, Duration::from_secs(20)).await, "candle");
        assert!(once.exists(), "the fault fired");
        // The kill's memory report reaches the breaker before the next decision.
        let mut state = None;
        for i in 0..50 {
            let served = rig.infer(i as f32, Duration::from_secs(5)).await;
            state = rig.router.breaker_state(&rig.name);
            if state == Some(BreakerState::Open) {
                assert_eq!(served, "candle");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(state, Some(BreakerState::Open));
        let events = rig.events();
        assert!(events.iter().any(|e| e.contains("Core ML failed (memory_pressure)")), "{events:#?}");
        assert!(
            events
                .iter()
                .any(|e| e.contains("breaker opened: helper memory") && e.contains("over its limit of 192 MiB")),
            "{events:#?}"
        );
        let snap = rig.router.telemetry().snapshot();
        assert!(snap.helper.memory_high_water.unwrap() > limit, "{:?}", snap.helper);
        let mut restarts = snap.helper.restarts;
        for _ in 0..100 {
            if restarts >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            restarts = rig.router.telemetry().snapshot().helper.restarts;
        }
        assert!(restarts >= 1, "the restart after the kill is counted");
        rig.shutdown().await;
    })
    .await
    .expect("watchdog: test hung");
}
