//! The engine conformance suite (coreml_inference::conformance) on the Candle
//! engine, and its own prepare errors.

mod assets;

use std::time::Duration;

use coreml_candle::CandleEngine;
use coreml_inference::conformance::{self, Case};
use coreml_inference::{
    ComputeUnits, InferenceEngine, ModelArtifact, ModelFormat, PrepareError, PrepareOptions,
    Tensor, TensorMap,
};

fn minilm_case() -> Case {
    let ids = vec![101i64, 1037, 4937, 4520, 2006, 1996, 13523, 1012, 102];
    let n = ids.len();
    Case {
        artifact: assets::minilm(),
        options: PrepareOptions::new(ComputeUnits::CpuAndNe)
            .with_architecture("bert")
            .with_max_batch(4),
        inputs: TensorMap::new()
            .with("input_ids", Tensor::new(vec![1, n], ids).unwrap())
            .with(
                "attention_mask",
                Tensor::new(vec![1, n], vec![1i64; n]).unwrap(),
            ),
        budget: Duration::from_secs(60),
    }
}

#[test]
fn candle_passes_the_conformance_suite_with_minilm() {
    let case = minilm_case();
    assets::run(600, async {
        let engine = CandleEngine::new();
        conformance::run_all(&engine, &case).await;
    });
}

#[test]
fn candle_passes_the_conformance_suite_with_efficientnet() {
    let case = Case {
        artifact: assets::efficientnet(),
        options: PrepareOptions::default()
            .with_architecture("efficientnet-lite0")
            .with_max_batch(2),
        inputs: TensorMap::new().with(
            "pixel_values",
            Tensor::zeros(coreml_inference::DType::F32, vec![2, 3, 224, 224]).unwrap(),
        ),
        budget: Duration::from_secs(60),
    };
    assets::run(600, async {
        let engine = CandleEngine::new();
        conformance::infer_matches_output_schema(&engine, &case).await;
        conformance::invalid_inputs_are_typed_errors(&engine, &case).await;
        conformance::capabilities_are_consistent(&engine, &case).await;
    });
}

#[test]
fn prepare_names_what_is_wrong() {
    assets::run(120, async {
        let engine = CandleEngine::new();
        let art = assets::minilm();
        let e = engine
            .prepare(&art, &PrepareOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, PrepareError::UnsupportedArchitecture { .. }),
            "{e:?}"
        );
        let e = engine
            .prepare(&art, &PrepareOptions::default().with_architecture("gpt2"))
            .await
            .unwrap_err();
        match e {
            PrepareError::UnsupportedArchitecture { known, .. } => {
                assert!(known.contains(&"bert".to_owned()))
            }
            other => panic!("{other:?}"),
        }
        // BERT weights are not an EfficientNet.
        let e = engine
            .prepare(
                &art,
                &PrepareOptions::default().with_architecture("efficientnet-lite0"),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, PrepareError::InvalidModel { .. }), "{e:?}");
        let pth = ModelArtifact::new(ModelFormat::Pth, art.path.clone());
        let e = engine
            .prepare(&pth, &PrepareOptions::default().with_architecture("bert"))
            .await
            .unwrap_err();
        assert!(matches!(e, PrepareError::UnsupportedFormat { .. }), "{e:?}");
        let e = engine
            .prepare(
                &art,
                &PrepareOptions::default()
                    .with_architecture("bert")
                    .with_prepare_budget(Duration::from_micros(1)),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, PrepareError::DeadlineExceeded { .. }), "{e:?}");
    });
}

#[test]
fn a_deadline_passing_mid_inference_is_exceeded_and_the_engine_recovers() {
    assets::run(300, async {
        let engine = CandleEngine::new();
        let opts = PrepareOptions::default()
            .with_architecture("efficientnet-lite0")
            .with_max_batch(8);
        let m = engine
            .prepare(&assets::efficientnet(), &opts)
            .await
            .unwrap();
        // Eight images take far longer than 30 ms (about 8 × the SLA's p50).
        assert!(
            m.sla.infer_p50 * 8 > Duration::from_millis(30),
            "{:?}",
            m.sla
        );
        let batch = TensorMap::new().with(
            "pixel_values",
            Tensor::zeros(coreml_inference::DType::F32, vec![8, 3, 224, 224]).unwrap(),
        );
        let start = std::time::Instant::now();
        let e = engine
            .infer(
                &m,
                batch,
                coreml_inference::Deadline::after(Duration::from_millis(30)),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, coreml_inference::InferError::DeadlineExceeded { .. }),
            "{e:?}"
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
        let one = TensorMap::new().with(
            "pixel_values",
            Tensor::zeros(coreml_inference::DType::F32, vec![1, 3, 224, 224]).unwrap(),
        );
        let out = engine
            .infer(
                &m,
                one,
                coreml_inference::Deadline::after(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(out.get("logits").unwrap().shape(), &[1, 1000]);
    });
}

#[test]
fn the_blocking_facade_runs_candle_from_plain_threads() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let engine = std::sync::Arc::new(
            coreml_inference::BlockingEngine::new(CandleEngine::new()).unwrap(),
        );
        let case = minilm_case();
        let m = engine.prepare(&case.artifact, &case.options).unwrap();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (engine, m, inputs) = (engine.clone(), m.clone(), case.inputs.clone());
                std::thread::spawn(move || {
                    engine
                        .infer(
                            &m,
                            inputs,
                            coreml_inference::Deadline::after(Duration::from_secs(60)),
                        )
                        .unwrap()
                })
            })
            .collect();
        let outs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0].get("embedding").unwrap().shape(), &[1, 384]);
        engine.unload(&m).unwrap();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(300))
        .expect("watchdog: blocking facade hung or panicked");
}
