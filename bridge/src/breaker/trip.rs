//! Reasons: why a breaker opened or closed, and why a request went to the
//! fallback. Each renders as one readable sentence and serialises with a
//! `type` tag.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::breaker::trip::{FallbackReason, TripReason};
//! use coreml_bridge::taxonomy::FailureKind;
//!
//! let r = TripReason::SlaViolations {
//!     p99: Duration::from_millis(160),
//!     sla: Duration::from_millis(50),
//!     factor: 3.0,
//!     times: 3,
//! };
//! assert_eq!(r.to_string(), "p99 160.0ms over 3× the SLA of 50.0ms on 3 checks in a row");
//! let f = FallbackReason::PrimaryFailed { kind: FailureKind::Timeout, message: "deadline".into() };
//! assert_eq!(f.kind(), FailureKind::Timeout);
//! assert_eq!(serde_json::to_value(&f).unwrap()["type"], "primary_failed");
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::taxonomy::FailureKind;
use crate::telemetry::latency::human_us;

fn human(d: Duration) -> String {
    human_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn default_factor() -> f64 {
    3.0
}

/// Why a breaker opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TripReason {
    /// Success rate over the window fell below the threshold.
    SuccessRate {
        /// Observed rate.
        rate: f64,
        /// Outcomes in the window.
        window: usize,
        /// The threshold.
        threshold: f64,
    },
    /// The window's p99 exceeded `factor` × the SLA on `times` checks in a row.
    SlaViolations {
        /// Observed p99.
        #[serde(with = "micros")]
        p99: Duration,
        /// The SLA.
        #[serde(with = "micros")]
        sla: Duration,
        /// The multiple of the SLA the p99 went over.
        #[serde(default = "default_factor")]
        factor: f64,
        /// Consecutive violations.
        times: u32,
    },
    /// The helper used more memory than its limit.
    MemoryOverLimit {
        /// Observed bytes.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The helper crashed too often.
    HelperCrashes {
        /// Crashes in the window.
        count: u32,
        /// The window.
        #[serde(with = "micros")]
        within: Duration,
    },
    /// A half-open probe failed.
    ProbeFailed {
        /// How it failed.
        kind: FailureKind,
    },
    /// Not recorded (should not happen).
    Unknown,
}

impl TripReason {
    /// The failure kind this trip is counted under.
    pub fn kind(&self) -> FailureKind {
        match self {
            TripReason::SlaViolations { .. } => FailureKind::Timeout,
            TripReason::MemoryOverLimit { .. } => FailureKind::MemoryPressure,
            TripReason::HelperCrashes { .. } => FailureKind::HelperCrash,
            TripReason::ProbeFailed { kind } => *kind,
            TripReason::SuccessRate { .. } | TripReason::Unknown => FailureKind::Other,
        }
    }
}

impl fmt::Display for TripReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TripReason::SuccessRate { rate, window, threshold } => write!(
                f,
                "success rate {:.1}% over the last {window} inferences is below {:.1}%",
                rate * 100.0,
                threshold * 100.0
            ),
            TripReason::SlaViolations { p99, sla, factor, times } => {
                write!(f, "p99 {} over {factor}× the SLA of {} on {times} checks in a row", human(*p99), human(*sla))
            }
            TripReason::MemoryOverLimit { bytes, limit } => {
                write!(f, "helper memory {} MiB over its limit of {} MiB", bytes >> 20, limit >> 20)
            }
            TripReason::HelperCrashes { count, within } => {
                write!(f, "{count} helper crashes within {}", human(*within))
            }
            TripReason::ProbeFailed { kind } => write!(f, "half-open probe failed ({kind})"),
            TripReason::Unknown => f.write_str("unknown reason"),
        }
    }
}

/// Why a breaker closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CloseReason {
    /// Half-open probes succeeded.
    ProbeSucceeded {
        /// Probes in a row.
        probes: u32,
    },
    /// Re-enabled through the API.
    ForcedByApi,
    /// The model is listed in `COREML_FORCE_ENABLE`.
    ForcedByEnv,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ProbeSucceeded { probes } => {
                write!(f, "{probes} half-open probe(s) succeeded")
            }
            CloseReason::ForcedByApi => f.write_str("re-enabled through the API"),
            CloseReason::ForcedByEnv => f.write_str("re-enabled by COREML_FORCE_ENABLE"),
        }
    }
}

/// Why a request was served by the fallback engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FallbackReason {
    /// The model's breaker is open.
    BreakerOpen {
        /// Why it opened.
        since: TripReason,
    },
    /// The breaker is half-open and its one probe is in flight.
    ProbeInFlight,
    /// The primary failed this request.
    PrimaryFailed {
        /// How.
        kind: FailureKind,
        /// The engine's message.
        message: String,
    },
    /// The primary engine cannot run at all (no helper, no Core ML).
    PrimaryUnavailable {
        /// Why.
        message: String,
    },
    /// The primary is still preparing this model (compiling, loading) in
    /// the background.
    PrimaryPreparing,
    /// The primary could not prepare this model.
    PrimaryNotPrepared {
        /// How it failed.
        kind: FailureKind,
        /// The engine's message.
        message: String,
    },
}

impl FallbackReason {
    /// The failure kind behind the fallback.
    pub fn kind(&self) -> FailureKind {
        match self {
            FallbackReason::BreakerOpen { since } => since.kind(),
            FallbackReason::ProbeInFlight | FallbackReason::PrimaryPreparing => FailureKind::Fallback,
            FallbackReason::PrimaryFailed { kind, .. } | FallbackReason::PrimaryNotPrepared { kind, .. } => *kind,
            FallbackReason::PrimaryUnavailable { .. } => FailureKind::Unavailable,
        }
    }

    /// A short machine label (`breaker_open`, `primary_failed`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            FallbackReason::BreakerOpen { .. } => "breaker_open",
            FallbackReason::ProbeInFlight => "probe_in_flight",
            FallbackReason::PrimaryFailed { .. } => "primary_failed",
            FallbackReason::PrimaryUnavailable { .. } => "primary_unavailable",
            FallbackReason::PrimaryNotPrepared { .. } => "primary_not_prepared",
            FallbackReason::PrimaryPreparing => "primary_preparing",
        }
    }
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackReason::BreakerOpen { since } => write!(f, "breaker open: {since}"),
            FallbackReason::ProbeInFlight => f.write_str("breaker half-open and its probe is in flight"),
            FallbackReason::PrimaryFailed { kind, message } => {
                write!(f, "Core ML failed ({kind}): {message}")
            }
            FallbackReason::PrimaryUnavailable { message } => {
                write!(f, "Core ML unavailable: {message}")
            }
            FallbackReason::PrimaryNotPrepared { kind, message } => {
                write!(f, "Core ML could not prepare the model ({kind}): {message}")
            }
            FallbackReason::PrimaryPreparing => f.write_str("Core ML is still preparing the model (compile, load)"),
        }
    }
}

/// A breaker state change (or a trip that was suppressed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transition {
    /// Closed or half-open → open.
    Opened {
        /// Why.
        reason: TripReason,
    },
    /// Open → half-open: a probe may go through.
    HalfOpened {
        /// How long it was open.
        #[serde(with = "micros")]
        open_for: Duration,
    },
    /// → closed.
    Closed {
        /// Why.
        reason: CloseReason,
    },
    /// A trigger fired while the model is pinned by `COREML_FORCE_ENABLE`.
    Suppressed {
        /// What would have opened it.
        reason: TripReason,
    },
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transition::Opened { reason } => write!(f, "breaker opened: {reason}"),
            Transition::HalfOpened { open_for } => {
                write!(f, "breaker half-open after {}: probing Core ML", human(*open_for))
            }
            Transition::Closed { reason } => write!(f, "breaker closed: {reason}"),
            Transition::Suppressed { reason } => {
                write!(f, "breaker would open ({reason}) but COREML_FORCE_ENABLE pins it closed")
            }
        }
    }
}

/// Serialises a `Duration` as integer microseconds.
pub(crate) mod micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_serialise_with_a_type_tag_and_round_trip() {
        let cases = vec![
            Transition::Opened { reason: TripReason::MemoryOverLimit { bytes: 3 << 30, limit: 2 << 30 } },
            Transition::Opened { reason: TripReason::HelperCrashes { count: 3, within: Duration::from_secs(60) } },
            Transition::HalfOpened { open_for: Duration::from_secs(5) },
            Transition::Closed { reason: CloseReason::ForcedByEnv },
            Transition::Suppressed { reason: TripReason::ProbeFailed { kind: FailureKind::HelperCrash } },
        ];
        for t in cases {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Transition>(&json).unwrap(), t, "{json}");
        }
        let t = Transition::Opened { reason: TripReason::MemoryOverLimit { bytes: 3 << 30, limit: 2 << 30 } };
        assert_eq!(t.to_string(), "breaker opened: helper memory 3072 MiB over its limit of 2048 MiB");
    }
}
