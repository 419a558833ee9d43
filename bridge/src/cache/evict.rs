//! Eviction: an entry leaves by one rename into `trash/` (so it vanishes
//! whole from `entries/`), then is deleted. Every eviction is logged
//! (`coreml_bridge::cache` target, info) with its key, reason and the bytes
//! freed, and returned as an [`Eviction`]. An entry a process holds a
//! [`Lease`](crate::cache::Lease) on is skipped, whatever the reason (even
//! by `clear`); a later pass removes it once it is free.
//!
//! ```
//! use coreml_bridge::cache::evict::EvictReason;
//! use coreml_bridge::cache::key::CompileKey;
//! use coreml_bridge::cache::{CacheConfig, ModelCache};
//! use coreml_bridge::inference::Sha256Digest;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (cache, _) = ModelCache::open_with(dir.path(), CacheConfig { max_bytes: Some(10), ..Default::default() }).unwrap();
//! for n in 0..2u8 {
//!     let key = CompileKey::new(Sha256Digest([n; 32]), "8.0", "all", "fp16", "default", "24A335");
//!     let staged = cache.staging_dir().unwrap().join("m.mlmodelc");
//!     std::fs::create_dir_all(&staged).unwrap();
//!     std::fs::write(staged.join("weights.bin"), [n; 8]).unwrap();
//!     cache.install_entry(&key, "mlprogram", &staged).unwrap();
//! }
//! // 16 bytes over a 10-byte cap: the least recently used entry went.
//! assert_eq!(cache.list().len(), 1);
//! let again = cache.evict_stale("9.0", "24A335");
//! assert_eq!(again.len(), 1);
//! assert_eq!(again[0].reason, EvictReason::VersionMismatch { coreml_version: "8.0".into(), os_build: "24A335".into() });
//! assert_eq!(again[0].bytes, 8);
//! ```

use std::fmt;
use std::fs::File;
use std::path::Path;

use serde::Serialize;

use crate::cache::entry::{du, last_used, EntryMeta, LEASE_FILE};
use crate::cache::staging::unique;
use crate::cache::{ModelCache, ENTRIES, TRASH};
use crate::sys::{try_lock, Lock};

/// Why an entry was evicted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvictReason {
    /// Compiled by another Core ML version or OS build than the helper's.
    VersionMismatch {
        /// The entry's Core ML version.
        coreml_version: String,
        /// The entry's OS build.
        os_build: String,
    },
    /// Least recently used while the cache was over its size cap.
    SizeCap {
        /// The cap in bytes.
        max_bytes: u64,
    },
    /// It failed verification (start-up, lookup, `cache verify --remove`).
    FailedVerification {
        /// What failed.
        detail: String,
    },
    /// `cache clear`.
    Cleared,
}

impl fmt::Display for EvictReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvictReason::VersionMismatch { coreml_version, os_build } => {
                write!(f, "compiled by Core ML {coreml_version} on OS build {os_build}, not the helper's")
            }
            EvictReason::SizeCap { max_bytes } => write!(f, "least recently used over the {max_bytes}-byte cap"),
            EvictReason::FailedVerification { detail } => write!(f, "failed verification: {detail}"),
            EvictReason::Cleared => f.write_str("cleared"),
        }
    }
}

/// One eviction, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eviction {
    /// The entry's id.
    pub id: String,
    /// Its full key, when its metadata was readable.
    pub key: Option<String>,
    /// Why.
    pub reason: EvictReason,
    /// Bytes freed.
    pub bytes: u64,
}

impl ModelCache {
    /// Evicts the entry `id` unless a process holds a lease on it. Logs it.
    pub(crate) fn evict_id(&self, id: &str, reason: EvictReason) -> Option<Eviction> {
        let dir = self.root.join(ENTRIES).join(id);
        // Held while the entry is renamed away, so no lease can be taken meanwhile.
        let lock = File::open(dir.join(LEASE_FILE)).ok();
        if let Some(l) = &lock {
            if !matches!(try_lock(l, Lock::Exclusive), Ok(true)) {
                tracing::debug!(target: "coreml_bridge::cache", id, %reason, "not evicted: in use");
                return None;
            }
        }
        let meta = EntryMeta::read(&dir).ok();
        let bytes = meta.as_ref().map_or_else(|| du(&dir), |m| m.bytes);
        let trash = self.root.join(TRASH);
        let _ = std::fs::create_dir_all(&trash);
        let gone = trash.join(unique(&format!("{id}-")));
        if std::fs::rename(&dir, &gone).is_err() {
            return None;
        }
        let _ = crate::cache::install::sync_path(&self.root.join(ENTRIES));
        drop(lock);
        let _ = std::fs::remove_dir_all(&gone);
        let key = meta.map(|m| m.key);
        tracing::info!(target: "coreml_bridge::cache", id, key = key.as_deref().unwrap_or("-"), %reason, bytes_freed = bytes, "evicted a compiled model");
        Some(Eviction { id: id.to_owned(), key, reason, bytes })
    }

    /// The ids of all entries, with their metadata when readable.
    pub(crate) fn entry_dirs(&self) -> Vec<(String, Option<EntryMeta>)> {
        let Ok(rd) = std::fs::read_dir(self.root.join(ENTRIES)) else { return Vec::new() };
        let mut out: Vec<_> = rd
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), EntryMeta::read(&e.path()).ok()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// [`ModelCache::evict_stale`], returning the evicted keys.
    pub fn evict_mismatched(&self, coreml_version: &str, os_build: &str) -> Vec<String> {
        self.evict_stale(coreml_version, os_build).into_iter().map(|e| e.key.unwrap_or(e.id)).collect()
    }

    /// Removes entries compiled by another Core ML version or OS build than
    /// the helper's; logs each eviction. Returns them.
    pub fn evict_stale(&self, coreml_version: &str, os_build: &str) -> Vec<Eviction> {
        let mut out = Vec::new();
        for (id, meta) in self.entry_dirs() {
            let Some(meta) = meta else { continue };
            let k = &meta.compile_key;
            if k.coreml_version != coreml_version || k.os_build != os_build {
                let reason = EvictReason::VersionMismatch {
                    coreml_version: k.coreml_version.clone(),
                    os_build: k.os_build.clone(),
                };
                out.extend(self.evict_id(&id, reason));
            }
        }
        out
    }

    /// Evicts least recently used entries (never `keep`) until the cache is
    /// within its size cap. Returns the evictions.
    pub fn enforce_cap(&self, keep: Option<&str>) -> Vec<Eviction> {
        let Some(max_bytes) = self.cfg.max_bytes else { return Vec::new() };
        let entries = self.root.join(ENTRIES);
        let mut sized: Vec<_> = self
            .entry_dirs()
            .into_iter()
            .map(|(id, meta)| {
                let dir = entries.join(&id);
                let bytes = meta.map_or_else(|| du(&dir), |m| m.bytes);
                (last_used(&dir), id, bytes)
            })
            .collect();
        let mut total: u64 = sized.iter().map(|s| s.2).sum();
        sized.sort();
        let mut out = Vec::new();
        for (_, id, _) in sized {
            if total <= max_bytes {
                break;
            }
            if Some(id.as_str()) == keep {
                continue;
            }
            if let Some(e) = self.evict_id(&id, EvictReason::SizeCap { max_bytes }) {
                total = total.saturating_sub(e.bytes);
                out.push(e);
            }
        }
        out
    }

    /// Evicts every entry not in use.
    pub fn clear(&self) -> Vec<Eviction> {
        self.entry_dirs().into_iter().filter_map(|(id, _)| self.evict_id(&id, EvictReason::Cleared)).collect()
    }

    /// Deletes what evictions left in `trash/` (an evictor killed mid-delete).
    pub(crate) fn empty_trash(&self) {
        let Ok(rd) = std::fs::read_dir(self.root.join(TRASH)) else { return };
        for e in rd.flatten() {
            let _ = remove_any(&e.path());
        }
    }
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}
