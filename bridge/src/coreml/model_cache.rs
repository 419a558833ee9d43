//! The compiled-model cache: `.mlmodelc` bundles keyed by the plan's cache
//! key, installed by atomic rename, evicted on a Core ML or OS change.
//!
//! ```
//! use coreml_bridge::coreml::model_cache::{CompileKey, ModelCache};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cache = ModelCache::open(dir.path().join("cache")).unwrap();
//! let key = CompileKey {
//!     source_sha256: "ab".repeat(32),
//!     coreml_version: "8.0".into(),
//!     compute_units: "all".into(),
//!     quantization: "fp16".into(),
//!     shape_key: "1x3x224x224".into(),
//!     os_build: "24A335".into(),
//! };
//! assert!(cache.lookup(&key).is_none());
//! // The helper compiled into a staging directory; install moves it in.
//! let staged = cache.staging_dir().unwrap().join("model.mlmodelc");
//! std::fs::create_dir_all(&staged).unwrap();
//! std::fs::write(staged.join("model.mil"), b"program").unwrap();
//! let installed = cache.install(&key, "mlprogram", &staged).unwrap();
//! assert_eq!(cache.lookup(&key).unwrap().bundle, installed);
//! assert!(key.to_string().starts_with(&"ab".repeat(32)));
//! ```
//!
//! Key (plan section 2 / 21): `{sha256}:{coreml_version}:{backend}:{compute_units}:{quantization}:{shape}:{os_build}`.
//! The backend is only known after compiling, so entries are found by the
//! other six parts and record the backend in their `key.txt`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The parts of a cache key known before compiling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompileKey {
    /// sha256 of the source model (hex).
    pub source_sha256: String,
    /// Core ML version from the helper's `Hello`.
    pub coreml_version: String,
    /// Compute units (snake_case name).
    pub compute_units: String,
    /// Quantization (`fp32`, `fp16`, `int8`, `palettized`, or `unspecified`).
    pub quantization: String,
    /// Shape key (`1x3x224x224`, `batch_1`, or `default`).
    pub shape_key: String,
    /// OS build from the helper's `Hello`.
    pub os_build: String,
}

impl fmt::Display for CompileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:*:{}:{}:{}:{}",
            self.source_sha256,
            self.coreml_version,
            self.compute_units,
            self.quantization,
            self.shape_key,
            self.os_build
        )
    }
}

impl CompileKey {
    fn dir_name(&self) -> String {
        let h = Sha256::digest(self.to_string().as_bytes());
        h.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The full key once the backend is known.
    pub fn full(&self, backend: &str) -> String {
        self.to_string().replacen(":*:", &format!(":{backend}:"), 1)
    }
}

/// A cached bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The installed `.mlmodelc`.
    pub bundle: PathBuf,
    /// The full key, backend included.
    pub key: String,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
}

impl ModelCache {
    /// Opens (creating) the cache at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A staging directory for the helper to compile into (on the same
    /// file system, so installing is a rename).
    pub fn staging_dir(&self) -> io::Result<PathBuf> {
        let p = self.root.join(".staging");
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }

    /// The installed bundle for `key`, if any.
    pub fn lookup(&self, key: &CompileKey) -> Option<CacheEntry> {
        let dir = self.root.join(key.dir_name());
        let full = std::fs::read_to_string(dir.join("key.txt")).ok()?;
        let bundle = dir.join("model.mlmodelc");
        (bundle.is_dir() && full.trim().starts_with(&key.source_sha256))
            .then(|| CacheEntry { bundle, key: full.trim().to_owned() })
    }

    /// Where a bundle path the helper named really is, if it lies inside the
    /// staging directory: absolute, its parent canonicalised (so `..` and
    /// symlinks in the chain are resolved) inside the canonical staging
    /// directory, and itself a real directory, not a symlink. Anything else is
    /// [`OutsideStaging`]: the helper is untrusted, and the supervisor must not
    /// rename, open or delete a path it names outside what it was given.
    pub fn confine(&self, staged: &Path) -> Result<PathBuf, OutsideStaging> {
        let outside = || OutsideStaging { path: staged.to_path_buf(), staging: self.root.join(".staging") };
        let root = self.staging_dir().and_then(std::fs::canonicalize).map_err(|_| outside())?;
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

    /// Moves a freshly compiled bundle, which must lie inside the staging
    /// directory ([`ModelCache::confine`]), into the cache: copied under a
    /// temporary name inside the cache if needed (symlinks refused), fsynced,
    /// then renamed into place in one step. Returns the installed path.
    pub fn install(&self, key: &CompileKey, backend: &str, staged: &Path) -> io::Result<PathBuf> {
        let staged = &self.confine(staged).map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        let final_dir = self.root.join(key.dir_name());
        let tmp = self.root.join(format!(".tmp-{}-{}", key.dir_name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let bundle_tmp = tmp.join("model.mlmodelc");
        if std::fs::rename(staged, &bundle_tmp).is_err() {
            copy_dir(staged, &bundle_tmp)?;
            let _ = std::fs::remove_dir_all(staged);
        }
        std::fs::write(tmp.join("key.txt"), key.full(backend))?;
        std::fs::File::open(tmp.join("key.txt"))?.sync_all()?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir)?;
        }
        std::fs::rename(&tmp, &final_dir)?;
        if let Ok(d) = std::fs::File::open(&self.root) {
            let _ = d.sync_all();
        }
        Ok(final_dir.join("model.mlmodelc"))
    }

    /// Removes entries compiled by another Core ML version or OS build, and
    /// stale temporaries; logs each eviction. Returns the evicted keys.
    pub fn evict_mismatched(&self, coreml_version: &str, os_build: &str) -> Vec<String> {
        let mut evicted = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else { return evicted };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            let Ok(key) = std::fs::read_to_string(path.join("key.txt")) else { continue };
            let parts: Vec<&str> = key.trim().split(':').collect();
            let matches = parts.len() == 7 && parts[1] == coreml_version && parts[6] == os_build;
            if !matches && std::fs::remove_dir_all(&path).is_ok() {
                tracing::info!(target: "coreml_bridge::cache", key = key.trim(), "evicted a bundle of another Core ML version or OS build");
                evicted.push(key.trim().to_owned());
            }
        }
        evicted
    }
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

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        let kind = e.file_type()?;
        if kind.is_symlink() {
            // Copying would read whatever the link points at, wherever that is.
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("symlink {:?} in a bundle", e.path())));
        }
        if kind.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> CompileKey {
        CompileKey {
            source_sha256: "cd".repeat(32),
            coreml_version: v.into(),
            compute_units: "cpu_and_ne".into(),
            quantization: "unspecified".into(),
            shape_key: "default".into(),
            os_build: "24A335".into(),
        }
    }

    #[test]
    fn install_replaces_and_version_changes_evict() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::open(dir.path()).unwrap();
        for round in 0..2 {
            let staged = cache.staging_dir().unwrap().join(format!("m{round}.mlmodelc"));
            std::fs::create_dir_all(staged.join("weights")).unwrap();
            std::fs::write(staged.join("weights/w.bin"), [round as u8; 8]).unwrap();
            let p = cache.install(&key("8.0"), "mlprogram", &staged).unwrap();
            assert_eq!(std::fs::read(p.join("weights/w.bin")).unwrap(), vec![round as u8; 8]);
            assert!(!staged.exists(), "moved, not copied");
        }
        let e = cache.lookup(&key("8.0")).unwrap();
        assert_eq!(e.key, format!("{}:8.0:mlprogram:cpu_and_ne:unspecified:default:24A335", "cd".repeat(32)));
        assert!(cache.lookup(&key("9.0")).is_none(), "another Core ML version is another key");
        assert!(cache.evict_mismatched("8.0", "24A335").is_empty());
        assert_eq!(cache.evict_mismatched("9.0", "24A335").len(), 1);
        assert!(cache.lookup(&key("8.0")).is_none());
    }

    /// The helper names the bundle; the cache never moves anything outside the
    /// staging directory it was given.
    #[test]
    fn bundle_paths_outside_the_staging_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::open(dir.path().join("cache")).unwrap();
        let staging = cache.staging_dir().unwrap();
        let victim = dir.path().join("victim.mlmodelc");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("secret"), b"app data").unwrap();
        std::os::unix::fs::symlink(&victim, staging.join("link.mlmodelc")).unwrap();
        std::fs::create_dir_all(staging.join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path(), staging.join("up")).unwrap();
        let hostile = [
            victim.clone(),                               // absolute, elsewhere
            staging.join("../../victim.mlmodelc"),        // staging/../..
            staging.join("link.mlmodelc"),                // a symlink out
            staging.join("up/victim.mlmodelc"),           // a symlinked parent out
            staging.join("sub/../../../victim.mlmodelc"), // dots after a real directory
            staging.clone(),                              // the staging directory itself
            staging.join(".."),
            PathBuf::from("victim.mlmodelc"), // relative
        ];
        for p in &hostile {
            assert!(cache.confine(p).is_err(), "{} accepted", p.display());
            let e = cache.install(&key("8.0"), "mlprogram", p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{}: {e}", p.display());
        }
        assert_eq!(std::fs::read(victim.join("secret")).unwrap(), b"app data", "the victim was moved");
        assert!(cache.lookup(&key("8.0")).is_none());
        // Inside, via a path with `..` that stays inside: fine.
        let ok = staging.join("sub/m.mlmodelc");
        std::fs::create_dir_all(&ok).unwrap();
        let via_dots = staging.join("sub/../sub/m.mlmodelc");
        assert_eq!(cache.confine(&via_dots).unwrap(), std::fs::canonicalize(&ok).unwrap());
        cache.install(&key("8.0"), "mlprogram", &via_dots).unwrap();
        assert!(!ok.exists());
    }
}
