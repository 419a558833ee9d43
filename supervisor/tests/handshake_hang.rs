//! A helper that never sends Hello: start fails with a typed Timeout at the handshake deadline; nothing leaks.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, HandshakeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_hang() {
    common::watchdog(Duration::from_secs(30), async {
        common::handshake_fault_scenario("hang-handshake", |e| {
            matches!(e, Error::Start(HandshakeError::Timeout(_)))
        })
        .await;
    })
    .await;
}
