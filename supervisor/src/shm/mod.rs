//! Anonymous shared-memory regions owned by the supervisor: created without a
//! name anyone could open (Linux: a sealed `memfd`; macOS: `shm_open` with a
//! random name unlinked at once), sized once, passed to the helper as a file
//! descriptor, released by the kernel with the last descriptor and mapping, so
//! nothing is ever left to sweep, whatever way the app ends.
//!
//! ```
//! use coreml_supervisor::shm::Region;
//!
//! let region = Region::create(64 * 1024).unwrap();
//! region.write_at(0, b"hello");
//! assert_eq!(&region.view(0, 5), b"hello");
//! assert!(region.intact().is_ok()); // fstat: still as large as created
//! drop(region); // unmapped and closed: the memory is gone
//! ```

//! Owns: every shared-memory region the supervisor creates ([`Region`] here), the
//! slots carved from them ([`arena`]) and the ledger of slots the helper may still
//! reference ([`held`](crate::shm::held)). It must not know requests or models:
//! callers take slots and give them back.

pub mod arena;
pub(crate) mod held;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// Creating or mapping a shared-memory region failed.
#[derive(Debug, thiserror::Error)]
pub enum ShmOpenError {
    /// `memfd_create`/`shm_open`, `ftruncate` or sealing failed.
    #[error("creating an anonymous shared-memory region: {0}")]
    Open(#[source] std::io::Error),
    /// `mmap` failed.
    #[error("mapping a shared-memory region: {0}")]
    Map(#[source] std::io::Error),
}

/// A region is smaller than when it was created: someone truncated it. Using it
/// would fault (`SIGBUS`), so it is never touched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shared-memory region truncated: {actual} of {expected} bytes left")]
pub struct Truncated {
    /// Size at creation.
    pub expected: u64,
    /// Size `fstat` reports now.
    pub actual: u64,
}

/// A mapped anonymous shared-memory region; unmapped and closed on drop.
#[derive(Debug)]
pub struct Region {
    fd: OwnedFd,
    map: sys::Mapping,
    /// Set once a size check failed; the region is then never used again.
    truncated: AtomicBool,
}

impl Region {
    /// Creates, sizes (and on Linux seals) and maps an anonymous region.
    pub fn create(len: usize) -> Result<Self, ShmOpenError> {
        let fd = sys::anonymous_region(len).map_err(ShmOpenError::Open)?;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<Self, ShmOpenError> {
        let map = sys::Mapping::new(&fd, len).map_err(ShmOpenError::Map)?;
        Ok(Self {
            fd,
            map,
            truncated: AtomicBool::new(false),
        })
    }

    /// The descriptor passed to the helper with `AttachRegion`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the region has zero length.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Checks with `fstat` that the region still has its full size. Seals make a
    /// shrink impossible on Linux and macOS fixes the size at the first
    /// `ftruncate`; this is the backstop that keeps a `SIGBUS` from reaching the
    /// app should either ever fail. Once it fails the region stays failed.
    pub fn intact(&self) -> Result<(), Truncated> {
        let expected = self.map.len() as u64;
        if !self.truncated.load(Ordering::Relaxed) {
            match sys::file_size(self.fd.as_fd()) {
                Ok(actual) if actual >= expected => return Ok(()),
                Ok(actual) => {
                    self.truncated.store(true, Ordering::Relaxed);
                    return Err(Truncated { expected, actual });
                }
                Err(_) => self.truncated.store(true, Ordering::Relaxed),
            }
        }
        Err(Truncated {
            expected,
            actual: sys::file_size(self.fd.as_fd()).unwrap_or(0),
        })
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_sealed() {
        let r = Region::create(64 * 1024).unwrap();
        let e = sys::truncate(&r.fd, 4096).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EPERM),
            "shrink must be refused"
        );
        let e = sys::truncate(&r.fd, 1 << 20).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EPERM),
            "growth must be refused"
        );
        assert!(r.intact().is_ok());
    }

    #[test]
    fn a_truncated_region_is_detected_before_use() {
        // Without seals (what a platform without them would give): the helper shrinks it.
        let fd = sys::memfd(64 * 1024).unwrap();
        let r = Region::map(fd, 64 * 1024).unwrap();
        sys::truncate(&r.fd, 4096).unwrap();
        assert_eq!(
            r.intact(),
            Err(Truncated {
                expected: 64 * 1024,
                actual: 4096
            })
        );
        // It stays failed even if it grows back.
        sys::truncate(&r.fd, 64 * 1024).unwrap();
        assert!(r.intact().is_err());
    }

    #[test]
    fn no_name_exists_anywhere() {
        let before = shm_entries();
        let r = Region::create(64 * 1024).unwrap();
        assert_eq!(
            shm_entries(),
            before,
            "a region must not appear in /dev/shm"
        );
        let link = std::fs::read_link(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            r.fd.as_raw_fd()
        }))
        .unwrap();
        assert!(
            link.to_string_lossy().starts_with("/memfd:"),
            "{}",
            link.display()
        );
    }

    /// Entries of this process (v1 names were `cmlb-<pid>-…`; any name would do).
    fn shm_entries() -> Vec<std::ffi::OsString> {
        let me = format!("cmlb-{}-", std::process::id());
        let mut v: Vec<_> = std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| n.to_string_lossy().contains(&me))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}
