//! The event log: every breaker transition, every fallback and every
//! engine-level notice, each with its reason, in order.
//!
//! ```
//! use coreml_bridge::telemetry::events::{EventKind, EventLog};
//! use coreml_bridge::breaker::trip::FallbackReason;
//! use std::time::Duration;
//!
//! let log = EventLog::new(100);
//! log.push(Duration::from_millis(3), Some("minilm"), EventKind::Fallback {
//!     from: "coreml".into(),
//!     to: "candle".into(),
//!     reason: FallbackReason::PrimaryUnavailable { message: "no helper binary".into() },
//! });
//! let events = log.recent();
//! assert_eq!(events[0].seq, 1);
//! assert_eq!(
//!     events[0].to_string(),
//!     "[0.003s] minilm: served by candle instead of coreml: Core ML unavailable: no helper binary"
//! );
//! ```
//!
//! The log keeps the most recent events (a ring of fixed capacity) and
//! counts every event ever pushed; each event is also emitted as a
//! `tracing` event (`warn` for openings, fallbacks and notices, `info`
//! otherwise).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::trip::{FallbackReason, Transition};

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A breaker changed state.
    Breaker {
        /// The change, with its reason.
        transition: Transition,
    },
    /// One request was served by the fallback engine.
    Fallback {
        /// The engine that should have served.
        from: String,
        /// The engine that served.
        to: String,
        /// Why.
        reason: FallbackReason,
    },
    /// The primary engine cannot run at all; said once per router.
    PrimaryUnavailable {
        /// The engine.
        engine: String,
        /// Why.
        message: String,
    },
    /// The primary engine runs again after an outage.
    PrimaryRecovered {
        /// The engine.
        engine: String,
        /// What came back.
        message: String,
    },
    /// The helper was restarted by the supervisor.
    HelperRestarted {
        /// Why.
        message: String,
    },
    /// The helper reported its memory over its limit.
    HelperMemory {
        /// Observed bytes.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The primary finished preparing a model after `prepare` returned
    /// (the fallback served it meanwhile): it serves the model from now on.
    PrimaryReady {
        /// The engine.
        engine: String,
        /// How long it took.
        message: String,
    },
    /// The primary could not prepare a model it was preparing in the
    /// background: the fallback keeps serving it.
    PrimaryNotReady {
        /// The engine.
        engine: String,
        /// Why.
        reason: FallbackReason,
    },
    /// A model has no fallback and its primary failed: the caller got a typed error.
    NoFallback {
        /// Why the primary could not serve.
        message: String,
    },
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1-based sequence number, in push order.
    pub seq: u64,
    /// Time of the event on the router's clock, µs.
    pub at_us: u64,
    /// The model concerned, if any.
    pub model: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Breaker { transition } => write!(f, "{transition}"),
            EventKind::Fallback { from, to, reason } => {
                write!(f, "served by {to} instead of {from}: {reason}")
            }
            EventKind::PrimaryUnavailable { engine, message } => {
                write!(f, "{engine} unavailable, Candle serves: {message}")
            }
            EventKind::PrimaryRecovered { engine, message } => write!(f, "{engine} available again: {message}"),
            EventKind::HelperRestarted { message } => write!(f, "helper restarted: {message}"),
            EventKind::HelperMemory { bytes, limit } => {
                write!(f, "helper memory {} MiB over its limit of {} MiB", bytes >> 20, limit >> 20)
            }
            EventKind::PrimaryReady { engine, message } => write!(f, "{engine} ready: {message}"),
            EventKind::PrimaryNotReady { engine, reason } => {
                write!(f, "{engine} will not serve this model, Candle keeps serving: {reason}")
            }
            EventKind::NoFallback { message } => {
                write!(f, "no Candle implementation to fall back to: {message}")
            }
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:.3}s] ", self.at_us as f64 / 1e6)?;
        if let Some(m) = &self.model {
            write!(f, "{m}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// A bounded, thread-safe log of events.
#[derive(Debug)]
pub struct EventLog {
    capacity: usize,
    inner: Mutex<(VecDeque<Event>, u64)>,
}

impl EventLog {
    /// A log keeping the last `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new((VecDeque::new(), 0)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Event>, u64)> {
        // Pushing cannot leave the ring invalid, even if a holder panicked.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an event and traces it. Returns it.
    pub fn push(&self, at: Duration, model: Option<&str>, kind: EventKind) -> Event {
        let event = {
            let mut g = self.lock();
            g.1 += 1;
            let event = Event {
                seq: g.1,
                at_us: u64::try_from(at.as_micros()).unwrap_or(u64::MAX),
                model: model.map(str::to_owned),
                kind,
            };
            if g.0.len() == self.capacity {
                g.0.pop_front();
            }
            g.0.push_back(event.clone());
            event
        };
        let loud = matches!(
            &event.kind,
            EventKind::Breaker { transition: Transition::Opened { .. } | Transition::Suppressed { .. } }
                | EventKind::Fallback { .. }
                | EventKind::PrimaryUnavailable { .. }
                | EventKind::NoFallback { .. }
                | EventKind::HelperMemory { .. }
        );
        let model = event.model.as_deref().unwrap_or("-");
        if loud {
            tracing::warn!(target: "coreml_bridge::events", seq = event.seq, model, "{}", event.kind);
        } else {
            tracing::info!(target: "coreml_bridge::events", seq = event.seq, model, "{}", event.kind);
        }
        event
    }

    /// The events still in the ring, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.lock().0.iter().cloned().collect()
    }

    /// Events pushed since `seq` (exclusive) that are still in the ring.
    pub fn since(&self, seq: u64) -> Vec<Event> {
        self.lock().0.iter().filter(|e| e.seq > seq).cloned().collect()
    }

    /// Events ever pushed.
    pub fn total(&self) -> u64 {
        self.lock().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::trip::TripReason;

    #[test]
    fn ring_drops_oldest_but_counts_all_and_events_serialise_flat() {
        let log = EventLog::new(2);
        for i in 0..3u64 {
            log.push(Duration::from_secs(i), Some("m"), EventKind::HelperRestarted { message: format!("crash {i}") });
        }
        assert_eq!(log.total(), 3);
        let r = log.recent();
        assert_eq!(r.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(log.since(2).len(), 1);
        let e = log.push(
            Duration::ZERO,
            Some("m"),
            EventKind::Breaker {
                transition: Transition::Opened {
                    reason: TripReason::ProbeFailed { kind: crate::taxonomy::FailureKind::Timeout },
                },
            },
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "breaker");
        assert_eq!(v["transition"]["type"], "opened");
        assert_eq!(v["transition"]["reason"]["type"], "probe_failed");
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
    }
}
