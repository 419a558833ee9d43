//! A helper that aborts during a predict: typed HelperCrashed, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_abort() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario("abort", |cfg| { let _ = cfg; }, |e| matches!(e, Error::HelperCrashed { stage: Stage::Predict, detail } if detail.contains("signal 6"))).await;
    })
    .await;
}
