//! A helper's memory over its budget opens the breakers of the models of
//! that helper's isolation domain only; a model in another domain stays on
//! Core ML.

mod common;

use std::time::Duration;

use common::{Rig, MODEL};
use coreml_bridge::breaker::{BreakerConfig, BreakerState};
use coreml_bridge::health::{DomainScope, HealthEvent};
use coreml_bridge::inference::double::DoubleEngine;
use coreml_bridge::inference::{Deadline, InferenceEngine, PrepareOptions, Tensor, TensorMap};
use coreml_bridge::router::HINT_COREML_ARTIFACT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_over_the_domain_budget_opens_only_that_domains_breakers() {
    let _watchdog = common::Watchdog::new(
        "memory_over_the_domain_budget_opens_only_that_domains_breakers",
        Duration::from_secs(60),
    );
    let rig = Rig::new(BreakerConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
    let opts = PrepareOptions::default()
        .with_model_name("neighbour")
        .with_hint(HINT_COREML_ARTIFACT, artifact.path.to_str().unwrap());
    let neighbour = rig.router.prepare(&artifact, &opts).await.unwrap();
    let x = || TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![1.0f32; 4]).unwrap());
    for i in 0..10 {
        assert_eq!(rig.infer(i as f32).await.unwrap(), "coreml");
        rig.router.infer(&neighbour, x(), Deadline::after(Duration::from_secs(5))).await.unwrap();
    }

    let domain = DomainScope { name: MODEL.into(), models: vec![MODEL.into()], memory_limit: Some(1 << 30) };
    rig.health.push(HealthEvent::Memory { bytes: 3 << 30, domain: Some(domain) });
    assert_eq!(rig.infer(10.0).await.unwrap(), "candle");
    assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Open));
    for _ in 0..5 {
        rig.router.infer(&neighbour, x(), Deadline::after(Duration::from_secs(5))).await.unwrap();
        assert_eq!(rig.router.served_by("neighbour").as_deref(), Some("coreml"));
    }
    assert_eq!(rig.router.breaker_state("neighbour"), Some(BreakerState::Closed));
    let lines = rig.event_lines();
    assert!(
        lines.iter().any(|l| l.contains("affine: breaker opened: helper memory 3072 MiB over its limit of 1024 MiB")),
        "the domain's budget, not the router's (none here): {lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("neighbour: breaker")), "{lines:#?}");
}
