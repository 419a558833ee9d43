//! A helper that answers predictions with a request id it was never given:
//! each is a protocol violation (the supervisor kills and restarts it), each
//! request is answered by Candle, and after the warm-up the success rate
//! below 95 % opens the breaker; the taxonomy counts protocol violations.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::BreakerState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_open_the_breaker_on_success_rate() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let rig = HelperRig::start(RigOptions::new("diag:echo?fault=wrong-id", 0.0)).await;
        for i in 0..10 {
            assert_eq!(rig.infer(i as f32, Duration::from_secs(5)).await, "candle");
            assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed));
        }
        assert_eq!(rig.infer(10.0, Duration::from_secs(5)).await, "candle");
        assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Open));
        let events = rig.events();
        assert!(events.iter().any(|e| e.contains("Core ML failed (protocol_violation)")), "{events:#?}");
        assert!(
            events
                .iter()
                .any(|e| e.contains("breaker opened: success rate 0.0% over the last 11 inferences is below 95.0%")),
            "{events:#?}"
        );
        let snap = rig.router.telemetry().snapshot();
        assert_eq!(snap.model(&rig.name).unwrap().engine("coreml").unwrap().failures["protocol_violation"], 11);
        rig.shutdown().await;
    })
    .await
    .expect("watchdog: test hung");
}
