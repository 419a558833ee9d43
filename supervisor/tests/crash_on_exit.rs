//! A helper that exits without replying: typed HelperCrashed, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_exit() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario("exit", |cfg| { let _ = cfg; }, |e| matches!(e, Error::HelperCrashed { stage: Stage::Predict, detail } if detail.contains("status 3"))).await;
    })
    .await;
}
