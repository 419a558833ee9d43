//! Requests that never reached a helper (they waited in the queue or for a
//! restarted helper until their deadline) fall back to Candle but are not
//! recorded in the model's breaker: 30 of them in a row leave it closed,
//! while 11 failures that did reach the helper open it.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coreml_bridge::breaker::{BreakerConfig, BreakerState};
use coreml_bridge::inference::double::DoubleEngine;
use coreml_bridge::inference::{
    async_trait, CapabilityError, CapabilityReport, Deadline, InferError, InferenceEngine, ModelArtifact, PrepareError,
    PrepareOptions, PreparedModel, Tensor, TensorMap, UnloadError, Validated,
};
use coreml_bridge::router::{Router, HINT_COREML_ARTIFACT};
use coreml_bridge::taxonomy::{not_reached, tagged, FailureKind};

/// A Core ML double whose next requests fail as the supervisor's would.
struct Failing {
    inner: DoubleEngine,
    not_reached: AtomicU64,
    reached: AtomicU64,
}

#[async_trait]
impl InferenceEngine for Failing {
    fn name(&self) -> &str {
        "coreml"
    }
    async fn prepare(&self, a: &ModelArtifact, o: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        let mut m = self.inner.prepare(a, o).await?;
        m.engine = "coreml".into();
        Ok(m)
    }
    async fn execute(&self, m: &PreparedModel, x: Validated, d: Deadline) -> Result<TensorMap, InferError> {
        if self.not_reached.load(Ordering::SeqCst) > 0 {
            self.not_reached.fetch_sub(1, Ordering::SeqCst);
            let e = "restart timed out after 50ms";
            return Err(InferError::Unavailable { message: not_reached(FailureKind::Timeout, e) });
        }
        if self.reached.load(Ordering::SeqCst) > 0 {
            self.reached.fetch_sub(1, Ordering::SeqCst);
            return Err(InferError::Backend { message: tagged(FailureKind::Timeout, "predict timed out") });
        }
        let mut m = m.clone();
        m.engine = self.inner.name().into();
        self.inner.execute(&m, x, d).await
    }
    async fn capabilities(&self, m: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        let mut m = m.clone();
        m.engine = self.inner.name().into();
        self.inner.capabilities(&m).await
    }
    async fn unload(&self, m: &PreparedModel) -> Result<(), UnloadError> {
        let mut m = m.clone();
        m.engine = self.inner.name().into();
        self.inner.unload(&m).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_never_reached_a_helper_are_not_blamed() {
    let _watchdog =
        common::Watchdog::new("requests_that_never_reached_a_helper_are_not_blamed", Duration::from_secs(60));
    let coreml = Arc::new(Failing { inner: DoubleEngine::new(), not_reached: 30.into(), reached: 0.into() });
    let router = Router::builder()
        .primary(coreml.clone())
        .fallback(Arc::new(DoubleEngine::named("candle")))
        .breaker(BreakerConfig::default())
        .build();
    let dir = tempfile::tempdir().unwrap();
    let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
    let opts =
        PrepareOptions::default().with_model_name("m").with_hint(HINT_COREML_ARTIFACT, artifact.path.to_str().unwrap());
    let model = router.prepare(&artifact, &opts).await.unwrap();
    let x = || TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![1.0f32; 4]).unwrap());
    let call = || router.infer(&model, x(), Deadline::after(Duration::from_secs(5)));
    for _ in 0..30 {
        call().await.unwrap();
        assert_eq!(router.served_by("m").as_deref(), Some("candle"), "it still falls back");
    }
    assert_eq!(router.breaker_state("m"), Some(BreakerState::Closed), "{:#?}", router.telemetry().events().recent());
    call().await.unwrap();
    assert_eq!(router.served_by("m").as_deref(), Some("coreml"));

    // The same number of failures that did reach the helper opens it.
    coreml.reached.store(11, Ordering::SeqCst);
    for _ in 0..11 {
        call().await.unwrap();
    }
    assert_eq!(router.breaker_state("m"), Some(BreakerState::Open));
}
