//! A helper of protocol v1 (regions by name) cannot work with descriptor passing:
//! start fails with a typed version error naming both majors; nothing leaks.
mod common;

use std::time::Duration;

use coreml_supervisor::schema::VersionError;
use coreml_supervisor::{Error, HandshakeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_v1_helper() {
    common::watchdog(Duration::from_secs(30), async {
        common::handshake_fault_scenario("v1-handshake", |e| {
            matches!(
                e,
                Error::Start(HandshakeError::Version(VersionError::IncompatibleVersion {
                    ours: 2,
                    theirs_major: 1,
                    ..
                }))
            ) && e.to_string().contains("2.x")
        })
        .await;
    })
    .await;
}
