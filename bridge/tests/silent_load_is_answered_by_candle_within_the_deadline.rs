//! A helper that goes silent in `Load` (Core ML compiling or loading a model
//! for minutes, or hung) does not hold the caller: its deadline of 3 s
//! bounds the whole request, preparation included, and Candle answers
//! within it while Core ML goes on preparing in the background.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::helper::{supervisor_config, AddEngine, WIDTH};
use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{
    ComputeUnits, Deadline, InferenceEngine, ModelArtifact, ModelFormat, PrepareOptions, Tensor, TensorMap,
};
use coreml_bridge::router::{Router, HINT_CANDLE_ARTIFACT};
use coreml_bridge::telemetry::Telemetry;

const DEADLINE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_silent_in_load_is_answered_by_candle_within_the_deadline() {
    let _watchdog = common::Watchdog::new("silent_load_is_answered_by_candle", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let health = HealthBus::new();
    let opts = CoreMlOptions { cache_dir: Some(dir.path().join("cache")), ..Default::default() };
    // The helper's load budget (10 s) is far past the caller's deadline.
    let cfg = supervisor_config(None);
    let engine = Arc::new(CoreMlEngine::start(cfg, opts, telemetry.clone(), health.clone()).await.unwrap());
    let router = Router::builder()
        .primary(engine.clone())
        .primary_self_timed()
        .fallback(AddEngine::new())
        .telemetry(telemetry)
        .health(health)
        .build();
    let candle = AddEngine::write_artifact(dir.path(), 0.0);
    let options = PrepareOptions::new(ComputeUnits::CpuAndNe)
        .with_model_name("silent")
        .with_prepare_budget(DEADLINE)
        .with_hint(HINT_CANDLE_ARTIFACT, candle.to_str().unwrap());
    let artifact = ModelArtifact::new(ModelFormat::MlPackage, "diag:echo?fault=hang&at=load");

    // The caller's request: prepare, then infer, all within its deadline.
    let start = Instant::now();
    let deadline = Deadline::after(DEADLINE);
    let request = async {
        let model = router.prepare(&artifact, &options).await?;
        let x = TensorMap::new().with("x", Tensor::new(vec![WIDTH], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap());
        Ok::<_, Box<dyn std::error::Error>>(router.infer(&model, x, deadline).await?)
    };
    let answer = tokio::time::timeout_at(deadline.instant().into(), request).await;
    let took = start.elapsed();
    let y = answer
        .unwrap_or_else(|_| panic!("no answer within the caller's deadline of {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("the request failed: {e}"));
    assert_eq!(y.f32("y").unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(router.served_by("silent").as_deref(), Some("candle"), "answered by Candle");
    eprintln!("answered by candle after {took:?}");
    // Core ML is still at it (in the background, not on the caller's clock).
    let snap = router.telemetry().snapshot();
    let fallbacks = &snap.model("silent").unwrap().fallbacks;
    assert_eq!(fallbacks.get("primary_preparing"), Some(&1), "counted as `Core ML still preparing`: {fallbacks:?}");
    engine.shutdown().await;
}
