//! A helper that sends `InputsReleased` for a request that holds no inputs (here an
//! id never issued) is lying about slot ownership: `ProtocolViolation{Predict}`,
//! kill, restart; the supervisor keeps no record of the stray id.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_stray_release() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario(
            "release-unknown",
            |_| {},
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
