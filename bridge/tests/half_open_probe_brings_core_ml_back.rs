//! The timed half-open probe: after the breaker opened on timeouts, Candle
//! serves until the probe interval passes; then one request probes Core ML,
//! and since the helper now answers in time, the breaker closes and Core ML
//! serves again.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::force_enable::ForceSource;
use coreml_bridge::breaker::{BreakerConfig, BreakerState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timed_probe_closes_the_breaker_when_core_ml_behaves() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut o = RigOptions::new("diag:sleep?ms=1000", 0.0);
        o.breaker = BreakerConfig { half_open_after: Some(Duration::from_millis(800)), ..BreakerConfig::default() };
        o.force = ForceSource::fixed().0;
        let rig = HelperRig::start(o).await;
        for i in 0..11 {
            assert_eq!(rig.infer(i as f32, Duration::from_millis(600)).await, "candle");
        }
        assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Open));
        assert_eq!(rig.infer(0.0, Duration::from_secs(5)).await, "candle", "before the probe interval");
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(rig.infer(1.0, Duration::from_secs(5)).await, "coreml", "the probe");
        assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed));
        assert_eq!(rig.infer(2.0, Duration::from_secs(5)).await, "coreml");
        let events = rig.events();
        assert!(events.iter().any(|e| e.contains("breaker half-open after")), "{events:#?}");
        assert!(events.iter().any(|e| e.contains("breaker closed: 1 half-open probe(s) succeeded")), "{events:#?}");
        rig.shutdown().await;
    })
    .await
    .expect("watchdog: test hung");
}
