//! A helper that speaks protocol major 99: start fails with a typed version error; nothing leaks.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, HandshakeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_wrong_version() {
    common::watchdog(Duration::from_secs(30), async {
        common::handshake_fault_scenario("wrong-version", |e| {
            matches!(e, Error::Start(HandshakeError::Version(_)))
        })
        .await;
    })
    .await;
}
