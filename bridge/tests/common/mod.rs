//! Shared test kit: a watchdog that aborts the test process when a test
//! hangs, so a hang fails fast instead of stalling CI.
#![allow(dead_code)]

pub mod helper;

use std::sync::mpsc;
use std::time::Duration;

/// Aborts the process if not dropped within `limit`.
pub struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    pub fn new(name: &'static str, limit: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: test `{name}` still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Self(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

use std::sync::{Arc, Mutex};

use coreml_bridge::breaker::force_enable::{ForceSet, ForceSource};
use coreml_bridge::breaker::BreakerConfig;
use coreml_bridge::clock::ManualClock;
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::double::DoubleEngine;
use coreml_bridge::inference::{
    Deadline, InferError, InferenceEngine, PrepareOptions, PreparedModel, Tensor, TensorMap,
};
use coreml_bridge::router::{Router, HINT_COREML_ARTIFACT};

/// A router over two in-process doubles (`coreml` primary, `candle`
/// fallback, both `y = 2x + 1`), on a manual clock, with a controllable
/// force set and health bus.
pub struct Rig {
    pub router: Router,
    pub coreml: Arc<DoubleEngine>,
    pub candle: Arc<DoubleEngine>,
    pub model: PreparedModel,
    pub clock: ManualClock,
    pub force: Arc<Mutex<ForceSet>>,
    pub health: Arc<HealthBus>,
    pub _dir: tempfile::TempDir,
}

pub const MODEL: &str = "affine";

impl Rig {
    pub async fn new(cfg: BreakerConfig) -> Self {
        let coreml = Arc::new(DoubleEngine::named("coreml"));
        let candle = Arc::new(DoubleEngine::named("candle"));
        let clock = ManualClock::new();
        let (source, force) = ForceSource::fixed();
        let health = HealthBus::new();
        let router = Router::builder()
            .primary(coreml.clone())
            .fallback(candle.clone())
            .breaker(cfg)
            .clock(Arc::new(clock.clone()))
            .force_source(source)
            .health(health.clone())
            .build();
        let dir = tempfile::tempdir().unwrap();
        let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
        let opts = PrepareOptions::default()
            .with_model_name(MODEL)
            .with_hint(HINT_COREML_ARTIFACT, artifact.path.to_str().unwrap());
        let model = router.prepare(&artifact, &opts).await.unwrap();
        Rig { router, coreml, candle, model, clock, force, health, _dir: dir }
    }

    /// One request of x = [i, i, i, i]; checks y = 2x + 1 on success.
    pub async fn infer(&self, i: f32) -> Result<String, InferError> {
        let x = TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![i; 4]).unwrap());
        let y = self.router.infer(&self.model, x, Deadline::after(Duration::from_secs(5))).await?;
        assert_eq!(y.f32("y").unwrap(), &[2.0 * i + 1.0; 4], "correct output");
        Ok(self.router.served_by(MODEL).unwrap())
    }

    pub fn event_lines(&self) -> Vec<String> {
        self.router.telemetry().events().recent().iter().map(ToString::to_string).collect()
    }
}
