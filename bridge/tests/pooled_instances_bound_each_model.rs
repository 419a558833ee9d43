//! `CoreMlOptions::pool` through the Core ML engine: two loaded instances of
//! a slow model serve two requests at once, one more waits for a free
//! instance within its deadline, and one more is turned away at once with
//! `Unavailable` ("overloaded", never blamed on the model). Every answered
//! request gets its own input back. Unloading the model unloads every
//! instance from its helper. Without a pool, the same burst is all served.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::helper::supervisor_config;
use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{
    ComputeUnits, Deadline, InferError, InferenceEngine, ModelArtifact, ModelFormat, PrepareOptions, Tensor, TensorMap,
};
use coreml_bridge::taxonomy::reached_helper;
use coreml_bridge::telemetry::Telemetry;
use coreml_supervisor::pool::PoolConfig;

const MODEL: &str = "diag:sleep?ms=400&shape=4";

async fn engine(pool: Option<PoolConfig>, dir: &std::path::Path) -> Arc<CoreMlEngine> {
    let options = CoreMlOptions { cache_dir: Some(dir.to_owned()), pool, ..Default::default() };
    Arc::new(
        CoreMlEngine::start(supervisor_config(None), options, Arc::new(Telemetry::new()), HealthBus::new())
            .await
            .expect("test helper starts"),
    )
}

/// Four requests at once, each with its own input; the results in order.
async fn burst(engine: &Arc<CoreMlEngine>, instances: usize) -> Vec<Result<Vec<f32>, InferError>> {
    let model = engine
        .prepare(
            &ModelArtifact::new(ModelFormat::MlPackage, MODEL),
            &PrepareOptions::new(ComputeUnits::CpuOnly).with_model_name("sleepy"),
        )
        .await
        .expect("prepare");
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (engine, model) = (engine.clone(), model.clone());
        tasks.push(tokio::spawn(async move {
            let x = vec![i as f32, 10.0 + i as f32, 20.0, 30.0];
            let inputs = TensorMap::new().with("x", Tensor::new(vec![4], x.clone()).unwrap());
            let valid = model.schema.validate(inputs).expect("valid inputs");
            let r = engine.execute(&model, valid, Deadline::after(Duration::from_secs(5))).await;
            r.map(|out| {
                let y = out.f32("y").expect("output y").to_vec();
                assert_eq!(y, x, "request {i} got another request's output");
                y
            })
        }));
        // Arrive in order, all while the first two are still running.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    // The first domain takes the helper `start` launched: this model's.
    assert_eq!(engine.supervisor().stats().models, instances, "instances loaded in the helper");
    engine.unload(&model).await.expect("unload");
    assert_eq!(engine.supervisor().stats().models, 0, "every instance unloaded");
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_and_a_queue_of_one_turn_the_fourth_away() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let pooled = engine(Some(PoolConfig { instances: 2, queue: 1 }), dir.path()).await;
        let start = Instant::now();
        let results = burst(&pooled, 2).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 3, "two instances and one queued: {results:?}");
        let refused = results.last().expect("four results");
        match refused {
            Err(e @ InferError::Unavailable { message }) => {
                assert!(message.contains("overloaded"), "{message}");
                assert!(!reached_helper(e), "a refused request never reached the helper");
            }
            other => panic!("the fourth request should be turned away: {other:?}"),
        }
        // The queued one ran after an instance came free.
        assert!(start.elapsed() >= Duration::from_millis(800), "{:?}", start.elapsed());
        pooled.shutdown().await;

        let plain = engine(None, dir.path()).await;
        let results = burst(&plain, 1).await;
        assert!(results.iter().all(Result::is_ok), "without a pool every request is served: {results:?}");
        plain.shutdown().await;
    })
    .await
    .expect("watchdog");
}
