//! The conformance suite on the in-process double, plus the double's knobs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coreml_inference::conformance::{self, Case};
use coreml_inference::double::DoubleEngine;
use coreml_inference::{
    ComputeUnits, Deadline, InferError, InferenceEngine, PrepareError, PrepareOptions, Tensor,
    TensorMap,
};

const WATCHDOG: Duration = Duration::from_secs(30);

fn case(engine: &DoubleEngine, dir: &std::path::Path) -> Case {
    Case {
        artifact: engine.write_artifact(dir).unwrap(),
        options: PrepareOptions::new(ComputeUnits::CpuAndGpu),
        inputs: TensorMap::new().with(
            "x",
            Tensor::new(vec![2, 4], (0..8).map(|i| i as f32).collect::<Vec<_>>()).unwrap(),
        ),
        budget: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_passes_the_conformance_suite() {
    let engine = DoubleEngine::new();
    let dir = tempfile::tempdir().unwrap();
    let case = case(&engine, dir.path());
    tokio::time::timeout(WATCHDOG, conformance::run_all(&engine, &case))
        .await
        .expect("watchdog");
    assert_eq!(
        engine.loaded(),
        0,
        "the suite unloads everything it prepares"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_also_runs_through_a_trait_object() {
    let engine = DoubleEngine::new();
    let dir = tempfile::tempdir().unwrap();
    let case = case(&engine, dir.path());
    let dyn_engine: Arc<dyn InferenceEngine> = Arc::new(engine);
    tokio::time::timeout(WATCHDOG, conformance::run_all(&dyn_engine, &case))
        .await
        .expect("watchdog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_inputs_never_reach_engine_code() {
    tokio::time::timeout(WATCHDOG, async {
        let engine = DoubleEngine::new();
        let dir = tempfile::tempdir().unwrap();
        let case = case(&engine, dir.path());
        conformance::invalid_inputs_are_typed_errors(&engine, &case).await;
        conformance::expired_deadline_is_typed(&engine, &case).await;
        conformance::foreign_handles_are_refused(&engine, &case).await;
        assert_eq!(engine.execute_calls(), 0);
        let out = conformance::infer_matches_output_schema(&engine, &case).await;
        assert_eq!(
            out.f32("y").unwrap(),
            &[1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]
        );
        assert_eq!(engine.execute_calls(), 2);
    })
    .await
    .expect("watchdog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_engine_is_cut_at_the_deadline() {
    tokio::time::timeout(WATCHDOG, async {
        let engine = DoubleEngine::new();
        let dir = tempfile::tempdir().unwrap();
        let case = case(&engine, dir.path());
        let m = engine.prepare(&case.artifact, &case.options).await.unwrap();
        engine.set_infer_delay(Duration::from_secs(20));
        let start = Instant::now();
        let e = engine.infer(&m, case.inputs.clone(), Deadline::after(Duration::from_millis(100))).await.unwrap_err();
        assert!(matches!(e, InferError::DeadlineExceeded { elapsed } if elapsed >= Duration::from_millis(100)), "{e:?}");
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(engine.execute_calls(), 1, "the engine ran and was cut");
    })
    .await
    .expect("watchdog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_and_prepare_budgets_are_typed() {
    tokio::time::timeout(WATCHDOG, async {
        let engine = DoubleEngine::new();
        let dir = tempfile::tempdir().unwrap();
        let case = case(&engine, dir.path());
        let m = engine.prepare(&case.artifact, &case.options).await.unwrap();
        engine.fail_next(1);
        let d = || Deadline::after(Duration::from_secs(5));
        assert!(matches!(
            engine.infer(&m, case.inputs.clone(), d()).await,
            Err(InferError::Backend { .. })
        ));
        assert!(
            engine.infer(&m, case.inputs.clone(), d()).await.is_ok(),
            "only one failure was injected"
        );
        let unbounded = Deadline::after(Duration::MAX);
        assert!(
            engine
                .infer(&m, case.inputs.clone(), unbounded)
                .await
                .is_ok(),
            "no deadline"
        );

        engine.set_prepare_delay(Duration::from_secs(20));
        let opts = case
            .options
            .clone()
            .with_prepare_budget(Duration::from_millis(50));
        let e = engine.prepare(&case.artifact, &opts).await.unwrap_err();
        assert!(matches!(e, PrepareError::DeadlineExceeded { .. }), "{e:?}");

        let unknown_arch = case.options.clone().with_architecture("resnet50");
        let e = engine
            .prepare(&case.artifact, &unknown_arch)
            .await
            .unwrap_err();
        assert!(
            matches!(e, PrepareError::UnsupportedArchitecture { .. }),
            "{e:?}"
        );
    })
    .await
    .expect("watchdog");
}
