//! The soak harness: inferences back to back for a fixed time, with the RSS
//! of the supervisor (this process) and of the helper sampled once per
//! window, per-window QPS, every outcome fed to a circuit breaker, and
//! descriptors, threads and shared-memory regions sampled after warm-up and
//! at the end.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::gates::soak::soak;
//! use coreml_bridge::gates::subject::DoubleSubject;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let r = soak(&DoubleSubject::default(), Duration::from_millis(300), Duration::from_secs(1)).await.unwrap();
//! assert!(r.inferences > 0 && r.failures == 0 && r.trips.is_empty());
//! assert!(r.supervisor.len() >= 2);
//! # });
//! ```

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::breaker::{Admission, Breaker, BreakerConfig, Outcome};
use crate::gates::probe::{sample, Sample};
use crate::gates::subject::GateSubject;
use crate::taxonomy::FailureKind;

/// RSS at a point of the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RssPoint {
    /// Inferences done when sampled.
    pub inferences: u64,
    /// Resident set in bytes.
    pub rss_bytes: u64,
}

/// What a soak measured.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Inferences run.
    pub inferences: u64,
    /// Of which failed.
    pub failures: u64,
    /// QPS of each window after the warm-up window.
    pub window_qps: Vec<f64>,
    /// Supervisor RSS samples after warm-up.
    pub supervisor: Vec<RssPoint>,
    /// Helper RSS samples after warm-up (empty when it cannot be sampled).
    pub helper: Vec<RssPoint>,
    /// Supervisor after warm-up and at the end.
    pub supervisor_before: Option<Sample>,
    /// See `supervisor_before`.
    pub supervisor_after: Option<Sample>,
    /// Helper after warm-up and at the end.
    pub helper_before: Option<Sample>,
    /// See `helper_before`.
    pub helper_after: Option<Sample>,
    /// Breaker transitions (none expected; the first 10 are kept).
    pub trips: Vec<String>,
    /// Requests the breaker sent to the fallback.
    pub fallbacks: u64,
    /// The worst L∞ of an output against its reference.
    pub worst_linf: f32,
}

/// The window length: a tenth of the soak, between 100 ms and 60 s.
fn window_of(length: Duration) -> Duration {
    (length / 10).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

fn keep(trips: &mut Vec<String>, t: &[crate::breaker::Transition]) {
    trips.extend(t.iter().take(10usize.saturating_sub(trips.len())).map(ToString::to_string));
}

/// Runs the soak; `Err` when the model cannot be prepared.
pub async fn soak(subject: &dyn GateSubject, length: Duration, deadline: Duration) -> Result<SoakReport, String> {
    let (model, _) = subject.prepare().await?;
    let window = window_of(length);
    let mut breaker = Breaker::new(BreakerConfig { sla_p99: Some(subject.sla()), ..BreakerConfig::default() });
    let me = std::process::id();
    let start = Instant::now();
    let mut r = SoakReport {
        inferences: 0,
        failures: 0,
        window_qps: Vec::new(),
        supervisor: Vec::new(),
        helper: Vec::new(),
        supervisor_before: None,
        supervisor_after: None,
        helper_before: None,
        helper_after: None,
        trips: Vec::new(),
        fallbacks: 0,
        worst_linf: 0.0,
    };
    let (mut window_start, mut window_count, mut windows) = (Instant::now(), 0u64, 0u32);
    while start.elapsed() < length {
        let now = start.elapsed();
        let (admission, t) = breaker.admit(now, false);
        keep(&mut r.trips, &t);
        let t0 = Instant::now();
        let out = subject.infer(&model, r.inferences, deadline).await;
        let took = t0.elapsed();
        let outcome = match &out {
            Ok(linf) => {
                r.worst_linf = r.worst_linf.max(*linf);
                Outcome::success(took)
            }
            Err(_) => {
                r.failures += 1;
                Outcome::failure(FailureKind::Other, took)
            }
        };
        if let Admission::Primary { ticket } = admission {
            keep(&mut r.trips, &breaker.record(ticket, outcome, start.elapsed()));
        } else {
            r.fallbacks += 1;
        }
        r.inferences += 1;
        window_count += 1;
        if window_start.elapsed() >= window {
            if windows == 0 {
                // The end of the warm-up window: the baseline.
                r.supervisor_before = sample(me);
                r.helper_before = subject.helper_pid().and_then(sample);
            } else {
                r.window_qps.push(window_count as f64 / window_start.elapsed().as_secs_f64());
            }
            let point = |s: Option<Sample>| s.map(|s| RssPoint { inferences: r.inferences, rss_bytes: s.rss_bytes });
            r.supervisor.extend(point(sample(me)));
            r.helper.extend(point(subject.helper_pid().and_then(sample)));
            windows += 1;
            (window_start, window_count) = (Instant::now(), 0);
        }
    }
    r.supervisor_after = sample(me);
    r.helper_after = subject.helper_pid().and_then(sample);
    subject.unload(model).await;
    Ok(r)
}
