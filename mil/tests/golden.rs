//! Every fixture package runs through the executor and matches the outputs
//! its generator computed with NumPy (scripts/mil_fixtures.py).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use coreml_mil::{Executor, LoadError, Options, Precision};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mlpackage")
}

struct Golden {
    package: PathBuf,
    atol: f32,
    inputs: HashMap<String, Tensor>,
    outputs: Vec<(String, Vec<usize>, Vec<f32>)>,
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x.as_f64()
                .unwrap_or_else(|| x.as_bool().unwrap() as u8 as f64) as f32
        })
        .collect();
    let t = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
    match v["dtype"].as_str().unwrap() {
        "fp32" => t,
        "fp16" => t.to_dtype(DType::F16).unwrap(),
        "int32" => t.to_dtype(DType::I64).unwrap(),
        "bool" => t.to_dtype(DType::U8).unwrap(),
        d => panic!("dtype {d}"),
    }
}

fn load(name: &str) -> Golden {
    let j: Value =
        serde_json::from_slice(&fs::read(fixtures().join(format!("{name}.golden.json"))).unwrap())
            .unwrap();
    Golden {
        package: fixtures().join(j["package"].as_str().unwrap()),
        atol: j["atol"].as_f64().unwrap() as f32,
        inputs: j["inputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), tensor(v)))
            .collect(),
        outputs: j["outputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let t = tensor(v);
                (
                    k.clone(),
                    t.dims().to_vec(),
                    t.to_dtype(DType::F32)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap(),
                )
            })
            .collect(),
    }
}

/// Largest |got − want| over every output, per output name.
fn run(name: &str, options: Options) -> Vec<(String, f32)> {
    let g = load(name);
    let exe = Executor::load(&g.package, options).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = exe.run(&g.inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(out.len(), g.outputs.len(), "{name}");
    let mut errs = Vec::new();
    for (oname, shape, want) in &g.outputs {
        let got = &out
            .iter()
            .find(|(n, _)| n == oname)
            .unwrap_or_else(|| panic!("{name}: no output {oname}"))
            .1;
        assert_eq!(got.dims(), shape.as_slice(), "{name}.{oname} shape");
        let got: Vec<f32> = got
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let err = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0f32, f32::max);
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{name}.{oname}: non-finite"
        );
        assert!(
            err <= g.atol,
            "{name}.{oname}: error {err} > {}\n got {:?}\nwant {:?}",
            g.atol,
            &got[..got.len().min(8)],
            &want[..want.len().min(8)]
        );
        errs.push((oname.clone(), err));
    }
    errs
}

macro_rules! golden {
    ($($t:ident),* $(,)?) => {$(
        #[test]
        fn $t() {
            run(stringify!($t), Options::default());
        }
    )*};
}

golden!(
    elementwise,
    unary,
    norms,
    reductions,
    conv,
    conv_transpose,
    pool,
    linear_matmul,
    shape_ops,
    split_gather_select,
    upsample,
    pad_cumsum,
    small_cnn_fp32,
    small_cnn_fp16,
    small_cnn_fp16_ios18,
    fp16_io,
    q_int8_ios16,
    pal1_ios16,
    pal2_ios16,
    pal4_ios16,
    pal8_ios16,
    q_int8_ios18,
    q_int4_block32_ios18,
    pal3_grouped8_ios18,
    pal6_ios18,
);

#[test]
fn every_fixture_has_a_golden_test() {
    let src = include_str!("golden.rs");
    for e in fs::read_dir(fixtures()).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = n.strip_suffix(".golden.json") {
            assert!(
                src.contains(&format!(" {stem},")),
                "no golden test for {stem}"
            );
        }
    }
}

#[test]
fn fp16_mode_rounds_fp16_results_and_stays_within_tolerance() {
    let g = load("small_cnn_fp16");
    let a = Executor::load(&g.package, Options::default())
        .unwrap()
        .run(&g.inputs)
        .unwrap();
    let b = Executor::load(
        &g.package,
        Options {
            precision: Precision::Fp16,
        },
    )
    .unwrap()
    .run(&g.inputs)
    .unwrap();
    let fa: Vec<f32> = a[0].1.flatten_all().unwrap().to_vec1().unwrap();
    let fb: Vec<f32> = b[0]
        .1
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(fa, fb, "FP16 mode changed nothing");
    run(
        "small_cnn_fp16",
        Options {
            precision: Precision::Fp16,
        },
    );
}

#[test]
fn unknown_ops_fail_at_load_with_the_full_list() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("unary.mlpackage");
    let dst = dir.path().join("u.mlpackage");
    let model = "Data/com.apple.CoreML/model.mlmodel";
    fs::create_dir_all(dst.join("Data/com.apple.CoreML")).unwrap();
    fs::copy(src.join("Manifest.json"), dst.join("Manifest.json")).unwrap();
    let mut m =
        coreml_mlpackage::proto::Model::decode(fs::read(src.join(model)).unwrap().as_slice())
            .unwrap();
    let Some(coreml_mlpackage::proto::model::Type::MlProgram(p)) = &mut m.r#type else {
        panic!()
    };
    for b in p
        .functions
        .get_mut("main")
        .unwrap()
        .block_specializations
        .values_mut()
    {
        for op in &mut b.operations {
            match op.r#type.as_str() {
                "relu" => op.r#type = "frobnicate".into(),
                "tanh" | "erf" => op.r#type = "zap".into(),
                _ => {}
            }
        }
    }
    fs::write(dst.join(model), m.encode_to_vec()).unwrap();
    match Executor::load(&dst, Options::default()) {
        Err(LoadError::UnsupportedOps(v)) => {
            assert_eq!(v, vec!["frobnicate".to_string(), "zap".to_string()])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_input_shape_and_missing_input_are_typed_errors() {
    let g = load("linear_matmul");
    let exe = Executor::load(&g.package, Options::default()).unwrap();
    let mut inputs = g.inputs.clone();
    inputs.insert(
        "x".into(),
        Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(
        matches!(exe.run(&inputs), Err(coreml_mil::RunError::Input { ref name, .. }) if name == "x")
    );
    inputs.remove("y");
    assert!(matches!(
        exe.run(&inputs),
        Err(coreml_mil::RunError::Input { .. })
    ));
}
