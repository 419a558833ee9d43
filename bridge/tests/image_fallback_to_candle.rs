//! The router's fallback for image-typed models: callers pass the `u8` HWC image Core ML
//! takes; when Core ML cannot answer (the helper crashes, the breaker opens, or the model is
//! still preparing) the router converts the image with the model's scale and bias
//! (`router.image_input.x`) and Candle answers with what a direct Candle call on the
//! converted tensor gives, which is also what Core ML answered.
//!
//! The Candle side here is the twin of the test helper's `diag:image` model, as `AddEngine`
//! is of `diag:add`: it takes the preprocessed `f32[1, 3, H, W]` and returns it (`diag:image`
//! returns `scale * pixel + bias` of its image).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::helper::supervisor_config;
use coreml_bridge::breaker::{BreakerConfig, BreakerState};
use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::coreml::image::{decode_file, ImagePreprocessing};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{
    async_trait, CacheKey, CapabilityError, CapabilityReport, ComputeUnits, DType, Deadline, DeviceClass, Dim,
    InferError, InferenceEngine, IoSchema, ModelArtifact, ModelFormat, ModelId, PrepareError, PrepareOptions,
    PreparedModel, SlaEstimate, Tensor, TensorMap, TensorSpec, UnloadError, Validated,
};
use coreml_bridge::router::images::HINT_IMAGE_INPUT;
use coreml_bridge::router::{Router, HINT_CANDLE_ARTIFACT};
use coreml_bridge::telemetry::Telemetry;

const H: usize = 4;
const W: usize = 5;
/// EfficientNet-Lite's preprocessing, as the model pipeline's manifest records it.
const MANIFEST: &str =
    r#"{"scale": 0.0078125, "bias": [-0.9921875, -0.5, 0.25], "color": "RGB", "folded_in_program": null}"#;

fn diag_uri(extra: &str) -> String {
    format!("diag:image?shape={H}x{W}&format=bgra8&scale=0.0078125&bias=-0.9921875,-0.5,0.25{extra}")
}

/// A 5x4 RGB image with distinct channels.
fn image() -> Tensor {
    let data: Vec<u8> =
        (0..H * W).flat_map(|i| [(i * 7 % 256) as u8, (i * 13 % 256) as u8, (255 - i * 3) as u8]).collect();
    Tensor::new(vec![H, W, 3], data).unwrap()
}

/// Candle's twin of `diag:image`: `y = x` on `f32[1, 3, H, W]`.
struct ImageTwin {
    next: AtomicU64,
    calls: AtomicU64,
}

impl ImageTwin {
    fn schema() -> IoSchema {
        IoSchema::new(
            vec![TensorSpec::fixed("x", DType::F32, &[1, 3, H, W])],
            vec![TensorSpec::fixed("y", DType::F32, &[1, 3, H, W])],
        )
    }
}

#[async_trait]
impl InferenceEngine for ImageTwin {
    fn name(&self) -> &str {
        "candle"
    }
    async fn prepare(&self, a: &ModelArtifact, o: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        let d = Duration::from_micros(50);
        Ok(PreparedModel {
            engine: "candle".into(),
            id: ModelId(self.next.fetch_add(1, Ordering::SeqCst)),
            cache_key: CacheKey::derive("candle", &a.compute_sha256()?, o),
            schema: Self::schema(),
            sla: SlaEstimate { prepare_time: d, infer_p50: d, infer_p99: Duration::from_millis(100) },
        })
    }
    async fn execute(&self, _: &PreparedModel, x: Validated, _: Deadline) -> Result<TensorMap, InferError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let x = x.inputs().get("x").cloned().ok_or(InferError::Backend { message: "no x".into() })?;
        Ok(TensorMap::new().with("y", x))
    }
    async fn capabilities(&self, _: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        Ok(CapabilityReport::new("candle", DeviceClass::Cpu, ComputeUnits::All, ComputeUnits::CpuOnly))
    }
    async fn unload(&self, _: &PreparedModel) -> Result<(), UnloadError> {
        Ok(())
    }
}

struct Rig {
    router: Router,
    candle: Arc<ImageTwin>,
    model: PreparedModel,
    candle_model: PreparedModel,
    engine: Arc<CoreMlEngine>,
    dir: tempfile::TempDir,
}

async fn rig(uri: &str, grace: Duration, breaker: BreakerConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let health = HealthBus::new();
    let opts = CoreMlOptions { cache_dir: Some(dir.path().join("cache")), ..Default::default() };
    let engine =
        Arc::new(CoreMlEngine::start(supervisor_config(None), opts, telemetry.clone(), health.clone()).await.unwrap());
    let candle = Arc::new(ImageTwin { next: AtomicU64::new(1), calls: AtomicU64::new(0) });
    let router = Router::builder()
        .primary(engine.clone())
        .primary_self_timed()
        .fallback(candle.clone())
        .breaker(breaker)
        .telemetry(telemetry)
        .health(health)
        .prepare_grace(grace)
        .build();
    let weights = dir.path().join("image-twin.safetensors");
    TensorMap::new().with("unused", Tensor::new(vec![1], vec![0f32]).unwrap()).write_safetensors(&weights).unwrap();
    let options = PrepareOptions::new(ComputeUnits::CpuAndNe)
        .with_model_name("image")
        .with_hint(HINT_CANDLE_ARTIFACT, weights.to_str().unwrap())
        .with_hint(format!("{HINT_IMAGE_INPUT}x"), MANIFEST);
    let model = router.prepare(&ModelArtifact::new(ModelFormat::MlPackage, uri), &options).await.expect("prepare");
    let candle_model = candle.prepare(&ModelArtifact::from_path(&weights).unwrap(), &options).await.unwrap();
    Rig { router, candle, model, candle_model, engine, dir }
}

impl Rig {
    /// What Candle gives for the image converted with the model's preprocessing, called directly.
    async fn direct_candle(&self, img: &Tensor) -> Tensor {
        let pre = ImagePreprocessing::from_manifest(&serde_json::from_str(MANIFEST).unwrap()).unwrap();
        let x = pre.candle_input(img).unwrap();
        let y = self.candle.infer(&self.candle_model, TensorMap::new().with("x", x), deadline()).await.unwrap();
        y.get("y").unwrap().clone()
    }

    async fn infer(&self, img: &Tensor) -> Result<Tensor, InferError> {
        let y = self.router.infer(&self.model, TensorMap::new().with("x", img.clone()), deadline()).await?;
        Ok(y.get("y").unwrap().clone())
    }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_image_model_is_answered_by_candle_with_the_converted_image() {
    let _watchdog = common::Watchdog::new("image_fallback_crash", Duration::from_secs(120));
    let breaker = BreakerConfig { warmup: 0, crash_limit: 2, ..BreakerConfig::default() };
    let rig = rig(&diag_uri("&fault=segv&after=1"), Duration::from_secs(30), breaker).await;
    // Callers see the image Core ML takes, not Candle's tensor.
    let x = rig.model.schema.input("x").unwrap();
    assert_eq!((x.dtype, x.shape.clone()), (DType::U8, vec![Dim::Fixed(H), Dim::Fixed(W), Dim::Fixed(3)]));

    let img = image();
    let want = rig.direct_candle(&img).await;
    let from_core_ml = rig.infer(&img).await.expect("Core ML answers once");
    assert_eq!(rig.router.served_by("image").as_deref(), Some("coreml"));
    assert_eq!(from_core_ml, want, "Core ML and Candle see the same numbers");
    assert_eq!(rig.candle.calls.load(Ordering::SeqCst), 1, "only the direct call so far");

    // The helper crashes on every later predict: Candle answers, until the breaker opens and after.
    for i in 0..4 {
        let y = rig.infer(&img).await.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(rig.router.served_by("image").as_deref(), Some("candle"), "request {i}");
        assert_eq!(y, want, "request {i}: Candle's answer on the converted image");
    }
    assert_eq!(rig.router.breaker_state("image"), Some(BreakerState::Open));

    // A decoded image file takes the same way.
    let png = rig.dir.path().join("x.png");
    image::RgbImage::from_raw(W as u32, H as u32, img.as_bytes().to_vec()).unwrap().save(&png).unwrap();
    let decoded = decode_file(&png, Some((W as u32, H as u32))).unwrap();
    assert_eq!(rig.infer(&decoded).await.unwrap(), want);
    assert_eq!(rig.candle.calls.load(Ordering::SeqCst), 6);

    // An image of the wrong size is refused before either engine runs.
    let small = Tensor::new(vec![H, H, 3], vec![0u8; H * H * 3]).unwrap();
    assert!(matches!(rig.infer(&small).await, Err(InferError::Invalid(_))));
    assert_eq!(rig.candle.calls.load(Ordering::SeqCst), 6);
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_model_still_preparing_on_core_ml_is_answered_by_candle() {
    let _watchdog = common::Watchdog::new("image_fallback_preparing", Duration::from_secs(120));
    // The helper never finishes loading: Core ML stays "preparing".
    let rig = rig(&diag_uri("&fault=hang&at=load"), Duration::from_millis(50), BreakerConfig::default()).await;
    let x = rig.model.schema.input("x").unwrap();
    assert_eq!((x.dtype, x.shape.clone()), (DType::U8, vec![Dim::Fixed(H), Dim::Fixed(W), Dim::Fixed(3)]));
    let img = image();
    let want = rig.direct_candle(&img).await;
    assert_eq!(rig.infer(&img).await.expect("Candle answers"), want);
    assert_eq!(rig.router.served_by("image").as_deref(), Some("candle"));
    // A caller passing Candle's own tensor is refused: the model takes images.
    let nchw = TensorMap::new().with("x", Tensor::new(vec![1, 3, H, W], vec![0f32; 3 * H * W]).unwrap());
    assert!(matches!(rig.router.infer(&rig.model, nchw, deadline()).await, Err(InferError::Invalid(_))));
    rig.router.unload(&rig.model).await.unwrap();
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_image_hint_fails_prepare_with_its_reason() {
    let _watchdog = common::Watchdog::new("image_fallback_bad_hint", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let candle = Arc::new(ImageTwin { next: AtomicU64::new(1), calls: AtomicU64::new(0) });
    let router = Router::builder().fallback(candle).build();
    let weights = dir.path().join("image-twin.safetensors");
    TensorMap::new().with("unused", Tensor::new(vec![1], vec![0f32]).unwrap()).write_safetensors(&weights).unwrap();
    let artifact = ModelArtifact::from_path(&weights).unwrap();
    let bad = PrepareOptions::default().with_hint(format!("{HINT_IMAGE_INPUT}x"), r#"{"scale": 1.0}"#);
    let e = router.prepare(&artifact, &bad).await.unwrap_err();
    assert!(e.to_string().contains("router.image_input.x"), "{e}");
    let wrong = PrepareOptions::default().with_hint(format!("{HINT_IMAGE_INPUT}z"), MANIFEST);
    let e = router.prepare(&artifact, &wrong).await.unwrap_err();
    assert!(e.to_string().contains("not an input"), "{e}");
}
