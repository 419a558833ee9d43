//! POSIX shared-memory regions owned by the supervisor: short unique names that
//! encode the owner pid, sized once, unlinked on drop, stale ones swept at start.
//!
//! ```
//! use coreml_supervisor::shm::{Region, RegionName};
//!
//! let name = RegionName::new(0x1234_5678, 0);
//! assert!(name.as_str().len() <= 31);
//! assert_eq!(RegionName::owner_pid(name.as_str()), Some(std::process::id()));
//! let region = Region::create(name, 64 * 1024).unwrap();
//! region.write_at(0, b"hello");
//! assert_eq!(&region.view(0, 5), b"hello");
//! drop(region); // unmapped and unlinked
//! ```

//! Owns: every shared-memory region the supervisor creates ([`Region`] here), the
//! slots carved from them ([`arena`]) and the ledger of slots the helper may still
//! reference ([`held`](crate::shm::held)). It must not know requests or models:
//! callers take slots and give them back.

pub mod arena;
pub(crate) mod held;

use std::ffi::CString;
use std::fmt;

use crate::sys;

/// Name prefix of every region (after the `/`).
pub const NAME_PREFIX: &str = "cmlb-";
/// Longest shared-memory name including the leading `/` (macOS `PSHMNAMLEN`).
pub const MAX_NAME_LEN: usize = 31;

/// A region name: `/cmlb-<pid>-<instance hex>-<index hex>`, at most 31 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionName(String);

impl RegionName {
    /// The name of region `index` of supervisor instance `instance` in this process.
    pub fn new(instance: u32, index: u16) -> Self {
        let s = format!(
            "/{NAME_PREFIX}{}-{instance:08x}-{index:x}",
            std::process::id()
        );
        debug_assert!(s.len() <= MAX_NAME_LEN, "{s}");
        Self(s)
    }

    /// The name, with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owner pid encoded in a region name (with or without the leading `/`),
    /// or `None` if the name is not one of ours.
    pub fn owner_pid(name: &str) -> Option<u32> {
        let rest = name
            .strip_prefix('/')
            .unwrap_or(name)
            .strip_prefix(NAME_PREFIX)?;
        let mut parts = rest.split('-');
        let pid = parts.next()?.parse().ok()?;
        let inst = parts.next()?;
        let idx = parts.next()?;
        (parts.next().is_none() && inst.len() == 8 && !idx.is_empty()).then_some(pid)
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Creating or mapping a shared-memory region failed.
#[derive(Debug, thiserror::Error)]
pub enum ShmOpenError {
    /// `shm_open` or `ftruncate` failed.
    #[error("shm_open {name}: {source}")]
    Open {
        /// The region name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `mmap` failed.
    #[error("mmap {name}: {source}")]
    Map {
        /// The region name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A mapped shared-memory region, unlinked and unmapped on drop.
#[derive(Debug)]
pub struct Region {
    name: RegionName,
    cname: CString,
    map: sys::Mapping,
}

impl Region {
    /// Creates (exclusively), sizes once and maps a region.
    pub fn create(name: RegionName, len: usize) -> Result<Self, ShmOpenError> {
        let cname = CString::new(name.as_str()).expect("names have no NUL");
        let fd = sys::shm_create(&cname, len).map_err(|source| ShmOpenError::Open {
            name: name.0.clone(),
            source,
        })?;
        let map = match sys::Mapping::new(&fd, len) {
            Ok(m) => m,
            Err(source) => {
                let _ = sys::shm_unlink(&cname);
                return Err(ShmOpenError::Map {
                    name: name.0.clone(),
                    source,
                });
            }
        };
        // The fd is closed here; the helper opens the region by name.
        Ok(Self { name, cname, map })
    }

    /// The region's name.
    pub fn name(&self) -> &RegionName {
        &self.name
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the region has zero length.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Copies bytes in (bounds-checked, panics when out of range).
    pub fn write_at(&self, offset: usize, src: &[u8]) {
        self.map.write_at(offset, src)
    }

    /// Fills a range with one byte value.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.map.fill(offset, len, byte)
    }

    /// A writable view of a range. The arena hands each range to one slot owner,
    /// and `Slot::view_mut` takes `&mut Slot`, so the view is unique in this process.
    pub(crate) fn view_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        self.map.view_mut(offset, len)
    }

    /// A view of a range (bounds-checked, panics when out of range).
    pub fn view(&self, offset: usize, len: usize) -> &[u8] {
        self.map.view(offset, len)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let _ = sys::shm_unlink(&self.cname);
    }
}

/// Removes regions whose owner pid is dead (Linux: scans `/dev/shm`; macOS cannot
/// list shared-memory objects, so there this returns 0). Returns how many were removed.
pub fn sweep_stale() -> usize {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(name) = file.to_str() else { continue };
        let Some(pid) = RegionName::owner_pid(name) else {
            continue;
        };
        if pid == me || sys::process_alive(pid) {
            continue;
        }
        let Ok(c) = CString::new(format!("/{name}")) else {
            continue;
        };
        if sys::shm_unlink(&c).is_ok() {
            tracing::info!(
                region = name,
                owner = pid,
                "removed stale shared-memory region"
            );
            removed += 1;
        }
    }
    removed
}

/// Names of this process's live regions in `/dev/shm` (Linux; for leak checks).
pub fn own_regions() -> Vec<String> {
    let me = std::process::id();
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| RegionName::owner_pid(n) == Some(me))
                .collect()
        })
        .unwrap_or_default()
}
