//! A half-open probe whose caller gives up (here a `tokio::time::timeout`
//! around `Router::infer`) gives its ticket back: the next request is the
//! probe, instead of every later request going to Candle with
//! `probe_in_flight` for good.

mod common;

use std::time::Duration;

use common::{Rig, MODEL};
use coreml_bridge::breaker::{BreakerConfig, BreakerState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_probe_lets_the_next_request_probe() {
    let _watchdog = common::Watchdog::new("a_cancelled_probe_lets_the_next_request_probe", Duration::from_secs(60));
    let rig = Rig::new(BreakerConfig::default()).await;
    // Open the breaker: the warm-up of 10 failures, then the 11th trips it.
    rig.coreml.fail_next(11);
    for i in 0..11 {
        assert_eq!(rig.infer(i as f32).await.unwrap(), "candle");
    }
    assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Open));

    // 30 s later (the default), the next request is the probe; it hangs and its caller gives up.
    rig.clock.advance(Duration::from_secs(30));
    rig.coreml.set_infer_delay(Duration::from_secs(30));
    let gave_up = tokio::time::timeout(Duration::from_millis(200), rig.infer(11.0)).await;
    assert!(gave_up.is_err(), "the probe hung and was cancelled");
    assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::HalfOpen));

    // Core ML is healthy again: the next request is a probe, succeeds and closes the breaker.
    rig.coreml.set_infer_delay(Duration::ZERO);
    assert_eq!(rig.infer(12.0).await.unwrap(), "coreml", "{:#?}", rig.event_lines());
    assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Closed));
    for i in 0..5 {
        assert_eq!(rig.infer(13.0 + i as f32).await.unwrap(), "coreml");
    }
    let lines = rig.event_lines();
    assert!(lines.iter().any(|l| l.contains("breaker closed: 1 half-open probe(s) succeeded")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("probe is in flight")), "{lines:#?}");
}
