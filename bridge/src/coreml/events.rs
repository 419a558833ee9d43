//! Turns the supervisor's lifecycle events into telemetry and health
//! reports for the router: helper identity and sandbox parts on start,
//! crashes, memory kills and restarts.
//!
//! ```
//! use coreml_bridge::coreml::events::sandbox_parts;
//! use coreml_supervisor::{Applied, SandboxReport};
//!
//! let report = SandboxReport {
//!     no_new_privs: Applied::Yes,
//!     core_dumps_off: Applied::Yes,
//!     open_files_limit: Applied::Yes,
//!     landlock: Applied::Partially("ABI 1".into()),
//!     network: Applied::Unsupported("no seccomp".into()),
//!     helper_self_sandboxed: Some(false),
//!     ..SandboxReport::default()
//! };
//! let parts = sandbox_parts(&report);
//! assert_eq!(parts.len(), 6);
//! assert!(parts.iter().any(|p| p.name == "landlock" && p.applied && p.detail == "partial (ABI 1)"));
//! assert!(parts.iter().any(|p| p.name == "network" && !p.applied));
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coreml_supervisor::{Applied, DeathCause, Event, SandboxReport, Supervisor};

use crate::coreml::revive::{spawn_revival, Backoff};
use crate::health::{DomainScope, HealthBus, HealthEvent};
use crate::telemetry::snapshot::SandboxPart;
use crate::telemetry::Telemetry;

/// The sandbox parts of a report, for telemetry.
pub fn sandbox_parts(r: &SandboxReport) -> Vec<SandboxPart> {
    let part =
        |name: &str, a: &Applied| SandboxPart { name: name.into(), applied: a.in_force(), detail: a.to_string() };
    let mut v = vec![
        part("no_new_privs", &r.no_new_privs),
        part("core_dumps_off", &r.core_dumps_off),
        part("open_files_limit", &r.open_files_limit),
        part("landlock", &r.landlock),
        part("network", &r.network),
    ];
    if let Some(s) = r.helper_self_sandboxed {
        v.push(SandboxPart {
            name: "helper_self_sandbox".into(),
            applied: s,
            detail: if s { "the helper sandboxed itself" } else { "the helper did not sandbox itself" }.into(),
        });
    }
    v
}

/// What the engine knows of its requests, to tell request deaths from others.
#[derive(Debug, Clone)]
pub struct RequestDeaths {
    /// Predictions under way.
    pub in_flight: Arc<AtomicUsize>,
    /// When a prediction last failed with a helper death (ms since `epoch`, +1; 0: never).
    pub last_death_ms: Arc<AtomicU64>,
    /// Origin of `last_death_ms`.
    pub epoch: Instant,
}

impl RequestDeaths {
    /// Whether a death now is already accounted for by a request's error
    /// (a prediction is under way, or one failed with a death within 2 s).
    pub fn attributed(&self) -> bool {
        let last = self.last_death_ms.load(Ordering::SeqCst);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.in_flight.load(Ordering::SeqCst) > 0
            || (last > 0 && Duration::from_millis(now.saturating_sub(last)) < Duration::from_secs(2))
    }
}

/// Spawns a task that follows the supervisor's events until it shuts down.
/// A death that no request accounts for is reported as an unattributed
/// crash; one during a request is reported by that request's error instead,
/// so it is not counted twice. Deaths by timeout are never crashes.
pub fn watch_supervisor(
    sup: &Arc<Supervisor>,
    telemetry: Arc<Telemetry>,
    health: Arc<HealthBus>,
    requests: RequestDeaths,
    revival: Backoff,
    scope: Arc<Mutex<DomainScope>>,
) {
    let weak = Arc::downgrade(sup);
    if let Some(s) = sup.stats().sandbox {
        telemetry.set_sandbox(sandbox_parts(&s));
    }
    let mut rx = sup.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(target: "coreml_bridge::coreml", "missed {n} supervisor events");
                    continue;
                }
                Err(_) => return,
            };
            let domain = Some(scope.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone());
            match ev {
                Event::HelperStarted { generation, sandbox, hello, models_reloaded, .. } => {
                    let mut s = sandbox;
                    s.helper_self_sandboxed = Some(hello.sandboxed);
                    telemetry.set_sandbox(sandbox_parts(&s));
                    if generation > 1 {
                        let name = domain.as_ref().map(|d| d.name.clone()).unwrap_or_default();
                        telemetry.record_helper_restart(format!(
                            "domain `{name}`: helper generation {generation} (pid {}), {models_reloaded} model(s) reloaded",
                            hello.pid
                        ));
                    }
                }
                Event::HelperDied { cause, pid, .. } => match cause {
                    DeathCause::MemoryLimit { rss, .. } => {
                        health.push(HealthEvent::Memory { bytes: rss, domain: domain.clone() })
                    }
                    DeathCause::Shutdown => return,
                    DeathCause::Timeout { .. } => {}
                    other if !requests.attributed() => health.push(HealthEvent::Crash {
                        model: None,
                        domain: domain.clone(),
                        detail: format!("helper pid {pid}: {other}"),
                    }),
                    _ => {}
                },
                Event::Unavailable { reason } => {
                    tracing::warn!(target: "coreml_bridge::coreml", reason, "helper restart budget spent");
                    spawn_revival(weak.clone(), health.clone(), scope.clone(), reason, revival.clone());
                }
                Event::Restarting { .. } | Event::RestartFailed { .. } => {}
            }
        }
    });
}
