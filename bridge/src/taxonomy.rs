//! The failure taxonomy: every failed stage is counted under one
//! [`FailureKind`], and engine errors are classified into it.
//!
//! ```
//! use coreml_bridge::taxonomy::{tagged, FailureKind};
//! use coreml_bridge::inference::InferError;
//!
//! // Engines of this crate tag their messages; the tag survives `dyn InferenceEngine`.
//! let e = InferError::Backend { message: tagged(FailureKind::HelperCrash, "helper died (signal 11)") };
//! assert_eq!(FailureKind::of_infer_error(&e), FailureKind::HelperCrash);
//! assert_eq!(e.to_string(), "engine failure: [helper_crash] helper died (signal 11)");
//! ```
//!
//! An engine that does not tag its errors is classified by variant:
//! a missed deadline is a timeout, invalid inputs a schema mismatch, anything
//! else `other`.

use std::fmt;
use std::str::FromStr;

use coreml_inference::{InferError, PrepareError};
use serde::{Deserialize, Serialize};

/// Why a stage failed, or why a request did not run where it was meant to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Compiling the model (`.mlpackage` → `.mlmodelc`) failed.
    CompileError,
    /// Loading the compiled model failed.
    LoadError,
    /// Inputs or outputs did not match the model's schema.
    SchemaMismatch,
    /// A deadline passed.
    Timeout,
    /// The helper was short of memory, or over its memory limit.
    MemoryPressure,
    /// The helper process died.
    HelperCrash,
    /// The helper broke the wire protocol (and was restarted).
    ProtocolViolation,
    /// The engine could not run at all (no helper, no Core ML).
    Unavailable,
    /// A request was served by the fallback engine instead of the primary.
    Fallback,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// Every kind, in display order.
    pub const ALL: [FailureKind; 10] = [
        FailureKind::CompileError,
        FailureKind::LoadError,
        FailureKind::SchemaMismatch,
        FailureKind::Timeout,
        FailureKind::MemoryPressure,
        FailureKind::HelperCrash,
        FailureKind::ProtocolViolation,
        FailureKind::Unavailable,
        FailureKind::Fallback,
        FailureKind::Other,
    ];

    /// The snake_case name (also the tag and the Prometheus label value).
    pub const fn name(self) -> &'static str {
        match self {
            FailureKind::CompileError => "compile_error",
            FailureKind::LoadError => "load_error",
            FailureKind::SchemaMismatch => "schema_mismatch",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryPressure => "memory_pressure",
            FailureKind::HelperCrash => "helper_crash",
            FailureKind::ProtocolViolation => "protocol_violation",
            FailureKind::Unavailable => "unavailable",
            FailureKind::Fallback => "fallback",
            FailureKind::Other => "other",
        }
    }

    /// The kind named by a leading `[name]` tag of `message`, if any.
    pub fn from_tag(message: &str) -> Option<Self> {
        let rest = message.strip_prefix('[')?;
        let end = rest.find(']')?;
        rest[..end].parse().ok()
    }

    /// Classifies an inference error.
    pub fn of_infer_error(e: &InferError) -> Self {
        match e {
            InferError::DeadlineExceeded { .. } => FailureKind::Timeout,
            InferError::Invalid(_) => FailureKind::SchemaMismatch,
            InferError::Unavailable { message } => Self::from_tag(message).unwrap_or(FailureKind::Unavailable),
            InferError::Backend { message } => Self::from_tag(message).unwrap_or(FailureKind::Other),
            _ => FailureKind::Other,
        }
    }

    /// Classifies a prepare error.
    pub fn of_prepare_error(e: &PrepareError) -> Self {
        match e {
            PrepareError::DeadlineExceeded { .. } => FailureKind::Timeout,
            PrepareError::Unavailable { message } => Self::from_tag(message).unwrap_or(FailureKind::Unavailable),
            PrepareError::Backend { message } | PrepareError::InvalidModel { message } => {
                Self::from_tag(message).unwrap_or(FailureKind::LoadError)
            }
            _ => FailureKind::LoadError,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailureKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| format!("unknown failure kind `{s}`"))
    }
}

/// `message` prefixed with the tag of `kind`: `[timeout] ...`.
/// The words that start (after the tag) the message of a request that never
/// reached the helper: it waited in the queue or for a restart until its
/// deadline, or no helper could run. Such a failure is no model's doing.
pub const NOT_REACHED: &str = "never reached the helper";

/// A tagged message of a request that never reached the helper.
///
/// ```
/// use coreml_bridge::inference::InferError;
/// use coreml_bridge::taxonomy::{not_reached, reached_helper, tagged, FailureKind};
///
/// let e = InferError::Unavailable { message: not_reached(FailureKind::Timeout, "restart timed out after 2s") };
/// assert!(!reached_helper(&e));
/// assert_eq!(FailureKind::of_infer_error(&e), FailureKind::Timeout);
/// assert!(reached_helper(&InferError::Backend { message: tagged(FailureKind::Timeout, "predict timed out") }));
/// ```
pub fn not_reached(kind: FailureKind, message: impl fmt::Display) -> String {
    tagged(kind, format!("{NOT_REACHED}: {message}"))
}

/// Whether a failed request reached the helper (so its failure may be
/// blamed on the model); see [`not_reached`].
pub fn reached_helper(e: &InferError) -> bool {
    let (InferError::Unavailable { message } | InferError::Backend { message }) = e else { return true };
    let untagged = match FailureKind::from_tag(message) {
        Some(_) => message.split_once("] ").map_or(message.as_str(), |(_, rest)| rest),
        None => message.as_str(),
    };
    !untagged.starts_with(NOT_REACHED)
}

pub fn tagged(kind: FailureKind, message: impl fmt::Display) -> String {
    format!("[{}] {message}", kind.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coreml_inference::{ModelId, ValidationError};
    use std::time::Duration;

    #[test]
    fn names_round_trip_and_tags_parse() {
        for k in FailureKind::ALL {
            assert_eq!(k.name().parse::<FailureKind>().unwrap(), k);
            assert_eq!(FailureKind::from_tag(&tagged(k, "x")), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.name()));
        }
        assert_eq!(FailureKind::from_tag("[nonsense] x"), None);
        assert_eq!(FailureKind::from_tag("no tag"), None);
    }

    #[test]
    fn untagged_errors_are_classified_by_variant() {
        let k = FailureKind::of_infer_error;
        assert_eq!(k(&InferError::DeadlineExceeded { elapsed: Duration::ZERO }), FailureKind::Timeout);
        assert_eq!(
            k(&InferError::Invalid(ValidationError::MissingInput { name: "x".into() })),
            FailureKind::SchemaMismatch
        );
        assert_eq!(k(&InferError::Unavailable { message: "gone".into() }), FailureKind::Unavailable);
        assert_eq!(k(&InferError::Backend { message: "boom".into() }), FailureKind::Other);
        assert_eq!(k(&InferError::UnknownModel { model: ModelId(1) }), FailureKind::Other);
        let p = FailureKind::of_prepare_error;
        assert_eq!(
            p(&PrepareError::Backend { message: tagged(FailureKind::CompileError, "bad op") }),
            FailureKind::CompileError
        );
        assert_eq!(p(&PrepareError::DeadlineExceeded { budget: Duration::ZERO }), FailureKind::Timeout);
        assert_eq!(p(&PrepareError::InvalidModel { message: "x".into() }), FailureKind::LoadError);
    }
}
