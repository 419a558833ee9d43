//! Every fixture package reads; corrupt packages give errors naming file and field.

use std::fs;
use std::path::{Path, PathBuf};

use coreml_mlpackage::{DataType, Package, PackageError, TensorData};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mlpackage")
}

fn all_packages() -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mlpackage"))
        .collect();
    v.sort();
    assert!(v.len() >= 20, "fixtures missing: {v:?}");
    v
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

const MODEL: &str = "Data/com.apple.CoreML/model.mlmodel";
const WEIGHTS: &str = "Data/com.apple.CoreML/weights/weight.bin";

#[test]
fn every_fixture_reads_and_every_tensor_decodes() {
    for p in all_packages() {
        let pkg = Package::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let main = pkg.main();
        assert!(!main.block.operations.is_empty());
        for op in &main.block.operations {
            for v in op.attributes.values() {
                if let Some(t) = v.tensor() {
                    assert_eq!(pkg.tensor(t).unwrap().len(), t.count(), "{}", op.name);
                }
            }
        }
        if let Some(w) = pkg.weights() {
            assert_eq!(w.blobs().unwrap().len(), w.header_count() as usize);
        }
    }
}

#[test]
fn fixtures_cover_sub_byte_and_fp16_blobs_and_both_constexpr_styles() {
    let mut dtypes = std::collections::BTreeSet::new();
    for p in all_packages() {
        let pkg = Package::open(&p).unwrap();
        if let Some(w) = pkg.weights() {
            dtypes.extend(w.blobs().unwrap().iter().map(|b| b.dtype));
        }
    }
    for d in [
        DataType::Float32,
        DataType::Float16,
        DataType::Int8,
        DataType::UInt8,
        DataType::Int4,
    ] {
        assert!(dtypes.contains(&d), "no {d} blob in {dtypes:?}");
    }
    // iOS16: constexpr parameters are attributes; iOS18: inputs.
    let p16 = Package::open(fixtures().join("pal4_ios16.mlpackage")).unwrap();
    let lut16 = p16
        .main()
        .block
        .operations
        .iter()
        .find(|o| o.op_type == "constexpr_lut_to_dense")
        .unwrap();
    assert!(lut16.attributes.contains_key("lut") && lut16.inputs.is_empty());
    let p18 = Package::open(fixtures().join("q_int4_block32_ios18.mlpackage")).unwrap();
    assert_eq!(p18.specification_version, 9);
    let bss = p18
        .main()
        .block
        .operations
        .iter()
        .find(|o| o.op_type == "constexpr_blockwise_shift_scale")
        .unwrap();
    assert!(bss.inputs.contains_key("data") && bss.inputs.contains_key("scale"));
    let data = bss.param("data").unwrap();
    let coreml_mlpackage::ArgRef::Value(v) = data else {
        panic!("{data:?}")
    };
    let t = v.tensor().unwrap();
    assert_eq!(t.dtype, DataType::Int4);
    let e = p18.tensor(t).unwrap().to_i64();
    assert!(e.iter().all(|&x| (-8..8).contains(&x)) && e.iter().any(|&x| x < 0));
}

#[test]
fn fp16_program_keeps_fp16_values_and_io_types() {
    let pkg = Package::open(fixtures().join("fp16_io.mlpackage")).unwrap();
    let coreml_mlpackage::description::FeatureKind::MultiArray(a) = &pkg.description.inputs[0].kind
    else {
        panic!()
    };
    assert_eq!(a.dtype, coreml_mlpackage::ArrayDataType::Float16);
    let w = pkg
        .main()
        .block
        .operations
        .iter()
        .filter_map(|o| o.attributes.get("val").and_then(|v| v.tensor()))
        .find(|t| t.dtype == DataType::Float16 && t.count() == 18)
        .expect("fp16 weight");
    assert!(matches!(w.data, TensorData::Blob { .. }));
}

fn corrupt(name: &str, f: impl FnOnce(&Path)) -> PackageError {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.mlpackage");
    copy_dir(&fixtures().join(name), &p);
    f(&p);
    Package::open(&p).expect_err("corrupt package opened")
}

#[test]
fn truncated_weight_file_names_the_blob() {
    let e = corrupt("conv.mlpackage", |p| {
        let w = p.join(WEIGHTS);
        let len = fs::metadata(&w).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&w)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
    });
    assert_eq!(e.file(), WEIGHTS, "{e}");
    assert!(e.field().starts_with("blob@"), "{e}");
}

#[test]
fn bad_sentinel_and_dtype_are_named() {
    let e = corrupt("conv.mlpackage", |p| {
        let w = p.join(WEIGHTS);
        let mut b = fs::read(&w).unwrap();
        b[64] ^= 0xff;
        fs::write(&w, b).unwrap();
    });
    assert_eq!((e.file(), e.field()), (WEIGHTS, "blob@64.sentinel"), "{e}");
    let e = corrupt("conv.mlpackage", |p| {
        let w = p.join(WEIGHTS);
        let mut b = fs::read(&w).unwrap();
        b[68] = 1; // fp32 -> fp16
        fs::write(&w, b).unwrap();
    });
    assert_eq!((e.file(), e.field()), (WEIGHTS, "blob@64.mil_dtype"), "{e}");
    let e = corrupt("conv.mlpackage", |p| {
        let w = p.join(WEIGHTS);
        let mut b = fs::read(&w).unwrap();
        b[4] = 1;
        fs::write(&w, b).unwrap();
    });
    assert_eq!(e.field(), "storage_header.version", "{e}");
}

#[test]
fn truncated_model_and_missing_files_are_named() {
    let e = corrupt("norms.mlpackage", |p| {
        let m = p.join(MODEL);
        let b = fs::read(&m).unwrap();
        fs::write(&m, &b[..b.len() / 2]).unwrap();
    });
    assert_eq!(e.file(), MODEL, "{e}");
    assert!(
        matches!(
            e,
            PackageError::Malformed { .. } | PackageError::Invalid { .. }
        ),
        "{e}"
    );
    let e = corrupt("norms.mlpackage", |p| {
        fs::remove_file(p.join(MODEL)).unwrap()
    });
    assert!(
        matches!(e, PackageError::Io { .. }) && e.file() == MODEL,
        "{e}"
    );
    let e = corrupt("norms.mlpackage", |p| {
        fs::write(p.join("Manifest.json"), "{\"x\":").unwrap()
    });
    assert_eq!(e.file(), "Manifest.json", "{e}");
    let e = corrupt("conv.mlpackage", |p| {
        fs::remove_file(p.join(WEIGHTS)).unwrap()
    });
    assert_eq!(e.file(), MODEL, "{e}");
    assert!(e.field().ends_with("blobFileValue.fileName"), "{e}");
}

#[test]
fn a_neural_network_model_is_rejected_by_name() {
    use prost::Message;
    let nn = coreml_mlpackage::proto::Model {
        specification_version: 4,
        r#type: Some(coreml_mlpackage::proto::model::Type::NeuralNetwork(vec![])),
        ..Default::default()
    };
    let e = corrupt("norms.mlpackage", |p| {
        fs::write(p.join(MODEL), nn.encode_to_vec()).unwrap()
    });
    assert!(
        matches!(
            e,
            PackageError::NotMlProgram {
                kind: "neuralNetwork",
                number: 500,
                ..
            }
        ),
        "{e}"
    );
}
