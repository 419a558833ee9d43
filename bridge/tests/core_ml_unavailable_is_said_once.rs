//! Where the helper cannot start at all (no binary), the router says so
//! once — a notice line, one event — and Candle serves every request of
//! every model correctly.

mod common;

use std::time::Duration;

use common::helper::{AddEngine, WIDTH};
use coreml_bridge::inference::{
    Deadline, InferenceEngine, ModelArtifact, ModelFormat, PrepareOptions, Tensor, TensorMap,
};
use coreml_bridge::router::HINT_CANDLE_ARTIFACT;
use coreml_bridge::setup::{router_with_helper, RouterSetup};
use coreml_bridge::supervisor::{HelperCommand, SupervisorConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_that_cannot_start_is_announced_once_and_candle_serves() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SupervisorConfig::new(HelperCommand::new(dir.path().join("no-such-helper")));
        let candle = AddEngine::new();
        let router = router_with_helper(Ok(cfg), RouterSetup::new(candle.clone())).await;
        for (k, c) in [1.0f32, 2.0, 3.0].into_iter().enumerate() {
            let art = AddEngine::write_artifact(dir.path(), c);
            let opts = PrepareOptions::default()
                .with_model_name(format!("m{k}"))
                .with_hint(HINT_CANDLE_ARTIFACT, art.to_str().unwrap());
            let m = router.prepare(&ModelArtifact::new(ModelFormat::MlPackage, "diag:add"), &opts).await.unwrap();
            for i in 0..3 {
                let x = TensorMap::new().with("x", Tensor::new(vec![WIDTH], vec![i as f32; WIDTH]).unwrap());
                let y = router.infer(&m, x, Deadline::after(Duration::from_secs(5))).await.unwrap();
                assert_eq!(y.f32("y").unwrap(), &[i as f32 + c; WIDTH]);
            }
        }
        let snap = router.telemetry().snapshot();
        assert_eq!(snap.notices.len(), 1, "{:?}", snap.notices);
        assert!(snap.notices[0].starts_with("coreml unavailable (the helper did not start"), "{}", snap.notices[0]);
        assert!(snap.notices[0].ends_with("candle serves every model"), "{}", snap.notices[0]);
        let said = snap
            .events
            .iter()
            .filter(|e| matches!(e.kind, coreml_bridge::telemetry::events::EventKind::PrimaryUnavailable { .. }))
            .count();
        assert_eq!(said, 1);
        for k in 0..3 {
            let m = snap.model(&format!("m{k}")).unwrap();
            assert_eq!(m.served_by.as_deref(), Some("candle"));
            assert_eq!(m.fallbacks["primary_unavailable"], 3);
        }
        assert_eq!(candle.calls.load(std::sync::atomic::Ordering::SeqCst), 9);
    })
    .await
    .expect("watchdog: test hung");
}
