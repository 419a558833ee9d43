//! Which program is the helper: program, arguments, optional launcher prefix and
//! environment, from the API or from `COREML_HELPER` / `COREML_HELPER_LAUNCHER`.
//!
//! ```
//! use coreml_supervisor::HelperCommand;
//!
//! let cmd = HelperCommand::new("/usr/bin/coreml-helper")
//!     .arg("--verbose")
//!     .launcher(["/opt/root/lib64/ld-linux-x86-64.so.2", "--library-path", "/opt/root/lib"])
//!     .env("COREML_DIAG_FAULT", "hang-handshake");
//! let argv = cmd.argv();
//! assert_eq!(argv[0], std::path::PathBuf::from("/opt/root/lib64/ld-linux-x86-64.so.2"));
//! assert_eq!(argv.last().unwrap(), &std::path::PathBuf::from("3"));
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable naming the helper: a program path, optionally followed by
/// whitespace-separated arguments.
pub const HELPER_ENV: &str = "COREML_HELPER";
/// Environment variable with a whitespace-separated launcher prefix (for example a
/// dynamic loader invocation) put in front of the helper program.
pub const HELPER_LAUNCHER_ENV: &str = "COREML_HELPER_LAUNCHER";

/// The command that starts a helper. The supervisor appends `--ipc-fd 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCommand {
    /// The helper executable.
    pub program: PathBuf,
    /// Arguments before `--ipc-fd 3`.
    pub args: Vec<OsString>,
    /// A prefix run instead of the program, which gets the program as an argument.
    pub launcher: Vec<OsString>,
    /// Extra environment variables for the helper.
    pub env: Vec<(OsString, OsString)>,
    /// Clear the inherited environment before applying `env`.
    pub clear_env: bool,
}

/// `COREML_HELPER` is not set or empty.
#[derive(Debug, thiserror::Error)]
#[error("{HELPER_ENV} is not set; set it to the helper program or pass a HelperCommand")]
pub struct NoHelperConfigured;

impl HelperCommand {
    /// A helper with no arguments, no launcher and the inherited environment.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            launcher: Vec::new(),
            env: Vec::new(),
            clear_env: false,
        }
    }

    /// Reads `COREML_HELPER` and `COREML_HELPER_LAUNCHER`.
    pub fn from_env() -> Result<Self, NoHelperConfigured> {
        let helper = std::env::var_os(HELPER_ENV).ok_or(NoHelperConfigured)?;
        let launcher = std::env::var_os(HELPER_LAUNCHER_ENV).unwrap_or_default();
        Self::from_words(&helper.to_string_lossy(), &launcher.to_string_lossy())
            .ok_or(NoHelperConfigured)
    }

    /// Builds a command from whitespace-separated words (the env-var format).
    pub fn from_words(helper: &str, launcher: &str) -> Option<Self> {
        let mut words = helper.split_whitespace();
        let mut cmd = Self::new(words.next()?);
        cmd.args = words.map(OsString::from).collect();
        cmd.launcher = launcher.split_whitespace().map(OsString::from).collect();
        Some(cmd)
    }

    /// Appends an argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Sets the launcher prefix.
    pub fn launcher<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.launcher = prefix.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The full argument vector: launcher, program, args, `--ipc-fd 3`.
    pub fn argv(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.launcher.iter().map(PathBuf::from).collect();
        v.push(self.program.clone());
        v.extend(self.args.iter().map(PathBuf::from));
        v.push("--ipc-fd".into());
        v.push("3".into());
        v
    }

    /// Paths the sandbox must leave readable: the program, and every absolute path
    /// (or `:`-separated list of them) in the launcher prefix.
    pub fn read_only_paths(&self) -> Vec<PathBuf> {
        let mut out = vec![self.program.clone()];
        for word in &self.launcher {
            for part in word.to_string_lossy().split(':') {
                let p = PathBuf::from(part);
                if p.is_absolute() {
                    out.push(p);
                }
            }
        }
        out
    }
}
