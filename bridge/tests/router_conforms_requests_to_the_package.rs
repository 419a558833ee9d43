//! The router conforms a request to the Core ML side's form (in-process
//! doubles): a Core ML "package" taking i32 ids of exactly 4 tokens, batch 1,
//! and a Candle model taking i64 ids of 1..16 tokens, batch 1..8, both
//! answering `y = [Σ ids·mask, Σ mask]` per row. A batch of two 3-token rows
//! reaches Core ML as two padded i32 rows and comes back as one answer; an id
//! i32 cannot hold never reaches Core ML (Candle answers, the breaker is not
//! blamed; `router::conform`'s unit tests check the `OutOfRange` error itself).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coreml_bridge::breaker::BreakerState;
use coreml_bridge::inference::cpu::CpuModels;
use coreml_bridge::inference::{
    async_trait, CacheKey, CapabilityError, CapabilityReport, DType, Deadline, Dim, InferError, InferenceEngine,
    IoSchema, ModelArtifact, ModelFormat, PrepareError, PrepareOptions, PreparedModel, SlaEstimate, Tensor, TensorMap,
    TensorSpec, UnloadError, Validated, ValidationError,
};
use coreml_bridge::router::{Router, HINT_CANDLE_ARTIFACT};

/// `y = [Σ ids·mask, Σ mask]` per row, over a declared schema.
struct Summer {
    name: &'static str,
    dtype: DType,
    batch: Dim,
    tokens: Dim,
    models: CpuModels<()>,
    /// The shapes and dtype of every request it ran.
    seen: Mutex<Vec<(Vec<usize>, DType)>>,
    calls: AtomicUsize,
}

impl Summer {
    fn new(name: &'static str, dtype: DType, batch: Dim, tokens: Dim) -> Arc<Self> {
        Arc::new(Self {
            name,
            dtype,
            batch,
            tokens,
            models: CpuModels::new(name),
            seen: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        })
    }

    fn schema(&self) -> IoSchema {
        let ids = |n: &str| TensorSpec::new(n, self.dtype, vec![self.batch, self.tokens]).batch_capable();
        let y = TensorSpec::new("y", DType::F32, vec![self.batch, Dim::Fixed(2)]).batch_capable();
        IoSchema::new(vec![ids("input_ids"), ids("attention_mask")], vec![y])
    }
}

fn values(t: &Tensor) -> Vec<i64> {
    match t.dtype() {
        DType::I32 => t.to_vec::<i32>().unwrap().into_iter().map(i64::from).collect(),
        _ => t.to_vec::<i64>().unwrap(),
    }
}

#[async_trait]
impl InferenceEngine for Summer {
    fn name(&self) -> &str {
        self.name
    }

    async fn prepare(&self, _: &ModelArtifact, o: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        let id = self.models.insert((), o.compute_units);
        let sla = SlaEstimate {
            prepare_time: Duration::ZERO,
            infer_p50: Duration::from_millis(1),
            infer_p99: Duration::from_millis(1),
        };
        Ok(PreparedModel {
            engine: self.name.into(),
            id,
            cache_key: CacheKey(self.name.into()),
            schema: self.schema(),
            sla,
        })
    }

    async fn execute(&self, _: &PreparedModel, inputs: Validated, _: Deadline) -> Result<TensorMap, InferError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let x = inputs.into_inner();
        let (ids, mask) = (x.get("input_ids").unwrap(), x.get("attention_mask").unwrap());
        self.seen.lock().unwrap().push((ids.shape().to_vec(), ids.dtype()));
        let (rows, len) = (ids.shape()[0], ids.shape()[1]);
        let (ids, mask) = (values(ids), values(mask));
        let y: Vec<f32> = (0..rows)
            .flat_map(|r| {
                let row = r * len..(r + 1) * len;
                let s: i64 = row.clone().map(|i| ids[i] * mask[i]).sum();
                [s as f32, mask[row].iter().sum::<i64>() as f32]
            })
            .collect();
        Ok(TensorMap::new().with("y", Tensor::new(vec![rows, 2], y).unwrap()))
    }

    async fn capabilities(&self, m: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        self.models.capabilities(m)
    }

    async fn unload(&self, m: &PreparedModel) -> Result<(), UnloadError> {
        self.models.unload(m)
    }
}

fn request(ids: Vec<i64>, rows: usize) -> TensorMap {
    let len = ids.len() / rows;
    let mask: Vec<i64> = ids.iter().map(|&i| i64::from(i != 0)).collect();
    TensorMap::new()
        .with("input_ids", Tensor::new(vec![rows, len], ids).unwrap())
        .with("attention_mask", Tensor::new(vec![rows, len], mask).unwrap())
}

async fn rig(with_fallback: bool) -> (Router, PreparedModel, Arc<Summer>, Arc<Summer>, tempfile::TempDir) {
    let coreml = Summer::new("coreml", DType::I32, Dim::Fixed(1), Dim::Fixed(4));
    let candle = Summer::new("candle", DType::I64, Dim::range(1, 8), Dim::range(1, 16));
    let mut b = Router::builder().primary(coreml.clone());
    if with_fallback {
        b = b.fallback(candle.clone());
    }
    let router = b.build();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("summer.safetensors");
    std::fs::write(&weights, b"unused").unwrap();
    let options =
        PrepareOptions::default().with_model_name("summer").with_hint(HINT_CANDLE_ARTIFACT, weights.to_str().unwrap());
    let model = router.prepare(&ModelArtifact::new(ModelFormat::MlPackage, "diag:summer"), &options).await.unwrap();
    (router, model, coreml, candle, dir)
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

#[tokio::test]
async fn a_batch_goes_to_the_package_row_by_row_padded_and_narrowed() {
    let (router, model, coreml, candle, _dir) = rig(true).await;
    assert_eq!(model.schema.inputs[0].shape, vec![Dim::range(1, 8), Dim::range(1, 4)]);
    assert_eq!(model.schema.inputs[0].dtype, DType::I64);
    let y = router.infer(&model, request(vec![5, 6, 7, 8, 9, 0], 2), deadline()).await.unwrap();
    assert_eq!(router.served_by("summer").as_deref(), Some("coreml"));
    assert_eq!(y.get("y").unwrap().shape(), &[2, 2]);
    assert_eq!(y.f32("y").unwrap(), &[18.0, 3.0, 17.0, 2.0]);
    assert_eq!(*coreml.seen.lock().unwrap(), vec![(vec![1, 4], DType::I32); 2]);
    assert_eq!(candle.calls.load(Ordering::SeqCst), 0);
    // Longer than the package takes: refused by the router's schema, before any engine.
    let e = router.infer(&model, request(vec![1; 5], 1), deadline()).await.unwrap_err();
    assert!(matches!(e, InferError::Invalid(ValidationError::Dim { axis: 1, .. })), "{e:?}");
}

#[tokio::test]
async fn an_id_the_package_cannot_hold_goes_to_candle_without_blame() {
    let (router, model, coreml, candle, _dir) = rig(true).await;
    let big = i64::from(i32::MAX) + 1;
    for _ in 0..12 {
        let y = router.infer(&model, request(vec![big, 1, 1], 1), deadline()).await.unwrap();
        assert_eq!(y.f32("y").unwrap(), &[big as f32 + 2.0, 3.0]);
        assert_eq!(router.served_by("summer").as_deref(), Some("candle"));
    }
    assert_eq!(coreml.calls.load(Ordering::SeqCst), 0, "never sent to Core ML");
    assert_eq!(candle.calls.load(Ordering::SeqCst), 12);
    assert_eq!(router.breaker_state("summer"), Some(BreakerState::Closed), "the package is not to blame");
    let snap = router.telemetry().snapshot();
    assert_eq!(snap.model("summer").unwrap().fallbacks.get("primary_failed"), Some(&12));
    router.infer(&model, request(vec![1, 2, 3], 1), deadline()).await.unwrap();
    assert_eq!(router.served_by("summer").as_deref(), Some("coreml"));
}
