//! Supervises the Core ML helper process: spawn, sandbox, shared memory, deadlines,
//! restarts. An app links this crate; nothing the helper does (crash, hang, leak,
//! lie) takes the app down, hangs a caller past its deadline, or loses a request.
//!
//! ```no_run
//! use std::time::Duration;
//! use coreml_supervisor::{Supervisor, SupervisorConfig, HelperCommand, Event};
//!
//! # async fn demo() -> Result<(), coreml_supervisor::Error> {
//! let mut cfg = SupervisorConfig::new(HelperCommand::new("/usr/local/libexec/coreml-helper"));
//! cfg.deadlines.predict = Duration::from_millis(500);
//! cfg.memory_limit = Some(4 << 30);
//! let sup = Supervisor::start(cfg).await?;
//! let mut events = sup.subscribe();
//! let model = sup.load("diag:echo?shape=4", None).await?;
//! let out = sup.predict(model.id, &[("x", &[0u8; 16])]).await?;
//! assert_eq!(out.output("y").unwrap().to_vec(), vec![0u8; 16]);
//! println!("{:?}", sup.stats());
//! if let Ok(Event::HelperDied { cause, .. }) = events.try_recv() { eprintln!("{cause}"); }
//! sup.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The pieces, each in its own module: [`HelperCommand`] (what to run),
//! [`SandboxConfig`] (Linux sandbox applied before exec), [`arena`] (shared-memory
//! slots), [`memwatch`] (RSS), [`restart`] (backoff and budget), and the
//! [`Supervisor`] handle with its [`Event`] stream and [`SupervisorStats`].
//!
//! One folder per concept: `process` (spawn, sandbox, reaping, memory
//! sampling), `connection` (one helper generation's socket: frames in and out,
//! requests in flight), [`shm`] (regions, the slot [`arena`], slots the helper
//! may still hold), `predict` (copy-in, output validation) and `supervisor`
//! (the handle, the request queue, restarts and replay).
#![warn(missing_docs)]

mod config;
mod connection;
mod error;
mod events;
pub mod pool;
mod predict;
mod process;
pub mod restart;
pub mod shm;
mod supervisor;
mod sys;

pub use config::{
    Deadlines, SupervisorConfig, DEFAULT_MEMORY_LIMIT, DEFAULT_REPLY_SPIN, PRECOMPILED_ONLY_ENV,
};
pub use coreml_ipc_schema as schema;
pub use error::{DeathCause, Error, HandshakeError, Stage};
pub use events::{Event, HelperState, SupervisorStats};
pub use predict::image::ImageBytes;
pub use predict::output::{InputBuffer, OutputTensor, Prediction};
pub use process::command::{HelperCommand, NoHelperConfigured, HELPER_ENV, HELPER_LAUNCHER_ENV};
pub use process::memwatch;
pub use process::sandbox::{
    Applied, PreparedSandbox, SandboxConfig, SandboxError, SandboxReport, SYSTEM_READ_ONLY,
    SYSTEM_READ_WRITE,
};
pub use process::sandbox::{UnsandboxedHelper, DEFAULT_ENV_ALLOW, DEFAULT_HARD_MEMORY_LIMIT};
pub use process::spawn::{HelperProcess, SpawnError};
#[cfg(target_os = "linux")]
pub use process::{cgroup, landlock, seccomp};
pub use shm::arena;
pub use supervisor::{ModelId, ModelInfo, Supervisor};
pub use sys::process_alive;
