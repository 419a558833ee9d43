//! `Compile` of a real `.mlpackage` through the sandboxed helper: the bundle is a copy
//! inside the staging directory the supervisor gave, it loads and predicts through
//! shared memory with the golden output; a package the executor cannot run is a typed
//! `COMPILE_FAILED` error naming the file, and the helper keeps serving.
mod common;
mod package;

use std::time::Duration;

use coreml_supervisor::schema::ErrorCode;
use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mil_package_compiled_into_staging() {
    common::watchdog(Duration::from_secs(90), async {
        let h = common::helpers().remove(0);
        let golden = package::golden();
        let staging = tempfile::tempdir().expect("staging");
        let broken = tempfile::tempdir().expect("broken package");
        let bad = broken.path().join("truncated.mlpackage");
        std::fs::create_dir_all(bad.join("Data/com.apple.CoreML")).unwrap();
        std::fs::copy(
            package::path().join("Manifest.json"),
            bad.join("Manifest.json"),
        )
        .unwrap();
        std::fs::write(
            bad.join("Data/com.apple.CoreML/model.mlmodel"),
            b"\x08\x09\x12",
        )
        .unwrap();

        let mut cfg = package::readable(common::config(&h));
        cfg.staging_dir = staging.path().canonicalize().unwrap();
        cfg.sandbox = cfg
            .sandbox
            .read_write(staging.path())
            .read_only(broken.path());
        let before = common::snapshot();
        let sup = common::start(&h, cfg).await;

        let compiled = sup
            .compile(&package::path().display().to_string(), None)
            .await
            .expect("compile");
        let bundle = std::path::PathBuf::from(&compiled.bundle_path);
        assert_eq!(
            bundle.parent().map(|p| p.canonicalize().unwrap()),
            Some(staging.path().canonicalize().unwrap()),
            "bundle {} is not in the staging directory",
            bundle.display()
        );
        assert!(bundle
            .join("Data/com.apple.CoreML/weights/weight.bin")
            .is_file());
        let m = sup
            .load(&compiled.bundle_path, None)
            .await
            .expect("load bundle");
        let out = sup
            .predict(m.id, &[("image", &golden.image)])
            .await
            .expect("predict");
        package::assert_golden(
            &out.output("logits").unwrap().to_vec(),
            &golden,
            "compiled bundle",
        );
        drop(out);

        match sup.compile(&bad.display().to_string(), None).await {
            Err(Error::Helper {
                stage: Stage::Compile,
                code,
                message,
            }) => {
                assert_eq!(code, ErrorCode::COMPILE_FAILED, "{message}");
                assert!(message.contains("model.mlmodel"), "{message}");
            }
            other => panic!("broken package: expected COMPILE_FAILED, got {other:?}"),
        }
        assert_eq!(
            sup.stats().restarts,
            0,
            "a bad package must not cost a restart"
        );
        let out = sup
            .predict(m.id, &[("image", &golden.image)])
            .await
            .expect("still serving");
        package::assert_golden(
            &out.output("logits").unwrap().to_vec(),
            &golden,
            "after the bad package",
        );
        drop(out);
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "mil package compile").await;
    })
    .await;
}
