//! MIL element types (`MILSpec.DataType`), their blob codes and widths, and the
//! model description's `ArrayDataType`.
//!
//! ```
//! use coreml_mlpackage::DataType;
//! assert_eq!(DataType::from_proto(25), Some(DataType::Int4));
//! assert_eq!(DataType::Int4.bits(), Some(4));
//! assert_eq!(DataType::from_blob_code(11), Some(DataType::UInt4));
//! ```

use std::fmt;

/// A MIL element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    Bool,
    String,
    Float16,
    Float32,
    Float64,
    BFloat16,
    Int8,
    Int16,
    Int32,
    Int64,
    Int4,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    UInt4,
    UInt2,
    UInt1,
    UInt6,
    UInt3,
    Float8E4M3FN,
    Float8E5M2,
}

impl DataType {
    /// From the `MILSpec.DataType` number (`None` for UNUSED and unknown numbers).
    pub fn from_proto(v: i32) -> Option<Self> {
        use DataType::*;
        Some(match v {
            1 => Bool,
            2 => String,
            10 => Float16,
            11 => Float32,
            12 => Float64,
            13 => BFloat16,
            21 => Int8,
            22 => Int16,
            23 => Int32,
            24 => Int64,
            25 => Int4,
            31 => UInt8,
            32 => UInt16,
            33 => UInt32,
            34 => UInt64,
            35 => UInt4,
            36 => UInt2,
            37 => UInt1,
            38 => UInt6,
            39 => UInt3,
            40 => Float8E4M3FN,
            41 => Float8E5M2,
            _ => return None,
        })
    }

    /// From a weight blob's `mil_dtype` code.
    pub fn from_blob_code(v: u32) -> Option<Self> {
        use DataType::*;
        Some(match v {
            1 => Float16,
            2 => Float32,
            3 => UInt8,
            4 => Int8,
            5 => BFloat16,
            6 => Int16,
            7 => UInt16,
            8 => Int4,
            9 => UInt1,
            10 => UInt2,
            11 => UInt4,
            12 => UInt3,
            13 => UInt6,
            14 => Int32,
            15 => UInt32,
            16 => Float8E4M3FN,
            17 => Float8E5M2,
            _ => return None,
        })
    }

    /// Bits per element (`None` for strings).
    pub fn bits(self) -> Option<u32> {
        use DataType::*;
        Some(match self {
            String => return None,
            UInt1 => 1,
            UInt2 => 2,
            UInt3 => 3,
            Int4 | UInt4 => 4,
            UInt6 => 6,
            Bool | Int8 | UInt8 | Float8E4M3FN | Float8E5M2 => 8,
            Float16 | BFloat16 | Int16 | UInt16 => 16,
            Float32 | Int32 | UInt32 => 32,
            Float64 | Int64 | UInt64 => 64,
        })
    }

    /// Whether elements are narrower than a byte (bit-packed).
    pub fn is_sub_byte(self) -> bool {
        self.bits().is_some_and(|b| b < 8)
    }

    /// Whether it is a floating-point type.
    pub fn is_float(self) -> bool {
        use DataType::*;
        matches!(
            self,
            Float16 | Float32 | Float64 | BFloat16 | Float8E4M3FN | Float8E5M2
        )
    }

    /// The name MIL uses (`fp16`, `int32`, `uint4`, ...).
    pub fn name(self) -> &'static str {
        use DataType::*;
        match self {
            Bool => "bool",
            String => "string",
            Float16 => "fp16",
            Float32 => "fp32",
            Float64 => "fp64",
            BFloat16 => "bf16",
            Int8 => "int8",
            Int16 => "int16",
            Int32 => "int32",
            Int64 => "int64",
            Int4 => "int4",
            UInt8 => "uint8",
            UInt16 => "uint16",
            UInt32 => "uint32",
            UInt64 => "uint64",
            UInt4 => "uint4",
            UInt2 => "uint2",
            UInt1 => "uint1",
            UInt6 => "uint6",
            UInt3 => "uint3",
            Float8E4M3FN => "fp8e4m3fn",
            Float8E5M2 => "fp8e5m2",
        }
    }

    /// From the MIL name (`cast`'s `dtype` parameter).
    pub fn from_name(s: &str) -> Option<Self> {
        use DataType::*;
        [
            Bool,
            String,
            Float16,
            Float32,
            Float64,
            BFloat16,
            Int8,
            Int16,
            Int32,
            Int64,
            Int4,
            UInt8,
            UInt16,
            UInt32,
            UInt64,
            UInt4,
            UInt2,
            UInt1,
            UInt6,
            UInt3,
            Float8E4M3FN,
            Float8E5M2,
        ]
        .into_iter()
        .find(|d| d.name() == s)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The element type of a model-description multi-array (`ArrayDataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArrayDataType {
    Float32,
    Float64,
    Float16,
    Int32,
    Int8,
}

impl ArrayDataType {
    /// From the enum number (`None` for INVALID and unknown numbers).
    pub fn from_proto(v: i32) -> Option<Self> {
        Some(match v {
            65568 => Self::Float32,
            65600 => Self::Float64,
            65552 => Self::Float16,
            131104 => Self::Int32,
            131080 => Self::Int8,
            _ => return None,
        })
    }

    /// The matching MIL element type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Float16 => DataType::Float16,
            Self::Int32 => DataType::Int32,
            Self::Int8 => DataType::Int8,
        }
    }
}

impl fmt::Display for ArrayDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.data_type().name())
    }
}
