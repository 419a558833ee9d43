//! Verifying an entry against its metadata: quick (structure and lengths,
//! a `stat` per file; done on every lookup and at start-up) or full (every
//! file's sha256 too; `coreml-bridge cache verify`).
//!
//! ```
//! use coreml_bridge::cache::verify::{verify_entry, VerifyLevel};
//!
//! let dir = tempfile::tempdir().unwrap();
//! // Not an entry at all: no metadata.
//! assert!(verify_entry(dir.path(), VerifyLevel::Quick).is_err());
//! ```

use std::path::{Path, PathBuf};

use crate::cache::entry::{EntryMeta, BUNDLE_DIR, LEASE_FILE, META_FILE, META_FORMAT};
use crate::cache::key::{file_digest, regular_files};

/// How much of an entry is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyLevel {
    /// Metadata, id, the bundle's file list and lengths.
    #[default]
    Quick,
    /// [`VerifyLevel::Quick`] and every file's sha256.
    Full,
}

/// Why an entry failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `entry.json` is missing or unreadable.
    #[error("metadata: {0}")]
    Metadata(String),
    /// Written by another version of the cache.
    #[error("metadata format {found}, this build writes {}", META_FORMAT)]
    Format {
        /// The format found.
        found: u32,
    },
    /// The directory name is not the key's id (moved or tampered with).
    #[error("entry directory {dir:?} does not match its key's id {id}")]
    WrongId {
        /// The directory name.
        dir: String,
        /// The key's id.
        id: String,
    },
    /// The bundle's files differ from the list (missing, extra, other length,
    /// symlink or special file).
    #[error("bundle files differ from the metadata: {0}")]
    Files(String),
    /// A file's content differs from its recorded sha256.
    #[error("{path} does not match its sha256")]
    Content {
        /// The file, relative to the bundle.
        path: String,
    },
    /// An unexpected file beside the bundle.
    #[error("unexpected {0:?} in the entry")]
    Stray(PathBuf),
}

/// Checks the entry at `entry_dir`; returns its metadata when it passes.
pub fn verify_entry(entry_dir: &Path, level: VerifyLevel) -> Result<EntryMeta, VerifyError> {
    let meta = EntryMeta::read(entry_dir).map_err(VerifyError::Metadata)?;
    if meta.format != META_FORMAT {
        return Err(VerifyError::Format { found: meta.format });
    }
    let dir = entry_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let id = meta.compile_key.id();
    if dir != id || meta.key != meta.compile_key.full(&meta.backend) {
        return Err(VerifyError::WrongId { dir, id });
    }
    for e in std::fs::read_dir(entry_dir).map_err(|e| VerifyError::Metadata(e.to_string()))?.flatten() {
        let name = e.file_name();
        if ![META_FILE, BUNDLE_DIR, LEASE_FILE].iter().any(|n| name == *n) {
            return Err(VerifyError::Stray(e.path()));
        }
    }
    let bundle = entry_dir.join(BUNDLE_DIR);
    match std::fs::symlink_metadata(&bundle) {
        Ok(m) if m.is_dir() => {}
        _ => return Err(VerifyError::Files(format!("{BUNDLE_DIR} is not a directory"))),
    }
    let found = regular_files(&bundle).map_err(|e| VerifyError::Files(e.to_string()))?;
    if found.len() != meta.files.len() {
        return Err(VerifyError::Files(format!("{} files, {} recorded", found.len(), meta.files.len())));
    }
    for ((path, len), rec) in found.iter().zip(&meta.files) {
        let rel = rel_string(path);
        if rel != rec.path || *len != rec.len {
            return Err(VerifyError::Files(format!(
                "{rel} ({len} bytes) where {} ({} bytes) is recorded",
                rec.path, rec.len
            )));
        }
    }
    if level == VerifyLevel::Full {
        let mut buf = vec![0u8; 1 << 20];
        for rec in &meta.files {
            let digest = file_digest(&bundle.join(&rec.path), rec.len, &mut buf)
                .map_err(|e| VerifyError::Files(e.to_string()))?;
            if digest != rec.sha256 {
                return Err(VerifyError::Content { path: rec.path.clone() });
            }
        }
    }
    Ok(meta)
}

/// A relative path as the metadata writes it (`/`-separated).
pub(crate) fn rel_string(p: &Path) -> String {
    p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}
