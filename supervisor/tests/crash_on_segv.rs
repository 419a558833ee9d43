//! A helper that dies of SIGSEGV during a predict: typed HelperCrashed, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_segv() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario("segv", |cfg| { let _ = cfg; }, |e| matches!(e, Error::HelperCrashed { stage: Stage::Predict, detail } if detail.contains("signal 11"))).await;
    })
    .await;
}
