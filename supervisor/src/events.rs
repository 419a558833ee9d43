//! Telemetry: lifecycle events (broadcast) and a stats snapshot.
//!
//! ```no_run
//! # async fn demo(sup: coreml_supervisor::Supervisor) {
//! use coreml_supervisor::Event;
//! let mut events = sup.subscribe();
//! while let Ok(ev) = events.recv().await {
//!     if let Event::HelperDied { cause, .. } = &ev {
//!         eprintln!("helper died: {cause}");
//!     }
//! }
//! # }
//! ```

use std::time::Duration;

use coreml_ipc_schema::Hello;

use crate::error::DeathCause;
use crate::process::sandbox::SandboxReport;

/// Something happened to the helper.
// `HelperStarted` carries the whole sandbox report; events are rare, size is no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    /// A helper finished its handshake and setup and takes requests.
    HelperStarted {
        /// 1 for the first helper, +1 per restart.
        generation: u64,
        /// Its pid.
        pid: u32,
        /// Which sandbox parts were applied.
        sandbox: SandboxReport,
        /// Its `Hello`.
        hello: Box<Hello>,
        /// Models loaded again before it took new predictions.
        models_reloaded: usize,
    },
    /// A helper ended.
    HelperDied {
        /// Its generation.
        generation: u64,
        /// Its pid.
        pid: u32,
        /// Why.
        cause: DeathCause,
    },
    /// A restart is scheduled after `delay`.
    Restarting {
        /// Backoff before the attempt.
        delay: Duration,
        /// Restarts in the current window, this one included.
        recent_restarts: usize,
    },
    /// A restart attempt failed.
    RestartFailed {
        /// What went wrong.
        error: String,
    },
    /// The restart budget is spent; requests fail with `HelperUnavailable`.
    Unavailable {
        /// The last failure.
        reason: String,
    },
}

/// The supervisor's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperState {
    /// A helper serves requests.
    Ready,
    /// Between a death and the next ready helper.
    Restarting,
    /// The restart budget is spent.
    Unavailable(String),
    /// Shut down.
    Shutdown,
}

/// A snapshot of the supervisor's counters.
#[derive(Debug, Clone)]
pub struct SupervisorStats {
    /// The state.
    pub state: HelperState,
    /// Current helper generation.
    pub generation: u64,
    /// Current helper pid (0 when none).
    pub pid: u32,
    /// Restarts since start.
    pub restarts: u64,
    /// Last RSS sample of the helper process tree, bytes.
    pub rss_bytes: u64,
    /// Highest RSS sample of any helper, bytes.
    pub rss_high_water: u64,
    /// Requests in flight.
    pub in_flight: usize,
    /// Requests completed successfully.
    pub completed: u64,
    /// Requests that ended with an error.
    pub failed: u64,
    /// Requests retried on a new helper.
    pub retried: u64,
    /// Replies a spinning caller read itself (the fast lane, see
    /// [`SupervisorConfig::reply_spin`](crate::SupervisorConfig::reply_spin)).
    pub fast_replies: u64,
    /// Requests that were eligible for the fast lane but whose reply came after
    /// the spin budget (or while another caller was spinning).
    pub slow_replies: u64,
    /// Models registered (reloaded after restarts).
    pub models: usize,
    /// Shared-memory bytes in regions.
    pub shm_bytes: u64,
    /// Shared-memory bytes in allocated slots (including input slots the helper
    /// still holds).
    pub shm_in_use: u64,
    /// Sandbox parts applied to the current helper.
    pub sandbox: Option<SandboxReport>,
}
