//! A predict that hangs: killed at its deadline, typed Timeout, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_timeout() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario(
            "hang",
            |cfg| {
                cfg.deadlines.predict = Duration::from_millis(300);
            },
            |e| {
                matches!(
                    e,
                    Error::Timeout {
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
