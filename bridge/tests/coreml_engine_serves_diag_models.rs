//! The Core ML engine over the fault-injecting test helper: it passes the
//! engine conformance suite, and behind the router it serves with every
//! stage timed, compute units and coverage as the helper reported, and the
//! sandbox parts in the telemetry.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::inference::{
    conformance, ComputeUnits, ModelArtifact, ModelFormat, PrepareOptions, Tensor, TensorMap,
};
use coreml_bridge::telemetry::prometheus::parse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_ml_engine_passes_conformance_and_the_router_reports_every_stage() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let engine = common::helper::diag_engine(dir.path()).await;
        assert!(engine.identity().starts_with("diagnostic helper"), "{}", engine.identity());
        let case = conformance::Case {
            artifact: ModelArtifact::new(ModelFormat::MlPackage, "diag:add?c=2&shape=4"),
            options: PrepareOptions::new(ComputeUnits::CpuAndNe).with_model_name("add"),
            inputs: TensorMap::new().with("x", Tensor::new(vec![4], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap()),
            budget: Duration::from_secs(10),
        };
        let out = conformance::infer_matches_output_schema(&engine, &case).await;
        assert_eq!(out.f32("y").unwrap(), &[3.0, 4.0, 5.0, 6.0]);
        conformance::run_all(&engine, &case).await;
        engine.shutdown().await;

        let rig = HelperRig::start(RigOptions::new("diag:add?c=2&shape=4", 2.0)).await;
        for i in 0..5 {
            assert_eq!(rig.infer(i as f32, Duration::from_secs(5)).await, "coreml");
        }
        let snap = rig.router.telemetry().snapshot();
        let m = snap.model("diag-add").unwrap();
        let c = m.engine("coreml").unwrap();
        for stage in ["compile", "load", "marshal_in", "predict", "marshal_out", "infer"] {
            assert!(c.stages.contains_key(stage), "stage {stage} missing: {:?}", c.stages.keys());
        }
        assert_eq!(c.stages["predict"].count, 5);
        assert_eq!(c.stages["infer"].count, 5);
        assert_eq!((c.inferences, c.successes), (5, 5));
        assert_eq!(c.compute_units_requested, Some(ComputeUnits::CpuAndNe));
        assert!(c.compute_units_actual.is_some(), "actual units as the helper reported");
        assert_eq!(c.ne_coverage, None, "the diagnostic helper reports no plan; never guessed");
        assert!(
            c.ne_coverage_note.as_deref().unwrap_or("").contains("no Core ML compute plan"),
            "{:?}",
            c.ne_coverage_note
        );
        assert!(snap.helper.identity.as_deref().unwrap_or("").contains("diagnostic"));
        assert!(snap.helper.memory_high_water.unwrap_or(0) > 0, "memory sampled");
        assert!(snap.helper.sandbox.iter().any(|p| p.name == "no_new_privs"), "{:?}", snap.helper.sandbox);
        // Every quick prediction was eligible for the supervisor's fast lane.
        assert!(snap.helper.fast_replies + snap.helper.slow_replies >= 5, "{:?}", snap.helper);
        let prom = snap.prometheus();
        assert!(prom.contains("coreml_bridge_helper_replies_total{lane=\"fast\"}"), "{prom}");
        assert!(m.breaker.is_some());
        let table = snap.table();
        assert!(
            table.lines().any(|l| l.contains("diag-add") && l.contains("coreml") && l.contains(" yes ")),
            "{table}"
        );
        parse(&snap.prometheus()).unwrap();
        rig.shutdown().await;
    })
    .await
    .expect("watchdog: test hung");
}
