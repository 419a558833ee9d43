//! Helper health reports from the Core ML engine to the router: memory
//! samples, crashes not tied to a request, restarts.
//!
//! ```
//! use coreml_bridge::health::{HealthBus, HealthEvent};
//!
//! let bus = HealthBus::new();
//! bus.push(HealthEvent::Memory { bytes: 512 << 20, domain: None });
//! bus.push(HealthEvent::Crash { model: None, domain: None, detail: "helper killed by signal 9".into() });
//! let drained = bus.drain();
//! assert_eq!(drained.len(), 2);
//! assert!(bus.drain().is_empty());
//! ```
//!
//! The engine pushes; the router drains before each routing decision and
//! feeds the reports to the telemetry and to the breakers. Memory and
//! unattributed crashes go to the breakers of the models that share the
//! helper: its isolation [`DomainScope`] (`None`: every Core ML model).
//! Outages of the whole engine (no helper can start) and its return are
//! reported too, so the router can send every model to the fallback
//! meanwhile without blaming any model.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The models served by one helper (an isolation domain) and its budget.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainScope {
    /// The domain's name.
    pub name: String,
    /// The models it serves.
    pub models: Vec<String>,
    /// Its helper's memory limit, if it has one.
    pub memory_limit: Option<u64>,
}

impl DomainScope {
    /// Whether `model` is served by this domain.
    pub fn contains(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }
}

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// The helper's current memory use.
    Memory {
        /// Resident bytes (the helper's process tree).
        bytes: u64,
        /// The helper's domain (`None`: every model shares it).
        domain: Option<DomainScope>,
    },
    /// The helper died outside any request of a model (or of `model`).
    Crash {
        /// The model whose request it was serving, if known.
        model: Option<String>,
        /// The helper's domain (`None`: every model shares it).
        domain: Option<DomainScope>,
        /// What happened.
        detail: String,
    },
    /// The supervisor restarted the helper.
    Restarted {
        /// Why.
        detail: String,
    },
    /// No helper can run now (its restart budget is spent, or it cannot
    /// start): Core ML is unavailable for every model until it comes back.
    Outage {
        /// Why.
        reason: String,
        /// When the engine tries again.
        next_try_in: Duration,
        /// The domain that is out (`None`: the whole engine).
        domain: Option<DomainScope>,
    },
    /// A helper runs again after an [`HealthEvent::Outage`].
    Recovered {
        /// What came back.
        detail: String,
        /// The domain that came back (`None`: the whole engine).
        domain: Option<DomainScope>,
    },
}

/// A shared queue of reports.
#[derive(Debug, Default)]
pub struct HealthBus {
    queue: Mutex<Vec<HealthEvent>>,
}

impl HealthBus {
    /// An empty bus, shared.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds a report.
    pub fn push(&self, e: HealthEvent) {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e);
    }

    /// Takes every report so far, oldest first.
    pub fn drain(&self) -> Vec<HealthEvent> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}
