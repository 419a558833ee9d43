//! A helper that forks a child holding the socket, then exits: group killed, typed HelperCrashed, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_forks_child() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario("fork-child", |cfg| { let _ = cfg; }, |e| matches!(e, Error::HelperCrashed { stage: Stage::Predict, detail } if detail.contains("status 4"))).await;
    })
    .await;
}
