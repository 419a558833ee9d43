//! A helper that forks a child holding the socket, then exits: group killed, typed HelperCrashed, restart, clean.
//! The sandbox forbids fork, so this test uses the test-only `SandboxConfig::allow_fork`
//! (without it the Rust helper's fork fails and it exits with status 5, not 4).
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_forks_child() {
    common::watchdog(Duration::from_secs(60), async {
        common::predict_fault_scenario("fork-child", |cfg| cfg.sandbox.allow_fork = true, |e| matches!(e, Error::HelperCrashed { stage: Stage::Predict, detail } if detail.contains("status 4"))).await;
    })
    .await;
}
