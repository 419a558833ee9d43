//! A point-in-time copy of the telemetry: plain data, serialisable as JSON,
//! renderable as a table ([`Snapshot::table`]) and as Prometheus text
//! ([`Snapshot::prometheus`]).
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::telemetry::latency::Stage;
//! use coreml_bridge::telemetry::snapshot::Snapshot;
//! use coreml_bridge::telemetry::Telemetry;
//!
//! let t = Telemetry::new();
//! t.record_stage("resnet", "candle", Stage::Infer, Duration::from_millis(20));
//! t.record_inference("resnet", "candle", Ok(()));
//! t.record_served("resnet", "candle");
//! let json = t.snapshot().to_json();
//! let back: Snapshot = serde_json::from_str(&json).unwrap();
//! assert_eq!(back.model("resnet").unwrap().served_by.as_deref(), Some("candle"));
//! ```

use std::collections::BTreeMap;

use coreml_inference::ComputeUnits;
use serde::{Deserialize, Serialize};

use crate::breaker::BreakerState;
use crate::telemetry::events::Event;
use crate::telemetry::latency::LatencySummary;

/// Everything the telemetry knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time since the telemetry's clock started, µs.
    pub uptime_us: u64,
    /// Per model, by name.
    pub models: Vec<ModelSnapshot>,
    /// The Core ML helper.
    pub helper: HelperSnapshot,
    /// Lines for the user (e.g. why Candle serves).
    pub notices: Vec<String>,
    /// Events ever logged.
    pub events_total: u64,
    /// The most recent events, oldest first.
    pub events: Vec<Event>,
}

/// One model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSnapshot {
    /// Model name.
    pub model: String,
    /// Engine that answered its latest request.
    pub served_by: Option<String>,
    /// Its breaker, if it is routed.
    pub breaker: Option<BreakerSnapshot>,
    /// Fallbacks by reason label (`breaker_open`, `primary_failed`, ...).
    pub fallbacks: BTreeMap<String, u64>,
    /// Per engine that ran it.
    pub engines: Vec<EngineSnapshot>,
    /// The Core ML isolation domain (helper) that serves it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// A model's breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    /// State.
    pub state: BreakerState,
    /// Why it last opened.
    pub last_trip: Option<String>,
    /// Pinned closed by `COREML_FORCE_ENABLE`.
    pub forced: bool,
}

/// One model on one engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineSnapshot {
    /// Engine name.
    pub engine: String,
    /// Inference attempts.
    pub inferences: u64,
    /// Successful attempts.
    pub successes: u64,
    /// Failures by kind (the taxonomy's snake_case names).
    pub failures: BTreeMap<String, u64>,
    /// Latency per stage name.
    pub stages: BTreeMap<String, LatencySummary>,
    /// Compute units asked for.
    pub compute_units_requested: Option<ComputeUnits>,
    /// Compute units actually configured, as the engine reported.
    pub compute_units_actual: Option<ComputeUnits>,
    /// Neural-Engine coverage in [0, 1] as the helper reported it; `None` when unknown.
    pub ne_coverage: Option<f64>,
    /// Why the coverage is unknown.
    pub ne_coverage_note: Option<String>,
}

/// The Core ML helper's health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperSnapshot {
    /// What the helper said it is (engine, version, OS), once it started.
    pub identity: Option<String>,
    /// Highest memory use seen, bytes.
    pub memory_high_water: Option<u64>,
    /// Its memory limit, bytes.
    pub memory_limit: Option<u64>,
    /// Restarts by the supervisor.
    pub restarts: u64,
    /// Sandbox parts and whether each is in force.
    pub sandbox: Vec<SandboxPart>,
    /// Replies a caller read itself while spinning (the supervisor's fast lane).
    #[serde(default)]
    pub fast_replies: u64,
    /// Replies eligible for the fast lane that came after the spin budget.
    #[serde(default)]
    pub slow_replies: u64,
}

/// One part of the helper's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPart {
    /// Part name (`no_new_privs`, `landlock`, `network`, ...).
    pub name: String,
    /// In force.
    pub applied: bool,
    /// Detail or why not.
    pub detail: String,
}

impl Snapshot {
    /// The model called `name`.
    pub fn model(&self, name: &str) -> Option<&ModelSnapshot> {
        self.models.iter().find(|m| m.model == name)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("snapshots are plain data")
    }
}

impl ModelSnapshot {
    /// The model on engine `name`.
    pub fn engine(&self, name: &str) -> Option<&EngineSnapshot> {
        self.engines.iter().find(|e| e.engine == name)
    }
}
