//! `COREML_FORCE_ENABLE` from the real environment: Core ML times out on
//! every request (a 1 s model under a 600 ms deadline) until the breaker
//! opens; once the caller allows it time again, listing the model in
//! `COREML_FORCE_ENABLE` brings Core ML back at once. (The only test in this
//! binary: it is the only one that touches the process environment.)

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::force_enable::FORCE_ENABLE_ENV;
use coreml_bridge::breaker::BreakerState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_the_model_in_coreml_force_enable_brings_core_ml_back() {
    tokio::time::timeout(Duration::from_secs(120), async {
        std::env::remove_var(FORCE_ENABLE_ENV);
        let rig = HelperRig::start(RigOptions::new("diag:sleep?ms=1000", 0.0)).await;
        for i in 0..11 {
            assert_eq!(
                rig.infer(i as f32, Duration::from_millis(600)).await,
                "candle",
                "request {i} timed out on Core ML"
            );
        }
        assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Open));
        assert_eq!(rig.infer(0.0, Duration::from_secs(5)).await, "candle", "open: Core ML not tried");

        // Another model listed: nothing changes.
        std::env::set_var(FORCE_ENABLE_ENV, "some-other-model");
        assert_eq!(rig.infer(0.0, Duration::from_secs(5)).await, "candle");
        std::env::set_var(FORCE_ENABLE_ENV, format!("other, {}", rig.name));
        assert_eq!(rig.infer(1.0, Duration::from_secs(5)).await, "coreml");
        assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed));
        std::env::remove_var(FORCE_ENABLE_ENV);
        assert_eq!(rig.infer(2.0, Duration::from_secs(5)).await, "coreml", "stays closed once re-enabled");

        let events = rig.events();
        assert!(events.iter().any(|e| e.contains("Core ML failed (timeout)")), "{events:#?}");
        assert!(events.iter().any(|e| e.contains("breaker closed: re-enabled by COREML_FORCE_ENABLE")), "{events:#?}");
        rig.shutdown().await;
    })
    .await
    .expect("watchdog: test hung");
}
