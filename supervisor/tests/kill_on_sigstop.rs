//! A helper that stops itself (SIGSTOP): killed at the deadline, typed Timeout, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_on_sigstop() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario(
            "sigstop",
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
