//! [`Package`]: opens an `.mlpackage` directory (or its three files' bytes),
//! checks it, and decodes blob tensors on demand from the mapped weight file.
//!
//! ```
//! use coreml_mlpackage::{Package, TensorData};
//! let pkg = Package::open(concat!(env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/mlpackage/conv.mlpackage")).unwrap();
//! assert_eq!(pkg.specification_version, 7);
//! let weight = pkg.main().block.operations.iter()
//!     .filter(|op| op.op_type == "const")
//!     .filter_map(|op| op.attributes["val"].tensor())
//!     .find(|t| matches!(t.data, TensorData::Blob { .. }))
//!     .unwrap();
//! assert_eq!(pkg.tensor(weight).unwrap().len(), weight.count());
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::description::{self, ModelDescription};
use crate::dtype::DataType;
use crate::elements::Elements;
use crate::error::{files::MANIFEST, PackageError};
use crate::manifest::Manifest;
use crate::program::{Decoder, Function, Program, TensorData, TensorValue, Value};
use crate::proto;
use crate::weights::WeightFile;

/// Largest `Manifest.json` read (it is a few hundred bytes in practice).
const MAX_MANIFEST: u64 = 1 << 20;
/// Largest `model.mlmodel` read (weights live in `weight.bin`).
const MAX_MODEL: u64 = 1 << 31;

/// A checked ML Program package.
#[derive(Debug)]
pub struct Package {
    /// The package directory (empty for [`Package::from_bytes`]).
    pub root: PathBuf,
    pub manifest: Manifest,
    /// Package-relative name of the model file (`Data/com.apple.CoreML/model.mlmodel`).
    pub model_file: String,
    pub specification_version: i32,
    pub description: ModelDescription,
    pub program: Program,
    weights: Option<WeightFile>,
}

fn read_capped(root: &Path, rel: &str, cap: u64) -> Result<Vec<u8>, PackageError> {
    let io = |source| PackageError::Io {
        file: rel.to_string(),
        source,
    };
    let f = fs::File::open(root.join(rel)).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len > cap {
        return Err(PackageError::invalid(
            rel,
            "(file)",
            format!("{len} bytes, more than the {cap} allowed"),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(cap).read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}

impl Package {
    /// Opens and checks the package at `path`; `weight.bin` is memory-mapped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PackageError> {
        let root = path.as_ref().to_path_buf();
        let manifest = Manifest::parse(&read_capped(&root, MANIFEST, MAX_MANIFEST)?)?;
        let model_file = format!("Data/{}", manifest.root_model_path);
        let model = read_capped(&root, &model_file, MAX_MODEL)?;
        let weights = match &manifest.weights_path {
            Some(w) => {
                let name = format!("Data/{w}/weight.bin");
                let p = root.join(&name);
                if p.exists() {
                    Some(WeightFile::open(&name, &p)?)
                } else {
                    None
                }
            }
            None => None,
        };
        Self::build(root, manifest, model_file, &model, weights)
    }

    /// Checks a package given as the bytes of its three files (fuzzing, tests).
    pub fn from_bytes(
        manifest: &[u8],
        model: &[u8],
        weights: Option<Vec<u8>>,
    ) -> Result<Self, PackageError> {
        let manifest = Manifest::parse(manifest)?;
        let model_file = format!("Data/{}", manifest.root_model_path);
        let weights = match (&manifest.weights_path, weights) {
            (Some(w), Some(bytes)) => Some(WeightFile::from_bytes(
                &format!("Data/{w}/weight.bin"),
                bytes,
            )?),
            _ => None,
        };
        Self::build(PathBuf::new(), manifest, model_file, model, weights)
    }

    fn build(
        root: PathBuf,
        manifest: Manifest,
        model_file: String,
        model: &[u8],
        weights: Option<WeightFile>,
    ) -> Result<Self, PackageError> {
        let file = model_file.as_str();
        let m = proto::Model::decode(model).map_err(|e| PackageError::Malformed {
            file: file.to_string(),
            field: "Model".into(),
            detail: e.to_string(),
        })?;
        let program = match &m.r#type {
            Some(proto::model::Type::MlProgram(p)) => p,
            Some(other) => {
                let (kind, number) = other.field();
                return Err(PackageError::NotMlProgram {
                    file: file.to_string(),
                    kind,
                    number,
                });
            }
            None => {
                return Err(PackageError::invalid(
                    file,
                    "Model.mlProgram",
                    "missing: the model has no program (field 502)",
                ))
            }
        };
        if m.specification_version < 6 {
            return Err(PackageError::invalid(
                file,
                "Model.specificationVersion",
                format!(
                    "{}: ML Programs need specification version 6 (iOS15) or later",
                    m.specification_version
                ),
            ));
        }
        let desc = m
            .description
            .as_ref()
            .ok_or_else(|| PackageError::invalid(file, "Model.description", "missing"))?;
        let description = description::decode(desc, file)?;
        let decoder = Decoder {
            file,
            weights: weights.as_ref(),
        };
        let program = decoder.program(program, "mlProgram")?;
        let pkg = Self {
            root,
            manifest,
            model_file,
            specification_version: m.specification_version,
            description,
            program,
            weights,
        };
        pkg.check_interface()?;
        Ok(pkg)
    }

    /// `main` exists and its inputs and block outputs are the description's.
    fn check_interface(&self) -> Result<(), PackageError> {
        let file = self.model_file.as_str();
        let main = self.program.functions.get("main").ok_or_else(|| {
            PackageError::invalid(
                file,
                "mlProgram.functions",
                format!(
                    "no \"main\" function (has {:?})",
                    self.program.functions.keys().collect::<Vec<_>>()
                ),
            )
        })?;
        for (i, f) in self.description.inputs.iter().enumerate() {
            if !main.inputs.iter().any(|x| x.name == f.name) {
                return Err(PackageError::invalid(
                    file,
                    format!("description.input[{i}]"),
                    format!("{:?} is not an input of mlProgram.functions[main]", f.name),
                ));
            }
        }
        let outs = &main.block.outputs;
        let names: Vec<&str> = self
            .description
            .outputs
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        if outs.iter().map(String::as_str).ne(names.iter().copied()) {
            return Err(PackageError::invalid(
                file,
                format!(
                    "mlProgram.functions[main].block_specializations[{}].outputs",
                    main.opset
                ),
                format!("{outs:?} differ from the description's outputs {names:?}"),
            ));
        }
        Ok(())
    }

    /// The `main` function (checked to exist at open).
    pub fn main(&self) -> &Function {
        &self.program.functions["main"]
    }

    /// The weight file, if the package has one.
    pub fn weights(&self) -> Option<&WeightFile> {
        self.weights.as_ref()
    }

    /// The elements of a tensor value (decoding a blob from the mapped file).
    pub fn tensor(&self, t: &TensorValue) -> Result<Elements, PackageError> {
        match &t.data {
            TensorData::Immediate(e) => Ok(e.clone()),
            TensorData::Blob { offset } => {
                let w = self.weights.as_ref().ok_or_else(|| {
                    PackageError::invalid(&self.model_file, "blobFileValue", "no weight file")
                })?;
                w.blob(*offset)?
                    .decode(t.count() as u64)
                    .map_err(|d| PackageError::invalid(w.name(), format!("blob@{offset}"), d))
            }
        }
    }

    /// Count and bytes of the constant tensors of `main` per element type
    /// (const values and constexpr parameters, immediate or blob).
    pub fn weight_sizes(&self) -> BTreeMap<DataType, (usize, u64)> {
        let mut out: BTreeMap<DataType, (usize, u64)> = BTreeMap::new();
        let mut add = |v: &Value| {
            if let Value::Tensor(t) = v {
                let bits = t.dtype.bits().unwrap_or(8) as u64;
                let e = out.entry(t.dtype).or_default();
                e.0 += 1;
                e.1 += (t.count() as u64 * bits).div_ceil(8);
            }
        };
        for op in &self.main().block.operations {
            if op.op_type == "const" || op.op_type.starts_with("constexpr_") {
                op.attributes.values().for_each(&mut add);
                for args in op.inputs.values() {
                    for a in args {
                        if let crate::program::Arg::Value(v) = a {
                            add(v);
                        }
                    }
                }
            }
        }
        out
    }
}
