//! A model Core ML takes a while to load (here 2.5 s, longer than the
//! router's grace) is served by Candle from its first request, and its
//! requests go to Core ML once Core ML has it ready, without the caller
//! preparing it again; the event log says when Core ML took over.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};

const BUDGET: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_switch_to_core_ml_once_it_is_ready() {
    let _watchdog = common::Watchdog::new("core_ml_serves_once_prepared", Duration::from_secs(120));
    // A healthy model prepared first (the rig waits for Core ML).
    let rig = HelperRig::start(RigOptions::new("diag:add?c=2", 2.0)).await;
    assert_eq!(rig.infer(0.0, BUDGET).await, "coreml");

    // A router with the default grace over the same engine: a slow load.
    let router = coreml_bridge::router::Router::builder()
        .primary(rig.engine.clone())
        .primary_self_timed()
        .fallback(rig.candle.clone())
        .telemetry(rig.router.telemetry().clone())
        .build();
    let slow = SlowRig { router, dir: tempfile::tempdir().unwrap() };
    let model = slow.prepare("diag:add?c=3&load_ms=2500", "slow", 3.0).await;
    assert_eq!(slow.infer(&model, 1.0).await, "candle", "Core ML is still loading: Candle serves");

    let mut served = Vec::new();
    for i in 0..200 {
        let by = slow.infer(&model, i as f32).await;
        served.push(by.clone());
        if by == "coreml" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served.last().map(String::as_str), Some("coreml"), "requests switched to Core ML: {served:?}");
    for i in 0..10 {
        assert_eq!(slow.infer(&model, i as f32).await, "coreml", "and stay there (request {i})");
    }
    let events: Vec<String> = slow.router.telemetry().events().recent().iter().map(ToString::to_string).collect();
    assert!(
        events.iter().any(|e| e.contains("slow: coreml ready") && e.contains("in the background")),
        "the switch is in the event log: {events:#?}"
    );
    rig.shutdown().await;
}

struct SlowRig {
    router: coreml_bridge::router::Router,
    dir: tempfile::TempDir,
}

struct Prepared {
    model: coreml_bridge::inference::PreparedModel,
    name: String,
    c: f32,
}

impl SlowRig {
    async fn prepare(&self, uri: &str, name: &str, c: f32) -> Prepared {
        use coreml_bridge::inference::{ComputeUnits, InferenceEngine, ModelArtifact, ModelFormat, PrepareOptions};
        let candle = common::helper::AddEngine::write_artifact(self.dir.path(), c);
        let options = PrepareOptions::new(ComputeUnits::CpuAndNe)
            .with_model_name(name)
            .with_hint(coreml_bridge::router::HINT_CANDLE_ARTIFACT, candle.to_str().unwrap());
        let model = self.router.prepare(&ModelArtifact::new(ModelFormat::MlPackage, uri), &options).await.unwrap();
        Prepared { model, name: name.into(), c }
    }

    async fn infer(&self, m: &Prepared, i: f32) -> String {
        use coreml_bridge::inference::{Deadline, InferenceEngine, Tensor, TensorMap};
        let x = TensorMap::new().with("x", Tensor::new(vec![4], vec![i, i, i, i]).unwrap());
        let y = self.router.infer(&m.model, x, Deadline::after(BUDGET)).await.unwrap();
        assert_eq!(y.f32("y").unwrap(), &[i + m.c; 4], "correct output");
        self.router.served_by(&m.name).unwrap()
    }
}
