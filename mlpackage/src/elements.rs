//! Decoded tensor elements, the little-endian and bit-packed decoders shared by
//! immediate values and weight blobs, and conversions to `f32` / `i64`.
//!
//! ```
//! use coreml_mlpackage::{DataType, Elements};
//! // int4 [5, 2, 0, -4] packs to 25 C0 (least significant bits first).
//! let e = Elements::decode(DataType::Int4, &[0x25, 0xC0], 4).unwrap();
//! assert_eq!(e.to_i64(), vec![5, 2, 0, -4]);
//! // fp16 0x0001 is the smallest denormal, kept exactly.
//! let h = Elements::decode(DataType::Float16, &[0x01, 0x00], 1).unwrap();
//! assert_eq!(h.to_f32()[0], 5.9604645e-8);
//! ```

use crate::dtype::DataType;

/// Elements of one tensor, row-major. Sub-byte and 8-bit integers are widened
/// to `I8`/`U8`; FP16, BF16 and FP8 keep their raw bits (see [`Elements::to_f32`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Elements {
    F64(Vec<f64>),
    F32(Vec<f32>),
    /// IEEE binary16 bits.
    F16(Vec<u16>),
    /// bfloat16 bits.
    BF16(Vec<u16>),
    /// FP8 bits, with the format.
    F8(Vec<u8>, DataType),
    I64(Vec<i64>),
    U64(Vec<u64>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    /// int8 and int4.
    I8(Vec<i8>),
    /// uint8 and uint1/2/3/4/6.
    U8(Vec<u8>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

/// Why raw bytes do not decode as `count` elements of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Strings are never raw bytes.
    NotBytes(DataType),
    /// The byte length does not match the element count.
    Length { expected: u64, actual: u64 },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotBytes(d) => write!(f, "{d} elements cannot be stored as raw bytes"),
            Self::Length { expected, actual } => {
                write!(f, "expected {expected} bytes, found {actual}")
            }
        }
    }
}

/// Bytes needed for `count` elements of `bits` each.
pub fn packed_len(count: u64, bits: u32) -> Option<u64> {
    count.checked_mul(bits as u64).map(|b| b.div_ceil(8))
}

/// Reads `count` fields of `bits` bits (1..=8) LSB-first from a bit stream.
pub fn unpack_bits(bytes: &[u8], bits: u32, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count);
    let mask = ((1u16 << bits) - 1) as u8;
    for i in 0..count {
        let bit = i * bits as usize;
        let (byte, shift) = (bit / 8, bit % 8);
        let lo = bytes.get(byte).copied().unwrap_or(0) as u16;
        let hi = bytes.get(byte + 1).copied().unwrap_or(0) as u16;
        out.push((((hi << 8 | lo) >> shift) as u8) & mask);
    }
    out
}

macro_rules! le {
    ($bytes:expr, $t:ty, $n:expr) => {
        $bytes
            .chunks_exact($n)
            .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
            .collect::<Vec<$t>>()
    };
}

impl Elements {
    /// Decodes `count` little-endian (or bit-packed) elements of `dtype`.
    /// The length must be exact (`ceil(count·bits/8)` for sub-byte types).
    pub fn decode(dtype: DataType, bytes: &[u8], count: u64) -> Result<Self, DecodeError> {
        let bits = dtype.bits().ok_or(DecodeError::NotBytes(dtype))?;
        let expected = packed_len(count, bits).ok_or(DecodeError::Length {
            expected: u64::MAX,
            actual: bytes.len() as u64,
        })?;
        if expected != bytes.len() as u64 {
            return Err(DecodeError::Length {
                expected,
                actual: bytes.len() as u64,
            });
        }
        let n = count as usize;
        use DataType::*;
        Ok(match dtype {
            String => unreachable!("strings have no width"),
            Bool => Self::Bool(bytes.iter().map(|&b| b != 0).collect()),
            Float16 => Self::F16(le!(bytes, u16, 2)),
            BFloat16 => Self::BF16(le!(bytes, u16, 2)),
            Float32 => Self::F32(le!(bytes, f32, 4)),
            Float64 => Self::F64(le!(bytes, f64, 8)),
            Float8E4M3FN | Float8E5M2 => Self::F8(bytes.to_vec(), dtype),
            Int8 => Self::I8(bytes.iter().map(|&b| b as i8).collect()),
            UInt8 => Self::U8(bytes.to_vec()),
            Int16 => Self::I16(le!(bytes, i16, 2)),
            UInt16 => Self::U16(le!(bytes, u16, 2)),
            Int32 => Self::I32(le!(bytes, i32, 4)),
            UInt32 => Self::U32(le!(bytes, u32, 4)),
            Int64 => Self::I64(le!(bytes, i64, 8)),
            UInt64 => Self::U64(le!(bytes, u64, 8)),
            Int4 => Self::I8(
                unpack_bits(bytes, 4, n)
                    .into_iter()
                    .map(|v| ((v << 4) as i8) >> 4)
                    .collect(),
            ),
            UInt1 | UInt2 | UInt3 | UInt4 | UInt6 => Self::U8(unpack_bits(bytes, bits, n)),
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::F64(v) => v.len(),
            Self::F32(v) => v.len(),
            Self::F16(v) | Self::BF16(v) | Self::U16(v) => v.len(),
            Self::F8(v, _) | Self::U8(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::U64(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::U32(v) => v.len(),
            Self::I16(v) => v.len(),
            Self::I8(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::Str(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element as `f32` (strings give NaN; bools 0/1; FP16 and
    /// denormals exactly).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Self::F64(v) => v.iter().map(|&x| x as f32).collect(),
            Self::F32(v) => v.clone(),
            Self::F16(v) => v
                .iter()
                .map(|&b| half::f16::from_bits(b).to_f32())
                .collect(),
            Self::BF16(v) => v
                .iter()
                .map(|&b| half::bf16::from_bits(b).to_f32())
                .collect(),
            Self::F8(v, d) => v.iter().map(|&b| fp8_to_f32(b, *d)).collect(),
            Self::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Self::U64(v) => v.iter().map(|&x| x as f32).collect(),
            Self::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Self::U32(v) => v.iter().map(|&x| x as f32).collect(),
            Self::I16(v) => v.iter().map(|&x| x as f32).collect(),
            Self::U16(v) => v.iter().map(|&x| x as f32).collect(),
            Self::I8(v) => v.iter().map(|&x| x as f32).collect(),
            Self::U8(v) => v.iter().map(|&x| x as f32).collect(),
            Self::Bool(v) => v.iter().map(|&x| x as u8 as f32).collect(),
            Self::Str(v) => vec![f32::NAN; v.len()],
        }
    }

    /// Every element as `i64` (floats truncate toward zero, saturating).
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            Self::I64(v) => v.clone(),
            Self::U64(v) => v.iter().map(|&x| x.min(i64::MAX as u64) as i64).collect(),
            Self::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Self::U32(v) => v.iter().map(|&x| x as i64).collect(),
            Self::I16(v) => v.iter().map(|&x| x as i64).collect(),
            Self::U16(v) => v.iter().map(|&x| x as i64).collect(),
            Self::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Self::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Self::Bool(v) => v.iter().map(|&x| x as i64).collect(),
            Self::F64(v) => v.iter().map(|&x| x as i64).collect(),
            other => other.to_f32().into_iter().map(|x| x as i64).collect(),
        }
    }
}

/// FP8 (E4M3FN or E5M2) bits to `f32`.
fn fp8_to_f32(b: u8, d: DataType) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let (ebits, mbits, bias) = if d == DataType::Float8E5M2 {
        (5u32, 2u32, 15i32)
    } else {
        (4, 3, 7)
    };
    let e = ((b >> mbits) & ((1 << ebits) - 1) as u8) as i32;
    let m = (b & ((1 << mbits) - 1) as u8) as f32;
    let emax = (1 << ebits) - 1;
    if d == DataType::Float8E5M2 && e == emax {
        return if m == 0.0 {
            sign * f32::INFINITY
        } else {
            f32::NAN
        };
    }
    if d == DataType::Float8E4M3FN && e == emax && m as u8 == 7 {
        return f32::NAN;
    }
    let scale = (1u32 << mbits) as f32;
    if e == 0 {
        sign * (m / scale) * 2f32.powi(1 - bias)
    } else {
        sign * (1.0 + m / scale) * 2f32.powi(e - bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_byte_examples_of_the_reference() {
        let e = Elements::decode(DataType::UInt3, &[0x1B, 0x00], 5).unwrap();
        assert_eq!(e.to_i64(), vec![3, 3, 0, 0, 0]);
        // uint6 [63, 1, 2]: bits 111111 100000 010000 -> 0x7F, 0x20, 0x00
        let e = Elements::decode(DataType::UInt6, &[0x7F, 0x20, 0x00], 3).unwrap();
        assert_eq!(e.to_i64(), vec![63, 1, 2]);
        let e = Elements::decode(DataType::UInt1, &[0b0000_0101], 3).unwrap();
        assert_eq!(e.to_i64(), vec![1, 0, 1]);
        let e = Elements::decode(DataType::UInt2, &[0b1110_0100], 4).unwrap();
        assert_eq!(e.to_i64(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn fp16_examples_of_the_reference() {
        let e = Elements::decode(DataType::Float16, &[0x00, 0x3c, 0x00, 0xfc, 0xa8, 0x00], 3);
        let v = e.unwrap().to_f32();
        assert_eq!(v[0], 1.0);
        assert_eq!(v[1], f32::NEG_INFINITY);
        assert_eq!(v[2], 168.0 * 2f32.powi(-24)); // about 1e-5, a denormal
    }

    #[test]
    fn wrong_lengths_are_errors() {
        assert_eq!(
            Elements::decode(DataType::Float32, &[0; 7], 2),
            Err(DecodeError::Length {
                expected: 8,
                actual: 7
            })
        );
        assert!(Elements::decode(DataType::Int4, &[0; 2], 5).is_err());
        assert!(Elements::decode(DataType::String, &[], 0).is_err());
        assert!(Elements::decode(DataType::Float32, &[], u64::MAX).is_err());
    }
}
