//! A helper that closes its socket but stays alive: typed HelperCrashed, group killed, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_closes_socket() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario("close-socket", |cfg| { let _ = cfg; }, |e| matches!(e, Error::HelperCrashed { stage: Stage::Predict, detail } if detail.contains("closed its socket"))).await;
    })
    .await;
}
