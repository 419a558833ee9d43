//! A helper that sends a garbage frame: typed ProtocolViolation, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_garbage_frame() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario(
            "garbage",
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
