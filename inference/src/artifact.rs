//! Model artifacts on disk: format, path and pinned sha256.
//!
//! ```
//! use coreml_inference::{ModelArtifact, ModelFormat, Sha256Digest};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("model.safetensors");
//! std::fs::write(&path, b"abc").unwrap();
//!
//! let artifact = ModelArtifact::from_path(&path).unwrap();
//! assert_eq!(artifact.format, ModelFormat::Safetensors);
//! let digest = artifact.compute_sha256().unwrap();
//! assert_eq!(
//!     digest.to_string(),
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! // Pin it; `verify` now fails if the file changes.
//! let pinned = artifact.with_sha256(digest);
//! pinned.verify().unwrap();
//! std::fs::write(&path, b"abd").unwrap();
//! assert!(pinned.verify().is_err());
//! ```
//!
//! Directories (`.mlpackage`, `.mlmodelc`) are hashed deterministically: the
//! relative paths of their files in byte order, each followed by its length
//! and content.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ArtifactError;

/// How a model is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ModelFormat {
    /// Core ML ML Program package (a directory).
    MlPackage,
    /// Core ML neural-network model (a protobuf file).
    MlModel,
    /// Compiled Core ML model (a directory).
    MlModelC,
    /// Weights in safetensors; the architecture comes from
    /// [`PrepareOptions::architecture`](crate::PrepareOptions::architecture).
    Safetensors,
    /// PyTorch checkpoint.
    Pth,
}

impl ModelFormat {
    /// The format told by a path's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "mlpackage" => ModelFormat::MlPackage,
            "mlmodel" => ModelFormat::MlModel,
            "mlmodelc" => ModelFormat::MlModelC,
            "safetensors" => ModelFormat::Safetensors,
            "pth" | "pt" => ModelFormat::Pth,
            _ => return None,
        })
    }

    /// Whether this is a Core ML format.
    pub fn is_core_ml(self) -> bool {
        matches!(
            self,
            ModelFormat::MlPackage | ModelFormat::MlModel | ModelFormat::MlModelC
        )
    }
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::MlPackage => "mlpackage",
            ModelFormat::MlModel => "mlmodel",
            ModelFormat::MlModelC => "mlmodelc",
            ModelFormat::Safetensors => "safetensors",
            ModelFormat::Pth => "pth",
        })
    }
}

/// A sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest of some bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of a file, or of a directory's files (see the module docs).
    pub fn of_path(path: &Path) -> Result<Self, ArtifactError> {
        let io = |e: std::io::Error, p: &Path| ArtifactError::Io {
            path: p.to_owned(),
            message: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(|e| io(e, path))?;
        let mut hasher = Sha256::new();
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_files(path, path, &mut files).map_err(|e| io(e, path))?;
            files.sort();
            for rel in files {
                let full = path.join(&rel);
                let len = std::fs::metadata(&full).map_err(|e| io(e, &full))?.len();
                hasher.update(rel.to_string_lossy().as_bytes());
                hasher.update([0]);
                hasher.update(len.to_le_bytes());
                hash_file(&full, &mut hasher).map_err(|e| io(e, &full))?;
            }
        } else {
            hash_file(path, &mut hasher).map_err(|e| io(e, path))?;
        }
        Ok(Self(hasher.finalize().into()))
    }
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &p, out)?;
        } else {
            out.push(
                p.strip_prefix(root)
                    .expect("entry is under root")
                    .to_owned(),
            );
        }
    }
    Ok(())
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = ArtifactError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ArtifactError::InvalidDigest(s.to_owned());
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl TryFrom<String> for Sha256Digest {
    type Error = ArtifactError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Sha256Digest> for String {
    fn from(d: Sha256Digest) -> String {
        d.to_string()
    }
}

/// A model on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// How it is stored.
    pub format: ModelFormat,
    /// File or directory. Engines look for companions (`config.json`,
    /// `tokenizer.json`, labels) in the same directory.
    pub path: PathBuf,
    /// Pinned digest; engines verify it in `prepare` when present.
    pub sha256: Option<Sha256Digest>,
}

impl ModelArtifact {
    /// An artifact of a given format, without a pinned digest.
    pub fn new(format: ModelFormat, path: impl Into<PathBuf>) -> Self {
        Self {
            format,
            path: path.into(),
            sha256: None,
        }
    }

    /// An artifact whose format is told by the path's extension.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, ArtifactError> {
        let path = path.into();
        let format = ModelFormat::from_path(&path)
            .ok_or_else(|| ArtifactError::UnknownFormat { path: path.clone() })?;
        Ok(Self::new(format, path))
    }

    /// The same artifact with a pinned digest.
    #[must_use]
    pub fn with_sha256(mut self, digest: Sha256Digest) -> Self {
        self.sha256 = Some(digest);
        self
    }

    /// The content's digest, computed now.
    pub fn compute_sha256(&self) -> Result<Sha256Digest, ArtifactError> {
        Sha256Digest::of_path(&self.path)
    }

    /// Checks the content against the pinned digest and returns the actual
    /// digest (computed even when nothing is pinned).
    pub fn verify(&self) -> Result<Sha256Digest, ArtifactError> {
        let actual = self.compute_sha256()?;
        match self.sha256 {
            Some(expected) if expected != actual => Err(ArtifactError::DigestMismatch {
                path: self.path.clone(),
                expected,
                actual,
            }),
            _ => Ok(actual),
        }
    }

    /// The directory holding the artifact (where companion files live).
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions() {
        let f = |p: &str| ModelFormat::from_path(Path::new(p));
        assert_eq!(f("a/b.mlpackage"), Some(ModelFormat::MlPackage));
        assert_eq!(f("b.MLMODEL"), Some(ModelFormat::MlModel));
        assert_eq!(f("b.mlmodelc"), Some(ModelFormat::MlModelC));
        assert_eq!(f("b.pth"), Some(ModelFormat::Pth));
        assert_eq!(f("b.onnx"), None);
        assert!(ModelArtifact::from_path("x.onnx").is_err());
        assert!(ModelFormat::MlModelC.is_core_ml() && !ModelFormat::Pth.is_core_ml());
    }

    #[test]
    fn directory_digest_is_deterministic_and_content_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("m.mlpackage");
        std::fs::create_dir_all(pkg.join("Data/weights")).unwrap();
        std::fs::write(pkg.join("Manifest.json"), b"{}").unwrap();
        std::fs::write(pkg.join("Data/weights/w.bin"), b"1234").unwrap();
        let a = ModelArtifact::from_path(&pkg).unwrap();
        let d1 = a.compute_sha256().unwrap();
        assert_eq!(d1, a.compute_sha256().unwrap());
        std::fs::write(pkg.join("Data/weights/w.bin"), b"1235").unwrap();
        assert_ne!(d1, a.compute_sha256().unwrap());
        let err = a.with_sha256(d1).verify().unwrap_err();
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }));
    }

    #[test]
    fn digests_parse_and_serialise_as_hex() {
        let d = Sha256Digest::of_bytes(b"");
        let s = d.to_string();
        assert_eq!(
            s,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(s.parse::<Sha256Digest>().unwrap(), d);
        assert!("zz".parse::<Sha256Digest>().is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Sha256Digest>(&json).unwrap(), d);
    }
}
