//! The router over in-process doubles: conformance, per-request fallback,
//! breaker trips and re-enables, the once-only unavailable notice, and
//! typed errors for models without a Candle implementation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Rig, MODEL};
use coreml_bridge::breaker::force_enable::ForceSet;
use coreml_bridge::breaker::{BreakerConfig, BreakerState};
use coreml_bridge::health::HealthEvent;
use coreml_bridge::inference::double::DoubleEngine;
use coreml_bridge::inference::{
    async_trait, conformance, CapabilityError, CapabilityReport, Deadline, InferError, InferenceEngine, ModelArtifact,
    PrepareError, PrepareOptions, PreparedModel, Tensor, TensorMap, UnloadError, Validated,
};
use coreml_bridge::router::{Router, HINT_COREML_ARTIFACT};

const LIMIT: Duration = Duration::from_secs(60);

async fn watchdog<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f).await.expect("test hung: watchdog fired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_passes_the_engine_conformance_suite_with_and_without_a_primary() {
    watchdog(async {
        let dir = tempfile::tempdir().unwrap();
        let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
        let case = conformance::Case {
            artifact: artifact.clone(),
            options: PrepareOptions::default().with_hint(HINT_COREML_ARTIFACT, artifact.path.to_str().unwrap()),
            inputs: TensorMap::new().with("x", Tensor::new(vec![2, 4], vec![1.5f32; 8]).unwrap()),
            budget: Duration::from_secs(5),
        };
        let both = Router::builder()
            .primary(Arc::new(DoubleEngine::named("coreml")))
            .fallback(Arc::new(DoubleEngine::named("candle")))
            .build();
        conformance::run_all(&both, &case).await;
        let candle_only = Router::builder()
            .primary_unavailable("coreml", "test: no helper")
            .fallback(Arc::new(DoubleEngine::named("candle")))
            .build();
        conformance::run_all(&candle_only, &case).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_core_ml_request_is_answered_by_candle_and_the_event_says_why() {
    watchdog(async {
        let rig = Rig::new(BreakerConfig::default()).await;
        assert_eq!(rig.infer(1.0).await.unwrap(), "coreml");
        rig.coreml.fail_next(1);
        assert_eq!(rig.infer(2.0).await.unwrap(), "candle");
        assert_eq!(rig.infer(3.0).await.unwrap(), "coreml");
        let lines = rig.event_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(
                "affine: served by candle instead of coreml: Core ML failed (other): engine failure: injected failure"
            ),
            "{lines:?}"
        );
        let snap = rig.router.telemetry().snapshot();
        assert_eq!(snap.model(MODEL).unwrap().fallbacks["primary_failed"], 1);
        assert_eq!(snap.model(MODEL).unwrap().engine("coreml").unwrap().failures["other"], 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_after_warmup_then_candle_serves_without_touching_core_ml() {
    watchdog(async {
        let rig = Rig::new(BreakerConfig::default()).await;
        rig.coreml.fail_next(1_000);
        for i in 0..10 {
            assert_eq!(rig.infer(i as f32).await.unwrap(), "candle");
            assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Closed), "closed through warm-up");
        }
        assert_eq!(rig.coreml.execute_calls(), 10);
        rig.infer(10.0).await.unwrap();
        assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Open));
        for i in 0..20 {
            assert_eq!(rig.infer(i as f32).await.unwrap(), "candle");
        }
        assert_eq!(rig.coreml.execute_calls(), 11, "no Core ML call while open");
        let lines = rig.event_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("breaker opened: success rate 0.0% over the last 11 inferences is below 95.0%")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("served by candle instead of coreml: breaker open: success rate")),
            "{lines:?}"
        );
        let snap = rig.router.telemetry().snapshot();
        assert_eq!(snap.model(MODEL).unwrap().fallbacks["breaker_open"], 20);
        assert!(snap.table().lines().any(|l| l.contains("candle") && l.contains(" yes ") && l.contains("open")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_force_set_re_enable_core_ml_and_the_probe_brings_it_back_on_time() {
    watchdog(async {
        let cfg = BreakerConfig { half_open_after: Some(Duration::from_secs(30)), ..BreakerConfig::default() };
        let rig = Rig::new(cfg).await;
        let trip = |rig: &Rig| {
            rig.coreml.fail_next(1_000);
        };
        trip(&rig);
        for i in 0..11 {
            rig.infer(i as f32).await.unwrap();
        }
        assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Open));
        rig.coreml.fail_next(0);
        // API.
        assert!(rig.router.force_enable(MODEL));
        assert_eq!(rig.infer(1.0).await.unwrap(), "coreml");

        // COREML_FORCE_ENABLE (a controlled source here; the env is tested in its own file).
        trip(&rig);
        for i in 0..11 {
            rig.infer(i as f32).await.unwrap();
        }
        assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Open));
        rig.coreml.fail_next(0);
        *rig.force.lock().unwrap() = ForceSet::parse(MODEL);
        assert_eq!(rig.infer(1.0).await.unwrap(), "coreml");
        *rig.force.lock().unwrap() = ForceSet::None;

        // Half-open probe after 30 s on the router's clock.
        trip(&rig);
        for i in 0..11 {
            rig.infer(i as f32).await.unwrap();
        }
        rig.coreml.fail_next(0);
        rig.clock.advance(Duration::from_secs(29));
        assert_eq!(rig.infer(1.0).await.unwrap(), "candle");
        rig.clock.advance(Duration::from_secs(1));
        assert_eq!(rig.infer(1.0).await.unwrap(), "coreml", "the probe");
        assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Closed));
        assert_eq!(rig.infer(1.0).await.unwrap(), "coreml");
        let lines = rig.event_lines();
        for want in [
            "breaker closed: re-enabled through the API",
            "breaker closed: re-enabled by COREML_FORCE_ENABLE",
            "breaker half-open after 30.00s",
            "breaker closed: 1 half-open probe(s) succeeded",
        ] {
            assert!(lines.iter().any(|l| l.contains(want)), "missing `{want}` in {lines:#?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_memory_over_the_limit_opens_every_model_on_that_helper() {
    watchdog(async {
        let rig = Rig::new(BreakerConfig { memory_limit: Some(1 << 30), ..BreakerConfig::default() }).await;
        for i in 0..10 {
            assert_eq!(rig.infer(i as f32).await.unwrap(), "coreml");
        }
        rig.health.push(HealthEvent::Memory { bytes: 3 << 30, domain: None });
        assert_eq!(rig.infer(1.0).await.unwrap(), "candle");
        assert_eq!(rig.router.breaker_state(MODEL), Some(BreakerState::Open));
        let lines = rig.event_lines();
        assert!(
            lines.iter().any(|l| l.contains("breaker opened: helper memory 3072 MiB over its limit of 1024 MiB")),
            "{lines:?}"
        );
        assert_eq!(rig.router.telemetry().snapshot().helper.memory_high_water, Some(3 << 30));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_primary_the_router_says_so_once_and_candle_serves() {
    watchdog(async {
        let candle = Arc::new(DoubleEngine::named("candle"));
        let router = Router::builder()
            .primary_unavailable("coreml", "no helper binary on Linux")
            .fallback(candle.clone())
            .build();
        let dir = tempfile::tempdir().unwrap();
        let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
        for _ in 0..3 {
            let opts = PrepareOptions::default().with_hint(HINT_COREML_ARTIFACT, "/nonexistent/affine.mlpackage");
            let m = router.prepare(&artifact, &opts).await.unwrap();
            let x = TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![1.0f32; 4]).unwrap());
            let y = router.infer(&m, x, Deadline::after(Duration::from_secs(5))).await.unwrap();
            assert_eq!(y.f32("y").unwrap(), &[3.0; 4]);
        }
        let notice = router.unavailable_notice().expect("notice");
        assert_eq!(notice, "coreml unavailable (no helper binary on Linux): candle serves every model");
        let snap = router.telemetry().snapshot();
        assert_eq!(snap.notices, vec![notice]);
        let unavailable =
            snap.events.iter().filter(|e| e.to_string().contains("coreml unavailable, Candle serves")).count();
        assert_eq!(unavailable, 1, "said once");
        assert_eq!(snap.model("affine").unwrap().fallbacks["primary_unavailable"], 3);
        assert_eq!(snap.model("affine").unwrap().served_by.as_deref(), Some("candle"));
    })
    .await;
}

/// A Candle side that has no implementation of anything.
struct NoCandle;

#[async_trait]
impl InferenceEngine for NoCandle {
    fn name(&self) -> &str {
        "candle"
    }
    async fn prepare(&self, _: &ModelArtifact, o: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        Err(PrepareError::UnsupportedArchitecture {
            engine: "candle".into(),
            architecture: o.architecture.clone().unwrap_or_default(),
            known: vec![],
        })
    }
    async fn execute(&self, _: &PreparedModel, _: Validated, _: Deadline) -> Result<TensorMap, InferError> {
        unreachable!("never prepared")
    }
    async fn capabilities(&self, m: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        Err(CapabilityError::UnknownModel { model: m.id })
    }
    async fn unload(&self, m: &PreparedModel) -> Result<(), UnloadError> {
        Err(UnloadError::UnknownModel { model: m.id })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_candle_implementation_fails_with_a_typed_error_never_a_wrong_answer() {
    watchdog(async {
        let coreml = Arc::new(DoubleEngine::named("coreml"));
        let router = Router::builder().primary(coreml.clone()).fallback(Arc::new(NoCandle)).build();
        let dir = tempfile::tempdir().unwrap();
        let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
        let opts = PrepareOptions::default().with_model_name("coreml-only").with_hint(HINT_COREML_ARTIFACT, artifact.path.to_str().unwrap());
        let m = router.prepare(&artifact, &opts).await.unwrap();
        let x = || TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![1.0f32; 4]).unwrap());
        let d = || Deadline::after(Duration::from_secs(5));
        assert_eq!(router.infer(&m, x(), d()).await.unwrap().f32("y").unwrap(), &[3.0; 4]);
        coreml.fail_next(1_000);
        // 1 success + 10 failures: the 11th outcome trips the breaker.
        for _ in 0..10 {
            let e = router.infer(&m, x(), d()).await.unwrap_err();
            assert!(matches!(&e, InferError::Backend { message } if message == "injected failure"), "Core ML's own error: {e:?}");
        }
        assert_eq!(router.breaker_state("coreml-only"), Some(BreakerState::Open));
        let e = router.infer(&m, x(), d()).await.unwrap_err();
        match e {
            InferError::Unavailable { message } => {
                assert!(message.contains("breaker open") && message.contains("no Candle implementation"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // And where Core ML cannot run at all, such a model cannot even be prepared.
        let none = Router::builder().primary_unavailable("coreml", "no helper").fallback(Arc::new(NoCandle)).build();
        let e = none.prepare(&artifact, &opts).await.unwrap_err();
        assert!(matches!(&e, PrepareError::Unavailable { message } if message.contains("no engine can serve `coreml-only`")), "{e:?}");
    })
    .await;
}
