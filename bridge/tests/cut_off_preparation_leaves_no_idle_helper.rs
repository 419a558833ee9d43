//! A preparation cut off by its caller (the `prepare` future dropped while
//! the helper is silent in `Load`) leaves no helper running for a domain
//! that has no model left: the count of helper processes goes back to what
//! it was, and the other models' helper keeps serving.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::helper::supervisor_config;
use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{
    ComputeUnits, Deadline, InferenceEngine, ModelArtifact, ModelFormat, PrepareOptions, Tensor, TensorMap,
};
use coreml_bridge::telemetry::Telemetry;

/// Live (not zombie) test-helper processes whose parent is this process.
fn helpers() -> usize {
    let me = std::process::id().to_string();
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else { continue };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        if comm.ends_with("(coreml-test-hel") && ppid == me && state != "Z" {
            n += 1;
        }
    }
    n
}

async fn settle_at(want: usize) -> usize {
    for _ in 0..100 {
        if helpers() == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    helpers()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_preparation_leaves_no_idle_helper() {
    let _watchdog = common::Watchdog::new("cut_off_preparation_leaves_no_idle_helper", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let opts = CoreMlOptions { cache_dir: Some(dir.path().join("cache")), ..Default::default() };
    let engine = Arc::new(
        CoreMlEngine::start(supervisor_config(None), opts, Arc::new(Telemetry::new()), HealthBus::new()).await.unwrap(),
    );
    let prepare = |uri: &str, name: &str| {
        let engine = engine.clone();
        let artifact = ModelArtifact::new(ModelFormat::MlPackage, uri);
        let options = PrepareOptions::new(ComputeUnits::CpuAndNe).with_model_name(name);
        async move { engine.prepare(&artifact, &options).await }
    };
    let healthy = prepare("diag:add?c=2", "healthy").await.unwrap();
    assert_eq!(settle_at(1).await, 1, "one helper: the healthy model's domain");

    // The caller gives up after 1 s while the helper is silent in Load
    // (its load budget, 10 s, is far away).
    let cut = tokio::time::timeout(Duration::from_secs(1), prepare("diag:echo?fault=hang&at=load", "silent")).await;
    assert!(cut.is_err(), "the silent load was cut off by its caller");
    assert_eq!(settle_at(1).await, 1, "the silent model's empty domain is shut down");

    let x = TensorMap::new().with("x", Tensor::new(vec![4], vec![1.0f32; 4]).unwrap());
    let y = engine.infer(&healthy, x, Deadline::after(Duration::from_secs(5))).await.unwrap();
    assert_eq!(y.f32("y").unwrap(), &[3.0; 4], "the other domain keeps serving");
    assert_eq!(engine.running_domains().len(), 1);

    // A later preparation of the same model starts a fresh domain, and unloading
    // the last model of a domain shuts it down too.
    let again = prepare("diag:echo", "silent").await.unwrap();
    assert_eq!(settle_at(2).await, 2);
    engine.unload(&again).await.unwrap();
    assert_eq!(settle_at(1).await, 1, "unloading its last model shuts the domain down");
    engine.shutdown().await;
    assert_eq!(settle_at(0).await, 0);
}
