//! Bringing Core ML back after an outage: when the supervisor gives up on a
//! helper (its restart budget is spent), the engine tries a fresh helper in
//! the background with exponential backoff, and tells the router when the
//! next try is and when Core ML is back.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::coreml::revive::Backoff;
//!
//! let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
//! let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_secs()).collect();
//! assert_eq!(waits, [1, 2, 4, 5, 5]);
//! ```
//!
//! The task holds the supervisor weakly: dropping the engine ends it.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use coreml_supervisor::Supervisor;

use crate::health::{DomainScope, HealthBus, HealthEvent};

/// Waits between tries: doubling from `first`, at most `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `first`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { next: first.min(max), max }
    }

    /// The wait before the next try, then doubles it.
    pub fn next_wait(&mut self) -> Duration {
        let w = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        w
    }
}

/// Spawns the revival of `sup` after it became unavailable for `reason`:
/// an [`HealthEvent::Outage`] with the next try's delay before each try, an
/// [`HealthEvent::Recovered`] once a helper runs again.
pub fn spawn_revival(
    sup: Weak<Supervisor>,
    health: Arc<HealthBus>,
    scope: Arc<Mutex<DomainScope>>,
    reason: String,
    mut backoff: Backoff,
) {
    let domain = move || Some(scope.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone());
    tokio::spawn(async move {
        let mut last = reason;
        loop {
            let wait = backoff.next_wait();
            health.push(HealthEvent::Outage { reason: last.clone(), next_try_in: wait, domain: domain() });
            tracing::warn!(target: "coreml_bridge::coreml", reason = last, ?wait, "Core ML helper unavailable; next try in {wait:?}");
            tokio::time::sleep(wait).await;
            let Some(s) = sup.upgrade() else { return };
            match s.revive().await {
                Ok(()) if s.hello().is_some() => {
                    let pid = s.stats().pid;
                    let detail = format!("a fresh helper runs (pid {pid})");
                    health.push(HealthEvent::Recovered { detail, domain: domain() });
                    return;
                }
                Ok(()) => last = "the helper was not ready after reviving it".into(),
                Err(coreml_supervisor::Error::ShuttingDown) => return,
                Err(e) => last = format!("reviving the helper failed: {e}"),
            }
        }
    });
}
