//! Element types of tensors, and the Rust types that carry them.
//!
//! ```
//! use coreml_inference::{DType, Element};
//!
//! assert_eq!(DType::F32.size_in_bytes(), 4);
//! assert_eq!(<half::f16 as Element>::DTYPE, DType::F16);
//! assert_eq!("i64".parse::<DType>().unwrap(), DType::I64);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The element type of a tensor. Every tensor in this crate states its dtype
/// explicitly; nothing is inferred from byte lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE 754 binary64.
    F64,
    /// Signed 64-bit integer (token ids, class indices).
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer (raw image bytes).
    U8,
    /// Boolean, one byte per element, 0 or 1.
    Bool,
}

impl DType {
    /// All dtypes, in declaration order.
    pub const ALL: [DType; 10] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];

    /// Bytes per element.
    pub const fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Lower-case name, as used in schemas and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    /// Whether this is a floating-point type.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dtype name that [`DType::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype `{0}` (expected one of f32, f16, bf16, f64, i64, i32, i16, i8, u8, bool)")]
pub struct UnknownDType(pub String);

impl FromStr for DType {
    type Err = UnknownDType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let aliases: &[(&str, DType)] = &[
            ("float32", DType::F32),
            ("float16", DType::F16),
            ("bfloat16", DType::BF16),
            ("float64", DType::F64),
            ("int64", DType::I64),
            ("int32", DType::I32),
            ("int16", DType::I16),
            ("int8", DType::I8),
            ("uint8", DType::U8),
        ];
        DType::ALL
            .iter()
            .copied()
            .find(|d| d.name() == lower)
            .or_else(|| aliases.iter().find(|(n, _)| *n == lower).map(|(_, d)| *d))
            .ok_or_else(|| UnknownDType(s.to_owned()))
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type whose values are the elements of a tensor of [`Element::DTYPE`].
///
/// Implemented for `f32`, `f64`, `half::f16`, `half::bf16`, `i64`, `i32`,
/// `i16`, `i8` and `u8`. Sealed: the byte layout must match the dtype exactly.
pub trait Element: bytemuck::Pod + Send + Sync + sealed::Sealed + 'static {
    /// The dtype this Rust type represents.
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}

element! {
    f32 => F32,
    f64 => F64,
    half::f16 => F16,
    half::bf16 => BF16,
    i64 => I64,
    i32 => I32,
    i16 => I16,
    i8 => I8,
    u8 => U8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sizes_match_rust_types() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
            assert_eq!(d.to_string(), d.name());
        }
        assert_eq!(
            std::mem::size_of::<half::bf16>(),
            DType::BF16.size_in_bytes()
        );
        assert_eq!(std::mem::size_of::<i16>(), DType::I16.size_in_bytes());
        assert!("float33".parse::<DType>().is_err());
        assert_eq!("FLOAT32".parse::<DType>().unwrap(), DType::F32);
    }
}
