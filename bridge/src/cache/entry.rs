//! One installed entry: its directory `entries/<id>/` holds the bundle
//! (`model.mlmodelc/`), its metadata (`entry.json`: the full key, the bundle's
//! files with their lengths and sha256) and its `lease` file (advisory lock
//! and last-use time).
//!
//! ```
//! use coreml_bridge::cache::entry::{EntryMeta, FileRecord};
//! use coreml_bridge::cache::key::CompileKey;
//! use coreml_bridge::inference::Sha256Digest;
//!
//! let key = CompileKey::new(Sha256Digest([1; 32]), "8.0", "all", "fp16", "default", "24A335");
//! let meta = EntryMeta::new(&key, "mlprogram", vec![FileRecord { path: "model.mil".into(), len: 7, sha256: "00".repeat(32) }]);
//! assert_eq!(meta.bytes, 7);
//! let json = serde_json::to_string(&meta).unwrap();
//! assert_eq!(serde_json::from_str::<EntryMeta>(&json).unwrap(), meta);
//! ```

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::key::CompileKey;

/// The metadata file of an entry.
pub const META_FILE: &str = "entry.json";
/// The bundle directory of an entry.
pub const BUNDLE_DIR: &str = "model.mlmodelc";
/// The lease file of an entry (lock and last-use time).
pub const LEASE_FILE: &str = "lease";
/// The version of [`EntryMeta`]'s format; entries of another are evicted.
pub const META_FORMAT: u32 = 1;

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the bundle, `/`-separated.
    pub path: String,
    /// Length in bytes.
    pub len: u64,
    /// sha256 of the content (hex).
    pub sha256: String,
}

/// `entry.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// [`META_FORMAT`] when written.
    pub format: u32,
    /// The key's parts.
    pub compile_key: CompileKey,
    /// The backend the compiler reported.
    pub backend: String,
    /// The full key (plan §21), backend included.
    pub key: String,
    /// Total bytes of the bundle's files.
    pub bytes: u64,
    /// Seconds since the epoch at install.
    pub installed_unix: u64,
    /// The bundle's files, sorted by path.
    pub files: Vec<FileRecord>,
}

impl EntryMeta {
    /// The metadata of a bundle about to be installed.
    pub fn new(key: &CompileKey, backend: &str, files: Vec<FileRecord>) -> Self {
        Self {
            format: META_FORMAT,
            compile_key: key.clone(),
            backend: backend.to_owned(),
            key: key.full(backend),
            bytes: files.iter().map(|f| f.len).sum(),
            installed_unix: now_unix(),
            files,
        }
    }

    /// Reads and parses an entry's metadata.
    pub fn read(entry_dir: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(entry_dir.join(META_FILE)).map_err(|e| format!("{META_FILE}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{META_FILE}: {e}"))
    }
}

/// An installed bundle, as [`ModelCache::lookup`](crate::cache::ModelCache::lookup) returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The installed `.mlmodelc` (never moved while the entry exists).
    pub bundle: PathBuf,
    /// The full key, backend included.
    pub key: String,
    /// The entry's id (its directory name).
    pub id: String,
    /// Bytes of the bundle.
    pub bytes: u64,
}

impl CacheEntry {
    pub(crate) fn from_meta(entry_dir: &Path, meta: &EntryMeta) -> Self {
        Self {
            bundle: entry_dir.join(BUNDLE_DIR),
            key: meta.key.clone(),
            id: entry_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            bytes: meta.bytes,
        }
    }
}

/// One line of [`ModelCache::list`](crate::cache::ModelCache::list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// The entry's id.
    pub id: String,
    /// The full key, or `None` when the metadata is unreadable.
    pub key: Option<String>,
    /// Bytes on disk of the bundle (from the metadata, else counted).
    pub bytes: u64,
    /// Seconds since the epoch of the last use (the lease's mtime).
    pub last_used_unix: u64,
    /// Whether a process holds a lease on it now.
    pub in_use: bool,
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The last-use time of an entry: its lease file's mtime.
pub(crate) fn last_used(entry_dir: &Path) -> SystemTime {
    std::fs::metadata(entry_dir.join(LEASE_FILE)).and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH)
}

/// Marks an entry used now (best effort: a read-only cache still serves).
pub(crate) fn touch(entry_dir: &Path) {
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(entry_dir.join(LEASE_FILE)) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Bytes under a directory (for entries whose metadata is unreadable).
pub(crate) fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match std::fs::symlink_metadata(e.path()) {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
