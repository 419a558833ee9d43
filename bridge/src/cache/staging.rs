//! Staging: each open cache (each process) owns `staging/<owner>/`, where its
//! helper compiles, and `install/<owner>/`, where its installs are assembled.
//! The owner holds an exclusive lock on `staging/<owner>.lock` for as long as
//! the cache is open; the kernel drops it when the process dies, SIGKILL
//! included, and the next start-up removes what a dead owner left.
//!
//! ```
//! use coreml_bridge::cache::ModelCache;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cache = ModelCache::open(dir.path()).unwrap();
//! let staging = cache.staging_dir().unwrap();
//! assert!(staging.starts_with(dir.path().join("staging")));
//! // Only paths inside it are ever moved into the cache.
//! assert!(cache.confine(&dir.path().join("elsewhere.mlmodelc")).is_err());
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::{try_lock, Lock};

pub(crate) const STAGING: &str = "staging";
pub(crate) const INSTALL: &str = "install";

static NONCE: AtomicU64 = AtomicU64::new(0);

/// How old a lock still being created must be before a cleaner may remove it.
const NEW_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// A name unique to this process and call.
pub(crate) fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}-{t:08x}-{}", std::process::id(), NONCE.fetch_add(1, Ordering::Relaxed))
}

/// This process's staging and install directories, and the lock that says
/// they are in use.
#[derive(Debug)]
pub(crate) struct StagingOwner {
    pub staging: PathBuf,
    pub install: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl StagingOwner {
    /// Creates the lock (under a temporary name, locked, then renamed, so a
    /// cleaner never sees it unlocked), then the directories.
    pub fn create(root: &Path) -> std::io::Result<Self> {
        let staging_root = root.join(STAGING);
        std::fs::create_dir_all(&staging_root)?;
        std::fs::create_dir_all(root.join(INSTALL))?;
        let name = unique("");
        let tmp = staging_root.join(format!(".{name}.new"));
        let lock = File::create(&tmp)?;
        if !try_lock(&lock, Lock::Exclusive)? {
            return Err(std::io::Error::other("a fresh staging lock is held by another process"));
        }
        let lock_path = staging_root.join(format!("{name}.lock"));
        std::fs::rename(&tmp, &lock_path)?;
        let staging = staging_root.join(&name);
        let install = root.join(INSTALL).join(&name);
        std::fs::create_dir_all(&staging)?;
        std::fs::create_dir_all(&install)?;
        Ok(Self { staging, install, lock_path, _lock: lock })
    }
}

impl Drop for StagingOwner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        let _ = std::fs::remove_dir_all(&self.install);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Whether the owner `name` still runs (its lock is held).
fn owner_alive(root: &Path, name: &str) -> bool {
    let Ok(f) = File::open(root.join(STAGING).join(format!("{name}.lock"))) else { return false };
    !matches!(try_lock(&f, Lock::Exclusive), Ok(true))
}

/// Removes the staging and install directories (and lock files) of owners
/// that no longer run. Returns how many directories were removed.
pub(crate) fn remove_leftovers(root: &Path) -> usize {
    let mut removed = 0;
    for sub in [STAGING, INSTALL] {
        let Ok(rd) = std::fs::read_dir(root.join(sub)) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.ends_with(".lock") {
                continue; // below, once the directories are gone
            }
            if name.starts_with('.') && name.ends_with(".new") {
                // A lock being created (between its creation and its lock there is a
                // moment it is free): stale when the process that created it (its pid
                // starts the name) is gone, or when it is old and free.
                let creator_gone = name[1..]
                    .split('-')
                    .next()
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !coreml_supervisor::process_alive(pid));
                if creator_gone {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                let old = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > NEW_LOCK_GRACE);
                if let (true, Ok(f)) = (old, File::open(&path)) {
                    if matches!(try_lock(&f, Lock::Exclusive), Ok(true)) {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                continue;
            }
            if !owner_alive(root, &name) {
                let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                if gone.is_ok() {
                    removed += 1;
                    tracing::info!(target: "coreml_bridge::cache", path = %path.display(), "removed the staging leftovers of a process that is gone");
                }
            }
        }
    }
    // Locks whose directories are gone now.
    if let Ok(rd) = std::fs::read_dir(root.join(STAGING)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(owner) = name.strip_suffix(".lock") {
                if !owner_alive(root, owner) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    removed
}

/// A bundle path the helper named is not inside the staging directory.
#[derive(Debug, thiserror::Error)]
#[error("bundle path {path:?} is not inside the staging directory {staging:?}")]
pub struct OutsideStaging {
    /// The path the helper named.
    pub path: PathBuf,
    /// The staging directory it was given.
    pub staging: PathBuf,
}

/// Where `staged` really is, if it lies inside `staging` (see
/// [`ModelCache::confine`](crate::cache::ModelCache::confine)).
pub(crate) fn confine(staging: &Path, staged: &Path) -> Result<PathBuf, OutsideStaging> {
    let outside = || OutsideStaging { path: staged.to_path_buf(), staging: staging.to_path_buf() };
    let root = std::fs::canonicalize(staging).map_err(|_| outside())?;
    let (Some(parent), Some(name)) = (staged.parent(), staged.file_name()) else { return Err(outside()) };
    if !staged.is_absolute() || name == ".." || name == "." {
        return Err(outside());
    }
    let candidate = std::fs::canonicalize(parent).map_err(|_| outside())?.join(name);
    if !candidate.starts_with(&root) || candidate == root {
        return Err(outside());
    }
    match std::fs::symlink_metadata(&candidate) {
        Ok(m) if m.file_type().is_dir() => Ok(candidate),
        _ => Err(outside()),
    }
}
