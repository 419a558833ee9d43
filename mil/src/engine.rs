//! [`MilEngine`]: an [`InferenceEngine`] over the executor for any
//! `.mlpackage` (engine name `"mil"`), with the schema taken from the
//! package's description and the same validation and telemetry as the other
//! engines.
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::{Deadline, InferenceEngine, ModelArtifact, PrepareOptions, Tensor, TensorMap};
//! use coreml_mil::MilEngine;
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let engine = MilEngine::new();
//! let artifact = ModelArtifact::from_path(concat!(env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/mlpackage/small_cnn_fp32.mlpackage")).unwrap();
//! let model = engine.prepare(&artifact, &PrepareOptions::default()).await.unwrap();
//! let inputs = TensorMap::new().with("image", Tensor::zeros(coreml_inference::DType::F32, vec![1, 3, 8, 8]).unwrap());
//! let out = engine.infer(&model, inputs, Deadline::after(Duration::from_secs(5))).await.unwrap();
//! assert_eq!(out.get("logits").unwrap().shape(), &[1, 5]);
//! # });
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use candle_core::{DType as CDType, Device, Tensor as CTensor};
use coreml_inference::cpu::CpuModels;
use coreml_inference::{
    CacheKey, CapabilityError, CapabilityReport, DType, Deadline, Dim, InferError, InferenceEngine,
    IoSchema, ModelArtifact, ModelFormat, PrepareError, PrepareOptions, PreparedModel, SlaEstimate,
    Tensor, TensorMap, TensorSpec, UnloadError, Validated,
};
use coreml_mlpackage::description::{ColorSpace, FeatureKind, ShapeFlexibility};
use coreml_mlpackage::{ArrayDataType, Package};

use crate::executor::{Executor, Options};

/// The engine's name in handles and reports.
pub const ENGINE_NAME: &str = "mil";

/// Largest size of an unbounded flexible dimension in the schema.
const UNBOUNDED: usize = 1 << 20;

/// The MIL executor engine. Share it through an `Arc`.
pub struct MilEngine {
    options: Options,
    warm_ups: usize,
    models: CpuModels<Executor>,
}

impl Default for MilEngine {
    fn default() -> Self {
        Self::new()
    }
}

fn backend(e: impl std::fmt::Display) -> InferError {
    InferError::Backend {
        message: e.to_string(),
    }
}

fn dtype(a: ArrayDataType) -> DType {
    match a {
        ArrayDataType::Float32 => DType::F32,
        ArrayDataType::Float16 => DType::F16,
        ArrayDataType::Float64 => DType::F64,
        ArrayDataType::Int32 => DType::I32,
        ArrayDataType::Int8 => DType::I8,
    }
}

/// The engine schema of a package: inputs and outputs from its description
/// (flexible shapes become ranges; an image input is f32 pixels
/// `[1, C, H, W]`), output shapes from the program's types.
pub fn schema_of(pkg: &Package) -> Result<IoSchema, String> {
    let main = pkg.main();
    let spec = |f: &coreml_mlpackage::description::Feature,
                output: bool|
     -> Result<TensorSpec, String> {
        let a = match &f.kind {
            FeatureKind::MultiArray(a) => a,
            // An image input is its pixels as the program receives them:
            // f32 [1, C, H, W] in 0..=255, channels in the color space's order.
            FeatureKind::Image(i) if !output => {
                let c = match i.color_space {
                    ColorSpace::Grayscale | ColorSpace::GrayscaleFloat16 => 1,
                    ColorSpace::Rgb | ColorSpace::Bgr => 3,
                };
                let shape = [1, c, i.height as usize, i.width as usize];
                return Ok(TensorSpec::new(
                    f.name.clone(),
                    DType::F32,
                    shape.into_iter().map(Dim::Fixed).collect(),
                ));
            }
            _ => {
                return Err(format!(
                    "{}: only multi-array features and image inputs are supported (not {:?})",
                    f.name, f.kind
                ))
            }
        };
        let mut shape: Vec<Dim> = a.shape.iter().map(|&d| Dim::Fixed(d as usize)).collect();
        match &a.flexibility {
            Some(ShapeFlexibility::Range(r)) => {
                shape = r
                    .iter()
                    .map(|&(lo, hi)| Dim::range(lo as usize, hi.map_or(UNBOUNDED, |h| h as usize)))
                    .collect();
            }
            Some(ShapeFlexibility::Enumerated(shapes)) if !shapes.is_empty() => {
                let rank = shapes[0].len();
                shape = (0..rank)
                    .map(|i| {
                        let v = shapes.iter().filter_map(|s| s.get(i)).map(|&d| d as usize);
                        let (lo, hi) = (v.clone().min().unwrap_or(0), v.max().unwrap_or(0));
                        if lo == hi {
                            Dim::Fixed(lo)
                        } else {
                            Dim::range(lo, hi)
                        }
                    })
                    .collect();
            }
            _ => {}
        }
        if output {
            let declared = main
                .block
                .operations
                .iter()
                .flat_map(|op| &op.outputs)
                .find(|o| o.name == f.name);
            if let Some(s) = declared
                .and_then(|o| o.ty.tensor())
                .and_then(|t| t.static_shape())
            {
                shape = s.into_iter().map(Dim::Fixed).collect();
            }
        }
        Ok(TensorSpec::new(f.name.clone(), dtype(a.dtype), shape))
    };
    let inputs = pkg
        .description
        .inputs
        .iter()
        .map(|f| spec(f, false))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = pkg
        .description
        .outputs
        .iter()
        .map(|f| spec(f, true))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IoSchema::new(inputs, outputs))
}

fn to_candle(t: &Tensor) -> Result<CTensor, String> {
    let dev = &Device::Cpu;
    let shape = t.shape().to_vec();
    let e = |e: coreml_inference::TensorError| e.to_string();
    let c = |e: candle_core::Error| e.to_string();
    match t.dtype() {
        DType::F32 => CTensor::from_vec(t.to_vec::<f32>().map_err(e)?, shape, dev).map_err(c),
        DType::F16 => CTensor::from_vec(t.to_vec::<half::f16>().map_err(e)?, shape, dev).map_err(c),
        DType::F64 => CTensor::from_vec(t.to_vec::<f64>().map_err(e)?, shape, dev).map_err(c),
        DType::I64 => CTensor::from_vec(t.to_vec::<i64>().map_err(e)?, shape, dev).map_err(c),
        DType::I32 => CTensor::from_vec(
            t.to_vec::<i32>()
                .map_err(e)?
                .into_iter()
                .map(i64::from)
                .collect::<Vec<_>>(),
            shape,
            dev,
        )
        .map_err(c),
        DType::I8 => CTensor::from_vec(
            t.to_vec::<i8>()
                .map_err(e)?
                .into_iter()
                .map(i64::from)
                .collect::<Vec<_>>(),
            shape,
            dev,
        )
        .map_err(c),
        d => Err(format!("{d} inputs are not supported")),
    }
}

fn from_candle(t: &CTensor, want: DType) -> Result<Tensor, String> {
    let shape = t.dims().to_vec();
    let c = |e: candle_core::Error| e.to_string();
    let flat = t.flatten_all().map_err(c)?;
    let r = match want {
        DType::F32 => Tensor::new(
            shape,
            flat.to_dtype(CDType::F32)
                .and_then(|x| x.to_vec1::<f32>())
                .map_err(c)?,
        ),
        DType::F16 => Tensor::new(
            shape,
            flat.to_dtype(CDType::F16)
                .and_then(|x| x.to_vec1::<half::f16>())
                .map_err(c)?,
        ),
        DType::F64 => Tensor::new(
            shape,
            flat.to_dtype(CDType::F64)
                .and_then(|x| x.to_vec1::<f64>())
                .map_err(c)?,
        ),
        DType::I32 => Tensor::new(
            shape,
            flat.to_dtype(CDType::I64)
                .and_then(|x| x.to_vec1::<i64>())
                .map_err(c)?
                .into_iter()
                .map(|v| v as i32)
                .collect::<Vec<_>>(),
        ),
        DType::I8 => Tensor::new(
            shape,
            flat.to_dtype(CDType::I64)
                .and_then(|x| x.to_vec1::<i64>())
                .map_err(c)?
                .into_iter()
                .map(|v| v as i8)
                .collect::<Vec<_>>(),
        ),
        d => return Err(format!("{d} outputs are not supported")),
    };
    r.map_err(|e| e.to_string())
}

impl MilEngine {
    /// An engine running programs in f32.
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    /// An engine with given executor options (e.g. [`Precision::Fp16`](crate::Precision::Fp16)).
    pub fn with_options(options: Options) -> Self {
        coreml_candle::ops::runtime::init_cpu_runtime(None);
        Self {
            options,
            warm_ups: 2,
            models: CpuModels::new(ENGINE_NAME),
        }
    }

    /// No warm-up runs in `prepare` (the SLA estimate is then zero): for
    /// one-shot uses such as `coreml-bridge parity` and load-time benchmarks.
    #[must_use]
    pub fn without_warm_up(mut self) -> Self {
        self.warm_ups = 0;
        self
    }

    async fn load(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        let start = Instant::now();
        if artifact.format != ModelFormat::MlPackage {
            return Err(PrepareError::UnsupportedFormat {
                engine: ENGINE_NAME.into(),
                format: artifact.format,
            });
        }
        let (artifact, exe_opts, warm_ups) = (artifact.clone(), self.options, self.warm_ups);
        let (exe, schema, digest, sla) = tokio::task::spawn_blocking(move || {
            let digest = artifact.verify()?;
            let invalid = |e: &dyn std::fmt::Display| PrepareError::InvalidModel {
                message: e.to_string(),
            };
            let exe = Executor::load(&artifact.path, exe_opts).map_err(|e| invalid(&e))?;
            let schema = schema_of(exe.package()).map_err(|e| invalid(&e))?;
            // Warm-up runs (two by default) on zeros of the smallest allowed
            // shapes give the SLA estimate.
            let example: HashMap<String, CTensor> = exe
                .package()
                .main()
                .inputs
                .iter()
                .map(|i| {
                    let spec = schema.input(&i.name);
                    let shape: Vec<usize> = spec
                        .map(|s| {
                            s.shape
                                .iter()
                                .map(|d| match d {
                                    Dim::Fixed(n) => *n,
                                    Dim::Range { min, .. } => (*min).max(1),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let dt =
                        i.ty.tensor()
                            .map(|t| crate::executor::internal_dtype(t.dtype))
                            .unwrap_or(CDType::F32);
                    CTensor::zeros(shape, dt, &Device::Cpu).map(|t| (i.name.clone(), t))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(&e))?;
            let mut runs = vec![Duration::ZERO; warm_ups];
            for r in &mut runs {
                let t = Instant::now();
                exe.run(&example).map_err(|e| PrepareError::Backend {
                    message: format!("warm-up: {e}"),
                })?;
                *r = t.elapsed();
            }
            Ok::<_, PrepareError>((
                exe,
                schema,
                digest,
                (
                    runs.iter().min().copied().unwrap_or_default(),
                    runs.iter().max().copied().unwrap_or_default(),
                ),
            ))
        })
        .await
        .map_err(|e| PrepareError::Backend {
            message: format!("load task: {e}"),
        })??;
        let id = self.models.insert(exe, options.compute_units);
        let prepare_time = start.elapsed();
        self.models.record_prepare(prepare_time);
        let mut key_opts = options.clone();
        key_opts.hints.insert(
            "mil.precision".into(),
            format!("{:?}", self.options.precision),
        );
        Ok(PreparedModel {
            engine: ENGINE_NAME.into(),
            id,
            cache_key: CacheKey::derive(ENGINE_NAME, &digest, &key_opts),
            schema,
            sla: SlaEstimate {
                prepare_time,
                infer_p50: sla.0,
                infer_p99: sla.1,
            },
        })
    }
}

#[async_trait]
impl InferenceEngine for MilEngine {
    fn name(&self) -> &str {
        ENGINE_NAME
    }

    async fn prepare(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        options.within_budget(self.load(artifact, options)).await
    }

    async fn execute(
        &self,
        model: &PreparedModel,
        inputs: Validated,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        let loaded = self
            .models
            .get(model.id)
            .ok_or(InferError::UnknownModel { model: model.id })?;
        let schema = model.schema.clone();
        tokio::task::spawn_blocking(move || {
            if deadline.is_expired() {
                return Err(deadline.exceeded());
            }
            let start = Instant::now();
            let ins = inputs
                .inputs()
                .iter()
                .map(|(n, t)| to_candle(t).map(|c| (n.to_string(), c)))
                .collect::<Result<HashMap<_, _>, _>>()
                .map_err(backend)?;
            let outs = loaded.model.run(&ins).map_err(backend)?;
            let mut map = TensorMap::new();
            for (name, t) in outs {
                let want = schema.output(&name).map_or(DType::F32, |s| s.dtype);
                map.insert(name, from_candle(&t, want).map_err(backend)?);
            }
            loaded.infer_stats.record(start.elapsed());
            Ok(map)
        })
        .await
        .map_err(|e| backend(format!("inference task: {e}")))?
    }

    async fn capabilities(
        &self,
        model: &PreparedModel,
    ) -> Result<CapabilityReport, CapabilityError> {
        self.models.capabilities(model)
    }

    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        self.models.unload(model)
    }
}
