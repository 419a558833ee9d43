//! Errors: one small enum per operation and the top-level [`Error`] every public
//! request returns. Failures that come from the helper name the [`Stage`].
//!
//! ```
//! use coreml_supervisor::{Error, Stage};
//! use std::time::Duration;
//!
//! let e = Error::Timeout { stage: Stage::Predict, after: Duration::from_millis(250) };
//! assert!(e.to_string().contains("predict"));
//! assert!(e.killed_helper());
//! ```

use std::fmt;
use std::time::Duration;

use coreml_ipc_schema::{ErrorCode, FrameError, ImageError, VersionError};

use crate::process::spawn::SpawnError;
use crate::shm::arena::AllocError;

/// Which kind of request (or phase) a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Starting the helper and waiting for `Hello`.
    Handshake,
    /// Mapping a shared-memory region in the helper.
    AttachRegion,
    /// `Compile`.
    Compile,
    /// `Load` (also the reload after a restart).
    Load,
    /// `Unload`.
    Unload,
    /// `Predict`.
    Predict,
    /// `GetComputePlan`.
    ComputePlan,
    /// `GetStats`.
    Stats,
    /// `Ping`.
    Ping,
    /// `Shutdown`.
    Shutdown,
    /// Waiting for a free request slot (back-pressure).
    Queue,
    /// Waiting for a restarted helper.
    Restart,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Stage::Handshake => "handshake",
            Stage::AttachRegion => "attach-region",
            Stage::Compile => "compile",
            Stage::Load => "load",
            Stage::Unload => "unload",
            Stage::Predict => "predict",
            Stage::ComputePlan => "compute-plan",
            Stage::Stats => "stats",
            Stage::Ping => "ping",
            Stage::Shutdown => "shutdown",
            Stage::Queue => "queue",
            Stage::Restart => "restart",
        };
        f.write_str(s)
    }
}

/// Why a helper connection ended (first cause wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeathCause {
    /// A request missed its deadline; the supervisor killed the helper.
    Timeout {
        /// The request that timed out.
        request_id: u64,
        /// Its stage.
        stage: Stage,
        /// How long it had.
        after: Duration,
    },
    /// The helper's RSS went over the limit; the supervisor killed it.
    MemoryLimit {
        /// The sampled RSS in bytes.
        rss: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The helper exited, was killed by a signal, or closed its socket.
    Crashed {
        /// Exit status or what happened.
        detail: String,
    },
    /// The helper broke the protocol; the supervisor killed it.
    ProtocolViolation {
        /// The request the violation is attributed to, if known.
        request_id: Option<u64>,
        /// What was wrong.
        detail: String,
    },
    /// The supervisor is shutting down or was dropped.
    Shutdown,
}

impl DeathCause {
    /// The request this death is attributed to, when the cause names one.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            DeathCause::Timeout { request_id, .. } => Some(*request_id),
            DeathCause::ProtocolViolation { request_id, .. } => *request_id,
            _ => None,
        }
    }

    /// The typed error a request of `stage` gets for this cause.
    pub fn to_error(&self, stage: Stage) -> Error {
        match self {
            DeathCause::Timeout { after, .. } => Error::Timeout {
                stage,
                after: *after,
            },
            DeathCause::MemoryLimit { rss, limit } => Error::MemoryLimit {
                stage,
                rss: *rss,
                limit: *limit,
            },
            DeathCause::Crashed { detail } => Error::HelperCrashed {
                stage,
                detail: detail.clone(),
            },
            DeathCause::ProtocolViolation { detail, .. } => Error::ProtocolViolation {
                stage,
                detail: detail.clone(),
            },
            DeathCause::Shutdown => Error::ShuttingDown,
        }
    }
}

impl fmt::Display for DeathCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeathCause::Timeout { stage, after, .. } => {
                write!(f, "{stage} timed out after {after:?}")
            }
            DeathCause::MemoryLimit { rss, limit } => {
                write!(f, "RSS {rss} bytes over the limit of {limit}")
            }
            DeathCause::Crashed { detail } => write!(f, "crashed: {detail}"),
            DeathCause::ProtocolViolation { detail, .. } => {
                write!(f, "protocol violation: {detail}")
            }
            DeathCause::Shutdown => f.write_str("shut down"),
        }
    }
}

/// Starting a helper (spawn + handshake + setup) failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The process could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// No `Hello` within the handshake deadline.
    #[error("no Hello within {0:?}")]
    Timeout(Duration),
    /// The helper ended before `Hello`.
    #[error("helper ended before Hello: {0}")]
    Closed(String),
    /// The first frame was not a well-formed `Hello`.
    #[error("bad first frame: {0}")]
    Garbage(String),
    /// The frame layer failed (oversize, truncated).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Another protocol major version.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// Attaching regions or reloading models on the new helper failed.
    #[error("setting up the new helper: {0}")]
    Setup(Box<Error>),
}

/// Every error a supervisor request can return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request (or the helper on its behalf) ran past its deadline. If the
    /// request had reached the helper, the helper was killed and restarted.
    #[error("{stage} timed out after {after:?}")]
    Timeout {
        /// The stage.
        stage: Stage,
        /// The budget.
        after: Duration,
    },
    /// The helper went over its memory limit and was killed.
    #[error("{stage}: helper killed at RSS {rss} bytes (limit {limit})")]
    MemoryLimit {
        /// The stage of the request the kill is attributed to.
        stage: Stage,
        /// The sampled RSS.
        rss: u64,
        /// The limit.
        limit: u64,
    },
    /// The helper crashed (signal, exit, closed socket) during the request.
    #[error("{stage}: helper crashed: {detail}")]
    HelperCrashed {
        /// The stage.
        stage: Stage,
        /// Exit status or what happened.
        detail: String,
    },
    /// The helper broke the protocol (bad frame, bad ref, unknown id); it was killed.
    #[error("{stage}: protocol violation: {detail}")]
    ProtocolViolation {
        /// The stage.
        stage: Stage,
        /// What was wrong.
        detail: String,
    },
    /// The helper answered the request with `Error` (it is still healthy).
    #[error("{stage}: helper error {code}: {message}")]
    Helper {
        /// The stage.
        stage: Stage,
        /// The protocol error code.
        code: ErrorCode,
        /// The helper's message.
        message: String,
    },
    /// The helper kept dying and the restart budget is spent.
    #[error("helper unavailable: {reason}")]
    HelperUnavailable {
        /// The last failure.
        reason: String,
    },
    /// The first helper could not be started.
    #[error("starting the helper: {0}")]
    Start(#[from] HandshakeError),
    /// Shared memory for the tensors could not be allocated.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The caller's request does not fit the model (names, sizes).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No model with this id is loaded.
    #[error("unknown model {0}")]
    UnknownModel(u64),
    /// A registered model could not be loaded on the current helper (it crashed,
    /// hung or was refused on its reload after a restart). It serves no
    /// predictions until a later helper generation or `Supervisor::reload` loads
    /// it again; the other models are not affected.
    #[error("model {model} ({bundle_path}) is not loaded: {reason}")]
    ModelFailed {
        /// The model's id.
        model: u64,
        /// What it was loaded from.
        bundle_path: String,
        /// Why its reload failed.
        reason: String,
    },
    /// The supervisor is shutting down.
    #[error("supervisor is shutting down")]
    ShuttingDown,
    /// An image input's bytes do not fit its feature's size, row stride and pixel format,
    /// or the model's schema describes an image inconsistently (protocol 2.1).
    #[error("image {name:?}: {source}")]
    Image {
        /// The feature.
        name: String,
        /// What does not fit.
        #[source]
        source: ImageError,
    },
    /// Precompiled mode ([`SupervisorConfig::precompiled_only`](crate::SupervisorConfig::precompiled_only))
    /// refuses compiling a model at runtime.
    #[error("compile of {source_path} refused: precompiled mode loads only .mlmodelc bundles")]
    CompileRefused {
        /// The model that was to be compiled.
        source_path: String,
    },
}

impl Error {
    /// Whether this error means the helper was killed (and is being restarted).
    pub fn killed_helper(&self) -> bool {
        matches!(
            self,
            Error::Timeout {
                stage: Stage::Handshake
                    | Stage::AttachRegion
                    | Stage::Compile
                    | Stage::Load
                    | Stage::Unload
                    | Stage::Predict
                    | Stage::ComputePlan
                    | Stage::Stats
                    | Stage::Ping
                    | Stage::Shutdown,
                ..
            } | Error::MemoryLimit { .. }
                | Error::HelperCrashed { .. }
                | Error::ProtocolViolation { .. }
        )
    }

    /// The stage, for errors that have one.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            Error::Timeout { stage, .. }
            | Error::MemoryLimit { stage, .. }
            | Error::HelperCrashed { stage, .. }
            | Error::ProtocolViolation { stage, .. }
            | Error::Helper { stage, .. } => Some(*stage),
            _ => None,
        }
    }
}
