//! `Manifest.json`: finds the root model and the weights directory.
//!
//! ```
//! use coreml_mlpackage::manifest::Manifest;
//! let json = r#"{"fileFormatVersion":"1.0.0","rootModelIdentifier":"A","itemInfoEntries":{
//!   "A":{"path":"com.apple.CoreML/model.mlmodel","name":"model.mlmodel","author":"com.apple.CoreML","description":""},
//!   "B":{"path":"com.apple.CoreML/weights","name":"weights","author":"com.apple.CoreML","description":""}}}"#;
//! let m = Manifest::parse(json.as_bytes()).unwrap();
//! assert_eq!(m.root_model_path, "com.apple.CoreML/model.mlmodel");
//! assert_eq!(m.weights_path.as_deref(), Some("com.apple.CoreML/weights"));
//! ```

use serde_json::Value;

use crate::error::{files::MANIFEST, PackageError};

/// What the reader needs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `fileFormatVersion`.
    pub file_format_version: String,
    /// Path of the root model, relative to `<pkg>/Data/`.
    pub root_model_path: String,
    /// Path of the weights directory relative to `<pkg>/Data/`, if listed.
    pub weights_path: Option<String>,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> PackageError {
    PackageError::invalid(MANIFEST, field, detail)
}

fn str_field<'a>(entry: &'a Value, id: &str, key: &str) -> Result<&'a str, PackageError> {
    entry.get(key).and_then(Value::as_str).ok_or_else(|| {
        invalid(
            format!("itemInfoEntries[{id}].{key}"),
            "missing or not a string",
        )
    })
}

/// Rejects absolute paths and `..` so a manifest cannot point outside the package.
fn relative_path(field: String, p: &str) -> Result<String, PackageError> {
    let path = std::path::Path::new(p);
    let ok = !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(p.to_string())
    } else {
        Err(invalid(
            field,
            format!("{p:?} is not a relative path inside the package"),
        ))
    }
}

impl Manifest {
    /// Parses and checks the manifest's JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, PackageError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| PackageError::Malformed {
            file: MANIFEST.into(),
            field: "(document)".into(),
            detail: e.to_string(),
        })?;
        let file_format_version = v
            .get("fileFormatVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("fileFormatVersion", "missing or not a string"))?
            .to_string();
        if !file_format_version.starts_with("1.") {
            return Err(invalid(
                "fileFormatVersion",
                format!("unsupported version {file_format_version:?} (expected 1.x)"),
            ));
        }
        let entries = v
            .get("itemInfoEntries")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("itemInfoEntries", "missing or not an object"))?;
        let root = v
            .get("rootModelIdentifier")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("rootModelIdentifier", "missing or not a string"))?;
        let root_entry = entries.get(root).ok_or_else(|| {
            invalid(
                "rootModelIdentifier",
                format!("{root:?} is not a key of itemInfoEntries"),
            )
        })?;
        let root_model_path = relative_path(
            format!("itemInfoEntries[{root}].path"),
            str_field(root_entry, root, "path")?,
        )?;
        let mut weights_path = None;
        for (id, entry) in entries {
            if !entry.is_object() {
                return Err(invalid(format!("itemInfoEntries[{id}]"), "not an object"));
            }
            let name = str_field(entry, id, "name")?;
            let author = str_field(entry, id, "author")?;
            if name == "weights" && author == "com.apple.CoreML" {
                weights_path = Some(relative_path(
                    format!("itemInfoEntries[{id}].path"),
                    str_field(entry, id, "path")?,
                )?);
            }
        }
        Ok(Self {
            file_format_version,
            root_model_path,
            weights_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths_and_missing_fields_are_named() {
        let j = r#"{"fileFormatVersion":"1.0.0","rootModelIdentifier":"A","itemInfoEntries":{
            "A":{"path":"../../etc/passwd","name":"m","author":"x"}}}"#;
        let e = Manifest::parse(j.as_bytes()).unwrap_err();
        assert_eq!(e.field(), "itemInfoEntries[A].path");
        let j = r#"{"fileFormatVersion":"1.0.0","rootModelIdentifier":"Z","itemInfoEntries":{}}"#;
        assert_eq!(
            Manifest::parse(j.as_bytes()).unwrap_err().field(),
            "rootModelIdentifier"
        );
        let e = Manifest::parse(b"{").unwrap_err();
        assert!(matches!(e, PackageError::Malformed { .. }), "{e}");
        let j = r#"{"fileFormatVersion":"2.0.0"}"#;
        assert_eq!(
            Manifest::parse(j.as_bytes()).unwrap_err().field(),
            "fileFormatVersion"
        );
    }
}
