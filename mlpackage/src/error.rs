//! [`PackageError`]: every way a package can fail to read, each naming the
//! package-relative file and the field.
//!
//! ```
//! let err = coreml_mlpackage::Package::open("no/such.mlpackage").unwrap_err();
//! assert_eq!(err.file(), "Manifest.json");
//! assert!(err.to_string().starts_with("Manifest.json: "));
//! ```

use std::io;

/// Why a package could not be read. `file` is relative to the package root
/// (`Manifest.json`, `Data/com.apple.CoreML/model.mlmodel`, ...); `field` is a
/// path inside it (`mlProgram.functions[main].opset`, `blob@128.sentinel`).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The file could not be opened, read or mapped.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    /// The file is not what it should be on the wire (JSON syntax, protobuf
    /// encoding).
    #[error("{file}: {field}: malformed: {detail}")]
    Malformed {
        file: String,
        field: String,
        detail: String,
    },
    /// A field is missing or holds a value the format does not allow.
    #[error("{file}: {field}: {detail}")]
    Invalid {
        file: String,
        field: String,
        detail: String,
    },
    /// The model is a valid Core ML model but not an ML Program.
    #[error("{file}: Model.Type: a {kind} model (field {number}), not an ML Program (mlProgram, field 502)")]
    NotMlProgram {
        file: String,
        kind: &'static str,
        number: u32,
    },
}

impl PackageError {
    /// The package-relative file it concerns.
    pub fn file(&self) -> &str {
        match self {
            Self::Io { file, .. }
            | Self::Malformed { file, .. }
            | Self::Invalid { file, .. }
            | Self::NotMlProgram { file, .. } => file,
        }
    }

    /// The field it concerns (`""` for I/O errors).
    pub fn field(&self) -> &str {
        match self {
            Self::Io { .. } => "",
            Self::NotMlProgram { .. } => "Model.Type",
            Self::Malformed { field, .. } | Self::Invalid { field, .. } => field,
        }
    }

    pub(crate) fn invalid(file: &str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_string(),
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// Package-relative names of the files.
pub mod files {
    /// The manifest.
    pub const MANIFEST: &str = "Manifest.json";
}
