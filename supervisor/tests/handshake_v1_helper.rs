//! A helper of protocol v1 (regions by name) cannot work with descriptor passing:
//! start fails with a typed version error naming both majors; nothing leaks.
//! The `v1-handshake` fault exists in the Rust test helper only.
mod common;

use std::time::Duration;

use coreml_supervisor::schema::VersionError;
use coreml_supervisor::{Error, HandshakeError, Supervisor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_v1_helper() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers().into_iter().filter(|h| h.name == "rust") {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.helper = cfg.helper.env("COREML_DIAG_FAULT", "v1-handshake");
            match Supervisor::start(cfg).await {
                Ok(_) => panic!("[{}] a v1 helper was accepted", h.name),
                Err(e) => {
                    assert!(
                        matches!(
                            &e,
                            Error::Start(HandshakeError::Version(
                                VersionError::IncompatibleVersion {
                                    ours: 2,
                                    theirs_major: 1,
                                    ..
                                }
                            ))
                        ) && e.to_string().contains("2.x"),
                        "[{}] unexpected error {e:?}",
                        h.name
                    );
                }
            }
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
