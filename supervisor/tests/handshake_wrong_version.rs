//! A helper that speaks protocol major 99: start fails with a typed version error; nothing leaks.
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, HandshakeError, Supervisor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_wrong_version() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.helper = cfg.helper.env("COREML_DIAG_FAULT", "wrong-version");
            cfg.deadlines.handshake = Duration::from_millis(500);
            let t = Instant::now();
            let r = Supervisor::start(cfg).await;
            let took = t.elapsed();
            assert!(
                took < Duration::from_millis(500 + 1500),
                "[{}] took {took:?}",
                h.name
            );
            match r {
                Ok(_) => panic!("[{}] start succeeded despite wrong-version", h.name),
                Err(e) => assert!(
                    matches!(e, Error::Start(HandshakeError::Version(_))),
                    "[{}] unexpected error {e:?}",
                    h.name
                ),
            }
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
