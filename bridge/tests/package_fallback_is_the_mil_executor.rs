//! A `.mlpackage` prepared with no Candle artifact named gets the MIL
//! executor as its CPU fallback by itself: the router's fallback is the
//! chain Candle → MIL (as in the CLI), Candle has no model for the package,
//! so the chain's MIL executor takes it. With the helper crashing on every
//! prediction, every request is answered by it, and telemetry names the
//! executor (`mil`), never the chain (`candle`).

mod common;
mod package;

use std::sync::Arc;
use std::time::Duration;

use coreml_bridge::candle::CandleEngine;
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::chain::EngineChain;
use coreml_bridge::inference::{ComputeUnits, Deadline, InferenceEngine, ModelArtifact, PrepareOptions};
use coreml_bridge::router::Router;
use coreml_bridge::telemetry::events::EventKind;
use coreml_bridge::telemetry::Telemetry;
use coreml_mil::MilEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_without_a_candle_model_falls_back_to_the_executor_named_mil() {
    let _watchdog = common::Watchdog::new("package_fallback_is_the_mil_executor", Duration::from_secs(180));
    let dir = tempfile::tempdir().unwrap();
    let golden = package::golden();
    let telemetry = Arc::new(Telemetry::new());
    let health = HealthBus::new();
    let (engine, pkg) = package::engine_with_faults(dir.path(), "fault=segv", telemetry.clone(), health.clone()).await;
    let chain: Vec<Arc<dyn InferenceEngine>> = vec![Arc::new(CandleEngine::new()), Arc::new(MilEngine::new())];
    let router = Router::builder()
        .primary(engine.clone())
        .primary_self_timed()
        .fallback(Arc::new(EngineChain::new("candle", chain)))
        .telemetry(telemetry)
        .health(health)
        .build();
    // No `HINT_CANDLE_ARTIFACT`: the package is its own fallback artifact.
    let options = PrepareOptions::new(ComputeUnits::CpuOnly).with_model_name(package::MODEL);
    let model = router.prepare(&ModelArtifact::from_path(&pkg).unwrap(), &options).await.expect("prepare");
    for i in 0..3 {
        let out = router
            .infer(&model, golden.inputs(), Deadline::after(Duration::from_secs(10)))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        golden.check(&out, &format!("request {i}"));
        assert_eq!(router.served_by(package::MODEL).as_deref(), Some("mil"), "request {i}");
    }
    let snap = router.telemetry().snapshot();
    let m = snap.model(package::MODEL).unwrap();
    assert_eq!(m.engine("coreml").unwrap().failures["helper_crash"], 3);
    let mil = m.engine("mil").expect("telemetry has the executor's series");
    assert_eq!(mil.successes, 3);
    assert!(mil.stages.contains_key("load"), "the executor's load is timed under its name: {:?}", mil.stages);
    assert!(m.engine("candle").is_none(), "the chain's name is not an engine that served: {m:?}");
    let to: Vec<String> = router
        .telemetry()
        .events()
        .recent()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Fallback { to, .. } => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(to, vec!["mil"; 3], "each fallback event names the executor");
    engine.shutdown().await;
}
