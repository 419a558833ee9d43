//! Breaker configuration and the small types of its interface: states,
//! admissions, tickets, outcomes.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::breaker::{BreakerConfig, Outcome};
//! use coreml_bridge::taxonomy::FailureKind;
//!
//! let cfg = BreakerConfig::default();
//! assert_eq!((cfg.warmup, cfg.window, cfg.min_success_rate, cfg.sla_factor), (10, 20, 0.95, 3.0));
//! assert_eq!(cfg.half_open_after, Some(Duration::from_secs(30)));
//! assert_eq!(cfg.half_open_max, Duration::from_secs(600));
//! assert_eq!(Outcome::failure(FailureKind::Timeout, Duration::ZERO).failure, Some(FailureKind::Timeout));
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::trip::FallbackReason;
use crate::taxonomy::FailureKind;

/// Thresholds of a breaker. `Default` follows the plan: 10 warm-up
/// inferences, 95 % over the last 20, p99 over 3× the SLA on 3 checks in a
/// row, 3 crashes per minute, a timed half-open probe after 30 s (doubling
/// after each failed probe, up to 10 min).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// Inferences after (re)closing during which nothing trips.
    pub warmup: u32,
    /// Outcomes in the sliding window for success rate and p99.
    pub window: usize,
    /// Lowest acceptable success rate over the window.
    pub min_success_rate: f64,
    /// The model's p99 latency SLA; `None` disables the latency trigger.
    pub sla_p99: Option<Duration>,
    /// The latency trigger fires when the window's p99 is over
    /// `sla_factor` × the SLA (the plan: 3).
    pub sla_factor: f64,
    /// Consecutive checks with the window's p99 over `sla_factor` × the SLA that trip.
    pub sla_violations: u32,
    /// Helper memory limit in bytes; `None` disables the memory trigger.
    pub memory_limit: Option<u64>,
    /// Helper crashes within `crash_window` that trip.
    pub crash_limit: u32,
    /// Window for counting crashes.
    pub crash_window: Duration,
    /// Time after opening when a probe is let through; `None`: stay open
    /// until re-enabled through the API or `COREML_FORCE_ENABLE`. Each failed
    /// probe doubles the wait before the next, up to `half_open_max`.
    pub half_open_after: Option<Duration>,
    /// Longest wait between probes.
    pub half_open_max: Duration,
    /// Successful probes in a row that close the breaker.
    pub probe_successes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            warmup: 10,
            window: 20,
            min_success_rate: 0.95,
            sla_p99: None,
            sla_factor: 3.0,
            sla_violations: 3,
            memory_limit: None,
            crash_limit: 3,
            crash_window: Duration::from_secs(60),
            half_open_after: Some(Duration::from_secs(30)),
            half_open_max: Duration::from_secs(600),
            probe_successes: 1,
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// The primary serves.
    Closed,
    /// The fallback serves.
    Open,
    /// The fallback serves, except for one probe at a time.
    HalfOpen,
}

impl BreakerState {
    /// The snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Identifies an admitted request, so its outcome can be matched to the
/// breaker generation that admitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub(crate) generation: u64,
    pub(crate) probe: bool,
}

/// Where one request should go.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// To the primary.
    Primary {
        /// Pass back to [`Breaker::record`].
        ticket: Ticket,
    },
    /// To the fallback, and why.
    Fallback {
        /// Why not the primary.
        reason: FallbackReason,
    },
}

/// The result of one primary inference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// `None` on success, else the failure's kind.
    pub failure: Option<FailureKind>,
    /// How long it took.
    pub latency: Duration,
}

impl Outcome {
    /// A success.
    pub fn success(latency: Duration) -> Self {
        Self { failure: None, latency }
    }

    /// A failure of `kind`.
    pub fn failure(kind: FailureKind, latency: Duration) -> Self {
        Self { failure: Some(kind), latency }
    }
}
