//! A helper that sends a length prefix of 0xFFFFFFF0: rejected before allocation, ProtocolViolation, restart.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_oversize_frame() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario(
            "oversize",
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
