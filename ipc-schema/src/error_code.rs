//! Open error-code newtype: unknown codes from a newer peer still decode.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A protocol error code. Known codes have named constants; any other `u32`
/// round-trips unchanged, so a newer peer's codes never break decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u32);

macro_rules! codes {
    ($($(#[$m:meta])* $name:ident = $value:expr, $text:expr;)+) => {
        impl ErrorCode {
            $($(#[$m])* pub const $name: ErrorCode = ErrorCode($value);)+

            /// Every named code, in wire order.
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$name),+];

            /// The snake-case name of a known code, `None` for an unknown one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($value => Some($text),)+ _ => None }
            }
        }
    };
}

codes! {
    /// The request was malformed or named something that does not exist.
    BAD_REQUEST = 1, "bad_request";
    /// No model is loaded under that id.
    UNKNOWN_MODEL = 2, "unknown_model";
    /// Compiling the model failed.
    COMPILE_FAILED = 3, "compile_failed";
    /// Loading the compiled model failed.
    LOAD_FAILED = 4, "load_failed";
    /// Inputs or outputs do not match the model's schema.
    SCHEMA_MISMATCH = 5, "schema_mismatch";
    /// The request's deadline passed.
    TIMEOUT = 6, "timeout";
    /// The helper is short of memory.
    MEMORY_PRESSURE = 7, "memory_pressure";
    /// The request was cancelled.
    CANCELLED = 8, "cancelled";
    /// The helper does not support what was asked.
    UNSUPPORTED = 9, "unsupported";
    /// An internal helper error.
    INTERNAL = 10, "internal";
    /// Mapping or using a shared-memory region failed.
    SHM_FAILED = 11, "shm_failed";
    /// The helper is busy and did not queue the request.
    BUSY = 12, "busy";
    /// The frame carried a tag this peer does not know.
    UNKNOWN_MESSAGE = 13, "unknown_message";
    /// The prediction itself failed.
    PREDICT_FAILED = 14, "predict_failed";
    /// The peer's protocol major version differs.
    INCOMPATIBLE_VERSION = 15, "incompatible_version";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({})", self.0),
            None => write!(f, "unknown({})", self.0),
        }
    }
}
