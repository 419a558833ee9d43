//! The protocol peer's typed `Error` replies reach the caller as typed errors and
//! leave the helper serving: a source that is not a model fails Compile with
//! `COMPILE_FAILED`, a NaN input fails Predict with `PREDICT_FAILED`, a bundle
//! that does not exist fails Load with `LOAD_FAILED`; the same helper process
//! then answers a correct prediction.
mod common;
mod python;

use std::time::Duration;

use coreml_ipc_schema::ErrorCode;
use coreml_supervisor::{Error, Stage};

fn expect_helper_error<T: std::fmt::Debug>(r: Result<T, Error>, stage: Stage, code: ErrorCode) {
    match r {
        Err(Error::Helper {
            stage: s,
            code: c,
            message,
        }) if s == stage && c == code => {
            assert!(!message.is_empty(), "{stage}: the peer's message was lost");
        }
        other => panic!("{stage}: expected the peer's {code} error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peer_errors() {
    common::watchdog(Duration::from_secs(90), async {
        let before = common::snapshot();
        let staging = tempfile::tempdir().expect("tempdir");
        let models = tempfile::tempdir().expect("tempdir");
        let sup = python::start(staging.path(), models.path()).await;
        let pid = sup.hello().expect("hello").pid;

        let junk = models.path().join("junk.toymodel");
        std::fs::write(&junk, "not a model").unwrap();
        expect_helper_error(
            sup.compile(&junk.display().to_string(), None).await,
            Stage::Compile,
            ErrorCode::COMPILE_FAILED,
        );
        let missing = staging.path().join("missing.mlmodelc");
        expect_helper_error(
            sup.load(&missing.display().to_string(), None).await,
            Stage::Load,
            ErrorCode::LOAD_FAILED,
        );

        let source = python::toy_model(models.path(), "id.toymodel", "identity", &[4], 0);
        let model = python::compile_and_load(&sup, &source).await;
        let nan = common::f32_bytes(&[1.0, f32::NAN, 3.0, 4.0]);
        expect_helper_error(
            sup.predict(model.id, &[("x", &nan)]).await,
            Stage::Predict,
            ErrorCode::PREDICT_FAILED,
        );

        let x = common::f32_bytes(&[1.0, -2.0, 3.5, 4.25]);
        let out = sup.predict(model.id, &[("x", &x)]).await.expect("predict");
        assert_eq!(out.output("y").expect("output y").to_vec(), x);
        drop(out);
        assert_eq!(
            sup.hello().expect("hello").pid,
            pid,
            "the peer was replaced"
        );
        assert_eq!(sup.stats().restarts, 0, "{:?}", sup.stats());
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "python peer errors").await;
    })
    .await;
}
