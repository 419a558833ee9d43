//! A helper whose first frame is garbage: start fails with a typed error; nothing leaks.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, HandshakeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_garbage() {
    common::watchdog(Duration::from_secs(30), async {
        common::handshake_fault_scenario("garbage-handshake", |e| {
            matches!(e, Error::Start(HandshakeError::Garbage(_)))
        })
        .await;
    })
    .await;
}
