//! Installing a compiled bundle: assembled in `install/<owner>/<n>/` inside
//! the cache root (the same file system, so the last step is a rename),
//! every file and directory fsynced, the metadata written and fsynced, then
//! one `rename(2)` to `entries/<id>/`. An entry is complete at the moment it
//! appears under its name, and it is never renamed afterwards (the Neural
//! Engine's own cache is keyed by path). When another process installed the
//! same key first, its entry stays and is used: the rename fails because the
//! target exists and is not empty, and the loser drops its copy.
//!
//! ```
//! use coreml_bridge::cache::key::CompileKey;
//! use coreml_bridge::cache::ModelCache;
//! use coreml_bridge::inference::Sha256Digest;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cache = ModelCache::open(dir.path()).unwrap();
//! let key = CompileKey::new(Sha256Digest([7; 32]), "8.0", "all", "fp16", "default", "24A335");
//! let staged = cache.staging_dir().unwrap().join("m.mlmodelc");
//! std::fs::create_dir_all(&staged).unwrap();
//! std::fs::write(staged.join("model.mil"), b"program").unwrap();
//! let installed = cache.install_entry(&key, "mlprogram", &staged).unwrap();
//! assert!(installed.won);
//! assert_eq!(cache.lookup(&key).unwrap(), installed.entry);
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::cache::entry::{CacheEntry, EntryMeta, FileRecord, BUNDLE_DIR, LEASE_FILE, META_FILE};
use crate::cache::evict::EvictReason;
use crate::cache::key::{hash_into, regular_files, CompileKey, KeyError};
use crate::cache::staging::{unique, OutsideStaging};
use crate::cache::verify::{rel_string, verify_entry, VerifyLevel};
use crate::cache::{ModelCache, ENTRIES};

/// Why an install failed. Nothing is left under `entries/` by a failed install.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bundle path is not inside this cache's staging directory.
    #[error(transparent)]
    Outside(#[from] OutsideStaging),
    /// A key part is ambiguous, or the bundle holds a symlink or special file.
    #[error(transparent)]
    Refused(#[from] KeyError),
    /// A file-system step failed.
    #[error("{step} {path:?}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The entry of this key kept failing verification after it was replaced.
    #[error("the entry {id} of another installer fails verification: {reason}")]
    Contended {
        /// The entry's id.
        id: String,
        /// Why it fails.
        reason: String,
    },
}

impl From<InstallError> for io::Error {
    fn from(e: InstallError) -> Self {
        let kind = match &e {
            InstallError::Outside(_) => io::ErrorKind::PermissionDenied,
            InstallError::Refused(_) => io::ErrorKind::InvalidInput,
            InstallError::Io { source, .. } => source.kind(),
            InstallError::Contended { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// A finished install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The entry now serving the key.
    pub entry: CacheEntry,
    /// `false` when another installer's entry was already there and is used instead.
    pub won: bool,
}

fn step<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |source| InstallError::Io { step, path: path.to_owned(), source }
}

/// fsyncs a file or directory.
pub(crate) fn sync_path(path: &Path) -> Result<(), InstallError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(step("fsync", path))
}

/// Every directory under (and including) `dir`, deepest first.
fn sync_dirs(dir: &Path) -> Result<(), InstallError> {
    for e in std::fs::read_dir(dir).map_err(step("read", dir))?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            sync_dirs(&e.path())?;
        }
    }
    sync_path(dir)
}

/// Hashes and fsyncs each file of the bundle: its manifest.
fn manifest(bundle: &Path) -> Result<Vec<FileRecord>, InstallError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    for (rel, len) in regular_files(bundle)? {
        let path = bundle.join(&rel);
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        hash_into(&path, len, &mut hasher, &mut buf)?;
        sync_path(&path)?;
        let sha256 = sha2::Digest::finalize(hasher).iter().map(|b| format!("{b:02x}")).collect();
        out.push(FileRecord { path: rel_string(&rel), len, sha256 });
    }
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(to).map_err(step("create", to))?;
    for e in std::fs::read_dir(from).map_err(step("read", from))? {
        let e = e.map_err(step("read", from))?;
        let target = to.join(e.file_name());
        let kind = e.file_type().map_err(step("stat", &e.path()))?;
        if kind.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(e.path(), &target).map_err(step("copy", &target))?;
        } else {
            // Copying a link would read whatever it points at, wherever that is.
            return Err(KeyError::NotRegular { path: e.path() }.into());
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    let mut f = File::create(path).map_err(step("create", path))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(step("write", path))
}

fn is_taken(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST))
        || e.kind() == io::ErrorKind::DirectoryNotEmpty
        || e.kind() == io::ErrorKind::AlreadyExists
}

impl ModelCache {
    /// Installs the bundle the helper compiled at `staged` (inside
    /// [`ModelCache::staging_dir`]) under `key`; see the module docs.
    pub fn install_entry(&self, key: &CompileKey, backend: &str, staged: &Path) -> Result<Installed, InstallError> {
        key.validate(backend)?;
        let staged = self.confine(staged)?;
        let tmp = self.owner.install.join(unique("i"));
        let result = self.assemble_and_place(key, backend, &staged, &tmp);
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&staged);
        let installed = result?;
        if installed.won {
            self.enforce_cap(Some(&installed.entry.id));
        }
        Ok(installed)
    }

    fn assemble_and_place(
        &self,
        key: &CompileKey,
        backend: &str,
        staged: &Path,
        tmp: &Path,
    ) -> Result<Installed, InstallError> {
        std::fs::create_dir_all(tmp).map_err(step("create", tmp))?;
        let bundle = tmp.join(BUNDLE_DIR);
        if std::fs::rename(staged, &bundle).is_err() {
            copy_dir(staged, &bundle)?;
        }
        let files = manifest(&bundle)?;
        sync_dirs(&bundle)?;
        let meta = EntryMeta::new(key, backend, files);
        write_synced(&tmp.join(LEASE_FILE), b"")?;
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| step("encode", tmp)(io::Error::other(e)))?;
        write_synced(&tmp.join(META_FILE), &json)?;
        sync_path(tmp)?;
        let entries = self.root.join(ENTRIES);
        let target = entries.join(key.id());
        for attempt in 0..2 {
            match std::fs::rename(tmp, &target) {
                Ok(()) => {
                    sync_path(&entries)?;
                    let entry = CacheEntry::from_meta(&target, &meta);
                    tracing::info!(target: "coreml_bridge::cache", key = meta.key, bytes = meta.bytes, "installed a compiled model");
                    return Ok(Installed { entry, won: true });
                }
                Err(e) if is_taken(&e) => match verify_entry(&target, VerifyLevel::Quick) {
                    Ok(theirs) if theirs.compile_key == *key => {
                        crate::cache::entry::touch(&target);
                        return Ok(Installed { entry: CacheEntry::from_meta(&target, &theirs), won: false });
                    }
                    Ok(_) => {
                        return Err(InstallError::Contended { id: key.id(), reason: "another key's entry".into() })
                    }
                    Err(bad) if attempt == 0 => {
                        self.evict_id(&key.id(), EvictReason::FailedVerification { detail: bad.to_string() });
                    }
                    Err(bad) => return Err(InstallError::Contended { id: key.id(), reason: bad.to_string() }),
                },
                Err(e) => return Err(step("rename", &target)(e)),
            }
        }
        Err(InstallError::Contended { id: key.id(), reason: "in use while failing verification".into() })
    }
}
