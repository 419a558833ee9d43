//! `coreml-bridge inspect` and `diff` on the committed fixture packages, and
//! the errors of damaged packages (one line naming the package, the file
//! inside it and the field).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{cli, fixture, json};

fn pkg(name: &str) -> PathBuf {
    fixture(&format!("mlpackage/{name}.mlpackage"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The single `error: ` line of a failed run.
fn error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    lines[0]
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned()
}

/// A copy of a fixture package in `dir`, to damage.
fn copy_package(name: &str, dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let t = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &t);
            } else {
                std::fs::copy(e.path(), &t).unwrap();
            }
        }
    }
    let to = dir.join(format!("{name}.mlpackage"));
    copy(&pkg(name), &to);
    to
}

const MODEL: &str = "Data/com.apple.CoreML/model.mlmodel";
const WEIGHTS: &str = "Data/com.apple.CoreML/weights/weight.bin";

#[test]
fn inspect_prints_schema_ops_and_weights() {
    let tele = tempfile::tempdir().unwrap();
    let p = pkg("small_cnn_fp32");
    let text = stdout(&cli(tele.path(), &["inspect", s(&p)]));
    assert!(text.contains("(spec 7, opset CoreML6)"), "{text}");
    assert!(text.contains("input     image fp32 [1, 3, 8, 8]"), "{text}");
    assert!(text.contains("output    logits fp32 [1, 5]"), "{text}");
    assert!(
        text.contains("conv 2,") && text.contains("linear 1,"),
        "{text}"
    );
    assert!(text.contains("dynamic   none"), "{text}");
    assert!(text.contains("unsupported none"), "{text}");
    assert!(text.contains("fp32: 5 tensors"), "{text}");
}

#[test]
fn inspect_json_reports_compressed_weights_by_dtype() {
    let tele = tempfile::tempdir().unwrap();
    let p = pkg("q_int4_block32_ios18");
    let v = json(&cli(tele.path(), &["--json", "inspect", s(&p)]));
    assert_eq!(v["opset"], "CoreML8");
    assert!(
        v["ops"]["constexpr_blockwise_shift_scale"]
            .as_u64()
            .unwrap()
            >= 1,
        "{v}"
    );
    let int4 = &v["weights"]["int4"];
    assert!(int4["tensors"].as_u64().unwrap() >= 1, "{v}");
    // Packed: two int4 values a byte.
    assert!(int4["bytes"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["unsupported"], serde_json::json!([]));
}

#[test]
fn diff_shows_op_and_weight_differences() {
    let tele = tempfile::tempdir().unwrap();
    let (a, b) = (pkg("pal4_ios16"), pkg("q_int8_ios16"));
    let text = stdout(&cli(tele.path(), &["diff", s(&a), s(&b)]));
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` row: {text}"))
            .to_owned()
    };
    assert!(line("op constexpr_lut_to_dense").contains("(-"), "{text}");
    assert!(
        line("op constexpr_affine_dequantize").contains("(+"),
        "{text}"
    );
    assert!(line("weights int8").contains(" - "), "{text}");
    assert!(line("spec/opset").contains("CoreML6"), "{text}");
}

#[test]
fn an_op_the_executor_lacks_is_listed_as_unsupported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = copy_package("small_cnn_fp32", tmp.path());
    // Rename `relu` (same length, so the protobuf stays valid) to an op nobody has.
    let bytes = std::fs::read(p.join(MODEL)).unwrap();
    let mut renamed = bytes.clone();
    let mut n = 0;
    for i in 0..renamed.len().saturating_sub(4) {
        if &renamed[i..i + 4] == b"relu" {
            renamed[i..i + 4].copy_from_slice(b"rel9");
            n += 1;
        }
    }
    assert!(n > 0);
    std::fs::write(p.join(MODEL), renamed).unwrap();
    let v = json(&cli(tmp.path(), &["--json", "inspect", s(&p)]));
    assert_eq!(v["unsupported"], serde_json::json!(["rel9"]), "{v}");
}

#[test]
fn a_corrupt_weight_blob_names_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let p = copy_package("small_cnn_fp32", tmp.path());
    let mut w = std::fs::read(p.join(WEIGHTS)).unwrap();
    // The first blob's metadata record starts at 64 with the sentinel 0xDEADBEEF.
    assert_eq!(&w[64..68], &[0xEF, 0xBE, 0xAD, 0xDE]);
    w[64] = 0;
    std::fs::write(p.join(WEIGHTS), w).unwrap();
    let msg = error_line(&cli(tmp.path(), &["inspect", s(&p)]));
    assert!(msg.starts_with(&format!("{}: ", p.display())), "{msg}");
    assert!(msg.contains(WEIGHTS) && msg.contains("sentinel"), "{msg}");
}

#[test]
fn a_truncated_model_file_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = copy_package("small_cnn_fp32", tmp.path());
    let bytes = std::fs::read(p.join(MODEL)).unwrap();
    std::fs::write(p.join(MODEL), &bytes[..bytes.len() / 2]).unwrap();
    let msg = error_line(&cli(tmp.path(), &["inspect", s(&p)]));
    assert!(msg.contains(MODEL) && msg.contains("malformed"), "{msg}");
    // JSON mode: the same message under "error", nothing else on stdout.
    let out = cli(tmp.path(), &["--json", "diff", s(&p), s(&pkg("conv"))]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains(MODEL), "{v}");
}

#[test]
fn a_missing_package_names_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("nope.mlpackage");
    let msg = error_line(&cli(tmp.path(), &["inspect", s(&p)]));
    assert!(
        msg.starts_with(&format!("{}: ", p.display())) && msg.contains("Manifest.json"),
        "{msg}"
    );
}
