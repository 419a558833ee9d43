//! Building a [`Router`]: which engine is primary (or why there is none),
//! which is the fallback, breaker thresholds, clock, force-enable source.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use coreml_bridge::breaker::BreakerConfig;
//! use coreml_bridge::inference::double::DoubleEngine;
//! use coreml_bridge::router::Router;
//!
//! let router = Router::builder()
//!     .primary(Arc::new(DoubleEngine::named("coreml")))
//!     .fallback(Arc::new(DoubleEngine::named("candle")))
//!     .breaker(BreakerConfig { half_open_after: Some(Duration::from_secs(30)), ..BreakerConfig::default() })
//!     .build();
//! assert_eq!(router.primary_name().as_deref(), Some("coreml"));
//! assert!(router.unavailable_notice().is_none());
//! ```

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coreml_inference::InferenceEngine;

use crate::breaker::force_enable::ForceSource;
use crate::breaker::BreakerConfig;
use crate::clock::{self, SharedClock};
use crate::health::HealthBus;
use crate::router::{Primary, Router};
use crate::telemetry::events::EventKind;
use crate::telemetry::Telemetry;

/// Builder of a [`Router`].
#[derive(Default)]
pub struct RouterBuilder {
    primary: Option<Primary>,
    primary_self_timed: bool,
    fallback: Option<Arc<dyn InferenceEngine>>,
    breaker: BreakerConfig,
    clock: Option<SharedClock>,
    telemetry: Option<Arc<Telemetry>>,
    force: ForceSource,
    health: Option<Arc<HealthBus>>,
    prepare_grace: Option<Duration>,
}

impl RouterBuilder {
    /// The engine tried first (Core ML).
    #[must_use]
    pub fn primary(mut self, engine: Arc<dyn InferenceEngine>) -> Self {
        self.primary = Some(Primary::Available(engine));
        self
    }

    /// The primary records its own compile/load/predict/marshal stages in
    /// the router's telemetry (the Core ML engine does, with the helper's
    /// numbers); the router then records only whole inferences for it.
    #[must_use]
    pub fn primary_self_timed(mut self) -> Self {
        self.primary_self_timed = true;
        self
    }

    /// There is no primary: the router says why once, and the fallback serves.
    #[must_use]
    pub fn primary_unavailable(mut self, engine: impl Into<String>, reason: impl Into<String>) -> Self {
        self.primary = Some(Primary::Unavailable { engine: engine.into(), reason: reason.into() });
        self
    }

    /// The fallback and ground truth (Candle).
    #[must_use]
    pub fn fallback(mut self, engine: Arc<dyn InferenceEngine>) -> Self {
        self.fallback = Some(engine);
        self
    }

    /// The fallback is a chain of engines: each model goes to the first that
    /// can take its artifact (e.g. Candle's hand-written model, else the MIL
    /// executor on the `.mlpackage`); the chain's capability report names it.
    #[must_use]
    pub fn fallback_chain(self, name: &str, engines: Vec<Arc<dyn InferenceEngine>>) -> Self {
        self.fallback(Arc::new(coreml_inference::chain::EngineChain::new(name, engines)))
    }

    /// Breaker thresholds for every model (a model's `infer_budget`, when
    /// set, is its SLA unless `sla_p99` is set here).
    #[must_use]
    pub fn breaker(mut self, cfg: BreakerConfig) -> Self {
        self.breaker = cfg;
        self
    }

    /// The clock of breakers and events (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Records into this telemetry (default: a new one on the router's clock).
    #[must_use]
    pub fn telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Where `COREML_FORCE_ENABLE` is read from (default: the environment).
    #[must_use]
    pub fn force_source(mut self, source: ForceSource) -> Self {
        self.force = source;
        self
    }

    /// Health reports from the primary's helper.
    #[must_use]
    pub fn health(mut self, bus: Arc<HealthBus>) -> Self {
        self.health = Some(bus);
        self
    }

    /// How long `prepare` waits for Core ML, from its start, when the
    /// fallback can serve the model meanwhile (default
    /// [`DEFAULT_PREPARE_GRACE`](crate::router::DEFAULT_PREPARE_GRACE)).
    /// Core ML that is not ready by then goes on preparing in the
    /// background, on its own compile and load budgets; the fallback serves
    /// the model's requests until it is ready. Without a fallback, `prepare`
    /// waits for Core ML (within the caller's `prepare_budget`).
    #[must_use]
    pub fn prepare_grace(mut self, grace: Duration) -> Self {
        self.prepare_grace = Some(grace);
        self
    }

    /// The router. An unavailable primary is announced here, once: a
    /// `tracing` warning, an event and a notice (the CLI prints it).
    pub fn build(self) -> Router {
        let clock = self.clock.unwrap_or_else(clock::system);
        let telemetry = self.telemetry.unwrap_or_else(|| Arc::new(Telemetry::with_clock(clock.clone())));
        if self.breaker.memory_limit.is_some() {
            telemetry.set_helper_memory_limit(self.breaker.memory_limit);
        }
        let router = Router {
            primary: Mutex::new(self.primary.unwrap_or(Primary::Unavailable {
                engine: "coreml".into(),
                reason: "no Core ML engine configured".into(),
            })),
            primary_self_timed: self.primary_self_timed,
            fallback: self.fallback,
            breaker: self.breaker,
            clock,
            telemetry,
            force: self.force,
            health: self.health,
            models: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            prepare_grace: self.prepare_grace.unwrap_or(crate::router::DEFAULT_PREPARE_GRACE),
            outages: Mutex::new(Default::default()),
        };
        if let Primary::Unavailable { engine, reason } = &*router.primary_lock() {
            router.announce_unavailable(engine, reason);
        }
        router
    }
}

impl Router {
    /// Says once that the primary cannot run and the fallback serves.
    pub(crate) fn announce_unavailable(&self, engine: &str, reason: &str) {
        let line = match &self.fallback {
            Some(f) => format!("{engine} unavailable ({reason}): {} serves every model", f.name()),
            None => {
                format!("{engine} unavailable ({reason}) and no fallback engine: nothing can serve")
            }
        };
        tracing::warn!(target: "coreml_bridge::router", engine, reason, "{line}");
        self.telemetry.notice(line);
        self.telemetry
            .event(None, EventKind::PrimaryUnavailable { engine: engine.to_owned(), message: reason.to_owned() });
    }
}
