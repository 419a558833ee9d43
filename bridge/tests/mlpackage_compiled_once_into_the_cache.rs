//! A real `.mlpackage` through the Core ML engine over the test helper (MIL
//! executor): the first start compiles it into the staging directory and the cache
//! installs the bundle; a second engine on the same cache loads that bundle without
//! compiling; both serve the golden output through shared memory.

mod common;
mod package;

use std::sync::Arc;
use std::time::Duration;

use common::helper::supervisor_config;
use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{ComputeUnits, Deadline, InferenceEngine, ModelArtifact, PrepareOptions};
use coreml_bridge::telemetry::latency::Stage;
use coreml_bridge::telemetry::Telemetry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlpackage_compiled_once_into_the_cache() {
    let _watchdog = common::Watchdog::new("mlpackage_compiled_once_into_the_cache", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let pkg = package::copy_into(&models);
    let cache = dir.path().join("cache");
    let golden = package::golden();
    let mut bundles = Vec::new();
    for round in 0..2 {
        let telemetry = Arc::new(Telemetry::new());
        let opts =
            CoreMlOptions { cache_dir: Some(cache.clone()), model_dirs: vec![models.clone()], ..Default::default() };
        let engine = CoreMlEngine::start(supervisor_config(None), opts, telemetry.clone(), HealthBus::new())
            .await
            .expect("helper starts");
        let options = PrepareOptions::new(ComputeUnits::CpuOnly).with_model_name(package::MODEL);
        let model = engine.prepare(&ModelArtifact::from_path(&pkg).unwrap(), &options).await.expect("prepare");
        let out = engine.infer(&model, golden.inputs(), Deadline::after(Duration::from_secs(10))).await.expect("infer");
        golden.check(&out, &format!("round {round}"));

        let snap = telemetry.snapshot();
        let compiles = snap
            .model(package::MODEL)
            .and_then(|m| m.engine("coreml"))
            .and_then(|e| e.stages.get(Stage::Compile.name()))
            .map_or(0, |s| s.count);
        assert_eq!(compiles, if round == 0 { 1 } else { 0 }, "round {round}: compiles");
        // One installed entry (the bundle and its metadata), nothing left in staging.
        let entries: Vec<_> = std::fs::read_dir(cache.join("entries")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(entries.len(), 1, "round {round}: cache entries {entries:?}");
        let staged: Vec<_> = std::fs::read_dir(cache.join("staging"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .flat_map(|owner| std::fs::read_dir(owner).unwrap().map(|e| e.unwrap().path()))
            .collect();
        assert!(staged.is_empty(), "round {round}: left in staging: {staged:?}");
        let bundle = std::fs::read_dir(&entries[0])
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .expect("installed bundle");
        assert!(bundle.join("Manifest.json").is_file(), "{} is not a package copy", bundle.display());
        bundles.push(bundle);
        engine.shutdown().await;
    }
    assert_eq!(bundles[0], bundles[1], "the second engine loads the installed bundle");
}
