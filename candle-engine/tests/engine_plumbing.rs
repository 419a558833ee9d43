//! The engine's plumbing on a toy model registered at run time (no weights to
//! fetch): the conformance suite, and the registry as part B plugs into it.

use std::time::Duration;

use coreml_candle::registry::{CandleModel, LoadContext, Registration, Registry};
use coreml_candle::tensors::{from_candle, to_candle};
use coreml_candle::CandleEngine;
use coreml_inference::conformance::{self, Case};
use coreml_inference::{
    DType, Dim, IoSchema, ModelArtifact, ModelFormat, PrepareError, PrepareOptions, Tensor,
    TensorMap, TensorSpec,
};

/// `y = x * w` over rows of 3.
struct Scale {
    w: candle_core::Tensor,
    max_batch: usize,
}

impl CandleModel for Scale {
    fn schema(&self) -> IoSchema {
        let spec = |n: &str| {
            TensorSpec::new(
                n,
                DType::F32,
                vec![Dim::range(1, self.max_batch), Dim::Fixed(3)],
            )
            .batch_capable()
        };
        IoSchema::new(vec![spec("x")], vec![spec("y")])
    }

    fn forward(&self, inputs: &TensorMap) -> candle_core::Result<TensorMap> {
        let x = to_candle(
            inputs.get("x").expect("validated"),
            &candle_core::Device::Cpu,
        )?;
        Ok(TensorMap::new().with("y", from_candle(&x.broadcast_mul(&self.w)?)?))
    }

    fn example_inputs(&self) -> candle_core::Result<TensorMap> {
        Ok(TensorMap::new().with("x", Tensor::new(vec![1, 3], vec![1.0f32; 3]).unwrap()))
    }
}

fn load(ctx: &LoadContext<'_>) -> Result<Box<dyn CandleModel>, PrepareError> {
    let w = ctx
        .var_builder()?
        .get(3, "w")
        .map_err(|e| PrepareError::InvalidModel {
            message: e.to_string(),
        })?;
    Ok(Box::new(Scale {
        w,
        max_batch: ctx.max_batch(),
    }))
}

fn engine() -> CandleEngine {
    let mut registry = Registry::new();
    registry.register(Registration {
        architecture: "toy-scale",
        aliases: &["toy"],
        load,
        image_preprocessor: None,
    });
    CandleEngine::with_registry(registry, Some(2))
}

fn case(dir: &std::path::Path) -> Case {
    let path = dir.join("toy.safetensors");
    TensorMap::new()
        .with("w", Tensor::new(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap())
        .write_safetensors(&path)
        .unwrap();
    let artifact = ModelArtifact::new(ModelFormat::Safetensors, &path);
    let digest = artifact.compute_sha256().unwrap();
    Case {
        artifact: artifact.with_sha256(digest),
        options: PrepareOptions::default()
            .with_architecture("TOY")
            .with_max_batch(4),
        inputs: TensorMap::new().with(
            "x",
            Tensor::new(vec![2, 3], vec![1.0f32, 1.0, 1.0, 2.0, 2.0, 2.0]).unwrap(),
        ),
        budget: Duration::from_secs(10),
    }
}

fn run<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), fut)
                .await
                .expect("watchdog: test hung")
        })
}

#[test]
fn a_registered_toy_model_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let case = case(dir.path());
    run(async {
        let engine = engine();
        conformance::run_all(&engine, &case).await;
        let out = conformance::infer_matches_output_schema(&engine, &case).await;
        assert_eq!(out.f32("y").unwrap(), &[1.0, 2.0, 3.0, 2.0, 4.0, 6.0]);
    });
}

#[test]
fn schema_limits_come_from_the_options_and_bad_weights_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let case = case(dir.path());
    run(async {
        use coreml_inference::InferenceEngine;
        let engine = engine();
        let m = engine.prepare(&case.artifact, &case.options).await.unwrap();
        assert_eq!(m.schema.max_batch(), 4);
        assert!(m.sla.infer_p99 >= m.sla.infer_p50);
        let big = TensorMap::new().with("x", Tensor::zeros(DType::F32, vec![5, 3]).unwrap());
        let e = engine
            .infer(
                &m,
                big,
                coreml_inference::Deadline::after(Duration::from_secs(5)),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, coreml_inference::InferError::Invalid(_)),
            "{e:?}"
        );
        // A weights file without `w` is an invalid model, named as such.
        let other = dir.path().join("other.safetensors");
        TensorMap::new()
            .with("v", Tensor::zeros(DType::F32, vec![3]).unwrap())
            .write_safetensors(&other)
            .unwrap();
        let e = engine
            .prepare(
                &ModelArtifact::new(ModelFormat::Safetensors, &other),
                &case.options,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, PrepareError::InvalidModel { .. }), "{e:?}");
    });
}
