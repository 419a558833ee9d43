//! What the gates run against: a [`GateSubject`] prepares (compile through
//! the cache, load), infers with inputs checked against their own reference
//! output, and names the processes to sample. [`HelperSubject`] is the real
//! one (a supervised helper and the compiled-model cache); [`DoubleSubject`]
//! is the in-process double the gates' own tests use.
//!
//! ```
//! use coreml_bridge::gates::subject::{DoubleSubject, GateSubject};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let s = DoubleSubject::default();
//! let (m, hit) = s.prepare().await.unwrap();
//! assert!(!hit);
//! assert_eq!(s.infer(&m, 7, std::time::Duration::from_secs(1)).await.unwrap(), 0.0);
//! # });
//! ```
//!
//! A real `.mlpackage` plugs in as [`SubjectModel::Package`]: its digest keys
//! the cache, the helper compiles it into the staging directory, and the
//! installed bundle is what is loaded. Its inputs and the reference output
//! (Candle's, on the same inputs) come as a [`PackageReference`]
//! ([`HelperSubject::with_reference`]): gate B checks the schema against it and
//! each inference's output against the reference.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coreml_inference::async_trait;
use coreml_supervisor::schema::ErrorCode;
use coreml_supervisor::{Error as SupError, ModelId, Supervisor};

use crate::cache::key::{package_digest, CompileKey};
use crate::cache::ModelCache;

/// A loaded model of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded(pub u64);

/// What hangs, for gate B's deadline check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hang {
    /// A model slower than the deadline (`diag:sleep`).
    SlowModel,
    /// A prediction that never answers (`fault=hang`).
    HangFault,
}

/// See the module docs.
#[async_trait]
pub trait GateSubject: Send + Sync {
    /// One line: helper, engine, model.
    fn describe(&self) -> String;
    /// The helper's pid, to sample it (`None` when in-process).
    fn helper_pid(&self) -> Option<u32>;
    /// `Ok(what)` when Core ML runs here, else why not.
    fn core_ml(&self) -> Result<String, String>;
    /// Compiles (through the cache) and loads; `true` when the cache had it.
    async fn prepare(&self) -> Result<(Loaded, bool), String>;
    /// Unloads.
    async fn unload(&self, m: Loaded);
    /// Whether the loaded model's inputs and outputs are the expected ones.
    fn check_schema(&self, m: &Loaded) -> Result<(), String>;
    /// One inference on input number `seq`; the L∞ distance of its output
    /// from the reference output of that input.
    async fn infer(&self, m: &Loaded, seq: u64, deadline: Duration) -> Result<f32, String>;
    /// A prediction that would not end by itself, given `deadline`: how long
    /// until the caller had its typed error (`Err` if it got a result).
    async fn hung(&self, kind: Hang, deadline: Duration) -> Result<Duration, String>;
    /// The model's latency SLA (p99).
    fn sla(&self) -> Duration;
    /// The parity budget (L∞) of the model's precision.
    fn parity_budget(&self) -> f32;
    /// For gate C: p50 of Core ML and of the CPU on the model, and the
    /// compute plan's Neural-Engine coverage. `Err` says why not measurable.
    async fn speedup(&self) -> Result<(Duration, Duration, f64), String>;
}

/// The model a [`HelperSubject`] runs.
#[derive(Debug, Clone)]
pub enum SubjectModel {
    /// A diagnostic model URI of the test helper: `diag:add?c=C&shape=4`.
    DiagAdd {
        /// The constant added.
        c: f32,
    },
    /// A package on disk (compiled by the helper into the staging directory).
    Package(PathBuf),
}

/// The inputs of a package model and the reference output on them (Candle's).
#[derive(Debug, Clone)]
pub struct PackageReference {
    /// Input name and tensor, in the package's dtypes and shapes.
    pub inputs: Vec<(String, coreml_inference::Tensor)>,
    /// The output compared.
    pub output: String,
    /// Its reference values.
    pub expected: Vec<f32>,
    /// The parity budget (L∞) of the package's precision.
    pub budget: f32,
}

/// A supervised helper and the compiled-model cache.
pub struct HelperSubject {
    sup: Supervisor,
    cache: ModelCache,
    model: SubjectModel,
    sla: Duration,
    reference: Option<PackageReference>,
}

/// The file a diagnostic "bundle" holds: the URI the helper compiled to.
const DIAG_URI_FILE: &str = "diag.uri";

impl HelperSubject {
    /// Over a running supervisor and an open cache.
    pub fn new(sup: Supervisor, cache: ModelCache, model: SubjectModel, sla: Duration) -> Self {
        Self { sup, cache, model, sla, reference: None }
    }

    /// The inputs and reference output of a package model (gate B's schema and parity).
    pub fn with_reference(mut self, reference: PackageReference) -> Self {
        self.reference = Some(reference);
        self
    }

    fn source(&self) -> String {
        match &self.model {
            SubjectModel::DiagAdd { c } => format!("diag:add?c={c}&shape=4"),
            SubjectModel::Package(p) => p.display().to_string(),
        }
    }

    fn key(&self) -> Result<CompileKey, String> {
        let hello = self.sup.hello().ok_or("the helper is not ready")?;
        let digest = match &self.model {
            SubjectModel::DiagAdd { .. } => coreml_inference::Sha256Digest::of_bytes(self.source().as_bytes()),
            SubjectModel::Package(p) => package_digest(p).map_err(|e| e.to_string())?,
        };
        let coreml = hello.coreml_version.unwrap_or_else(|| "none".into());
        Ok(CompileKey::new(digest, &coreml, "all", "unspecified", "default", &hello.os_build))
    }

    /// The URI or bundle path to load for an installed bundle.
    fn load_path(bundle: &std::path::Path) -> String {
        std::fs::read_to_string(bundle.join(DIAG_URI_FILE)).unwrap_or_else(|_| bundle.display().to_string())
    }
}

fn sup_err(e: SupError) -> String {
    e.to_string()
}

#[async_trait]
impl GateSubject for HelperSubject {
    fn describe(&self) -> String {
        match self.sup.hello() {
            Some(h) => {
                format!("{} helper {} on {} {}, model {}", h.engine, h.helper_version, h.os, h.os_build, self.source())
            }
            None => format!("helper not ready, model {}", self.source()),
        }
    }

    fn helper_pid(&self) -> Option<u32> {
        self.sup.hello().map(|h| h.pid)
    }

    fn core_ml(&self) -> Result<String, String> {
        let h = self.sup.hello().ok_or("the helper is not ready")?;
        match h.coreml_version {
            Some(v) => Ok(format!("Core ML {v} on {} {}", h.os, h.os_build)),
            None => Err(format!("no Core ML on this machine ({} helper on {} {})", h.engine, h.os, h.os_build)),
        }
    }

    async fn prepare(&self) -> Result<(Loaded, bool), String> {
        let key = self.key()?;
        let (bundle, hit) = match self.cache.lookup(&key) {
            Some(e) => (e.bundle, true),
            None => {
                let compiled = self.sup.compile(&self.source(), None).await.map_err(sup_err)?;
                let staged = if compiled.bundle_path.starts_with("diag:") {
                    // The test helper's compile yields a URI: keep it in a bundle of its own.
                    let dir = self.cache.staging_dir().map_err(|e| e.to_string())?.join("diag.mlmodelc");
                    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                    std::fs::write(dir.join(DIAG_URI_FILE), &compiled.bundle_path).map_err(|e| e.to_string())?;
                    dir
                } else {
                    PathBuf::from(&compiled.bundle_path)
                };
                let backend = format!("{:?}", compiled.backend).to_ascii_lowercase();
                (self.cache.install(&key, &backend, &staged).map_err(|e| e.to_string())?, false)
            }
        };
        let info = self.sup.load(&Self::load_path(&bundle), None).await.map_err(sup_err)?;
        Ok((Loaded(info.id.0), hit))
    }

    async fn unload(&self, m: Loaded) {
        let _ = self.sup.unload(ModelId(m.0)).await;
    }

    fn check_schema(&self, m: &Loaded) -> Result<(), String> {
        let info = self.sup.models().into_iter().find(|i| i.id.0 == m.0).ok_or("the model is not loaded")?;
        if let SubjectModel::DiagAdd { .. } = self.model {
            let one = |s: &[coreml_supervisor::schema::TensorSpec], name: &str| {
                s.len() == 1
                    && s[0].name == name
                    && s[0].shape == [4]
                    && s[0].dtype == coreml_supervisor::schema::DType::F32
            };
            if !one(&info.inputs, "x") || !one(&info.outputs, "y") {
                return Err(format!("expected x: f32[4] -> y: f32[4], got {:?} -> {:?}", info.inputs, info.outputs));
            }
        } else if info.inputs.is_empty() || info.outputs.is_empty() {
            return Err("the model declares no inputs or no outputs".into());
        } else if let Some(r) = &self.reference {
            let wire = |t: &coreml_inference::Tensor| (t.dtype().name().to_owned(), t.shape().to_vec());
            for (name, t) in &r.inputs {
                let spec = info.inputs.iter().find(|s| &s.name == name).ok_or(format!("no input `{name}`"))?;
                let got = (spec.dtype.name().to_owned(), spec.shape.iter().map(|&d| d as usize).collect::<Vec<_>>());
                if got != wire(t) {
                    return Err(format!("input `{name}` is {}{:?}, the reference has {:?}", got.0, got.1, wire(t)));
                }
            }
            if info.inputs.len() != r.inputs.len() {
                return Err(format!("{} inputs, the reference has {}", info.inputs.len(), r.inputs.len()));
            }
            let out = info.outputs.iter().find(|s| s.name == r.output).ok_or(format!("no output `{}`", r.output))?;
            let n: u64 = out.shape.iter().product();
            if out.dtype != coreml_supervisor::schema::DType::F32 || n != r.expected.len() as u64 {
                return Err(format!(
                    "output `{}` is {}{:?}, the reference has f32 x {}",
                    r.output,
                    out.dtype.name(),
                    out.shape,
                    r.expected.len()
                ));
            }
        }
        Ok(())
    }

    async fn infer(&self, m: &Loaded, seq: u64, deadline: Duration) -> Result<f32, String> {
        let SubjectModel::DiagAdd { c } = self.model else {
            let r =
                self.reference.as_ref().ok_or("a package needs its inputs and reference output (with_reference)")?;
            let named: Vec<(&str, &[u8])> = r.inputs.iter().map(|(n, t)| (n.as_str(), t.as_bytes())).collect();
            let p = self.sup.predict_with_deadline(ModelId(m.0), &named, deadline).await.map_err(sup_err)?;
            let y = p.output(&r.output).ok_or(format!("no output `{}`", r.output))?.to_f32();
            if y.len() != r.expected.len() {
                return Err(format!(
                    "output `{}` has {} values, the reference {}",
                    r.output,
                    y.len(),
                    r.expected.len()
                ));
            }
            // A NaN is over any budget.
            return Ok(y.iter().zip(&r.expected).map(|(a, b)| (a - b).abs()).fold(0.0, |m, d| {
                if d.is_nan() {
                    f32::INFINITY
                } else {
                    m.max(d)
                }
            }));
        };
        let x: Vec<f32> = (0..4).map(|i| (seq % 10_000) as f32 + i as f32 * 0.25).collect();
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = self.sup.predict_with_deadline(ModelId(m.0), &[("x", &bytes)], deadline).await.map_err(sup_err)?;
        let y = p.output("y").ok_or("no output y")?.to_f32();
        Ok(x.iter().zip(&y).map(|(a, b)| (a + c - b).abs()).fold(0.0, f32::max))
    }

    async fn hung(&self, kind: Hang, deadline: Duration) -> Result<Duration, String> {
        let uri = match kind {
            Hang::SlowModel => "diag:sleep?ms=60000&shape=4",
            Hang::HangFault => "diag:echo?shape=4&fault=hang",
        };
        let info = self.sup.load(uri, None).await.map_err(sup_err)?;
        let t = Instant::now();
        let r = self.sup.predict_with_deadline(info.id, &[("x", &[0u8; 16])], deadline).await;
        let took = t.elapsed();
        let _ = self.sup.unload(info.id).await;
        match r {
            // The supervisor's deadline, or the helper's own (the Swift helper cancels a
            // prediction whose deadline passed and answers TIMEOUT): both are typed timeouts.
            Err(SupError::Timeout { .. } | SupError::Helper { code: ErrorCode::TIMEOUT, .. }) => Ok(took),
            Err(e) => Err(format!("a typed error other than a timeout: {e}")),
            Ok(_) => Err("the hung prediction answered".into()),
        }
    }

    fn sla(&self) -> Duration {
        self.sla
    }

    fn parity_budget(&self) -> f32 {
        self.reference.as_ref().map_or(1e-2, |r| r.budget)
    }

    async fn speedup(&self) -> Result<(Duration, Duration, f64), String> {
        self.core_ml()?;
        Err("the Core ML vs CPU comparison needs a package model and its Candle twin (not wired here)".into())
    }
}

/// What the double does wrong, on request.
#[derive(Debug, Clone, Default)]
pub struct DoubleFaults {
    /// Bytes kept (leaked) on every prepare.
    pub leak_per_prepare: usize,
    /// Bytes kept (leaked) on every inference.
    pub leak_per_infer: usize,
    /// Every n-th inference fails.
    pub fail_every: Option<u64>,
    /// The hung prediction answers instead of timing out.
    pub hang_answers: bool,
    /// Each inference takes this long.
    pub infer_delay: Duration,
}

/// The in-process double: every call succeeds at once unless its
/// [`DoubleFaults`] say otherwise.
#[derive(Debug, Default)]
pub struct DoubleSubject {
    faults: DoubleFaults,
    prepared: AtomicU64,
    inferred: AtomicU64,
    kept: Mutex<Vec<Vec<u8>>>,
}

impl DoubleSubject {
    /// A double with these faults.
    pub fn new(faults: DoubleFaults) -> Self {
        Self { faults, ..Self::default() }
    }

    fn keep(&self, n: usize) {
        if n > 0 {
            // Touch every page so it is resident.
            self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(vec![1u8; n]);
        }
    }
}

#[async_trait]
impl GateSubject for DoubleSubject {
    fn describe(&self) -> String {
        "in-process double".into()
    }
    fn helper_pid(&self) -> Option<u32> {
        None
    }
    fn core_ml(&self) -> Result<String, String> {
        Err("the double has no Core ML".into())
    }
    async fn prepare(&self) -> Result<(Loaded, bool), String> {
        self.keep(self.faults.leak_per_prepare);
        let n = self.prepared.fetch_add(1, Ordering::Relaxed);
        Ok((Loaded(n), n > 0))
    }
    async fn unload(&self, _m: Loaded) {}
    fn check_schema(&self, _m: &Loaded) -> Result<(), String> {
        Ok(())
    }
    async fn infer(&self, _m: &Loaded, _seq: u64, _deadline: Duration) -> Result<f32, String> {
        if !self.faults.infer_delay.is_zero() {
            tokio::time::sleep(self.faults.infer_delay).await;
        }
        self.keep(self.faults.leak_per_infer);
        let n = self.inferred.fetch_add(1, Ordering::Relaxed) + 1;
        match self.faults.fail_every {
            Some(k) if n.is_multiple_of(k) => Err("injected failure".into()),
            _ => Ok(0.0),
        }
    }
    async fn hung(&self, _kind: Hang, deadline: Duration) -> Result<Duration, String> {
        if self.faults.hang_answers {
            return Err("the hung prediction answered".into());
        }
        tokio::time::sleep(deadline).await;
        Ok(deadline)
    }
    fn sla(&self) -> Duration {
        Duration::from_millis(20)
    }
    fn parity_budget(&self) -> f32 {
        1e-2
    }
    async fn speedup(&self) -> Result<(Duration, Duration, f64), String> {
        Err("the double has no Core ML".into())
    }
}
