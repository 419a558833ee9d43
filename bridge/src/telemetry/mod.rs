//! The telemetry registry: counters, HDR histograms per model, engine and
//! stage, compute units, Neural-Engine coverage, helper health, breaker
//! states and the event log. Cheap to share (`Arc<Telemetry>`).
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::telemetry::latency::Stage;
//! use coreml_bridge::taxonomy::FailureKind;
//! use coreml_bridge::telemetry::Telemetry;
//!
//! let t = Telemetry::new();
//! t.record_stage("minilm", "candle", Stage::Predict, Duration::from_millis(4));
//! t.record_inference("minilm", "candle", Ok(()));
//! t.record_inference("minilm", "coreml", Err(FailureKind::Timeout));
//! let snap = t.snapshot();
//! let m = snap.model("minilm").unwrap();
//! assert_eq!(m.engine("candle").unwrap().successes, 1);
//! assert_eq!(m.engine("coreml").unwrap().failures["timeout"], 1);
//! // Coverage is whatever the helper reported: unknown stays `None`.
//! assert_eq!(m.engine("coreml").unwrap().ne_coverage, None);
//! ```

//! Owns: the registry ([`Telemetry`]), per-stage latency histograms
//! ([`latency`]), the event log ([`events`]), snapshots ([`snapshot`]) and
//! their renderings ([`table`], [`prometheus`]). It records and renders only:
//! it never decides a route or changes a breaker.

pub mod events;
pub mod latency;
pub mod prometheus;
pub mod snapshot;
pub mod table;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use coreml_inference::ComputeUnits;
use tracing::Span;

use crate::breaker::trip::{FallbackReason, TripReason};
use crate::breaker::BreakerState;
use crate::clock::{self, SharedClock};
use crate::taxonomy::FailureKind;
use crate::telemetry::events::{Event, EventKind, EventLog};
use crate::telemetry::latency::{Stage, StageHistogram};
use crate::telemetry::snapshot::{
    BreakerSnapshot, EngineSnapshot, HelperSnapshot, ModelSnapshot, SandboxPart, Snapshot,
};

/// Events kept in the ring by default.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// A span for one stage of one model on one engine. Every stage the router
/// and the engines of this crate run is inside one.
pub fn stage_span(stage: Stage, model: &str, engine: &str) -> Span {
    tracing::info_span!("coreml_bridge.stage", stage = stage.name(), model, engine)
}

#[derive(Debug, Default)]
struct Series {
    stages: BTreeMap<Stage, StageHistogram>,
    inferences: u64,
    successes: u64,
    failures: BTreeMap<FailureKind, u64>,
    requested: Option<ComputeUnits>,
    actual: Option<ComputeUnits>,
    ne_coverage: Option<f64>,
    ne_coverage_note: Option<String>,
}

#[derive(Debug, Default)]
struct PerModel {
    engines: BTreeMap<String, Series>,
    fallbacks: BTreeMap<String, u64>,
    served_by: Option<String>,
    breaker: Option<BreakerSnapshot>,
    domain: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    models: BTreeMap<String, PerModel>,
    helper: HelperSnapshot,
    notices: Vec<String>,
}

/// The registry. See the module docs.
#[derive(Debug)]
pub struct Telemetry {
    clock: SharedClock,
    inner: Mutex<Inner>,
    events: EventLog,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A registry on the system clock.
    pub fn new() -> Self {
        Self::with_clock(clock::system())
    }

    /// A registry on `clock` (events are stamped with it).
    pub fn with_clock(clock: SharedClock) -> Self {
        Self { clock, inner: Mutex::new(Inner::default()), events: EventLog::new(DEFAULT_EVENT_CAPACITY) }
    }

    /// Its clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update is a single insert or increment: a panic elsewhere
        // cannot leave the registry half-updated.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_series<R>(&self, model: &str, engine: &str, f: impl FnOnce(&mut Series) -> R) -> R {
        let mut g = self.lock();
        let m = g.models.entry(model.to_owned()).or_default();
        f(m.engines.entry(engine.to_owned()).or_default())
    }

    /// Adds one latency sample of `stage`.
    pub fn record_stage(&self, model: &str, engine: &str, stage: Stage, d: Duration) {
        self.with_series(model, engine, |s| s.stages.entry(stage).or_default().record(d));
    }

    /// Counts one inference attempt on `engine` and its result.
    pub fn record_inference(&self, model: &str, engine: &str, result: Result<(), FailureKind>) {
        self.with_series(model, engine, |s| {
            s.inferences += 1;
            match result {
                Ok(()) => s.successes += 1,
                Err(kind) => *s.failures.entry(kind).or_default() += 1,
            }
        });
    }

    /// Counts a failure outside inference (compile, load, ...).
    pub fn record_failure(&self, model: &str, engine: &str, kind: FailureKind) {
        self.with_series(model, engine, |s| *s.failures.entry(kind).or_default() += 1);
    }

    /// Notes which engine answered the model's latest request.
    pub fn record_served(&self, model: &str, engine: &str) {
        self.lock().models.entry(model.to_owned()).or_default().served_by = Some(engine.to_owned());
    }

    /// Counts a fallback (under `from`'s `fallback` failures and by reason)
    /// and logs its event.
    pub fn record_fallback(&self, model: &str, from: &str, to: &str, reason: FallbackReason) -> Event {
        {
            let mut g = self.lock();
            let m = g.models.entry(model.to_owned()).or_default();
            *m.fallbacks.entry(reason.label().to_owned()).or_default() += 1;
            *m.engines.entry(from.to_owned()).or_default().failures.entry(FailureKind::Fallback).or_default() += 1;
        }
        self.event(Some(model), EventKind::Fallback { from: from.to_owned(), to: to.to_owned(), reason })
    }

    /// Counts a fallback without logging an event (for a model whose
    /// primary side is missing: its event was logged once, at prepare).
    pub fn count_fallback(&self, model: &str, from: &str, reason: &FallbackReason) {
        let mut g = self.lock();
        let m = g.models.entry(model.to_owned()).or_default();
        *m.fallbacks.entry(reason.label().to_owned()).or_default() += 1;
        *m.engines.entry(from.to_owned()).or_default().failures.entry(FailureKind::Fallback).or_default() += 1;
    }

    /// Requested and actually configured compute units.
    pub fn set_compute_units(&self, model: &str, engine: &str, requested: ComputeUnits, actual: Option<ComputeUnits>) {
        self.with_series(model, engine, |s| {
            s.requested = Some(requested);
            s.actual = actual;
        });
    }

    /// Neural-Engine coverage as reported by the helper (`None`: unknown,
    /// with `note` saying why). Never estimated here.
    pub fn set_ne_coverage(&self, model: &str, engine: &str, coverage: Option<f64>, note: Option<String>) {
        self.with_series(model, engine, |s| {
            s.ne_coverage = coverage;
            s.ne_coverage_note = note;
        });
    }

    /// A sample of the helper's memory use; keeps the high-water mark.
    pub fn record_helper_memory(&self, bytes: u64) {
        let mut g = self.lock();
        g.helper.memory_high_water = Some(g.helper.memory_high_water.unwrap_or(0).max(bytes));
    }

    /// The supervisor's fast-lane counters (running totals, as it reports them).
    pub fn set_helper_replies(&self, fast: u64, slow: u64) {
        let mut g = self.lock();
        g.helper.fast_replies = fast;
        g.helper.slow_replies = slow;
    }

    /// The helper's memory limit.
    pub fn set_helper_memory_limit(&self, limit: Option<u64>) {
        self.lock().helper.memory_limit = limit;
    }

    /// Counts a helper restart and logs it.
    pub fn record_helper_restart(&self, message: impl Into<String>) -> Event {
        self.lock().helper.restarts += 1;
        self.event(None, EventKind::HelperRestarted { message: message.into() })
    }

    /// The helper's identity (engine, version, OS) as it said in its handshake.
    pub fn set_helper_identity(&self, identity: impl Into<String>) {
        self.lock().helper.identity = Some(identity.into());
    }

    /// The sandbox parts in force around the helper.
    pub fn set_sandbox(&self, parts: Vec<SandboxPart>) {
        self.lock().helper.sandbox = parts;
    }

    /// The Core ML isolation domain (helper) of a model.
    pub fn set_domain(&self, model: &str, domain: &str) {
        self.lock().models.entry(model.to_owned()).or_default().domain = Some(domain.to_owned());
    }

    /// A model's breaker state.
    pub fn set_breaker(&self, model: &str, state: BreakerState, last_trip: Option<TripReason>, forced: bool) {
        self.lock().models.entry(model.to_owned()).or_default().breaker =
            Some(BreakerSnapshot { state, last_trip: last_trip.map(|r| r.to_string()), forced });
    }

    /// A line for the user (the CLI prints these), kept once.
    pub fn notice(&self, line: impl Into<String>) {
        let line = line.into();
        let mut g = self.lock();
        if !g.notices.contains(&line) {
            g.notices.push(line);
        }
    }

    /// The notices so far.
    pub fn notices(&self) -> Vec<String> {
        self.lock().notices.clone()
    }

    /// Logs an event stamped with the clock.
    pub fn event(&self, model: Option<&str>, kind: EventKind) -> Event {
        self.events.push(self.clock.now(), model, kind)
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Everything, now.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        let models = g
            .models
            .iter()
            .map(|(name, m)| ModelSnapshot {
                model: name.clone(),
                served_by: m.served_by.clone(),
                breaker: m.breaker.clone(),
                fallbacks: m.fallbacks.clone(),
                domain: m.domain.clone(),
                engines: m
                    .engines
                    .iter()
                    .map(|(engine, s)| EngineSnapshot {
                        engine: engine.clone(),
                        inferences: s.inferences,
                        successes: s.successes,
                        failures: s.failures.iter().map(|(k, v)| (k.name().to_owned(), *v)).collect(),
                        stages: s.stages.iter().map(|(st, h)| (st.name().to_owned(), h.summary())).collect(),
                        compute_units_requested: s.requested,
                        compute_units_actual: s.actual,
                        ne_coverage: s.ne_coverage,
                        ne_coverage_note: s.ne_coverage_note.clone(),
                    })
                    .collect(),
            })
            .collect();
        Snapshot {
            uptime_us: u64::try_from(self.clock.now().as_micros()).unwrap_or(u64::MAX),
            models,
            helper: g.helper.clone(),
            notices: g.notices.clone(),
            events_total: self.events.total(),
            events: self.events.recent(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn counters_histograms_and_helper_health_add_up() {
        let clock = ManualClock::new();
        let t = Telemetry::with_clock(Arc::new(clock.clone()));
        for ms in [1, 2, 3] {
            t.record_stage("m", "coreml", Stage::Predict, Duration::from_millis(ms));
        }
        t.record_inference("m", "coreml", Ok(()));
        t.record_inference("m", "coreml", Err(FailureKind::HelperCrash));
        t.record_failure("m", "coreml", FailureKind::CompileError);
        clock.advance(Duration::from_secs(2));
        t.record_fallback("m", "coreml", "candle", FallbackReason::PrimaryUnavailable { message: "x".into() });
        t.set_compute_units("m", "coreml", ComputeUnits::All, Some(ComputeUnits::CpuAndNe));
        t.set_ne_coverage("m", "coreml", Some(0.75), None);
        t.record_helper_memory(10);
        t.record_helper_memory(30);
        t.record_helper_memory(20);
        t.record_helper_restart("crashed");
        t.notice("Candle serves");
        t.notice("Candle serves");

        let s = t.snapshot();
        let m = s.model("m").unwrap();
        let c = m.engine("coreml").unwrap();
        assert_eq!((c.inferences, c.successes), (2, 1));
        assert_eq!(c.failures["helper_crash"], 1);
        assert_eq!(c.failures["compile_error"], 1);
        assert_eq!(c.failures["fallback"], 1);
        assert_eq!(c.stages["predict"].count, 3);
        assert_eq!(c.compute_units_actual, Some(ComputeUnits::CpuAndNe));
        assert_eq!(c.ne_coverage, Some(0.75));
        assert_eq!(m.fallbacks["primary_unavailable"], 1);
        assert_eq!(s.helper.memory_high_water, Some(30));
        assert_eq!(s.helper.restarts, 1);
        assert_eq!(s.notices, vec!["Candle serves".to_owned()]);
        assert_eq!(s.events_total, 2);
        assert_eq!(s.events[0].at_us, 2_000_000);
    }
}
