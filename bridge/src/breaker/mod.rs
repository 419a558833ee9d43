//! The per-model circuit breaker: a pure, clock-injected state machine.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::breaker::{Admission, Breaker, BreakerConfig, BreakerState, Outcome};
//! use coreml_bridge::taxonomy::FailureKind;
//!
//! let mut b = Breaker::new(BreakerConfig::default());
//! let now = Duration::ZERO;
//! // Warm-up: the first 10 inferences never trip it, whatever they do.
//! for _ in 0..10 {
//!     let (Admission::Primary { ticket }, _) = b.admit(now, false) else { unreachable!() };
//!     assert!(b.record(ticket, Outcome::failure(FailureKind::Timeout, Duration::from_millis(5)), now).is_empty());
//! }
//! assert_eq!(b.state(), BreakerState::Closed);
//! // The 11th failure: success over the window is 0% < 95%.
//! let (Admission::Primary { ticket }, _) = b.admit(now, false) else { unreachable!() };
//! let transitions = b.record(ticket, Outcome::failure(FailureKind::Timeout, Duration::from_millis(5)), now);
//! assert_eq!(b.state(), BreakerState::Open);
//! assert!(transitions[0].to_string().contains("success rate 0.0%"));
//! assert!(matches!(b.admit(now, false).0, Admission::Fallback { .. }));
//! ```
//!
//! Rules (docs/router.md has the rationale):
//!
//! * Only outcomes of the primary engine (Core ML) are recorded. The warm-up
//!   is complete once [`BreakerConfig::warmup`] outcomes have been recorded
//!   since the breaker last closed: nothing trips before, and the outcomes of
//!   the warm-up itself are never checked (the 10th failure leaves it
//!   closed, the 11th can open it). Health reports (memory, crashes) are
//!   checked as soon as the warm-up is complete. SLA violations are counted
//!   only on checks after the warm-up.
//! * Triggers: success rate over the last [`BreakerConfig::window`] outcomes
//!   below [`BreakerConfig::min_success_rate`]; the window's p99 over
//!   [`BreakerConfig::sla_factor`] × the SLA (3× by default) on
//!   [`BreakerConfig::sla_violations`] consecutive checks; memory of the
//!   model's helper (its isolation domain) over its limit;
//!   [`BreakerConfig::crash_limit`] helper crashes within
//!   [`BreakerConfig::crash_window`].
//! * Open: requests go to the fallback. After
//!   [`BreakerConfig::half_open_after`] (30 s by default), one request at a
//!   time is let through as a probe; [`BreakerConfig::probe_successes`]
//!   successful probes close the breaker, a failed one reopens it and doubles
//!   the wait before the next probe, up to [`BreakerConfig::half_open_max`].
//! * A ticket whose outcome says nothing about the model (its caller went
//!   away, or the request never reached the helper) is given back with
//!   [`Breaker::release`]: nothing is recorded, and a probe's ticket lets the
//!   next request probe.
//! * [`Breaker::force_close`] closes it at once; `forced` admission (the
//!   `COREML_FORCE_ENABLE` list) pins it closed: would-be trips are reported
//!   as [`Transition::Suppressed`] and requests keep going to the primary.
//! * Closing resets the counters: a fresh warm-up follows.
//! * An outcome whose ticket is from before the last transition is ignored.
//!
//! Owns: the state machine ([`Breaker`]), its rules ([`BreakerConfig`]), the
//! reasons it reports ([`trip`]) and the `COREML_FORCE_ENABLE` override
//! ([`force_enable`]). It must not touch engines, clocks or telemetry: the
//! router feeds it outcomes and instants and acts on what it returns.

mod config;
pub mod force_enable;
pub mod trip;

use std::collections::VecDeque;
use std::time::Duration;

use crate::breaker::trip::{CloseReason, FallbackReason, TripReason};
use crate::taxonomy::FailureKind;

pub use crate::breaker::config::{Admission, BreakerConfig, BreakerState, Outcome, Ticket};
pub use crate::breaker::trip::Transition;

/// A per-model breaker. See the module docs.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    generation: u64,
    recorded: u64,
    outcomes: VecDeque<Outcome>,
    consecutive_sla: u32,
    crashes: VecDeque<Duration>,
    last_memory: Option<u64>,
    opened_at: Duration,
    probe_wait: Option<Duration>,
    last_trip: Option<TripReason>,
    probe_in_flight: bool,
    probe_streak: u32,
    pinned: bool,
    suppressed: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        let mut b = Self {
            probe_wait: None,
            cfg,
            state: BreakerState::Closed,
            generation: 0,
            recorded: 0,
            outcomes: VecDeque::new(),
            consecutive_sla: 0,
            crashes: VecDeque::new(),
            last_memory: None,
            opened_at: Duration::ZERO,
            last_trip: None,
            probe_in_flight: false,
            probe_streak: 0,
            pinned: false,
            suppressed: false,
        };
        b.probe_wait = b.cfg.half_open_after;
        b
    }

    /// How long it waits, once open, before the next half-open probe
    /// (`None`: no timed probe).
    pub fn probe_wait(&self) -> Option<Duration> {
        self.probe_wait
    }

    /// Its configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// Its state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Why it last opened.
    pub fn last_trip(&self) -> Option<&TripReason> {
        self.last_trip.as_ref()
    }

    /// Outcomes recorded since it last closed.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Success rate over the window, `None` before any outcome.
    pub fn success_rate(&self) -> Option<f64> {
        let n = self.outcomes.len();
        (n > 0).then(|| self.outcomes.iter().filter(|o| o.failure.is_none()).count() as f64 / n as f64)
    }

    /// p99 (nearest rank) of the window's latencies.
    pub fn window_p99(&self) -> Option<Duration> {
        let mut v: Vec<Duration> = self.outcomes.iter().map(|o| o.latency).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let rank = ((0.99 * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }

    /// Decides where the next request goes. `forced`: the model is listed in
    /// `COREML_FORCE_ENABLE` (pins the breaker closed). Returns the
    /// admission and any transition it caused (half-open, forced close).
    pub fn admit(&mut self, now: Duration, forced: bool) -> (Admission, Vec<Transition>) {
        let mut transitions = Vec::new();
        if forced && self.state != BreakerState::Closed {
            transitions.push(self.close(CloseReason::ForcedByEnv, now));
        }
        self.pinned = forced;
        if !forced {
            self.suppressed = false;
        }
        if self.state == BreakerState::Open {
            if let Some(after) = self.probe_wait {
                if now >= self.opened_at + after {
                    self.state = BreakerState::HalfOpen;
                    self.generation += 1;
                    transitions.push(Transition::HalfOpened { open_for: now - self.opened_at });
                }
            }
        }
        let admission = match self.state {
            BreakerState::Closed => Admission::Primary { ticket: Ticket { generation: self.generation, probe: false } },
            BreakerState::HalfOpen if !self.probe_in_flight => {
                self.probe_in_flight = true;
                Admission::Primary { ticket: Ticket { generation: self.generation, probe: true } }
            }
            BreakerState::HalfOpen => Admission::Fallback { reason: FallbackReason::ProbeInFlight },
            BreakerState::Open => Admission::Fallback {
                reason: FallbackReason::BreakerOpen { since: self.last_trip.clone().unwrap_or(TripReason::Unknown) },
            },
        };
        (admission, transitions)
    }

    /// Records the outcome of a request admitted with `ticket`.
    pub fn record(&mut self, ticket: Ticket, outcome: Outcome, now: Duration) -> Vec<Transition> {
        if ticket.generation != self.generation {
            return Vec::new();
        }
        if ticket.probe {
            self.probe_in_flight = false;
            return match outcome.failure {
                None => {
                    self.probe_streak += 1;
                    if self.probe_streak >= self.cfg.probe_successes.max(1) {
                        vec![self.close(CloseReason::ProbeSucceeded { probes: self.probe_streak }, now)]
                    } else {
                        Vec::new()
                    }
                }
                Some(kind) => {
                    let max = self.cfg.half_open_max.max(self.cfg.half_open_after.unwrap_or_default());
                    self.probe_wait = self.probe_wait.map(|w| w.saturating_mul(2).min(max));
                    vec![self.open(TripReason::ProbeFailed { kind }, now)]
                }
            };
        }
        self.recorded += 1;
        self.outcomes.push_back(outcome);
        while self.outcomes.len() > self.cfg.window.max(1) {
            self.outcomes.pop_front();
        }
        if outcome.failure == Some(FailureKind::HelperCrash) {
            self.crashes.push_back(now);
        }
        // The warm-up was complete before this outcome: it may trip.
        if self.recorded > u64::from(self.cfg.warmup) {
            self.check_sla();
            self.evaluate(now)
        } else {
            Vec::new()
        }
    }

    /// Gives back a ticket without an outcome: the request's caller went
    /// away before the answer, or the request never reached the helper
    /// (it waited in the queue or for a restart). Nothing is recorded; a
    /// probe's ticket lets the next request probe.
    pub fn release(&mut self, ticket: Ticket) {
        if ticket.probe && ticket.generation == self.generation {
            self.probe_in_flight = false;
        }
    }

    /// A helper crash not attributable to a request of this model.
    pub fn record_crash(&mut self, now: Duration) -> Vec<Transition> {
        self.crashes.push_back(now);
        self.evaluate(now)
    }

    /// The current memory use of the model's helper, against
    /// [`BreakerConfig::memory_limit`].
    pub fn record_memory(&mut self, bytes: u64, now: Duration) -> Vec<Transition> {
        self.last_memory = Some(bytes);
        self.evaluate(now)
    }

    /// The current memory use of the model's helper against the memory
    /// budget of its isolation domain (`None`: the configured limit).
    pub fn record_memory_within(&mut self, bytes: u64, limit: Option<u64>, now: Duration) -> Vec<Transition> {
        if limit.is_some() {
            self.cfg.memory_limit = limit;
        }
        self.record_memory(bytes, now)
    }

    /// The window's p99 is over the latency limit (`sla_factor` × the SLA).
    fn p99_over_limit(&self) -> Option<(Duration, Duration)> {
        let sla = self.cfg.sla_p99?;
        let p99 = self.window_p99()?;
        (p99.as_secs_f64() > sla.as_secs_f64() * self.cfg.sla_factor).then_some((p99, sla))
    }

    /// Closes the breaker now (the API's re-enable).
    pub fn force_close(&mut self, now: Duration) -> Option<Transition> {
        (self.state != BreakerState::Closed).then(|| self.close(CloseReason::ForcedByApi, now))
    }

    fn check_sla(&mut self) {
        match self.p99_over_limit() {
            Some(_) => self.consecutive_sla += 1,
            None => self.consecutive_sla = 0,
        }
    }

    fn trigger(&mut self, now: Duration) -> Option<TripReason> {
        if self.recorded < u64::from(self.cfg.warmup) {
            return None;
        }
        while self.crashes.front().is_some_and(|&t| now.saturating_sub(t) > self.cfg.crash_window) {
            self.crashes.pop_front();
        }
        if let (Some(bytes), Some(limit)) = (self.last_memory, self.cfg.memory_limit) {
            if bytes > limit {
                return Some(TripReason::MemoryOverLimit { bytes, limit });
            }
        }
        if self.crashes.len() >= self.cfg.crash_limit.max(1) as usize {
            return Some(TripReason::HelperCrashes { count: self.crashes.len() as u32, within: self.cfg.crash_window });
        }
        if let Some(rate) = self.success_rate() {
            if rate < self.cfg.min_success_rate {
                return Some(TripReason::SuccessRate {
                    rate,
                    window: self.outcomes.len(),
                    threshold: self.cfg.min_success_rate,
                });
            }
        }
        if let Some((p99, sla)) = self.p99_over_limit() {
            if self.consecutive_sla >= self.cfg.sla_violations.max(1) {
                return Some(TripReason::SlaViolations {
                    p99,
                    sla,
                    factor: self.cfg.sla_factor,
                    times: self.consecutive_sla,
                });
            }
        }
        None
    }

    fn evaluate(&mut self, now: Duration) -> Vec<Transition> {
        if self.state != BreakerState::Closed {
            return Vec::new();
        }
        match self.trigger(now) {
            None => Vec::new(),
            Some(reason) if self.pinned && !self.suppressed => {
                self.suppressed = true;
                vec![Transition::Suppressed { reason }]
            }
            Some(_) if self.pinned => Vec::new(),
            Some(reason) => vec![self.open(reason, now)],
        }
    }

    fn open(&mut self, reason: TripReason, now: Duration) -> Transition {
        self.state = BreakerState::Open;
        self.generation += 1;
        self.opened_at = now;
        self.probe_in_flight = false;
        self.probe_streak = 0;
        self.last_trip = Some(reason.clone());
        Transition::Opened { reason }
    }

    fn close(&mut self, reason: CloseReason, _now: Duration) -> Transition {
        self.state = BreakerState::Closed;
        self.generation += 1;
        self.recorded = 0;
        self.outcomes.clear();
        self.consecutive_sla = 0;
        self.crashes.clear();
        self.last_memory = None;
        self.probe_in_flight = false;
        self.probe_streak = 0;
        self.probe_wait = self.cfg.half_open_after;
        Transition::Closed { reason }
    }
}

#[cfg(test)]
mod tests;
