//! A helper whose output ref points outside its slot: ProtocolViolation (not a crash), restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_bad_tensor_ref() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario(
            "bad-ref",
            |cfg| {
                let _ = cfg;
            },
            |e| {
                matches!(
                    e,
                    Error::ProtocolViolation {
                        stage: Stage::Predict,
                        ..
                    }
                )
            },
        )
        .await;
    })
    .await;
}
