//! Errors of loading ([`LoadError`]) and running ([`RunError`]) a program.
//!
//! ```
//! use coreml_mil::LoadError;
//! let e = LoadError::UnsupportedOps(vec!["einsum".into(), "lstm".into()]);
//! assert_eq!(e.to_string(), "unsupported MIL operations: einsum, lstm");
//! ```

use coreml_mlpackage::PackageError;

/// Why a package could not be loaded for execution.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The package could not be read.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The program uses operations the executor does not implement (sorted,
    /// each once). Reported at load, never at run time.
    #[error("unsupported MIL operations: {}", .0.join(", "))]
    UnsupportedOps(Vec<String>),
    /// An operation's parameters are missing or inconsistent.
    #[error("operation {op} ({op_type}): {detail}")]
    Invalid {
        op: String,
        op_type: String,
        detail: String,
    },
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An input is missing, or its shape or type does not match the program.
    #[error("input {name}: {detail}")]
    Input { name: String, detail: String },
    /// An operation failed (bad shapes at run time, an out-of-range index).
    #[error("operation {op} ({op_type}): {detail}")]
    Op {
        op: String,
        op_type: String,
        detail: String,
    },
}
