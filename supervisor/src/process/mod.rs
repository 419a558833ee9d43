//! The helper as an operating-system process: which program runs
//! ([`command`]), how it is spawned as a process-group leader and reaped
//! ([`spawn`]), the sandbox applied between fork and exec ([`sandbox`], with
//! Linux's [`seccomp`], [`landlock`] and memory [`cgroup`] parts), and its
//! memory ([`memwatch`]).
//!
//! ```
//! use coreml_supervisor::HelperCommand;
//!
//! let cmd = HelperCommand::new("/usr/libexec/coreml-helper").arg("--verbose");
//! let argv = cmd.argv();
//! assert_eq!(argv[0].to_str(), Some("/usr/libexec/coreml-helper"));
//! assert_eq!(argv.last().unwrap().to_str(), Some("3")); // the socket is always fd 3
//! ```
//!
//! Owns: fork, exec, signals and reaping, through [`crate::sys`]. It must not
//! speak the protocol or hold requests: a process is started, watched and
//! killed here; what it says is the [`connection`](crate::connection)'s business.

#[cfg(target_os = "linux")]
pub mod cgroup;
pub(crate) mod command;
pub mod exit;
#[cfg(target_os = "linux")]
pub mod landlock;
pub mod memwatch;
pub(crate) mod sandbox;
#[cfg(target_os = "linux")]
pub mod seccomp;
pub(crate) mod spawn;
