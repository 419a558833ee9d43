//! The shared-memory arena: regions of 16 KiB-aligned slots, first-fit allocation,
//! growth by adding regions, a hard cap on the total size.
//!
//! ```
//! use coreml_supervisor::arena::{Arena, ArenaConfig, SLOT_ALIGN};
//!
//! let arena = Arena::new(ArenaConfig { region_size: 1 << 20, max_total: 8 << 20 }).unwrap();
//! let a = arena.alloc(600 * 1024).unwrap();
//! let b = arena.alloc(600 * 1024).unwrap(); // does not fit the first region: a second one is added
//! assert_eq!(a.offset() % SLOT_ALIGN, 0);
//! assert_ne!(a.region_id(), b.region_id());
//! a.write(b"tensor bytes");
//! assert_eq!(&a.view(12), b"tensor bytes");
//! assert_eq!(arena.regions().len(), 2);
//! drop((a, b)); // slots return to the free lists; regions are released when the arena drops
//! ```

use std::sync::{Arc, Mutex};

use crate::shm::{Region, ShmOpenError, Truncated};

/// Alignment and granularity of slots (the Apple Silicon page size).
pub const SLOT_ALIGN: u64 = 16 * 1024;

/// Arena sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaConfig {
    /// Size of a regular region (a larger one is made for a larger slot).
    pub region_size: u64,
    /// Cap on the sum of all region sizes.
    pub max_total: u64,
}

impl Default for ArenaConfig {
    fn default() -> Self {
        Self {
            region_size: 64 << 20,
            max_total: 4 << 30,
        }
    }
}

/// Allocating a slot failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// Growing would exceed `max_total`.
    #[error("shared-memory arena full: need {need} bytes, {used} of {max} in use")]
    Full {
        /// Bytes requested.
        need: u64,
        /// Bytes of regions already created.
        used: u64,
        /// The cap.
        max: u64,
    },
    /// Creating a new region failed.
    #[error(transparent)]
    Region(#[from] ShmOpenError),
    /// The slot's region was truncated (by the helper) and cannot be used.
    #[error(transparent)]
    Truncated(#[from] Truncated),
    /// More than 65 536 regions.
    #[error("too many shared-memory regions")]
    TooManyRegions,
}

#[derive(Debug)]
struct RegionEntry {
    region: Arc<Region>,
    /// Free runs `(first page, page count)`, sorted, coalesced.
    free: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Inner {
    regions: Vec<RegionEntry>,
    total: u64,
}

/// The arena. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Arena {
    inner: Arc<Mutex<Inner>>,
    cfg: ArenaConfig,
}

/// A region as the helper must see it (for `AttachRegion`).
#[derive(Debug, Clone)]
pub struct RegionInfo {
    /// Region id used in tensor refs (its index).
    pub id: u32,
    /// Size in bytes.
    pub len: u64,
    /// The region (its descriptor goes to the helper).
    pub(crate) region: Arc<Region>,
}

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(SLOT_ALIGN).max(1)
}

impl Arena {
    /// An empty arena (regions are anonymous: there is nothing of a previous
    /// run to sweep).
    pub fn new(cfg: ArenaConfig) -> Result<Self, AllocError> {
        let cfg = ArenaConfig {
            region_size: pages(cfg.region_size) * SLOT_ALIGN,
            ..cfg
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                regions: Vec::new(),
                total: 0,
            })),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> ArenaConfig {
        self.cfg
    }

    /// Allocates a slot of at least `len` bytes (at least one 16 KiB page).
    pub fn alloc(&self, len: u64) -> Result<Slot, AllocError> {
        let need = pages(len);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (id, entry) in inner.regions.iter_mut().enumerate() {
            // A truncated region is never handed out again.
            if entry.region.intact().is_err() {
                continue;
            }
            if let Some(first) = take_run(&mut entry.free, need) {
                return Ok(self.slot(entry.region.clone(), id as u32, first, need, len));
            }
        }
        let size = (need * SLOT_ALIGN).max(self.cfg.region_size);
        if inner.total + size > self.cfg.max_total {
            return Err(AllocError::Full {
                need: len,
                used: inner.total,
                max: self.cfg.max_total,
            });
        }
        let index = u16::try_from(inner.regions.len()).map_err(|_| AllocError::TooManyRegions)?;
        let region = Arc::new(Region::create(size as usize)?);
        let mut free = vec![(0, size / SLOT_ALIGN)];
        let first = take_run(&mut free, need).expect("fresh region fits");
        inner.total += size;
        inner.regions.push(RegionEntry {
            region: region.clone(),
            free,
        });
        Ok(self.slot(region, u32::from(index), first, need, len))
    }

    fn slot(&self, region: Arc<Region>, id: u32, first: u64, npages: u64, len: u64) -> Slot {
        Slot {
            arena: self.inner.clone(),
            region,
            id,
            first,
            npages,
            len,
        }
    }

    /// All regions created so far, in id order.
    pub fn regions(&self) -> Vec<RegionInfo> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .regions
            .iter()
            .enumerate()
            .map(|(i, e)| RegionInfo {
                id: i as u32,
                len: e.region.len() as u64,
                region: e.region.clone(),
            })
            .collect()
    }

    /// Bytes in slots currently allocated.
    pub fn in_use(&self) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let free: u64 = inner
            .regions
            .iter()
            .flat_map(|e| e.free.iter().map(|r| r.1))
            .sum();
        inner.total - free * SLOT_ALIGN
    }
}

/// Takes a run of `n` pages first-fit from a sorted free list.
fn take_run(free: &mut Vec<(u64, u64)>, n: u64) -> Option<u64> {
    let i = free.iter().position(|&(_, len)| len >= n)?;
    let (start, len) = free[i];
    if len == n {
        free.remove(i);
    } else {
        free[i] = (start + n, len - n);
    }
    Some(start)
}

/// Returns a run to a sorted free list, coalescing with neighbours.
fn give_run(free: &mut Vec<(u64, u64)>, start: u64, n: u64) {
    let i = free.partition_point(|&(s, _)| s < start);
    free.insert(i, (start, n));
    if i + 1 < free.len() && free[i].0 + free[i].1 == free[i + 1].0 {
        free[i].1 += free[i + 1].1;
        free.remove(i + 1);
    }
    if i > 0 && free[i - 1].0 + free[i - 1].1 == free[i].0 {
        free[i - 1].1 += free[i].1;
        free.remove(i);
    }
}

/// A 16 KiB-aligned slot in a region; returned to the arena on drop.
#[derive(Debug)]
pub struct Slot {
    arena: Arc<Mutex<Inner>>,
    region: Arc<Region>,
    id: u32,
    first: u64,
    npages: u64,
    len: u64,
}

impl Slot {
    /// Region id.
    pub fn region_id(&self) -> u32 {
        self.id
    }
    /// Byte offset in the region (a multiple of [`SLOT_ALIGN`]).
    pub fn offset(&self) -> u64 {
        self.first * SLOT_ALIGN
    }
    /// Bytes requested.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether zero bytes were requested.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Usable bytes (whole pages).
    pub fn capacity(&self) -> u64 {
        self.npages * SLOT_ALIGN
    }
    /// Whether `[offset, offset+len)` of region `region` lies inside this slot.
    pub fn contains(&self, region: u32, offset: u64, len: u64) -> bool {
        region == self.id
            && offset >= self.offset()
            && offset
                .checked_add(len)
                .is_some_and(|end| end <= self.offset() + self.capacity())
    }
    /// Checks with `fstat` that the slot's region still has its full size (see
    /// [`Region::intact`]); every access of a slot whose bytes the helper can
    /// reach is preceded by this check.
    pub fn intact(&self) -> Result<(), Truncated> {
        self.region.intact()
    }
    /// Copies `src` to the start of the slot (panics if larger than the capacity).
    pub fn write(&self, src: &[u8]) {
        assert!(src.len() as u64 <= self.capacity(), "slot overflow");
        self.region.write_at(self.offset() as usize, src)
    }
    /// Copies `src` at byte `at` inside the slot.
    pub fn write_at(&self, at: u64, src: &[u8]) {
        assert!(at + src.len() as u64 <= self.capacity(), "slot overflow");
        self.region.write_at((self.offset() + at) as usize, src)
    }
    /// Fills the first `len` bytes with `byte`.
    pub fn fill(&self, len: u64, byte: u8) {
        assert!(len <= self.capacity(), "slot overflow");
        self.region.fill(self.offset() as usize, len as usize, byte)
    }
    /// A view of the first `len` bytes.
    pub fn view(&self, len: u64) -> &[u8] {
        assert!(len <= self.capacity(), "slot overflow");
        self.region.view(self.offset() as usize, len as usize)
    }
    /// A writable view of the first `len` bytes (`&mut self`: one writer).
    pub fn view_mut(&mut self, len: u64) -> &mut [u8] {
        assert!(len <= self.capacity(), "slot overflow");
        self.region.view_mut(self.offset() as usize, len as usize)
    }
    /// A view of `len` bytes at `at` inside the slot.
    pub fn view_at(&self, at: u64, len: u64) -> &[u8] {
        assert!(at + len <= self.capacity(), "slot overflow");
        self.region
            .view((self.offset() + at) as usize, len as usize)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.arena.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = inner.regions.get_mut(self.id as usize) {
            give_run(&mut entry.free, self.first, self.npages);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_list_coalesces() {
        let mut f = vec![(0, 10)];
        let a = take_run(&mut f, 3).unwrap();
        let b = take_run(&mut f, 3).unwrap();
        let c = take_run(&mut f, 4).unwrap();
        assert!(f.is_empty());
        give_run(&mut f, b, 3);
        give_run(&mut f, a, 3);
        give_run(&mut f, c, 4);
        assert_eq!(f, vec![(0, 10)]);
    }

    #[test]
    fn regions_are_released_on_drop() {
        let arena = Arena::new(ArenaConfig {
            region_size: 1 << 16,
            max_total: 1 << 20,
        })
        .unwrap();
        let s = arena.alloc(100).unwrap();
        let weak = Arc::downgrade(&arena.regions()[0].region);
        drop(s);
        drop(arena);
        assert!(weak.upgrade().is_none(), "the region outlived its arena");
    }

    #[test]
    fn cap_is_enforced() {
        let arena = Arena::new(ArenaConfig {
            region_size: 1 << 16,
            max_total: 1 << 17,
        })
        .unwrap();
        let _a = arena.alloc(1 << 16).unwrap();
        let _b = arena.alloc(1 << 16).unwrap();
        assert!(matches!(arena.alloc(1), Err(AllocError::Full { .. })));
    }
}
