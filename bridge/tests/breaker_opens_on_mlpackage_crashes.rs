//! A real `.mlpackage` served out of process by the test helper (MIL executor),
//! whose helper segfaults on every prediction (`--mil-faults fault=segv`): every
//! request is still answered with the golden output by the in-process MIL engine,
//! the breaker opens after the warm-up on repeated helper crashes, and while it is
//! open no request reaches the helper.

mod common;
mod package;

use std::sync::Arc;
use std::time::Duration;

use coreml_bridge::breaker::BreakerState;
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{ComputeUnits, Deadline, InferenceEngine, ModelArtifact, PrepareOptions};
use coreml_bridge::router::{Router, HINT_CANDLE_ARTIFACT};
use coreml_bridge::telemetry::Telemetry;
use coreml_mil::MilEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_on_mlpackage_crashes() {
    let _watchdog = common::Watchdog::new("breaker_opens_on_mlpackage_crashes", Duration::from_secs(180));
    let dir = tempfile::tempdir().unwrap();
    let golden = package::golden();
    let telemetry = Arc::new(Telemetry::new());
    let health = HealthBus::new();
    let (engine, pkg) = package::engine_with_faults(dir.path(), "fault=segv", telemetry.clone(), health.clone()).await;
    let router = Router::builder()
        .primary(engine.clone())
        .primary_self_timed()
        .fallback(Arc::new(MilEngine::new()))
        .telemetry(telemetry)
        .health(health)
        .build();
    let options = PrepareOptions::new(ComputeUnits::CpuOnly)
        .with_model_name(package::MODEL)
        .with_hint(HINT_CANDLE_ARTIFACT, pkg.to_str().unwrap());
    let model = router.prepare(&ModelArtifact::from_path(&pkg).unwrap(), &options).await.expect("prepare");
    let ask = |i: usize| {
        let (router, model, golden) = (&router, &model, &golden);
        async move {
            let out = router
                .infer(model, golden.inputs(), Deadline::after(Duration::from_secs(10)))
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            golden.check(&out, &format!("request {i}"));
            router.served_by(package::MODEL).unwrap()
        }
    };
    for i in 0..10 {
        assert_eq!(ask(i).await, "mil", "request {i}");
        assert_eq!(router.breaker_state(package::MODEL), Some(BreakerState::Closed), "closed through warm-up");
    }
    assert_eq!(ask(10).await, "mil");
    assert_eq!(router.breaker_state(package::MODEL), Some(BreakerState::Open));
    // Every crash restarts the helper (the last restart may still be under way).
    let t = std::time::Instant::now();
    while engine.supervisor().stats().restarts < 11 {
        assert!(t.elapsed() < Duration::from_secs(20), "restarts: {:?}", engine.supervisor().stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarts = engine.supervisor().stats().restarts;
    assert_eq!(restarts, 11, "one restart per crash");
    for i in 11..16 {
        assert_eq!(ask(i).await, "mil");
    }
    assert_eq!(engine.supervisor().stats().restarts, restarts, "no request reaches the helper while open");
    let snap = router.telemetry().snapshot();
    let m = snap.model(package::MODEL).unwrap();
    assert_eq!(m.engine("coreml").unwrap().failures["helper_crash"], 11);
    assert_eq!(m.engine("mil").unwrap().successes, 16);
    engine.shutdown().await;
}
