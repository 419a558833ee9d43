//! [`CpuModels`]: what an in-process CPU engine keeps per loaded model (its
//! handle, requested compute units, latency window) and the parts of
//! [`InferenceEngine`](crate::InferenceEngine) that follow from it alone:
//! the capability report and unload. The Candle engine and the MIL
//! executor engine share it.
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::cpu::CpuModels;
//! use coreml_inference::{CacheKey, ComputeUnits, IoSchema, PreparedModel, SlaEstimate, UnloadError};
//!
//! let models: CpuModels<&'static str> = CpuModels::new("toy");
//! let id = models.insert("weights", ComputeUnits::All);
//! assert_eq!(models.get(id).unwrap().model, "weights");
//! models.get(id).unwrap().infer_stats.record(Duration::from_millis(3));
//! let handle = PreparedModel {
//!     engine: "toy".into(), id, cache_key: CacheKey("k".into()),
//!     schema: IoSchema::new(vec![], vec![]),
//!     sla: SlaEstimate { prepare_time: Duration::ZERO, infer_p50: Duration::ZERO, infer_p99: Duration::ZERO },
//! };
//! let report = models.capabilities(&handle).unwrap();
//! assert_eq!((report.engine.as_str(), report.compute_units_actual), ("toy", ComputeUnits::CpuOnly));
//! assert_eq!(report.infer_p99, Some(Duration::from_millis(3)));
//! models.unload(&handle).unwrap();
//! assert!(matches!(models.unload(&handle), Err(UnloadError::UnknownModel { .. })));
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::capability::{CapabilityReport, DeviceClass, LatencyStats};
use crate::engine::{ModelId, PreparedModel};
use crate::error::{CapabilityError, UnloadError};
use crate::options::ComputeUnits;

/// One loaded model of a CPU engine.
#[derive(Debug)]
pub struct CpuLoaded<M> {
    /// The engine's own model object.
    pub model: M,
    /// Compute units asked for in `prepare` (a CPU engine always uses the CPU).
    pub requested: ComputeUnits,
    /// Recent inference times.
    pub infer_stats: LatencyStats,
}

/// The loaded models of an in-process CPU engine named `engine`.
#[derive(Debug)]
pub struct CpuModels<M> {
    engine: &'static str,
    next_id: AtomicU64,
    models: RwLock<HashMap<ModelId, Arc<CpuLoaded<M>>>>,
    compile_stats: LatencyStats,
}

impl<M> CpuModels<M> {
    /// No models yet.
    pub fn new(engine: &'static str) -> Self {
        Self {
            engine,
            next_id: AtomicU64::new(1),
            models: RwLock::new(HashMap::new()),
            compile_stats: LatencyStats::new(64),
        }
    }

    /// Keeps a loaded model; returns its new id.
    pub fn insert(&self, model: M, requested: ComputeUnits) -> ModelId {
        let id = ModelId(self.next_id.fetch_add(1, Ordering::SeqCst));
        let loaded = CpuLoaded {
            model,
            requested,
            infer_stats: LatencyStats::new(512),
        };
        // A panic while holding the lock cannot leave the map half-updated.
        self.models
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, Arc::new(loaded));
        id
    }

    /// The model `id`, if loaded.
    pub fn get(&self, id: ModelId) -> Option<Arc<CpuLoaded<M>>> {
        self.models
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Records how long a `prepare` took (the report's `compile_p99`).
    pub fn record_prepare(&self, took: Duration) {
        self.compile_stats.record(took);
    }

    /// The capability report of `model`: CPU only, its input dtypes, batch
    /// limit and latency percentiles.
    pub fn capabilities(&self, model: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        let loaded = self
            .get(model.id)
            .ok_or(CapabilityError::UnknownModel { model: model.id })?;
        let mut r = CapabilityReport::new(
            self.engine,
            DeviceClass::Cpu,
            loaded.requested,
            ComputeUnits::CpuOnly,
        );
        let mut dtypes: Vec<_> = model.schema.inputs.iter().map(|s| s.dtype).collect();
        dtypes.sort();
        dtypes.dedup();
        r.dtypes = dtypes;
        r.max_batch = model.schema.max_batch();
        r.compile_p99 = self.compile_stats.p99();
        r.infer_p99 = loaded.infer_stats.p99();
        Ok(r)
    }

    /// Forgets `model` (its memory is freed when the last running job ends).
    pub fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        self.models
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&model.id)
            .map(|_| ())
            .ok_or(UnloadError::UnknownModel { model: model.id })
    }
}
