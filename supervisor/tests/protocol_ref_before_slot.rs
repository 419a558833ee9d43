//! An output ref that starts before the slot it was given (inside the region, so
//! only the slot check can catch it; accepted, it would underflow when the output
//! is read) is a protocol violation: typed error, helper killed and restarted.
//! Rust test helper only (`bad-ref-before` is not in the Swift helper).
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_ref_before_slot() {
    common::watchdog(Duration::from_secs(60), async {
        let rust = vec![common::helpers().swap_remove(0)];
        common::predict_fault_scenario_on(rust, "bad-ref-before", |_| {}, |e| {
            matches!(e, Error::ProtocolViolation { stage: Stage::Predict, detail } if detail.contains("outside its slot"))
        })
        .await;
    })
    .await;
}
