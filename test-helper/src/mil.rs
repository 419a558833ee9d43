//! Real models: `.mlpackage` sources run with the MIL executor (`coreml-mil`),
//! with the same fault switches as the diagnostic models (docs/diagnostics.md,
//! "ML Program packages").
//!
//! ```text
//! // Compile: validate (every op supported) and copy into the staging directory.
//! let (bundle, us) = mil::compile("/models/net.mlpackage", "/cache/.staging", "")?;
//! // Load the bundle (or a source directly, or a `mil:` URI carrying faults).
//! let m = MilModel::load("mil:/models/net.mlpackage?fault=segv&after=3", "")?;
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType as CDType, Device, Tensor};
use coreml_inference::{DType as EDType, Dim};
use coreml_ipc_schema::{DType, ErrorCode, NamedTensor, TensorRef, TensorSpec};
use coreml_mil::{Executor, Options};

use crate::model::DiagModel;
use crate::sys::Mapping;

/// A typed failure: the protocol error code and its message.
pub type Failure = (ErrorCode, String);

/// Whether `source` names a package for this module (a `mil:` URI or a directory).
pub fn is_mil_source(source: &str) -> bool {
    source.starts_with("mil:") || Path::new(source).is_dir()
}

/// Splits a source into the package path and the fault query: a `mil:` URI
/// carries its own (`mil:PATH?fault=...`); a plain path takes `default_faults`
/// (the helper's `--mil-faults`).
fn split_source<'a>(source: &'a str, default_faults: &'a str) -> (PathBuf, &'a str) {
    match source.strip_prefix("mil:") {
        Some(rest) => {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            (PathBuf::from(path), query)
        }
        None => (PathBuf::from(source), default_faults),
    }
}

/// The fault plan of a query (keys of docs/diagnostics.md that concern faults).
pub fn fault_plan(query: &str) -> Result<DiagModel, String> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if !matches!(
            key,
            "fault" | "at" | "after" | "once" | "armed" | "load_ms" | "bundle" | "link"
        ) {
            return Err(format!(
                "key {key:?} does not apply to an ML Program package"
            ));
        }
    }
    let diag: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("bundle=") && !p.starts_with("link="))
        .collect();
    DiagModel::parse(&format!("diag:echo?{}", diag.join("&")))
}

/// A hostile `Compiled` answer (docs/diagnostics.md), for the supervisor's
/// path confinement: `bundle=P` names `P` (joined to the staging directory
/// unless absolute, so `../x` climbs out of it) without compiling anything;
/// `link=T` creates a symlink in the staging directory pointing at `T` and
/// names the link. `None` without either key.
fn hostile_answer(query: &str, staging_dir: &str) -> Option<Result<String, Failure>> {
    for pair in query.split('&') {
        if let Some(p) = pair.strip_prefix("bundle=") {
            return Some(Ok(Path::new(staging_dir)
                .join(p)
                .to_string_lossy()
                .into_owned()));
        }
        if let Some(target) = pair.strip_prefix("link=") {
            let n = BUNDLES.fetch_add(1, Ordering::SeqCst);
            let link =
                Path::new(staging_dir).join(format!("link-{}-{n}.mlmodelc", std::process::id()));
            return Some(
                std::os::unix::fs::symlink(target, &link)
                    .map(|()| link.to_string_lossy().into_owned())
                    .map_err(|e| {
                        (
                            ErrorCode::COMPILE_FAILED,
                            format!("symlink {}: {e}", link.display()),
                        )
                    }),
            );
        }
    }
    None
}

static BUNDLES: AtomicU64 = AtomicU64::new(0);

/// `Compile`: loads the package with the executor (a missing file, a malformed
/// protobuf or an unsupported op fails here, with the executor's message), then
/// copies it into a fresh `<stem>-<pid>-<n>.mlmodelc` directory inside
/// `staging_dir`. Returns the bundle path and the time taken in µs.
pub fn compile(
    source: &str,
    staging_dir: &str,
    default_faults: &str,
) -> Result<(String, u64), Failure> {
    let t0 = Instant::now();
    let (path, query) = split_source(source, default_faults);
    fault_plan(query).map_err(|e| (ErrorCode::BAD_REQUEST, e))?;
    if let Some(answer) = hostile_answer(query, staging_dir) {
        return answer.map(|p| (p, 0));
    }
    Executor::load(&path, Options::default()).map_err(|e| {
        (
            ErrorCode::COMPILE_FAILED,
            format!("{}: {e}", path.display()),
        )
    })?;
    let stem = path
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let n = BUNDLES.fetch_add(1, Ordering::SeqCst);
    let bundle = Path::new(staging_dir).join(format!("{stem}-{}-{n}.mlmodelc", std::process::id()));
    let failed = |e: std::io::Error| {
        let _ = std::fs::remove_dir_all(&bundle);
        (
            ErrorCode::COMPILE_FAILED,
            format!("copying {} into {}: {e}", path.display(), bundle.display()),
        )
    };
    copy_tree(&path, &bundle).map_err(failed)?;
    Ok((
        bundle.to_string_lossy().into_owned(),
        t0.elapsed().as_micros() as u64,
    ))
}

/// Copies a file with plain reads and writes: `std::fs::copy` tries
/// `copy_file_range`/`sendfile` and `fchmod`, which the helper's seccomp filter refuses.
fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::File::create_new(to)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return dst.flush();
        }
        dst.write_all(&buf[..n])?;
    }
}

/// Copies a directory tree of plain files; a symlink anywhere is refused.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dst = to.join(entry.file_name());
        if ty.is_symlink() {
            return Err(std::io::Error::other(format!(
                "{} is a symlink",
                entry.path().display()
            )));
        } else if ty.is_dir() {
            copy_tree(&entry.path(), &dst)?;
        } else {
            copy_file(&entry.path(), &dst)?;
        }
    }
    Ok(())
}

fn wire_dtype(d: EDType) -> Result<DType, String> {
    DType::from_name(&d.to_string()).ok_or_else(|| format!("{d} has no wire dtype"))
}

fn wire_spec(s: &coreml_inference::TensorSpec) -> Result<TensorSpec, String> {
    let ranged = s.shape.iter().any(|d| matches!(d, Dim::Range { .. }));
    let dims = |f: fn(&Dim) -> [u64; 2]| s.shape.iter().map(f).collect::<Vec<_>>();
    let ranges = dims(|d| match *d {
        Dim::Fixed(n) => [n as u64, n as u64],
        Dim::Range { min, max } => [min as u64, max as u64],
    });
    Ok(TensorSpec {
        name: s.name.clone(),
        dtype: wire_dtype(s.dtype)?,
        shape: ranges.iter().map(|r| r[0]).collect(),
        enumerated_shapes: vec![],
        shape_ranges: if ranged { ranges } else { vec![] },
        optional: false,
        image: None,
    })
}

/// A loaded package: its executor, wire schema and fault plan.
pub struct MilModel {
    exe: Arc<Executor>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Fault switches and the count of successful predictions.
    pub faults: DiagModel,
}

impl MilModel {
    /// `Load`: a compiled bundle, a package, or a `mil:` URI.
    pub fn load(source: &str, default_faults: &str) -> Result<Self, Failure> {
        let (path, query) = split_source(source, default_faults);
        let faults = fault_plan(query).map_err(|e| (ErrorCode::BAD_REQUEST, e))?;
        let load = |e: String| (ErrorCode::LOAD_FAILED, format!("{}: {e}", path.display()));
        let exe = Executor::load(&path, Options::default()).map_err(|e| load(e.to_string()))?;
        let schema = coreml_mil::engine::schema_of(exe.package()).map_err(load)?;
        let specs = |v: &[coreml_inference::TensorSpec]| {
            v.iter().map(wire_spec).collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            inputs: specs(&schema.inputs).map_err(load)?,
            outputs: specs(&schema.outputs).map_err(load)?,
            exe: Arc::new(exe),
            faults,
        })
    }

    /// Checks the request against the schema: every input present, of its
    /// dtype and an allowed shape, inside an attached region; one output slot
    /// per output, of its dtype and large enough for the largest allowed shape.
    pub fn check(
        &self,
        inputs: &[NamedTensor],
        outputs: &[NamedTensor],
        regions: &HashMap<u32, Arc<Mapping>>,
    ) -> Result<Prediction, Failure> {
        let mismatch = |m: String| (ErrorCode::SCHEMA_MISMATCH, m);
        let find = |list: &[NamedTensor], spec: &TensorSpec, what: &str| {
            list.iter()
                .find(|t| t.name == spec.name)
                .cloned()
                .ok_or_else(|| mismatch(format!("no {what} `{}`", spec.name)))
        };
        let region = |t: &TensorRef| {
            regions.get(&t.region).cloned().ok_or_else(|| {
                (
                    ErrorCode::SHM_FAILED,
                    format!("region {} is not attached", t.region),
                )
            })
        };
        let mut p = Prediction {
            exe: self.exe.clone(),
            inputs: vec![],
            outputs: vec![],
        };
        for spec in &self.inputs {
            let t = find(inputs, spec, "input")?;
            shape_allowed(spec, &t.tensor.shape).map_err(mismatch)?;
            let r = region(&t.tensor)?;
            check_ref(spec, &t.tensor, &r).map_err(mismatch)?;
            p.inputs.push((t, r));
        }
        for spec in &self.outputs {
            let t = find(outputs, spec, "output slot")?;
            let r = region(&t.tensor)?;
            check_ref(spec, &t.tensor, &r).map_err(mismatch)?;
            p.outputs.push((spec.clone(), t, r));
        }
        Ok(p)
    }
}

fn shape_allowed(spec: &TensorSpec, shape: &[u64]) -> Result<(), String> {
    let ok = if spec.shape_ranges.is_empty() {
        shape == spec.shape.as_slice()
    } else {
        shape.len() == spec.shape_ranges.len()
            && shape
                .iter()
                .zip(&spec.shape_ranges)
                .all(|(d, [lo, hi])| lo <= d && d <= hi)
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` has shape {shape:?}, the model wants {:?}{}",
            spec.name,
            spec.shape,
            if spec.shape_ranges.is_empty() {
                String::new()
            } else {
                format!(" within {:?}", spec.shape_ranges)
            }
        ))
    }
}

fn check_ref(spec: &TensorSpec, t: &TensorRef, region: &Mapping) -> Result<(), String> {
    if t.dtype != spec.dtype {
        return Err(format!(
            "`{}` is {}, the model wants {}",
            spec.name,
            t.dtype.name(),
            spec.dtype.name()
        ));
    }
    t.validate(region.len() as u64)
        .map_err(|e| format!("`{}`: {e}", spec.name))
}

/// Reads a tensor's elements into a contiguous row-major byte vector
/// (strides honoured).
fn gather_bytes(t: &TensorRef, region: &Mapping) -> Vec<u8> {
    let esz = t.dtype.size() as usize;
    let count = t.element_count().unwrap_or(0) as usize;
    let mut out = vec![0u8; count * esz];
    if t.is_contiguous() {
        region.read(t.offset as usize, &mut out);
        return out;
    }
    let mut rm = vec![1u64; t.shape.len()];
    for d in (0..t.shape.len().saturating_sub(1)).rev() {
        rm[d] = rm[d + 1] * t.shape[d + 1].max(1);
    }
    for (i, dst) in out.chunks_exact_mut(esz).enumerate() {
        let mut off = 0u64;
        let mut rest = i as u64;
        for (d, stride) in rm.iter().enumerate() {
            off += rest / stride * t.strides[d];
            rest %= stride;
        }
        region.read((t.offset + off * esz as u64) as usize, dst);
    }
    out
}

fn to_candle(dtype: DType, shape: &[u64], bytes: &[u8]) -> Result<Tensor, String> {
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let dev = &Device::Cpu;
    let c = |e: candle_core::Error| e.to_string();
    macro_rules! le {
        ($t:ty, $n:expr) => {
            bytes
                .chunks_exact($n)
                .map(|b| <$t>::from_le_bytes(b.try_into().expect("chunk of element size")))
        };
    }
    match dtype {
        DType::F32 => Tensor::from_vec(le!(f32, 4).collect::<Vec<_>>(), shape, dev).map_err(c),
        DType::F16 => Tensor::from_vec(
            le!(u16, 2).map(half::f16::from_bits).collect::<Vec<_>>(),
            shape,
            dev,
        )
        .map_err(c),
        // The executor computes integers in i64.
        DType::I32 => {
            Tensor::from_vec(le!(i32, 4).map(i64::from).collect::<Vec<_>>(), shape, dev).map_err(c)
        }
        DType::I64 => Tensor::from_vec(le!(i64, 8).collect::<Vec<_>>(), shape, dev).map_err(c),
        DType::I8 => Tensor::from_vec(
            bytes
                .iter()
                .map(|&b| i64::from(b as i8))
                .collect::<Vec<_>>(),
            shape,
            dev,
        )
        .map_err(c),
        d => Err(format!("{} inputs are not supported", d.name())),
    }
}

fn to_bytes(t: &Tensor, dtype: DType) -> Result<Vec<u8>, String> {
    let c = |e: candle_core::Error| e.to_string();
    let flat = t.flatten_all().map_err(c)?;
    let ints = || {
        flat.to_dtype(CDType::I64)
            .and_then(|x| x.to_vec1::<i64>())
            .map_err(c)
    };
    Ok(match dtype {
        DType::F32 => flat
            .to_dtype(CDType::F32)
            .and_then(|x| x.to_vec1::<f32>())
            .map_err(c)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => flat
            .to_dtype(CDType::F16)
            .and_then(|x| x.to_vec1::<half::f16>())
            .map_err(c)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I32 => ints()?
            .iter()
            .flat_map(|&v| (v as i32).to_le_bytes())
            .collect(),
        DType::I64 => ints()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I8 => ints()?.iter().map(|&v| v as i8 as u8).collect(),
        d => return Err(format!("{} outputs are not supported", d.name())),
    })
}

/// A checked request, ready to run on any thread.
pub struct Prediction {
    exe: Arc<Executor>,
    inputs: Vec<(NamedTensor, Arc<Mapping>)>,
    outputs: Vec<(TensorSpec, NamedTensor, Arc<Mapping>)>,
}

/// What a prediction returns: output refs and (marshal in, predict, marshal out) µs.
pub type Ran = (Vec<NamedTensor>, [u64; 3]);

impl Prediction {
    /// Reads the inputs from shared memory, runs the program, writes every
    /// output into its slot (row-major, from the slot's offset) and returns
    /// the refs as written.
    pub fn run(self) -> Result<Ran, Failure> {
        let failed = |m: String| (ErrorCode::PREDICT_FAILED, m);
        let t0 = Instant::now();
        let mut feed = HashMap::new();
        for (t, r) in &self.inputs {
            let bytes = gather_bytes(&t.tensor, r);
            let x = to_candle(t.tensor.dtype, &t.tensor.shape, &bytes)
                .map_err(|m| (ErrorCode::SCHEMA_MISMATCH, format!("`{}`: {m}", t.name)))?;
            feed.insert(t.name.clone(), x);
        }
        let t1 = Instant::now();
        let results = self.exe.run(&feed).map_err(|e| failed(e.to_string()))?;
        let t2 = Instant::now();
        let mut written = Vec::new();
        for (spec, slot, region) in &self.outputs {
            let y = results
                .iter()
                .find(|(n, _)| *n == spec.name)
                .map(|(_, t)| t)
                .ok_or_else(|| failed(format!("the program produced no `{}`", spec.name)))?;
            let shape: Vec<u64> = y.dims().iter().map(|&d| d as u64).collect();
            shape_allowed(spec, &shape).map_err(failed)?;
            let bytes = to_bytes(y, spec.dtype).map_err(failed)?;
            let out =
                TensorRef::contiguous(spec.dtype, shape, slot.tensor.region, slot.tensor.offset);
            // The slot was checked for the schema's largest shape; the result
            // must still fit the slot it was given.
            if bytes.len() as u64 > slot.tensor.len {
                return Err(failed(format!(
                    "`{}` needs {} bytes, its slot has {}",
                    spec.name,
                    bytes.len(),
                    slot.tensor.len
                )));
            }
            region.write(out.offset as usize, &bytes);
            written.push(NamedTensor {
                name: spec.name.clone(),
                tensor: out,
            });
        }
        let us = |a: Instant, b: Instant| b.duration_since(a).as_micros() as u64;
        Ok((written, [us(t0, t1), us(t1, t2), us(t2, Instant::now())]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/mlpackage/small_cnn_fp32.mlpackage"
        ))
    }

    #[test]
    fn compile_copies_into_staging_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let (bundle, _) = compile(
            &fixture().display().to_string(),
            staging.to_str().unwrap(),
            "",
        )
        .expect("compile");
        assert!(Path::new(&bundle).starts_with(&staging), "{bundle}");
        assert!(Path::new(&bundle).join("Manifest.json").is_file());

        // A package that links out of itself: refused, and nothing is left behind.
        let pkg = dir.path().join("linked.mlpackage");
        copy_tree(&fixture(), &pkg).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", pkg.join("Data/hostname")).unwrap();
        let (code, message) =
            compile(pkg.to_str().unwrap(), staging.to_str().unwrap(), "").expect_err("symlink");
        assert_eq!(code, ErrorCode::COMPILE_FAILED);
        assert!(message.contains("is a symlink"), "{message}");
        let left: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
        assert_eq!(left.len(), 1, "only the first bundle stays: {left:?}");
    }

    #[test]
    fn fault_queries_take_only_fault_keys() {
        assert!(fault_plan("fault=segv&after=3&once=/tmp/x").is_ok());
        let e = fault_plan("fault=segv&shape=2x2").unwrap_err();
        assert!(e.contains("\"shape\""), "{e}");
        let (p, q) = split_source("mil:/m/a.mlpackage?fault=hang", "fault=segv");
        assert_eq!((p, q), (PathBuf::from("/m/a.mlpackage"), "fault=hang"));
        let (p, q) = split_source("/m/a.mlpackage", "fault=segv");
        assert_eq!((p, q), (PathBuf::from("/m/a.mlpackage"), "fault=segv"));
    }

    #[test]
    fn shapes_are_checked_against_fixed_dims_and_ranges() {
        let mut spec = TensorSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: vec![1, 4],
            enumerated_shapes: vec![],
            shape_ranges: vec![],
            optional: false,
            image: None,
        };
        assert!(shape_allowed(&spec, &[1, 4]).is_ok());
        assert!(shape_allowed(&spec, &[2, 4]).is_err());
        spec.shape_ranges = vec![[1, 8], [4, 4]];
        assert!(shape_allowed(&spec, &[8, 4]).is_ok());
        assert!(shape_allowed(&spec, &[9, 4]).is_err());
        assert!(shape_allowed(&spec, &[4]).is_err());
    }
}
