//! The cache key (plan §21): `{sha256}:{coreml_version}:{backend}:{compute_units}:{quantization}:{shape_key}:{os_build}`,
//! and the package digest its first part is.
//!
//! ```
//! use coreml_bridge::cache::key::{package_digest, CompileKey};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let pkg = dir.path().join("m.mlpackage");
//! std::fs::create_dir_all(pkg.join("Data")).unwrap();
//! std::fs::write(pkg.join("Manifest.json"), b"{}").unwrap();
//! std::fs::write(pkg.join("Data/weight.bin"), [1u8; 64]).unwrap();
//! let digest = package_digest(&pkg).unwrap();
//! // The same digest an artifact pins (`ModelArtifact::compute_sha256`).
//! assert_eq!(digest, coreml_bridge::inference::Sha256Digest::of_path(&pkg).unwrap());
//! let key = CompileKey::new(digest, "8.0", "all", "fp16", "1x3x224x224", "24A335");
//! assert_eq!(key.full("mlprogram"), format!("{digest}:8.0:mlprogram:all:fp16:1x3x224x224:24A335"));
//! ```
//!
//! The backend (`mlprogram` or `neuralnetwork`) is only known once compiled,
//! so entries are found by the other six parts ([`CompileKey::id`]) and record
//! the backend in their metadata.
//!
//! The package digest streams the package's regular files in a fixed order:
//! their paths relative to the package, sorted component by component; for
//! each, the path's bytes, a NUL, its length (u64, little-endian) and its
//! content, read through one reused 1 MiB buffer. A symbolic link or special
//! file anywhere in the package is refused (it could point anywhere), and a
//! file whose length changes while it is read is reported, not hashed.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use coreml_inference::Sha256Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The parts of a cache key known before compiling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompileKey {
    /// sha256 of the source model (hex): [`package_digest`] for a package.
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
    /// A key from its parts.
    pub fn new(
        source: Sha256Digest,
        coreml_version: &str,
        compute_units: &str,
        quantization: &str,
        shape_key: &str,
        os_build: &str,
    ) -> Self {
        Self {
            source_sha256: source.to_string(),
            coreml_version: coreml_version.into(),
            compute_units: compute_units.into(),
            quantization: quantization.into(),
            shape_key: shape_key.into(),
            os_build: os_build.into(),
        }
    }

    /// The entry's directory name: 32 hex digits of the sha256 of
    /// [`Display`](fmt::Display) (the key without its backend).
    pub fn id(&self) -> String {
        let h = Sha256::digest(self.to_string().as_bytes());
        h.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The full key once the backend is known.
    pub fn full(&self, backend: &str) -> String {
        self.to_string().replacen(":*:", &format!(":{backend}:"), 1)
    }

    /// Refuses parts that would make two keys print alike: a `:` or a control
    /// character in a part (or the backend), or a source that is not 64 hex digits.
    pub fn validate(&self, backend: &str) -> Result<(), KeyError> {
        if self.source_sha256.len() != 64 || !self.source_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::BadPart { part: "source_sha256", value: self.source_sha256.clone() });
        }
        let parts = [
            ("coreml_version", &self.coreml_version),
            ("compute_units", &self.compute_units),
            ("quantization", &self.quantization),
            ("shape_key", &self.shape_key),
            ("os_build", &self.os_build),
        ];
        for (part, value) in parts.into_iter().chain([("backend", &backend.to_owned())]) {
            if value.contains(':') || value.chars().any(char::is_control) || (part == "backend" && value == "*") {
                return Err(KeyError::BadPart { part, value: value.clone() });
            }
        }
        Ok(())
    }
}

/// Why a key or a package digest could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A part would make the key ambiguous.
    #[error(
        "cache key part {part} = {value:?} is not allowed (no `:` or control characters; sha256 is 64 hex digits)"
    )]
    BadPart {
        /// Which part.
        part: &'static str,
        /// Its value.
        value: String,
    },
    /// Reading the package failed.
    #[error("reading {path:?}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A symbolic link or special file inside the package.
    #[error("{path:?} is a symbolic link or special file; a package holds only directories and regular files")]
    NotRegular {
        /// The entry.
        path: PathBuf,
    },
    /// A file changed length while it was hashed.
    #[error("{path:?} changed while it was hashed ({expected} bytes, then {read})")]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its length before.
        expected: u64,
        /// Bytes read.
        read: u64,
    },
}

fn io_err(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io { path: path.to_owned(), message: e.to_string() }
}

/// The regular files under `dir` as relative paths, sorted; symlinks and
/// special files refused.
pub(crate) fn regular_files(dir: &Path) -> Result<Vec<(PathBuf, u64)>, KeyError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<(), KeyError> {
        for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let e = e.map_err(|e| io_err(dir, e))?;
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).map_err(|e| io_err(&p, e))?;
            if meta.is_dir() {
                walk(root, &p, out)?;
            } else if meta.is_file() {
                out.push((p.strip_prefix(root).unwrap_or(&p).to_owned(), meta.len()));
            } else {
                return Err(KeyError::NotRegular { path: p });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Streams `file` into `hasher`, checking it is `len` bytes long.
pub(crate) fn hash_into(path: &Path, len: u64, hasher: &mut Sha256, buf: &mut [u8]) -> Result<(), KeyError> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut read = 0u64;
    loop {
        let n = f.read(buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read > len {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if read != len {
        return Err(KeyError::Changed { path: path.to_owned(), expected: len, read });
    }
    Ok(())
}

/// The sha256 of a file, or of a package directory (see the module docs).
pub fn package_digest(path: &Path) -> Result<Sha256Digest, KeyError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = Sha256::new();
    if meta.is_dir() {
        for (rel, len) in regular_files(path)? {
            hasher.update(rel.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(len.to_le_bytes());
            hash_into(&path.join(&rel), len, &mut hasher, &mut buf)?;
        }
    } else if meta.is_file() {
        hash_into(path, meta.len(), &mut hasher, &mut buf)?;
    } else {
        return Err(KeyError::NotRegular { path: path.to_owned() });
    }
    Ok(Sha256Digest(hasher.finalize().into()))
}

/// The sha256 of one file's content (entry manifests).
pub(crate) fn file_digest(path: &Path, len: u64, buf: &mut [u8]) -> Result<String, KeyError> {
    let mut hasher = Sha256::new();
    hash_into(path, len, &mut hasher, buf)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CompileKey {
        CompileKey::new(Sha256Digest([0xab; 32]), "8.0", "all", "fp16", "default", "24A335")
    }

    #[test]
    fn digest_is_the_artifacts_and_sees_paths_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("m.mlpackage");
        std::fs::create_dir_all(pkg.join("Data/w")).unwrap();
        std::fs::write(pkg.join("Manifest.json"), b"{}").unwrap();
        std::fs::write(pkg.join("Data/w/a.bin"), vec![7u8; 3 << 20]).unwrap();
        let d = package_digest(&pkg).unwrap();
        assert_eq!(d, Sha256Digest::of_path(&pkg).unwrap());
        // A rename with the same content is another package.
        std::fs::rename(pkg.join("Data/w/a.bin"), pkg.join("Data/w/b.bin")).unwrap();
        assert_ne!(package_digest(&pkg).unwrap(), d);
        std::fs::rename(pkg.join("Data/w/b.bin"), pkg.join("Data/w/a.bin")).unwrap();
        assert_eq!(package_digest(&pkg).unwrap(), d);
        // One byte of weights changed (the peer caches that missed this served stale models).
        let mut w = std::fs::read(pkg.join("Data/w/a.bin")).unwrap();
        w[2 << 20] ^= 1;
        std::fs::write(pkg.join("Data/w/a.bin"), w).unwrap();
        assert_ne!(package_digest(&pkg).unwrap(), d);
        // A single file hashes as its content.
        assert_eq!(package_digest(&pkg.join("Manifest.json")).unwrap(), Sha256Digest::of_bytes(b"{}"));
    }

    #[test]
    fn symlinks_in_a_package_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("m.mlpackage");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), pkg.join("weights.bin")).unwrap();
        assert!(matches!(package_digest(&pkg), Err(KeyError::NotRegular { .. })));
        assert!(matches!(package_digest(&dir.path().join("absent")), Err(KeyError::Io { .. })));
    }

    #[test]
    fn keys_print_as_the_plan_says_and_ambiguous_parts_are_refused() {
        let k = key();
        assert_eq!(k.full("mlprogram"), format!("{}:8.0:mlprogram:all:fp16:default:24A335", "ab".repeat(32)));
        assert_eq!(k.id().len(), 32);
        assert!(k.validate("mlprogram").is_ok());
        let mut other = k.clone();
        other.os_build = "24A336".into();
        assert_ne!(other.id(), k.id(), "another OS build is another entry");
        for bad in [
            CompileKey { shape_key: "1:2".into(), ..key() },
            CompileKey { os_build: "a\nb".into(), ..key() },
            CompileKey { source_sha256: "zz".into(), ..key() },
        ] {
            assert!(bad.validate("mlprogram").is_err(), "{bad}");
        }
        assert!(k.validate("ml:program").is_err());
    }
}
