//! Health reports turned into routing state: breaker transitions logged and
//! counted, a helper or a domain going down and coming back (one notice per
//! outage), and the events the router drains from the health bus.

use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use coreml_inference::InferenceEngine;

use crate::breaker::Transition;
use crate::health::{DomainScope, HealthEvent};
use crate::router::routed::Routed;
use crate::telemetry::events::EventKind;

use super::{Primary, Router};

impl Router {
    pub(super) fn apply_transitions(&self, r: &Routed, transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        for t in transitions {
            self.telemetry.event(Some(&r.name), EventKind::Breaker { transition: t });
        }
        let (state, trip) = {
            let b = r.breaker();
            (b.state(), b.last_trip().cloned())
        };
        self.telemetry.set_breaker(&r.name, state, trip, self.force.current().contains(&r.name));
    }

    pub(super) fn drain_health(&self) {
        let Some(bus) = &self.health else { return };
        let now = self.clock.now();
        for e in bus.drain() {
            // The models on the helper the report is about: its domain, or every Core ML model.
            let on_helper = |domain: &Option<DomainScope>| -> Vec<Arc<Routed>> {
                self.models()
                    .values()
                    .filter(|r| r.primary.model().is_some() && domain.as_ref().is_none_or(|d| d.contains(&r.name)))
                    .cloned()
                    .collect()
            };
            let targets: Vec<Arc<Routed>> = match &e {
                HealthEvent::Memory { bytes, domain } => {
                    self.telemetry.record_helper_memory(*bytes);
                    let limit = domain.as_ref().and_then(|d| d.memory_limit).or(self.breaker.memory_limit);
                    if let Some(limit) = limit.filter(|l| bytes > l) {
                        self.telemetry.event(None, EventKind::HelperMemory { bytes: *bytes, limit });
                    }
                    on_helper(domain)
                }
                HealthEvent::Crash { model: Some(m), .. } => self.routed_by_name(m),
                HealthEvent::Crash { model: None, domain, .. } => on_helper(domain),
                HealthEvent::Restarted { detail } => {
                    self.telemetry.record_helper_restart(detail.clone());
                    Vec::new()
                }
                HealthEvent::Outage { reason, next_try_in, domain: None } => {
                    self.primary_down(reason, *next_try_in);
                    Vec::new()
                }
                HealthEvent::Recovered { detail, domain: None } => {
                    self.primary_back(detail);
                    Vec::new()
                }
                HealthEvent::Outage { reason, next_try_in, domain: Some(d) } => {
                    self.domain_down(d, reason, *next_try_in);
                    Vec::new()
                }
                HealthEvent::Recovered { detail, domain: Some(d) } => {
                    self.domain_back(d, detail);
                    Vec::new()
                }
            };
            for r in targets {
                let t = match &e {
                    HealthEvent::Memory { bytes, domain } => {
                        r.breaker().record_memory_within(*bytes, domain.as_ref().and_then(|d| d.memory_limit), now)
                    }
                    _ => r.breaker().record_crash(now),
                };
                self.apply_transitions(&r, t);
            }
        }
    }

    /// An outage of the primary: every model goes to the fallback, without
    /// blame, until [`HealthEvent::Recovered`]. Said once per outage, with
    /// when the next try is.
    pub(super) fn primary_down(&self, reason: &str, next_try_in: Duration) {
        let mut p = self.primary_lock();
        let engine = match &*p {
            Primary::Available(e) | Primary::Down { engine: e, .. } => e.clone(),
            Primary::Unavailable { .. } => return,
        };
        let was_up = matches!(&*p, Primary::Available(_));
        let name = engine.name().to_owned();
        *p = Primary::Down { engine, reason: reason.to_owned() };
        drop(p);
        let next = crate::telemetry::latency::human_us(u64::try_from(next_try_in.as_micros()).unwrap_or(u64::MAX));
        let reason = format!("{reason}; next try in {next}");
        if was_up {
            self.announce_unavailable(&name, &reason);
        } else {
            tracing::info!(target: "coreml_bridge::router", engine = name, "{name} still unavailable: {reason}");
            self.telemetry.notice(format!("{name} still unavailable ({reason})"));
        }
    }

    /// An outage of one isolation domain: its models' requests fail fast
    /// (they never reach a helper, so no breaker is blamed) and go to the
    /// fallback; said once per outage, with when the next try is.
    pub(super) fn domain_down(&self, d: &DomainScope, reason: &str, next_try_in: Duration) {
        let name = self.primary_label();
        let next = crate::telemetry::latency::human_us(u64::try_from(next_try_in.as_micros()).unwrap_or(u64::MAX));
        let first = self.outages().insert(d.name.clone(), reason.to_owned()).is_none();
        let models = d.models.join(", ");
        let why = format!("{reason}; next try in {next}");
        if first {
            let fallback = self.fallback.as_ref().map_or("nothing", |f| f.name());
            let line = format!("{name} unavailable for domain `{}` ({why}): {fallback} serves {models}", d.name);
            tracing::warn!(target: "coreml_bridge::router", domain = d.name, "{line}");
            self.telemetry.notice(line);
            self.telemetry.event(
                None,
                EventKind::PrimaryUnavailable { engine: format!("{name} (domain `{}`)", d.name), message: why },
            );
        } else {
            self.telemetry.notice(format!("{name} still unavailable for domain `{}` ({why})", d.name));
        }
    }

    /// A domain runs again after an outage.
    pub(super) fn domain_back(&self, d: &DomainScope, detail: &str) {
        if self.outages().remove(&d.name).is_none() {
            return;
        }
        let name = self.primary_label();
        let message = format!("domain `{}`: {detail}", d.name);
        tracing::info!(target: "coreml_bridge::router", domain = d.name, "{name} available again: {message}");
        self.telemetry.notice(format!("{name} available again: {message}"));
        self.telemetry.event(None, EventKind::PrimaryRecovered { engine: name, message });
    }

    pub(super) fn outages(&self) -> MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.outages.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The primary runs again after an outage.
    pub(super) fn primary_back(&self, detail: &str) {
        let mut p = self.primary_lock();
        let Primary::Down { engine, .. } = &*p else { return };
        let engine = engine.clone();
        let name = engine.name().to_owned();
        *p = Primary::Available(engine);
        drop(p);
        tracing::info!(target: "coreml_bridge::router", engine = name, "{name} available again: {detail}");
        self.telemetry.notice(format!("{name} available again: {detail}"));
        self.telemetry.event(None, EventKind::PrimaryRecovered { engine: name, message: detail.to_owned() });
    }

    pub(crate) fn primary_label(&self) -> String {
        match &*self.primary_lock() {
            Primary::Available(e) | Primary::Down { engine: e, .. } => e.name().to_owned(),
            Primary::Unavailable { engine, .. } => engine.clone(),
        }
    }
}
