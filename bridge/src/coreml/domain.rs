//! One isolation domain: a supervised helper, the models it serves, its
//! memory limit and restart budget (its own `SupervisorConfig`), and the
//! watcher that turns its events into health reports scoped to its models.
//!
//! ```
//! use coreml_bridge::health::DomainScope;
//!
//! // What a domain's health reports carry: who is affected, and its budget.
//! let scope = DomainScope { name: "vision".into(), models: vec!["resnet50".into()], memory_limit: Some(2 << 30) };
//! assert!(scope.contains("resnet50") && !scope.contains("minilm"));
//! ```
//!
//! A domain starts the first time a model of it is prepared (the engine's
//! first helper, started to check that Core ML exists, becomes the first
//! domain). When its last model is unloaded, its helper is shut down.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coreml_supervisor::memwatch::MemoryWatcher;
use coreml_supervisor::{Supervisor, SupervisorConfig};

use crate::coreml::events::{watch_supervisor, RequestDeaths};
use crate::coreml::revive::Backoff;
use crate::health::{DomainScope, HealthBus};
use crate::telemetry::Telemetry;

/// How often a domain samples its helper's memory itself when the
/// supervisor does not (no memory limit configured).
pub const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A running domain. See the module docs.
pub struct Domain {
    pub(crate) sup: Arc<Supervisor>,
    scope: Arc<Mutex<DomainScope>>,
    pub(crate) requests: RequestDeaths,
    memwatch: Mutex<(MemoryWatcher, Option<Instant>)>,
    started_in: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Domain {
    /// Starts the domain's helper. `Err` says why it did not start.
    pub(crate) async fn start(
        name: &str,
        cfg: SupervisorConfig,
        telemetry: Arc<Telemetry>,
        health: Arc<HealthBus>,
        revival: Backoff,
    ) -> Result<Arc<Self>, coreml_supervisor::Error> {
        let memory_limit = cfg.memory_limit;
        let t = Instant::now();
        let sup = Arc::new(Supervisor::start(cfg).await?);
        let started_in = t.elapsed();
        let scope = Arc::new(Mutex::new(DomainScope { name: name.to_owned(), models: Vec::new(), memory_limit }));
        let requests = RequestDeaths {
            in_flight: Arc::new(AtomicUsize::new(0)),
            last_death_ms: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        };
        watch_supervisor(&sup, telemetry, health, requests.clone(), revival, scope.clone());
        Ok(Arc::new(Self { sup, scope, requests, memwatch: Mutex::new((MemoryWatcher::new(), None)), started_in }))
    }

    /// Its name.
    pub fn name(&self) -> String {
        lock(&self.scope).name.clone()
    }

    /// Renames it (the engine's first helper, once a domain takes it).
    pub(crate) fn rename(&self, name: &str) {
        lock(&self.scope).name = name.to_owned();
    }

    /// Its supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.sup
    }

    /// How long its helper took to start (spawn, sandbox, handshake).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Its name, models and memory limit now.
    pub fn scope(&self) -> DomainScope {
        lock(&self.scope).clone()
    }

    /// Adds a model handle (a model prepared twice is listed twice, so the
    /// domain lives until its last handle is unloaded).
    pub(crate) fn add_model(&self, model: &str) {
        lock(&self.scope).models.push(model.to_owned());
    }

    /// Removes one handle of a model; returns how many handles are left.
    pub(crate) fn remove_model(&self, model: &str) -> usize {
        let mut s = lock(&self.scope);
        if let Some(i) = s.models.iter().position(|m| m == model) {
            s.models.remove(i);
        }
        s.models.len()
    }

    /// The helper's RSS: the supervisor's sample when it watches memory,
    /// else our own, at most every [`MEMORY_SAMPLE_EVERY`].
    pub(crate) fn sample_memory(&self) -> Option<u64> {
        let stats = self.sup.stats();
        if stats.rss_bytes > 0 {
            return Some(stats.rss_bytes);
        }
        let mut w = lock(&self.memwatch);
        if w.1.is_some_and(|t: Instant| t.elapsed() < MEMORY_SAMPLE_EVERY) || stats.pid == 0 {
            return None;
        }
        w.1 = Some(Instant::now());
        Some(w.0.sample(stats.pid)).filter(|&b| b > 0)
    }
}
