//! A helper that answers `Compile` with a bundle path outside the staging
//! directory it was given (an absolute path, a relative one climbing out with
//! `..`, a symlink inside staging pointing out) cannot make the bridge move,
//! open or delete anything there: `prepare` fails with a typed error naming
//! the staging directory, the directory the helper named is untouched, and
//! nothing is installed in the cache. The test helper's `bundle=`/`link=`
//! compile keys play the hostile helper (docs/diagnostics.md).

mod common;
mod package;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::helper::supervisor_config;
use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{ComputeUnits, InferenceEngine, ModelArtifact, PrepareError, PrepareOptions};
use coreml_bridge::telemetry::Telemetry;

/// A directory the app can rename, with content to check.
fn victim(dir: &Path) -> std::path::PathBuf {
    let v = dir.join("victim");
    std::fs::create_dir_all(v.join("inner")).unwrap();
    std::fs::write(v.join("inner/data.bin"), b"precious").unwrap();
    v
}

fn intact(v: &Path) -> bool {
    std::fs::read(v.join("inner/data.bin")).ok().as_deref() == Some(&b"precious"[..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_paths_outside_staging_are_refused() {
    let _watchdog = common::Watchdog::new("bundle_paths_outside_staging_are_refused", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let models = dir_path.join("models");
    let pkg = package::copy_into(&models);
    let cache = dir_path.join("cache");
    let v = victim(&dir_path);
    // The cache stages at <cache>/staging/<owner>/, so three levels up is `dir`.
    let answers =
        [format!("bundle={}", v.display()), "bundle=../../../victim".to_string(), format!("link={}", v.display())];
    for answer in answers {
        let mut cfg = supervisor_config(None);
        cfg.helper = cfg.helper.arg("--mil-faults").arg(&answer);
        let opts =
            CoreMlOptions { cache_dir: Some(cache.clone()), model_dirs: vec![models.clone()], ..Default::default() };
        let engine =
            CoreMlEngine::start(cfg, opts, Arc::new(Telemetry::new()), HealthBus::new()).await.expect("helper starts");
        if answer.starts_with("bundle=..") {
            let owners: Vec<_> = std::fs::read_dir(cache.join("staging")).unwrap().map(|e| e.unwrap().path()).collect();
            assert!(
                owners.iter().any(|o| o.join("../../../victim").canonicalize().ok().as_deref() == Some(v.as_path())),
                "the relative answer must reach the victim from the staging directory: {owners:?}"
            );
        }
        let options = PrepareOptions::new(ComputeUnits::CpuOnly).with_model_name(package::MODEL);
        let err = engine
            .prepare(&ModelArtifact::from_path(&pkg).unwrap(), &options)
            .await
            .expect_err(&format!("{answer}: a bundle outside staging must be refused"));
        let message = match &err {
            PrepareError::Backend { message } | PrepareError::InvalidModel { message } => message.clone(),
            other => panic!("{answer}: unexpected error {other:?}"),
        };
        assert!(message.contains("staging"), "{answer}: {message}");
        assert!(intact(&v), "{answer}: the directory the helper named was touched");
        let entries = std::fs::read_dir(cache.join("entries")).map_or(0, |d| d.count());
        assert_eq!(entries, 0, "{answer}: something was installed");
        engine.shutdown().await;
    }
}
