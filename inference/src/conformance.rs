//! Conformance checks every [`InferenceEngine`] must pass, generic over the
//! engine so the double and each real engine run the same suite.
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::{conformance, double::DoubleEngine, PrepareOptions, Tensor, TensorMap};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let engine = DoubleEngine::new();
//! let dir = tempfile::tempdir().unwrap();
//! let case = conformance::Case {
//!     artifact: engine.write_artifact(dir.path()).unwrap(),
//!     options: PrepareOptions::default(),
//!     inputs: TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![1.0f32; 4]).unwrap()),
//!     budget: Duration::from_secs(5),
//! };
//! conformance::run_all(&engine, &case).await;
//! # });
//! ```
//!
//! Each check panics with a message on failure (it is a test kit).

use std::time::Duration;

use crate::artifact::Sha256Digest;
use crate::dtype::DType;
use crate::engine::{Deadline, InferenceEngine, PreparedModel};
use crate::error::{
    ArtifactError, CapabilityError, InferError, PrepareError, UnloadError, ValidationError,
};
use crate::{ModelArtifact, PrepareOptions, TensorMap};

/// One model an engine can run, with valid inputs for it.
#[derive(Debug, Clone)]
pub struct Case {
    /// The model, digest pinned or not.
    pub artifact: ModelArtifact,
    /// Options to prepare it with.
    pub options: PrepareOptions,
    /// Inputs that match its schema.
    pub inputs: TensorMap,
    /// A generous budget for prepare and one inference.
    pub budget: Duration,
}

async fn prepare<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) -> PreparedModel {
    let opts = case.options.clone().with_prepare_budget(case.budget);
    engine
        .prepare(&case.artifact, &opts)
        .await
        .unwrap_or_else(|e| panic!("{}: prepare failed: {e}", engine.name()))
}

/// `prepare` returns a handle of this engine whose schema accepts the inputs,
/// and the same artifact and options give the same cache key.
pub async fn prepare_gives_consistent_handles<E: InferenceEngine + ?Sized>(
    engine: &E,
    case: &Case,
) {
    let a = prepare(engine, case).await;
    let b = prepare(engine, case).await;
    assert_eq!(a.engine, engine.name());
    assert_ne!(a.id, b.id, "two prepares must give two handles");
    assert_eq!(
        a.cache_key, b.cache_key,
        "same artifact and options, same cache key"
    );
    assert!(!a.schema.inputs.is_empty() && !a.schema.outputs.is_empty());
    a.schema
        .validate(case.inputs.clone())
        .expect("case inputs must match the schema");
    assert!(a.sla.infer_p99 >= a.sla.infer_p50);
    engine.unload(&a).await.expect("unload a");
    engine.unload(&b).await.expect("unload b");
}

/// `infer` returns every declared output with its declared dtype and shape.
pub async fn infer_matches_output_schema<E: InferenceEngine + ?Sized>(
    engine: &E,
    case: &Case,
) -> TensorMap {
    let m = prepare(engine, case).await;
    let out = engine
        .infer(&m, case.inputs.clone(), Deadline::after(case.budget))
        .await
        .unwrap_or_else(|e| panic!("{}: infer failed: {e}", engine.name()));
    let in_batch = m
        .schema
        .validate(case.inputs.clone())
        .expect("valid")
        .batch_size();
    let out_batch = m
        .schema
        .validate_outputs(&out)
        .unwrap_or_else(|e| panic!("outputs do not match the schema: {e}"));
    if let (Some(i), Some(o)) = (in_batch, out_batch) {
        assert_eq!(i, o, "output batch must equal input batch");
    }
    let again = engine
        .infer(&m, case.inputs.clone(), Deadline::after(case.budget))
        .await
        .expect("second infer");
    assert_eq!(again, out, "the same inputs must give the same outputs");
    engine.unload(&m).await.expect("unload");
    out
}

fn other_dtype(d: DType) -> DType {
    if d == DType::I32 {
        DType::F32
    } else {
        DType::I32
    }
}

/// Unknown, missing, wrongly typed and wrongly shaped inputs each give their
/// own [`ValidationError`].
pub async fn invalid_inputs_are_typed_errors<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    let m = prepare(engine, case).await;
    let deadline = || Deadline::after(case.budget);
    let (first, tensor) = case
        .inputs
        .iter()
        .next()
        .map(|(n, t)| (n.to_owned(), t.clone()))
        .expect("case has inputs");

    let extra = case.inputs.clone().with("__not_an_input__", tensor.clone());
    let e = engine.infer(&m, extra, deadline()).await.unwrap_err();
    assert!(
        matches!(e, InferError::Invalid(ValidationError::UnknownInput { .. })),
        "unknown input gave {e:?}"
    );

    let mut missing = case.inputs.clone();
    missing.remove(&first);
    let e = engine.infer(&m, missing, deadline()).await.unwrap_err();
    assert!(
        matches!(e, InferError::Invalid(ValidationError::MissingInput { .. })),
        "missing input gave {e:?}"
    );

    let retyped = case.inputs.clone().with(
        &first,
        tensor.cast(other_dtype(tensor.dtype())).expect("cast"),
    );
    let e = engine.infer(&m, retyped, deadline()).await.unwrap_err();
    assert!(
        matches!(e, InferError::Invalid(ValidationError::DType { .. })),
        "wrong dtype gave {e:?}"
    );

    let mut shape = tensor.shape().to_vec();
    shape.push(1);
    let reranked = case
        .inputs
        .clone()
        .with(&first, tensor.clone().reshape(shape).expect("reshape"));
    let e = engine.infer(&m, reranked, deadline()).await.unwrap_err();
    assert!(
        matches!(e, InferError::Invalid(ValidationError::Rank { .. })),
        "wrong rank gave {e:?}"
    );
    engine.unload(&m).await.expect("unload");
}

/// An expired deadline is [`InferError::DeadlineExceeded`].
pub async fn expired_deadline_is_typed<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    let m = prepare(engine, case).await;
    let e = engine
        .infer(&m, case.inputs.clone(), Deadline::after(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(e, InferError::DeadlineExceeded { .. }),
        "expired deadline gave {e:?}"
    );
    engine.unload(&m).await.expect("unload");
}

/// After `unload`, the handle is unknown to every operation.
pub async fn unload_invalidates_the_handle<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    let m = prepare(engine, case).await;
    engine.unload(&m).await.expect("unload");
    let e = engine
        .infer(&m, case.inputs.clone(), Deadline::after(case.budget))
        .await
        .unwrap_err();
    assert!(
        matches!(e, InferError::UnknownModel { .. }),
        "infer after unload gave {e:?}"
    );
    let e = engine.capabilities(&m).await.unwrap_err();
    assert!(
        matches!(e, CapabilityError::UnknownModel { .. }),
        "capabilities after unload gave {e:?}"
    );
    let e = engine.unload(&m).await.unwrap_err();
    assert!(
        matches!(e, UnloadError::UnknownModel { .. }),
        "second unload gave {e:?}"
    );
}

/// A handle from another engine is refused.
pub async fn foreign_handles_are_refused<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    let mut m = prepare(engine, case).await;
    let real = m.clone();
    m.engine = format!("not-{}", engine.name());
    let e = engine
        .infer(&m, case.inputs.clone(), Deadline::after(case.budget))
        .await
        .unwrap_err();
    assert!(
        matches!(e, InferError::WrongEngine { .. }),
        "foreign handle gave {e:?}"
    );
    engine.unload(&real).await.expect("unload");
}

/// A pinned digest that does not match is refused in `prepare`.
pub async fn digest_mismatch_is_refused<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    let wrong = case.artifact.clone().with_sha256(Sha256Digest([0xAB; 32]));
    let e = engine.prepare(&wrong, &case.options).await.unwrap_err();
    assert!(
        matches!(
            e,
            PrepareError::Artifact(ArtifactError::DigestMismatch { .. })
        ),
        "wrong digest gave {e:?}"
    );
}

/// The report agrees with the schema and the options, and has measurements
/// after an inference.
pub async fn capabilities_are_consistent<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    let m = prepare(engine, case).await;
    engine
        .infer(&m, case.inputs.clone(), Deadline::after(case.budget))
        .await
        .expect("infer");
    let r = engine.capabilities(&m).await.expect("capabilities");
    assert_eq!(r.engine, engine.name());
    assert_eq!(r.compute_units_requested, case.options.compute_units);
    assert!(r.max_batch >= 1 && r.max_batch <= m.schema.max_batch().max(1));
    for spec in &m.schema.inputs {
        assert!(
            r.dtypes.contains(&spec.dtype),
            "report lacks input dtype {}",
            spec.dtype
        );
    }
    assert!(r.compile_p99.is_some(), "prepare was measured");
    assert!(r.infer_p99.is_some(), "infer was measured");
    engine.unload(&m).await.expect("unload");
}

/// Several inferences at once on one handle all succeed with equal outputs.
pub async fn concurrent_infers_agree<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    let m = prepare(engine, case).await;
    let run = || engine.infer(&m, case.inputs.clone(), Deadline::after(case.budget * 4));
    let (a, b, c) = tokio::join!(run(), run(), run());
    let a = a.expect("a");
    assert_eq!(a, b.expect("b"));
    assert_eq!(a, c.expect("c"));
    engine.unload(&m).await.expect("unload");
}

/// Every check above, in order.
pub async fn run_all<E: InferenceEngine + ?Sized>(engine: &E, case: &Case) {
    prepare_gives_consistent_handles(engine, case).await;
    infer_matches_output_schema(engine, case).await;
    invalid_inputs_are_typed_errors(engine, case).await;
    expired_deadline_is_typed(engine, case).await;
    unload_invalidates_the_handle(engine, case).await;
    foreign_handles_are_refused(engine, case).await;
    digest_mismatch_is_refused(engine, case).await;
    capabilities_are_consistent(engine, case).await;
    concurrent_infers_agree(engine, case).await;
}
