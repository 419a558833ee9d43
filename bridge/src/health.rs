//! Helper health reports from the Core ML engine to the router: memory
//! samples, crashes not tied to a request, restarts.
//!
//! ```
//! use coreml_bridge::health::{HealthBus, HealthEvent};
//!
//! let bus = HealthBus::new();
//! bus.push(HealthEvent::Memory { bytes: 512 << 20 });
//! bus.push(HealthEvent::Crash { model: None, detail: "helper killed by signal 9".into() });
//! let drained = bus.drain();
//! assert_eq!(drained.len(), 2);
//! assert!(bus.drain().is_empty());
//! ```
//!
//! The engine pushes; the router drains before each routing decision and
//! feeds the reports to the telemetry and to the breakers (memory and
//! unattributed crashes go to every model's breaker: they share the helper).

use std::sync::{Arc, Mutex};

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// The helper's current memory use.
    Memory {
        /// Resident bytes (the helper's process tree).
        bytes: u64,
    },
    /// The helper died outside any request of a model (or of `model`).
    Crash {
        /// The model whose request it was serving, if known.
        model: Option<String>,
        /// What happened.
        detail: String,
    },
    /// The supervisor restarted the helper.
    Restarted {
        /// Why.
        detail: String,
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
