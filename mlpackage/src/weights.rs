//! `weight.bin`, MIL blob storage v2: a 64-byte header, then per blob a 64-byte
//! metadata record (at the offset a `BlobFileValue` names) followed by its data.
//! The file is memory-mapped; every read is bounds-checked.
//!
//! ```
//! use coreml_mlpackage::{weights::WeightFile, DataType};
//! // One fp32 blob [1.0, 2.0] at offset 64.
//! let mut f = vec![0u8; 64];
//! f[0..4].copy_from_slice(&1u32.to_le_bytes());
//! f[4..8].copy_from_slice(&2u32.to_le_bytes());
//! let mut meta = vec![0u8; 64];
//! meta[0..4].copy_from_slice(&0xDEADBEEFu32.to_le_bytes());
//! meta[4..8].copy_from_slice(&2u32.to_le_bytes());
//! meta[8..16].copy_from_slice(&8u64.to_le_bytes());
//! meta[16..24].copy_from_slice(&128u64.to_le_bytes());
//! f.extend(meta);
//! f.extend(1f32.to_le_bytes());
//! f.extend(2f32.to_le_bytes());
//! let w = WeightFile::from_bytes("weight.bin", f).unwrap();
//! let blob = w.blob(64).unwrap();
//! assert_eq!(blob.dtype, DataType::Float32);
//! assert_eq!(blob.decode(2).unwrap().to_f32(), vec![1.0, 2.0]);
//! assert_eq!(w.blobs().unwrap().len(), 1);
//! ```

use std::fs::File;
use std::path::Path;

use crate::dtype::DataType;
use crate::elements::Elements;
use crate::error::PackageError;

const SENTINEL: u32 = 0xDEAD_BEEF;
const HEADER: usize = 64;
const META: usize = 64;

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
    Empty,
}

/// A weight file, mapped (or held) in memory.
pub struct WeightFile {
    name: String,
    bytes: Bytes,
    count: u32,
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("name", &self.name)
            .field("len", &self.data().len())
            .field("count", &self.count)
            .finish()
    }
}

/// One blob: its element type, its data bytes (borrowed from the map) and the
/// number of unused bits at the end of a sub-byte blob.
#[derive(Debug, Clone, Copy)]
pub struct BlobView<'a> {
    /// Offset of the metadata record.
    pub offset: u64,
    pub dtype: DataType,
    pub bytes: &'a [u8],
    pub padding_bits: u8,
}

impl BlobView<'_> {
    /// Number of elements the blob holds.
    pub fn count(&self) -> u64 {
        let bits = self.dtype.bits().unwrap_or(8) as u64;
        (self.bytes.len() as u64 * 8 - self.padding_bits as u64) / bits
    }

    /// Decodes the blob as `count` elements (must equal [`count`](Self::count)).
    pub fn decode(&self, count: u64) -> Result<Elements, String> {
        if count != self.count() {
            return Err(format!(
                "holds {} {} elements, the type says {count}",
                self.count(),
                self.dtype
            ));
        }
        Elements::decode(self.dtype, self.bytes, count).map_err(|e| e.to_string())
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl WeightFile {
    /// Maps `path`; `name` is the package-relative name used in errors.
    pub fn open(name: &str, path: &Path) -> Result<Self, PackageError> {
        let io = |source| PackageError::Io {
            file: name.to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let bytes = if len == 0 {
            Bytes::Empty
        } else {
            Bytes::Mapped(crate::sys::map_read_only(&file).map_err(io)?)
        };
        Self::check_header(name.to_string(), bytes)
    }

    /// A weight file held in memory (tests, fuzzing).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self, PackageError> {
        Self::check_header(name.to_string(), Bytes::Owned(bytes))
    }

    fn check_header(name: String, bytes: Bytes) -> Result<Self, PackageError> {
        let mut w = Self {
            name,
            bytes,
            count: 0,
        };
        let d = w.data();
        if d.len() < HEADER {
            return Err(w.err(
                "storage_header",
                format!("file is {} bytes, the header needs {HEADER}", d.len()),
            ));
        }
        let (count, version) = (u32_at(d, 0), u32_at(d, 4));
        if version != 2 {
            return Err(w.err(
                "storage_header.version",
                format!("{version}, only blob storage version 2 is supported"),
            ));
        }
        w.count = count;
        Ok(w)
    }

    fn data(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
            Bytes::Empty => &[],
        }
    }

    fn err(&self, field: impl Into<String>, detail: impl Into<String>) -> PackageError {
        PackageError::invalid(&self.name, field, detail)
    }

    /// The package-relative name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// File size in bytes.
    pub fn len(&self) -> u64 {
        self.data().len() as u64
    }

    /// Whether the file is empty (never true for a file that opened).
    pub fn is_empty(&self) -> bool {
        self.data().is_empty()
    }

    /// The header's blob count.
    pub fn header_count(&self) -> u32 {
        self.count
    }

    /// The blob whose metadata record is at `offset`, checked: sentinel,
    /// known dtype, data offset and size inside the file, padding.
    pub fn blob(&self, offset: u64) -> Result<BlobView<'_>, PackageError> {
        let d = self.data();
        let f = |field: &str| format!("blob@{offset}.{field}");
        let start = usize::try_from(offset)
            .ok()
            .filter(|&o| o >= HEADER && o.checked_add(META).is_some_and(|e| e <= d.len()))
            .ok_or_else(|| {
                self.err(
                    f("offset"),
                    format!(
                        "no 64-byte metadata record fits at {offset} in a {}-byte file",
                        d.len()
                    ),
                )
            })?;
        let m = &d[start..start + META];
        if u32_at(m, 0) != SENTINEL {
            return Err(self.err(
                f("sentinel"),
                format!("{:#010x}, expected 0xdeadbeef", u32_at(m, 0)),
            ));
        }
        let code = u32_at(m, 4);
        let dtype = DataType::from_blob_code(code)
            .ok_or_else(|| self.err(f("mil_dtype"), format!("unknown blob dtype code {code}")))?;
        let size = u64_at(m, 8);
        let data_offset = u64_at(m, 16);
        let padding = u64_at(m, 24);
        let end = data_offset.checked_add(size);
        if data_offset < offset + META as u64 || end.is_none_or(|e| e > d.len() as u64) {
            return Err(self.err(
                f("offset"),
                format!(
                    "data at {data_offset} of {size} bytes does not lie after the record inside the {}-byte file",
                    d.len()
                ),
            ));
        }
        let max_padding = if dtype.is_sub_byte() { 7 } else { 0 };
        if padding > max_padding || (padding > 0 && size == 0) {
            return Err(self.err(
                f("padding_size_in_bits"),
                format!("{padding} is not allowed for {dtype}"),
            ));
        }
        let bits = dtype.bits().expect("blob types have a width") as u64;
        if bits >= 8 && !size.is_multiple_of(bits / 8) {
            return Err(self.err(
                f("sizeInBytes"),
                format!("{size} is not a multiple of the {dtype} element size"),
            ));
        }
        let (a, b) = (data_offset as usize, (data_offset + size) as usize);
        Ok(BlobView {
            offset,
            dtype,
            bytes: &d[a..b],
            padding_bits: padding as u8,
        })
    }

    /// Every blob in file order: from 64, `next = align64(data + size)`.
    /// Checks that the walk matches the header's count.
    pub fn blobs(&self) -> Result<Vec<BlobView<'_>>, PackageError> {
        let mut out = Vec::new();
        let mut at = HEADER as u64;
        while at < self.len() && out.len() < self.count as usize {
            let b = self.blob(at)?;
            let end = b.bytes.as_ptr() as u64 - self.data().as_ptr() as u64 + b.bytes.len() as u64;
            out.push(b);
            at = end.div_ceil(64) * 64;
        }
        if out.len() != self.count as usize {
            return Err(self.err(
                "storage_header.count",
                format!("says {} blobs, the file holds {}", self.count, out.len()),
            ));
        }
        Ok(out)
    }
}
