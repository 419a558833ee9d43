//! Supervises the Core ML helper process: spawn, sandbox, shared memory, deadlines, restarts.
//!
//! ```
//! use coreml_supervisor::{HelperCommand, SandboxConfig};
//! let cmd = HelperCommand::new("/usr/bin/true");
//! assert_eq!(cmd.argv().len(), 3);
//! let _ = SandboxConfig::default();
//! ```
#![warn(missing_docs)]

pub mod arena;
mod command;
pub mod memwatch;
mod process;
pub mod restart;
mod sandbox;
pub mod shm;
mod sys;

pub use command::{HelperCommand, NoHelperConfigured, HELPER_ENV, HELPER_LAUNCHER_ENV};
pub use process::{HelperProcess, SpawnError};
pub use sandbox::{
    Applied, PreparedSandbox, SandboxConfig, SandboxError, SandboxReport, SYSTEM_READ_ONLY,
    SYSTEM_READ_WRITE,
};
pub use sys::process_alive;
