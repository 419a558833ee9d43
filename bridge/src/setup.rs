//! The default router of an app: Core ML through the helper named by
//! `COREML_HELPER` when it starts and has Core ML, else a one-line reason
//! and the fallback (Candle) alone.
//!
//! ```
//! use std::sync::Arc;
//! use coreml_bridge::inference::double::DoubleEngine;
//! use coreml_bridge::setup::{router_with_helper, RouterSetup};
//! use coreml_bridge::supervisor::{HelperCommand, SupervisorConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let cfg = SupervisorConfig::new(HelperCommand::new("/nonexistent/coreml-helper"));
//! let router = router_with_helper(Ok(cfg), RouterSetup::new(Arc::new(DoubleEngine::named("candle")))).await;
//! let line = router.unavailable_notice().unwrap();
//! assert!(line.starts_with("coreml unavailable (the helper did not start"), "{line}");
//! assert!(line.ends_with("candle serves every model"), "{line}");
//! # });
//! ```

use std::sync::Arc;

use coreml_inference::InferenceEngine;
use coreml_supervisor::{SupervisorConfig, HELPER_ENV};

use crate::breaker::BreakerConfig;
use crate::coreml::engine::{CoreMlEngine, CoreMlOptions, COREML_ENGINE};
use crate::health::HealthBus;
use crate::router::Router;
use crate::telemetry::Telemetry;

/// What the default router is built from.
pub struct RouterSetup {
    /// The fallback (Candle).
    pub fallback: Arc<dyn InferenceEngine>,
    /// Breaker thresholds.
    pub breaker: BreakerConfig,
    /// Core ML engine options.
    pub coreml: CoreMlOptions,
    /// Telemetry to record into (default: new).
    pub telemetry: Option<Arc<Telemetry>>,
}

impl RouterSetup {
    /// Defaults around `fallback`.
    pub fn new(fallback: Arc<dyn InferenceEngine>) -> Self {
        Self { fallback, breaker: BreakerConfig::default(), coreml: CoreMlOptions::default(), telemetry: None }
    }
}

/// Why there is no helper to start, when `COREML_HELPER` is unset.
pub fn no_helper_reason() -> String {
    let platform = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    if cfg!(target_os = "macos") {
        format!("{HELPER_ENV} is unset: no helper binary to run Core ML in ({platform})")
    } else {
        format!("no Core ML on {platform} and no helper binary ({HELPER_ENV} is unset)")
    }
}

/// The router over the helper of `helper` (or, if `Err`, with its reason as
/// why Core ML is unavailable) and `setup.fallback`.
pub async fn router_with_helper(helper: Result<SupervisorConfig, String>, setup: RouterSetup) -> Router {
    let telemetry = setup.telemetry.unwrap_or_else(|| Arc::new(Telemetry::new()));
    let builder =
        Router::builder().fallback(setup.fallback).breaker(setup.breaker.clone()).telemetry(telemetry.clone());
    let started = match helper {
        Ok(mut cfg) => {
            // The breaker's limit replaces the supervisor's default (not an explicit one).
            if cfg.memory_limit.is_none() || cfg.memory_limit == Some(coreml_supervisor::DEFAULT_MEMORY_LIMIT) {
                cfg.memory_limit = setup.breaker.memory_limit.or(cfg.memory_limit);
            }
            let health = HealthBus::new();
            CoreMlEngine::start(cfg, setup.coreml, telemetry, health.clone()).await.map(|e| (e, health))
        }
        Err(reason) => Err(reason),
    };
    match started {
        Ok((engine, health)) => builder.primary(Arc::new(engine)).primary_self_timed().health(health).build(),
        Err(reason) => builder.primary_unavailable(COREML_ENGINE, reason).build(),
    }
}

/// The router over the helper named by `COREML_HELPER` (and
/// `COREML_HELPER_LAUNCHER`), or Candle alone with the reason.
pub async fn router_from_env(setup: RouterSetup) -> Router {
    let helper = SupervisorConfig::from_env().map_err(|_| no_helper_reason());
    router_with_helper(helper, setup).await
}
