//! `MilEngine` passes the engine conformance suite and serves fixture
//! packages with their golden outputs through `infer`.

use std::path::Path;
use std::time::Duration;

use coreml_inference::{
    conformance, DType, Deadline, InferenceEngine, ModelArtifact, PrepareError, PrepareOptions,
    Tensor, TensorMap,
};
use coreml_mil::MilEngine;

fn pkg(name: &str) -> ModelArtifact {
    ModelArtifact::from_path(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mlpackage")
            .join(name),
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn conformance_suite_on_a_cnn_package() {
    rt().block_on(async {
        let engine = MilEngine::new();
        let case = conformance::Case {
            artifact: pkg("small_cnn_fp32.mlpackage"),
            options: PrepareOptions::default(),
            inputs: TensorMap::new().with(
                "image",
                Tensor::new(
                    vec![1, 3, 8, 8],
                    (0..192).map(|i| i as f32 / 192.0).collect::<Vec<_>>(),
                )
                .unwrap(),
            ),
            budget: Duration::from_secs(30),
        };
        conformance::run_all(&engine, &case).await;
    });
}

#[test]
fn fp16_io_and_int32_inputs_cross_the_engine_boundary() {
    rt().block_on(async {
        let engine = MilEngine::new();
        let m = engine
            .prepare(&pkg("fp16_io.mlpackage"), &PrepareOptions::default())
            .await
            .unwrap();
        assert_eq!(m.schema.inputs[0].dtype, DType::F16);
        assert_eq!(m.schema.outputs[0].dtype, DType::F16);
        let x = Tensor::new(vec![2, 6], vec![half::f16::from_f32(0.5); 12]).unwrap();
        let out = engine
            .infer(
                &m,
                TensorMap::new().with("x", x),
                Deadline::after(Duration::from_secs(10)),
            )
            .await
            .unwrap();
        assert_eq!(out.get("y").unwrap().shape(), &[2, 3]);
        assert!(out
            .f16("y")
            .unwrap()
            .iter()
            .all(|v| v.to_f32().abs() <= 1.0));

        let m = engine
            .prepare(
                &pkg("split_gather_select.mlpackage"),
                &PrepareOptions::default(),
            )
            .await
            .unwrap();
        let idx = m.schema.input("idx").unwrap();
        assert_eq!(idx.dtype, DType::I32);
        let out = engine
            .infer(
                &m,
                TensorMap::new()
                    .with(
                        "x",
                        Tensor::new(vec![4, 6], (0..24).map(|i| i as f32).collect::<Vec<_>>())
                            .unwrap(),
                    )
                    .with(
                        "idx",
                        Tensor::new(vec![2, 2], vec![3i32, 0, -1, 2]).unwrap(),
                    ),
                Deadline::after(Duration::from_secs(10)),
            )
            .await
            .unwrap();
        // gather0 = x[[3,0],[3,2]] rows: first row of the result is x[3] = 18..24.
        assert_eq!(
            &out.f32("gather0").unwrap()[..6],
            &[18.0, 19.0, 20.0, 21.0, 22.0, 23.0]
        );
        assert_eq!(out.i32("cast_int").unwrap().len(), 24);
    });
}

#[test]
fn non_packages_are_refused_by_format() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        std::fs::write(&p, b"x").unwrap();
        let e = MilEngine::new()
            .prepare(
                &ModelArtifact::from_path(&p).unwrap(),
                &PrepareOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, PrepareError::UnsupportedFormat { .. }), "{e}");
    });
}
