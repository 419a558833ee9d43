//! `run` on a `.mlpackage` that Candle has no model of says which engine
//! answered: the MIL executor (`mil`), in its JSON, in its text line, and in
//! the saved telemetry — not the name of the fallback chain it belongs to.

mod common;

use common::{cli, fixture, json};
use coreml_bridge::inference::{Tensor, TensorMap};
use coreml_bridge::telemetry::snapshot::Snapshot;

#[test]
fn run_on_a_package_says_mil_served_it() {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (
        dir.path().join("in.safetensors"),
        dir.path().join("out.safetensors"),
    );
    TensorMap::new()
        .with(
            "image",
            Tensor::new(vec![1, 3, 8, 8], vec![0.5f32; 3 * 64]).unwrap(),
        )
        .write_safetensors(&inp)
        .unwrap();
    let pkg = fixture("mlpackage/small_cnn_fp32.mlpackage");
    let args = |json: bool| {
        let mut a = vec![
            "--no-coreml",
            "run",
            "--model",
            pkg.to_str().unwrap(),
            "--architecture",
            "small-cnn",
            "--name",
            "small_cnn",
            "--input",
            inp.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        if json {
            a.insert(0, "--json");
        }
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let a = args(true);
    let v = json(&cli(
        dir.path(),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(v["served_by"], "mil", "notice: {}", v["notice"]);
    let snap: Snapshot =
        serde_json::from_slice(&std::fs::read(dir.path().join("last-run.json")).unwrap()).unwrap();
    let m = snap.model("small_cnn").unwrap();
    assert_eq!(m.served_by.as_deref(), Some("mil"));
    assert_eq!(m.engine("mil").map(|e| e.successes), Some(1), "{m:?}");
    assert!(m.engine("candle").is_none(), "{m:?}");

    let a = args(false);
    let text = cli(
        dir.path(),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(text.status.success(), "{text:?}");
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.starts_with("served by mil:"), "{stdout}");
}
