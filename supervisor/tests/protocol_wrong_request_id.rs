//! A helper that answers with a request id never issued: ProtocolViolation, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_wrong_request_id() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario(
            "wrong-id",
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
