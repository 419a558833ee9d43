//! Supervisor configuration: the helper command, sandbox, shared-memory arena,
//! per-stage deadlines, memory limit, restart policy and queue bound.
//!
//! ```
//! use std::time::Duration;
//! use coreml_supervisor::{HelperCommand, SupervisorConfig};
//!
//! let mut cfg = SupervisorConfig::new(HelperCommand::new("/usr/local/bin/coreml-helper"));
//! cfg.deadlines.predict = Duration::from_millis(500);
//! cfg.memory_limit = Some(2 << 30);
//! cfg.max_in_flight = 32;
//! assert_eq!(cfg.deadlines.for_stage(coreml_supervisor::Stage::Predict), Duration::from_millis(500));
//! ```

use std::path::PathBuf;
use std::time::Duration;

use coreml_ipc_schema::ComputeUnits;

use crate::error::Stage;
use crate::process::command::{HelperCommand, NoHelperConfigured};
use crate::process::sandbox::SandboxConfig;
use crate::restart::RestartPolicy;
use crate::shm::arena::ArenaConfig;

/// Time budgets per request kind. Compile and load get minutes (a first
/// Neural-Engine compile can take that long); predict is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From spawn to `Hello`.
    pub handshake: Duration,
    /// `Compile`.
    pub compile: Duration,
    /// `Load`, and each model reload after a restart.
    pub load: Duration,
    /// `Predict` (default; a call may pass its own).
    pub predict: Duration,
    /// Small control requests: attach, unload, stats, compute plan, ping.
    pub control: Duration,
    /// `Shutdown` until the helper exited.
    pub shutdown: Duration,
    /// Grace for a dead helper to be reaped and its socket to close (every
    /// process holding it gone). Past it the supervisor abandons that generation:
    /// it logs it, closes its own end of the socket, keeps the generation's
    /// shared-memory slots out of use for good, and goes on (restart or
    /// shutdown). `Supervisor::shutdown` returns within `shutdown + reap`.
    pub reap: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            compile: Duration::from_secs(15 * 60),
            load: Duration::from_secs(15 * 60),
            predict: Duration::from_secs(10),
            control: Duration::from_secs(5),
            shutdown: Duration::from_secs(2),
            reap: Duration::from_secs(2),
        }
    }
}

impl Deadlines {
    /// The default budget of a stage.
    pub fn for_stage(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Handshake => self.handshake,
            Stage::Compile => self.compile,
            Stage::Load => self.load,
            Stage::Predict => self.predict,
            Stage::Shutdown => self.shutdown,
            Stage::AttachRegion
            | Stage::Unload
            | Stage::ComputePlan
            | Stage::Stats
            | Stage::Ping => self.control,
            Stage::Queue | Stage::Restart => self.predict,
        }
    }
}

/// Everything a supervisor needs.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The helper to run.
    pub helper: HelperCommand,
    /// The sandbox (Linux).
    pub sandbox: SandboxConfig,
    /// Shared-memory sizing.
    pub arena: ArenaConfig,
    /// Budgets per stage.
    pub deadlines: Deadlines,
    /// The soft memory limit: kill the helper (typed `MemoryLimit`) when its
    /// sampled memory exceeds this many bytes (resident set minus the arena's
    /// shared pages on Linux, `phys_footprint` on macOS). Default:
    /// [`DEFAULT_MEMORY_LIMIT`]. The kernel's hard limit is
    /// [`SandboxConfig::memory_max`](crate::SandboxConfig::memory_max).
    pub memory_limit: Option<u64>,
    /// How often the RSS is sampled.
    pub memory_poll: Duration,
    /// Restart pacing and budget.
    pub restart: RestartPolicy,
    /// Requests in flight at once; further callers wait (back-pressure).
    pub max_in_flight: usize,
    /// Compute units for loads that do not say.
    pub compute_units: ComputeUnits,
    /// Directory for compiled bundles (passed in `Compile`).
    pub staging_dir: PathBuf,
    /// How long a caller may keep its CPU busy reading the socket for its own
    /// reply before it sleeps until the reply arrives (the fast lane). Used for
    /// small control requests, and for predictions of models whose helper-side
    /// time has stayed under this budget. `Duration::ZERO` turns it off. Default:
    /// [`DEFAULT_REPLY_SPIN`] when the machine has more than one CPU, else zero.
    pub reply_spin: Duration,
    /// Hand outputs to the caller as views into the shared-memory slots the helper
    /// wrote, without copying. Off by default: the helper could still write into
    /// a slot after its reply, so outputs are copied out of its reach before the
    /// caller sees them (one `memcpy` per output; docs/benchmarks.md gives the
    /// cost). Turn it on only for a helper the app trusts.
    pub zero_copy_outputs: bool,
    /// Precompiled mode: refuse every runtime `Compile` of a model file (typed
    /// [`Error::CompileRefused`](crate::Error::CompileRefused), nothing sent to
    /// the helper), so only precompiled `.mlmodelc` bundles load. `diag:` URIs
    /// are not model files and still compile. Off by default;
    /// [`SupervisorConfig::from_env`] turns it on when
    /// [`PRECOMPILED_ONLY_ENV`] is `1`.
    pub precompiled_only: bool,
}

/// The environment variable that turns on [`SupervisorConfig::precompiled_only`].
pub const PRECOMPILED_ONLY_ENV: &str = "COREML_PRECOMPILED_ONLY";

/// Default [`SupervisorConfig::memory_limit`]: 4 GiB, below the default hard
/// limit ([`DEFAULT_HARD_MEMORY_LIMIT`](crate::DEFAULT_HARD_MEMORY_LIMIT), 6 GiB).
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

/// Default [`SupervisorConfig::reply_spin`].
pub const DEFAULT_REPLY_SPIN: Duration = Duration::from_micros(100);

fn default_reply_spin() -> Duration {
    match std::thread::available_parallelism() {
        Ok(n) if n.get() > 1 => DEFAULT_REPLY_SPIN,
        _ => Duration::ZERO,
    }
}

impl SupervisorConfig {
    /// Defaults around `helper`.
    pub fn new(helper: HelperCommand) -> Self {
        Self {
            helper,
            sandbox: SandboxConfig::default(),
            arena: ArenaConfig::default(),
            deadlines: Deadlines::default(),
            memory_limit: Some(DEFAULT_MEMORY_LIMIT),
            memory_poll: Duration::from_millis(50),
            restart: RestartPolicy::default(),
            max_in_flight: 64,
            compute_units: ComputeUnits::All,
            staging_dir: std::env::temp_dir(),
            reply_spin: default_reply_spin(),
            zero_copy_outputs: false,
            precompiled_only: false,
        }
    }

    /// Defaults around the helper named by `COREML_HELPER` / `COREML_HELPER_LAUNCHER`.
    pub fn from_env() -> Result<Self, NoHelperConfigured> {
        let precompiled_only = std::env::var(PRECOMPILED_ONLY_ENV).is_ok_and(|v| v == "1");
        HelperCommand::from_env().map(Self::new).map(|c| Self {
            precompiled_only,
            ..c
        })
    }
}
