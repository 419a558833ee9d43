//! Version negotiation (docs/protocol.md section 7) against the independent peer:
//! a peer announcing another major (3.0, or the 1.0 of named regions) is refused
//! with the typed version error naming both versions and leaves nothing behind; a
//! peer announcing a newer minor (2.9), whose `Hello` carries a field this
//! supervisor does not know, is accepted and serves.
mod common;
mod python;

use std::time::Duration;

use coreml_ipc_schema::VersionError;
use coreml_supervisor::{Error, HandshakeError, Supervisor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peer_versions() {
    common::watchdog(Duration::from_secs(90), async {
        let staging = tempfile::tempdir().expect("tempdir");
        let models = tempfile::tempdir().expect("tempdir");
        for (announced, major, minor) in [("3.0", 3, 0), ("1.0", 1, 0)] {
            let before = common::snapshot();
            let mut cfg = python::peer_config(staging.path(), models.path());
            cfg.helper = cfg.helper.env("COREML_PEER_PROTOCOL", announced);
            match Supervisor::start(cfg).await {
                Err(Error::Start(HandshakeError::Version(VersionError::IncompatibleVersion {
                    ours,
                    theirs_major,
                    theirs_minor,
                }))) => {
                    assert_eq!((ours, theirs_major, theirs_minor), (2, major, minor));
                }
                Err(other) => panic!("{announced}: expected the version error, got {other:?}"),
                Ok(_) => panic!("{announced}: a peer of another major was accepted"),
            }
            common::assert_clean(&before, announced).await;
        }

        let before = common::snapshot();
        let mut cfg = python::peer_config(staging.path(), models.path());
        cfg.helper = cfg.helper.env("COREML_PEER_PROTOCOL", "2.9");
        let sup = Supervisor::start(cfg)
            .await
            .unwrap_or_else(|e| panic!("a newer minor was refused: {e}"));
        let hello = sup.hello().expect("hello");
        assert_eq!((hello.protocol_major, hello.protocol_minor), (2, 9));
        let source = python::toy_model(models.path(), "id.toymodel", "identity", &[3], 0);
        let model = python::compile_and_load(&sup, &source).await;
        let x = common::f32_bytes(&[0.5, -1.0, 2.0]);
        let out = sup.predict(model.id, &[("x", &x)]).await.expect("predict");
        assert_eq!(out.output("y").expect("output y").to_vec(), x);
        drop(out);
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "2.9").await;
    })
    .await;
}
