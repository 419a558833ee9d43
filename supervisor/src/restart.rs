//! Restart policy: exponential backoff between restarts and a restart budget per
//! time window, after which the helper is declared unavailable.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use coreml_supervisor::restart::{RestartPolicy, RestartTracker};
//!
//! let policy = RestartPolicy { max_restarts: 2, window: Duration::from_secs(60), ..RestartPolicy::default() };
//! let mut t = RestartTracker::new(policy);
//! let now = Instant::now();
//! let first = t.next_delay(now).unwrap();
//! let second = t.next_delay(now).unwrap();
//! assert!(second > first);
//! assert!(t.next_delay(now).is_none()); // budget spent: unavailable
//! assert!(t.next_delay(now + Duration::from_secs(61)).is_some()); // the window moved on
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How restarts are paced and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the first restart in a window.
    pub initial_backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
    /// Restarts allowed per window.
    pub max_restarts: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
            max_restarts: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// Remembers recent restarts.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    /// A tracker with no restarts yet.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now` and returns the delay to wait before it, or `None`
    /// when the budget of the window is spent.
    pub fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return None;
        }
        let n = self.recent.len() as u32;
        self.recent.push_back(now);
        let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
        Some(
            self.policy
                .initial_backoff
                .saturating_mul(factor)
                .min(self.policy.max_backoff),
        )
    }

    /// Restarts counted in the current window.
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}
