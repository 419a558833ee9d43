//! A helper that answers correctly but slowly (`diag:sleep`, 40 ms, SLA
//! 10 ms): Core ML serves through the warm-up, the p99 over 3× the SLA on
//! three checks in a row opens the breaker, and Candle serves from then on.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::{BreakerConfig, BreakerState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p99_over_three_times_the_sla_three_checks_in_a_row_opens_the_breaker() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut o = RigOptions::new("diag:sleep?ms=40", 0.0);
        o.breaker = BreakerConfig { sla_p99: Some(Duration::from_millis(10)), ..BreakerConfig::default() };
        let rig = HelperRig::start(o).await;
        for i in 0..12 {
            assert_eq!(rig.infer(i as f32, Duration::from_secs(5)).await, "coreml", "request {i}: slow but correct");
            assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed));
        }
        // The 13th is the third check past the warm-up with p99 over the SLA.
        assert_eq!(rig.infer(12.0, Duration::from_secs(5)).await, "coreml");
        assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Open));
        assert_eq!(rig.infer(13.0, Duration::from_secs(5)).await, "candle");
        let events = rig.events();
        let opened: Vec<_> = events.iter().filter(|e| e.contains("breaker opened:")).collect();
        assert_eq!(opened.len(), 1, "{events:#?}");
        assert!(opened[0].contains("over 3× the SLA of 10.0ms on 3 checks in a row"), "{}", opened[0]);
        rig.shutdown().await;
    })
    .await
    .expect("watchdog: test hung");
}
