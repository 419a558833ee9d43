//! [`Executor`]: loads a package (checks every op is supported, materialises
//! `const` and `constexpr_*` values once) and runs `main` on candle tensors.
//!
//! ```
//! use std::collections::HashMap;
//! use candle_core::{Device, Tensor};
//! use coreml_mil::{Executor, Options};
//! let exe = Executor::load(concat!(env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/mlpackage/small_cnn_fp32.mlpackage"), Options::default()).unwrap();
//! let image = Tensor::zeros((1, 3, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
//! let out = exe.run(&HashMap::from([("image".to_string(), image)])).unwrap();
//! assert_eq!(out[0].0, "logits");
//! assert_eq!(out[0].1.dims(), &[1, 5]);
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor};
use coreml_mlpackage::{ArgRef, DataType, Elements, Operation, Package, Value};

use crate::error::{LoadError, RunError};
use crate::host::Host;
use crate::ops::{self, conv::Kernel};

/// Float precision of execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in f32, FP16 programs included (the default).
    #[default]
    Fp32,
    /// Results the program types as fp16 are rounded to fp16 after each
    /// operation (f32 accumulation), as an FP16 device stores them.
    Fp16,
}

/// Execution options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub precision: Precision,
}

/// A runtime value: a tensor (floats as f32, integers as i64, bools as u8)
/// or strings (`pad_type`, `mode`, ...).
#[derive(Debug, Clone)]
pub enum Val {
    T(Tensor),
    S(Vec<String>),
}

/// A loaded program, ready to run (`Send + Sync`; runs may be concurrent).
pub struct Executor {
    package: Package,
    options: Options,
    consts: HashMap<String, Val>,
    /// Indices of the non-constant operations of `main`, in order.
    ops: Vec<usize>,
    pub(crate) kernels: Mutex<KernelCache>,
}

/// Packed kernels per (operation index, input geometry), built on first use.
pub(crate) type KernelCache = HashMap<(usize, [usize; 4]), Arc<Kernel>>;

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("root", &self.package.root)
            .field("ops", &self.ops.len())
            .finish()
    }
}

/// Converts decoded elements to a runtime value.
pub(crate) fn elements_to_val(
    e: &Elements,
    dtype: DataType,
    shape: &[usize],
) -> candle_core::Result<Val> {
    let dev = &candle_core::Device::Cpu;
    Ok(match e {
        Elements::Str(s) => Val::S(s.clone()),
        Elements::Bool(b) => Val::T(Tensor::from_vec(
            b.iter().map(|&x| x as u8).collect::<Vec<_>>(),
            shape,
            dev,
        )?),
        _ if dtype.is_float() => Val::T(Tensor::from_vec(e.to_f32(), shape, dev)?),
        _ => Val::T(Tensor::from_vec(e.to_i64(), shape, dev)?),
    })
}

/// The internal dtype for a MIL element type.
pub(crate) fn internal_dtype(d: DataType) -> DType {
    if d == DataType::Bool {
        DType::U8
    } else if d.is_float() {
        DType::F32
    } else {
        DType::I64
    }
}

impl Executor {
    /// Loads `path`. Fails with the list of unsupported operations, or if a
    /// constant cannot be decoded.
    pub fn load(path: impl AsRef<Path>, options: Options) -> Result<Self, LoadError> {
        Self::from_package(Package::open(path)?, options)
    }

    /// Loads an opened package.
    pub fn from_package(package: Package, options: Options) -> Result<Self, LoadError> {
        let main = package.main();
        let unsupported: BTreeSet<String> = main
            .block
            .operations
            .iter()
            .map(|op| op.op_type.as_str())
            .filter(|t| !ops::SUPPORTED.contains(t))
            .map(str::to_string)
            .collect();
        if !unsupported.is_empty() {
            return Err(LoadError::UnsupportedOps(unsupported.into_iter().collect()));
        }
        let mut exe = Self {
            options,
            consts: HashMap::new(),
            ops: Vec::new(),
            kernels: Mutex::new(HashMap::new()),
            package,
        };
        let mut known: BTreeSet<String> = exe
            .package
            .main()
            .inputs
            .iter()
            .map(|i| i.name.clone())
            .collect();
        let n = exe.package.main().block.operations.len();
        for i in 0..n {
            let op = &exe.package.main().block.operations[i];
            let invalid = |detail: String| LoadError::Invalid {
                op: op.name.clone(),
                op_type: op.op_type.clone(),
                detail,
            };
            for (param, args) in &op.inputs {
                for a in args {
                    if let coreml_mlpackage::Arg::Name(name) = a {
                        if !known.contains(name) {
                            return Err(invalid(format!(
                                "{param} names {name:?}, which is not defined before it"
                            )));
                        }
                    }
                }
            }
            if op.op_type == "const" {
                let v = op
                    .attributes
                    .get("val")
                    .ok_or_else(|| invalid("no val attribute".into()))?;
                let out = op
                    .outputs
                    .first()
                    .ok_or_else(|| invalid("no output".into()))?;
                let val = exe.value(v).map_err(invalid)?;
                exe.consts.insert(out.name.clone(), val);
            } else if op.op_type.starts_with("constexpr_") {
                let out = op
                    .outputs
                    .first()
                    .ok_or_else(|| invalid("no output".into()))?;
                let t = ops::constexpr::materialise(&exe, op).map_err(invalid)?;
                exe.consts.insert(out.name.clone(), Val::T(t));
            } else {
                exe.ops.push(i);
            }
            known.extend(op.outputs.iter().map(|o| o.name.clone()));
        }
        for o in &exe.package.main().block.outputs {
            if !known.contains(o) {
                return Err(LoadError::Invalid {
                    op: o.clone(),
                    op_type: "output".into(),
                    detail: "the block returns a name nothing defines".into(),
                });
            }
        }
        Ok(exe)
    }

    /// The package.
    pub fn package(&self) -> &Package {
        &self.package
    }

    pub(crate) fn consts_contain(&self, name: &str) -> bool {
        self.consts.contains_key(name)
    }

    /// The options it was loaded with.
    pub fn options(&self) -> Options {
        self.options
    }

    pub(crate) fn value(&self, v: &Value) -> Result<Val, String> {
        let t = v
            .tensor()
            .ok_or("a list, tuple or dictionary value is not supported here")?;
        let e = self.package.tensor(t).map_err(|e| e.to_string())?;
        elements_to_val(&e, t.dtype, &t.shape).map_err(|e| e.to_string())
    }

    /// A parameter of `op` from the constants only (load time).
    pub(crate) fn const_param(&self, op: &Operation, name: &str) -> Result<Option<Val>, String> {
        match op.param(name) {
            None => Ok(None),
            Some(ArgRef::Value(v)) => self.value(v).map(Some),
            Some(ArgRef::Name(n)) => self
                .consts
                .get(n)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("{name} names {n:?}, which is not a constant")),
        }
    }

    /// Runs `main` on `inputs` (by name); returns the outputs in the
    /// program's order, with floats as f32 (f16 for fp16 outputs in
    /// [`Precision::Fp16`]), integers as i64 and bools as u8.
    pub fn run(&self, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>, RunError> {
        let main = self.package.main();
        let mut env: HashMap<&str, Val> =
            HashMap::with_capacity(self.consts.len() + self.ops.len());
        for (k, v) in &self.consts {
            env.insert(k.as_str(), v.clone());
        }
        for inp in &main.inputs {
            let err = |detail: String| RunError::Input {
                name: inp.name.clone(),
                detail,
            };
            let t = inputs.get(&inp.name).ok_or_else(|| err("missing".into()))?;
            let tt = inp
                .ty
                .tensor()
                .ok_or_else(|| err("not a tensor input".into()))?;
            if let Some(dims) = &tt.dims {
                let ok = dims.len() == t.rank()
                    && dims
                        .iter()
                        .zip(t.dims())
                        .all(|(d, &n)| d.known().is_none_or(|k| k == n));
                if !ok {
                    return Err(err(format!(
                        "shape {:?} does not match the program's {:?}",
                        t.dims(),
                        dims
                    )));
                }
            }
            let t = t
                .to_dtype(internal_dtype(tt.dtype))
                .map_err(|e| err(e.to_string()))?;
            env.insert(inp.name.as_str(), Val::T(t));
        }
        for &i in &self.ops {
            let op = &main.block.operations[i];
            let outs = ops::eval(self, i, op, &env).map_err(|detail| RunError::Op {
                op: op.name.clone(),
                op_type: op.op_type.clone(),
                detail,
            })?;
            for (decl, t) in op.outputs.iter().zip(outs) {
                let t = self.conform(decl, t).map_err(|detail| RunError::Op {
                    op: op.name.clone(),
                    op_type: op.op_type.clone(),
                    detail,
                })?;
                env.insert(decl.name.as_str(), Val::T(t));
            }
        }
        main.block
            .outputs
            .iter()
            .map(|name| {
                let err = |detail: String| RunError::Op {
                    op: name.clone(),
                    op_type: "output".into(),
                    detail,
                };
                let Some(Val::T(t)) = env.remove(name.as_str()) else {
                    return Err(err("not a tensor".into()));
                };
                let declared = self
                    .package
                    .description
                    .outputs
                    .iter()
                    .find(|o| &o.name == name)
                    .and_then(|o| match &o.kind {
                        coreml_mlpackage::description::FeatureKind::MultiArray(a) => {
                            Some(a.dtype.data_type())
                        }
                        _ => None,
                    });
                let t = match declared {
                    Some(DataType::Float16) if self.options.precision == Precision::Fp16 => {
                        t.to_dtype(DType::F16)
                    }
                    _ => Ok(t),
                }
                .map_err(|e| err(e.to_string()))?;
                Ok((name.clone(), t))
            })
            .collect()
    }

    /// Casts a result to its declared type, checks the declared static shape,
    /// and rounds fp16 results in FP16 mode.
    fn conform(&self, decl: &coreml_mlpackage::NamedType, t: Tensor) -> Result<Tensor, String> {
        let Some(tt) = decl.ty.tensor() else {
            return Ok(t);
        };
        if let Some(shape) = tt.static_shape() {
            if shape != t.dims() {
                return Err(format!(
                    "result {} has shape {:?}, the program declares {:?}",
                    decl.name,
                    t.dims(),
                    shape
                ));
            }
        }
        let want = internal_dtype(tt.dtype);
        let mut t = if t.dtype() == want {
            t
        } else {
            t.to_dtype(want).map_err(|e| e.to_string())?
        };
        if tt.dtype == DataType::Float16 && self.options.precision == Precision::Fp16 {
            t = t
                .to_dtype(DType::F16)
                .and_then(|x| x.to_dtype(DType::F32))
                .map_err(|e| e.to_string())?;
        }
        Ok(t)
    }
}

/// Parameter access for one operation at run time.
pub(crate) struct Ctx<'a> {
    pub exe: &'a Executor,
    pub op: &'a Operation,
    pub env: &'a HashMap<&'a str, Val>,
}

impl Ctx<'_> {
    pub fn val(&self, name: &str) -> Result<Option<Val>, String> {
        match self.op.param(name) {
            None => Ok(None),
            Some(ArgRef::Value(v)) => self.exe.value(v).map(Some),
            Some(ArgRef::Name(n)) => self
                .env
                .get(n)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("{name}: {n:?} is undefined")),
        }
    }

    pub fn opt(&self, name: &str) -> Result<Option<Tensor>, String> {
        match self.val(name)? {
            None => Ok(None),
            Some(Val::T(t)) => Ok(Some(t)),
            Some(Val::S(_)) => Err(format!("{name}: a string where a tensor is expected")),
        }
    }

    pub fn t(&self, name: &str) -> Result<Tensor, String> {
        self.opt(name)?
            .ok_or_else(|| format!("missing parameter {name}"))
    }

    /// A variadic parameter's tensors (`concat.values`).
    pub fn list(&self, name: &str) -> Result<Vec<Tensor>, String> {
        let args = self
            .op
            .inputs
            .get(name)
            .ok_or_else(|| format!("missing parameter {name}"))?;
        args.iter()
            .map(|a| match a {
                coreml_mlpackage::Arg::Name(n) => match self.env.get(n.as_str()) {
                    Some(Val::T(t)) => Ok(t.clone()),
                    _ => Err(format!("{name}: {n:?} is not a tensor")),
                },
                coreml_mlpackage::Arg::Value(v) => match self.exe.value(v)? {
                    Val::T(t) => Ok(t),
                    Val::S(_) => Err(format!("{name}: a string where a tensor is expected")),
                },
            })
            .collect()
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        match self.opt(name)? {
            None => Ok(None),
            Some(t) => Ok(Some(
                Host::from_tensor(&t)
                    .map_err(|e| e.to_string())?
                    .data
                    .iter()
                    .map(|&x| x as i64)
                    .collect(),
            )),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self
            .ints(name)?
            .and_then(|v| v.first().copied())
            .unwrap_or(default))
    }

    pub fn float(&self, name: &str, default: f64) -> Result<f64, String> {
        match self.opt(name)? {
            None => Ok(default),
            Some(t) => Ok(Host::from_tensor(&t)
                .map_err(|e| e.to_string())?
                .data
                .first()
                .copied()
                .unwrap_or(default as f32) as f64),
        }
    }

    pub fn bools(&self, name: &str) -> Result<Option<Vec<bool>>, String> {
        Ok(self
            .ints(name)?
            .map(|v| v.into_iter().map(|x| x != 0).collect()))
    }

    pub fn flag(&self, name: &str) -> Result<bool, String> {
        Ok(self
            .bools(name)?
            .and_then(|v| v.first().copied())
            .unwrap_or(false))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.val(name)? {
            None => Ok(None),
            Some(Val::S(s)) => Ok(s.into_iter().next()),
            Some(Val::T(_)) => Err(format!("{name}: a tensor where a string is expected")),
        }
    }
}
