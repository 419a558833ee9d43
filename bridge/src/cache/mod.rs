//! The compiled-model cache: `.mlmodelc` bundles keyed by the plan's cache
//! key, installed atomically, shared safely between processes, bounded in
//! size, and cleaned at start-up.
//!
//! ```
//! use coreml_bridge::cache::key::{package_digest, CompileKey};
//! use coreml_bridge::cache::{ModelCache, Prepared};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let pkg = dir.path().join("m.mlpackage");
//! std::fs::create_dir_all(&pkg).unwrap();
//! std::fs::write(pkg.join("Manifest.json"), b"{}").unwrap();
//! let cache = ModelCache::open(dir.path().join("cache")).unwrap();
//! let key = CompileKey::new(package_digest(&pkg).unwrap(), "8.0", "all", "fp16", "1x3x224x224", "24A335");
//! // The first prepare compiles (here: writes a bundle into the staging directory) and installs.
//! let compile = |staging: &std::path::Path| -> std::io::Result<_> {
//!     let b = staging.join("m.mlmodelc");
//!     std::fs::create_dir_all(&b)?;
//!     std::fs::write(b.join("model.mil"), b"program")?;
//!     Ok((b, "mlprogram".to_owned()))
//! };
//! let first = cache.get_or_install(&key, compile).unwrap();
//! assert_eq!(first.how, Prepared::Installed);
//! // Later ones (any process) find it, leased so no eviction removes it under them.
//! let again = cache.get_or_install(&key, |_| -> std::io::Result<_> { unreachable!() }).unwrap();
//! assert_eq!((again.how, &again.entry.bundle), (Prepared::Hit, &first.entry.bundle));
//! assert!(again.entry.key.contains(":8.0:mlprogram:all:fp16:1x3x224x224:24A335"));
//! ```
//!
//! Layout under the root:
//!
//! | path | what |
//! |---|---|
//! | `entries/<id>/` | one entry ([`entry`]): `model.mlmodelc/`, `entry.json`, `lease` |
//! | `staging/<owner>/`, `staging/<owner>.lock` | where this process's helper compiles ([`staging`]) |
//! | `install/<owner>/` | installs being assembled ([`install`]) |
//! | `locks/<id>.lock` | one installer per key at a time ([`ModelCache::get_or_install`]) |
//! | `trash/` | evicted entries being deleted ([`evict`]) |
//!
//! Rules:
//!
//! * The key is [`key::CompileKey`] plus the backend; its source part is the
//!   package digest ([`key::package_digest`]), so a change to any file of the
//!   package (weights included) is another key.
//! * An entry appears under `entries/` by one rename of a fully written and
//!   fsynced directory, and is never renamed while it serves; a half-written
//!   entry is never under that name. [`ModelCache::lookup`] verifies the
//!   entry quickly ([`verify`]) before serving it and evicts it if it fails.
//! * Concurrent installers of one key (threads or processes) end with one
//!   entry that all of them use.
//! * Size cap ([`CacheConfig::max_bytes`], 10 GiB by default) with
//!   least-recently-used eviction after each install; entries of another
//!   Core ML version or OS build are evicted when a helper says hello
//!   ([`ModelCache::evict_stale`]); every eviction is logged with its reason
//!   and bytes freed.
//! * Opening the cache removes staging leftovers of processes that are gone,
//!   the trash, entries failing verification, and the previous layout's files.
//!
//! Owns: the directory and its rules. It must not talk to the helper: the
//! engine compiles, the cache installs.

pub mod entry;
pub mod evict;
pub mod install;
pub mod key;
pub mod staging;
pub mod verify;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sys::{lock, Lock};

pub use entry::{CacheEntry, EntryInfo};
pub use evict::{EvictReason, Eviction};
pub use install::{InstallError, Installed};
pub use key::CompileKey;
pub use staging::OutsideStaging;
pub use verify::{VerifyError, VerifyLevel};

use entry::{du, last_used, LEASE_FILE};
use staging::StagingOwner;

pub(crate) const ENTRIES: &str = "entries";
pub(crate) const TRASH: &str = "trash";
pub(crate) const LOCKS: &str = "locks";

/// Default [`CacheConfig::max_bytes`]: 10 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;

/// How a cache is opened.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Size cap in bytes; `None` for none.
    pub max_bytes: Option<u64>,
    /// Run the start-up cleanup when opening (off for read-only inspection).
    pub recover: bool,
    /// How entries are verified by the start-up cleanup.
    pub verify_on_open: VerifyLevel,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_bytes: Some(DEFAULT_MAX_BYTES), recover: true, verify_on_open: VerifyLevel::Quick }
    }
}

/// What the start-up cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Staging and install directories of processes that are gone.
    pub staging_removed: usize,
    /// Entries that failed verification (and were not in use).
    pub evicted: Vec<Eviction>,
    /// Files of the previous layout removed.
    pub legacy_removed: usize,
}

/// A shared lock on an entry: while any process holds one, no eviction
/// removes the entry. Released on drop.
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

/// How [`ModelCache::get_or_install`] got its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// It was there.
    Hit,
    /// This call compiled and installed it.
    Installed,
    /// Another installer finished first; its entry is used.
    InstalledByOther,
}

/// An entry ready to load, leased.
#[derive(Debug)]
pub struct Ready {
    /// The entry.
    pub entry: CacheEntry,
    /// Hit, or who installed it.
    pub how: Prepared,
    /// Keeps the entry from eviction until dropped.
    pub lease: Lease,
}

/// Why [`ModelCache::get_or_install`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError<E: std::error::Error + 'static> {
    /// The compiler failed.
    #[error("compiling: {0}")]
    Compile(#[source] E),
    /// Installing its bundle failed.
    #[error("installing: {0}")]
    Install(#[from] InstallError),
    /// The key lock or the lease could not be taken.
    #[error("locking {path:?}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The cache directory. Cheap to clone; clones share one staging owner.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
    cfg: CacheConfig,
    owner: Arc<StagingOwner>,
}

impl ModelCache {
    /// Opens (creating) the cache at `root` with the default configuration,
    /// running the start-up cleanup.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        Self::open_with(root, CacheConfig::default()).map(|(c, _)| c)
    }

    /// Opens (creating) the cache at `root`; returns what the start-up
    /// cleanup did (nothing when [`CacheConfig::recover`] is off).
    pub fn open_with(root: impl Into<PathBuf>, cfg: CacheConfig) -> std::io::Result<(Self, Recovery)> {
        let root = root.into();
        for d in [ENTRIES, TRASH, LOCKS] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let owner = Arc::new(StagingOwner::create(&root)?);
        let cache = Self { root, cfg, owner };
        let recovery = if cache.cfg.recover { cache.recover() } else { Recovery::default() };
        Ok((cache, recovery))
    }

    /// The start-up cleanup (see the module docs).
    pub fn recover(&self) -> Recovery {
        let staging_removed = staging::remove_leftovers(&self.root);
        self.empty_trash();
        let legacy_removed = self.remove_legacy();
        let level = self.cfg.verify_on_open;
        let evicted = self
            .entry_dirs()
            .into_iter()
            .filter_map(|(id, _)| match verify::verify_entry(&self.root.join(ENTRIES).join(&id), level) {
                Ok(_) => None,
                Err(e) => self.evict_id(&id, EvictReason::FailedVerification { detail: e.to_string() }),
            })
            .collect();
        Recovery { staging_removed, evicted, legacy_removed }
    }

    /// The previous layout: `<32 hex>/key.txt` entries, `.staging`, `.tmp-*`.
    fn remove_legacy(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.root) else { return 0 };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let old_entry =
                name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) && e.path().join("key.txt").is_file();
            if (old_entry || name == ".staging" || name.starts_with(".tmp-"))
                && std::fs::remove_dir_all(e.path()).is_ok()
            {
                tracing::info!(target: "coreml_bridge::cache", path = %e.path().display(), "removed an entry of the previous cache layout");
                n += 1;
            }
        }
        n
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    /// This process's staging directory, for the helper to compile into (on
    /// the same file system, so installing is a rename).
    pub fn staging_dir(&self) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.owner.staging)?;
        Ok(self.owner.staging.clone())
    }

    /// Where a bundle path the helper named really is, if it lies inside the
    /// staging directory: absolute, its parent canonicalised (so `..` and
    /// symlinks in the chain are resolved) inside the canonical staging
    /// directory, and itself a real directory, not a symlink. Anything else is
    /// [`OutsideStaging`]: the helper is untrusted, and the supervisor must not
    /// rename, open or delete a path it names outside what it was given.
    pub fn confine(&self, staged: &Path) -> Result<PathBuf, OutsideStaging> {
        staging::confine(&self.owner.staging, staged)
    }

    /// The installed bundle for `key`, if any, quickly verified (an entry
    /// failing verification is evicted, not served); marks it used.
    pub fn lookup(&self, key: &CompileKey) -> Option<CacheEntry> {
        let dir = self.root.join(ENTRIES).join(key.id());
        if !dir.exists() {
            return None;
        }
        match verify::verify_entry(&dir, VerifyLevel::Quick) {
            Ok(meta) if meta.compile_key == *key => {
                entry::touch(&dir);
                Some(CacheEntry::from_meta(&dir, &meta))
            }
            Ok(_) => None,
            Err(e) => {
                self.evict_id(&key.id(), EvictReason::FailedVerification { detail: e.to_string() });
                None
            }
        }
    }

    /// A lease on `entry`; fails if the entry was evicted meanwhile.
    pub fn lease(&self, entry: &CacheEntry) -> std::io::Result<Lease> {
        let path = self.root.join(ENTRIES).join(&entry.id).join(LEASE_FILE);
        let file = File::open(&path)?;
        lock(&file, Lock::Shared)?;
        // An evictor may have renamed the entry away between the open and the lock.
        let (held, now) = (file.metadata()?, std::fs::metadata(&path)?);
        if (held.dev(), held.ino()) != (now.dev(), now.ino()) {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "the entry was evicted"));
        }
        Ok(Lease { _file: file })
    }

    /// Moves a freshly compiled bundle, which must lie inside the staging
    /// directory ([`ModelCache::confine`]), into the cache
    /// ([`ModelCache::install_entry`]). Returns the installed path (another
    /// installer's when it finished first).
    pub fn install(&self, key: &CompileKey, backend: &str, staged: &Path) -> std::io::Result<PathBuf> {
        Ok(self.install_entry(key, backend, staged)?.entry.bundle)
    }

    /// The entry for `key`: found, or compiled by `compile` (given the staging
    /// directory, it returns the bundle it wrote there and its backend) and
    /// installed. One installer per key at a time across processes (the
    /// others wait, then find its entry); the result is leased. It blocks
    /// while another process compiles the key: from async code, call it in
    /// `spawn_blocking`.
    pub fn get_or_install<E, F>(&self, key: &CompileKey, compile: F) -> Result<Ready, PrepareError<E>>
    where
        E: std::error::Error + 'static,
        F: FnOnce(&Path) -> Result<(PathBuf, String), E>,
    {
        let leased = |entry: CacheEntry| self.lease(&entry).map(|lease| (entry, lease));
        if let Some(Ok((entry, lease))) = self.lookup(key).map(leased) {
            return Ok(Ready { entry, how: Prepared::Hit, lease });
        }
        let lock_path = self.root.join(LOCKS).join(format!("{}.lock", key.id()));
        let lock_err = |source| PrepareError::Lock { path: lock_path.clone(), source };
        let key_lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
        let key_lock = key_lock.map_err(lock_err)?;
        lock(&key_lock, Lock::Exclusive).map_err(lock_err)?;
        if let Some(Ok((entry, lease))) = self.lookup(key).map(leased) {
            return Ok(Ready { entry, how: Prepared::InstalledByOther, lease });
        }
        let staging = self.staging_dir().map_err(lock_err)?;
        let (bundle, backend) = compile(&staging).map_err(PrepareError::Compile)?;
        let installed = self.install_entry(key, &backend, &bundle)?;
        let lease = self.lease(&installed.entry).map_err(lock_err)?;
        let how = if installed.won { Prepared::Installed } else { Prepared::InstalledByOther };
        Ok(Ready { entry: installed.entry, how, lease })
    }

    /// Every entry, least recently used first.
    pub fn list(&self) -> Vec<EntryInfo> {
        let entries = self.root.join(ENTRIES);
        let mut out: Vec<EntryInfo> = self
            .entry_dirs()
            .into_iter()
            .map(|(id, meta)| {
                let dir = entries.join(&id);
                let in_use = File::open(dir.join(LEASE_FILE))
                    .is_ok_and(|f| !matches!(crate::sys::try_lock(&f, Lock::Exclusive), Ok(true)));
                EntryInfo {
                    bytes: meta.as_ref().map_or_else(|| du(&dir), |m| m.bytes),
                    key: meta.map(|m| m.key),
                    last_used_unix: last_used(&dir).duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    in_use,
                    id,
                }
            })
            .collect();
        out.sort_by_key(|e| (e.last_used_unix, e.id.clone()));
        out
    }

    /// Verifies every entry; with `remove`, evicts those that fail (unless in use).
    pub fn verify_all(&self, level: VerifyLevel, remove: bool) -> Vec<(String, Result<(), VerifyError>)> {
        let entries = self.root.join(ENTRIES);
        self.entry_dirs()
            .into_iter()
            .map(|(id, _)| {
                let r = verify::verify_entry(&entries.join(&id), level).map(drop);
                if let (Err(e), true) = (&r, remove) {
                    self.evict_id(&id, EvictReason::FailedVerification { detail: e.to_string() });
                }
                (id, r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
