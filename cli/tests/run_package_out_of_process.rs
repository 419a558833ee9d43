//! `run --model PACKAGE` with a helper (`COREML_HELPER`): the sandboxed helper
//! may read the directory of the package the command names, although it lies
//! outside the working directory and the weights cache, so the package is
//! compiled and served out of process (`served_by: coreml`), with the same
//! output as the in-process executor.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use coreml_bridge::inference::{Tensor, TensorMap};

#[test]
fn a_package_named_on_the_command_line_is_served_by_the_helper() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.safetensors");
    TensorMap::new()
        .with(
            "image",
            Tensor::new(vec![1, 3, 8, 8], vec![0.25f32; 3 * 64]).unwrap(),
        )
        .write_safetensors(&inp)
        .unwrap();
    // In the repository's fixtures: neither the working directory nor the weights cache.
    let pkg = common::fixture("mlpackage/small_cnn_fp32.mlpackage");
    let run = |helper: bool, out: &std::path::Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
        if !helper {
            cmd.arg("--no-coreml");
        }
        cmd.args([
            "--json",
            "run",
            "--architecture",
            "small-cnn",
            "--name",
            "small_cnn",
            "--model",
        ])
        .arg(&pkg)
        .arg("--input")
        .arg(&inp)
        .arg("--output")
        .arg(out)
        .env("COREML_HELPER", common::test_helper())
        .env_remove("COREML_HELPER_LAUNCHER")
        .env_remove("RUST_LOG")
        .env("COREML_BRIDGE_CACHE", dir.path().join("cache"))
        .env("COREML_BRIDGE_TELEMETRY_DIR", dir.path());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cmd.output().expect("run coreml-bridge"));
        });
        common::json(
            &rx.recv_timeout(Duration::from_secs(120))
                .expect("watchdog: the CLI hung"),
        )
    };
    let (via_helper, in_process) = (
        dir.path().join("helper.safetensors"),
        dir.path().join("mil.safetensors"),
    );
    let v = run(true, &via_helper);
    assert_eq!(v["served_by"], "coreml", "{v}");
    let v = run(false, &in_process);
    assert_eq!(v["served_by"], "mil", "{v}");
    let (a, b) = (
        TensorMap::read_safetensors(&via_helper).unwrap(),
        TensorMap::read_safetensors(&in_process).unwrap(),
    );
    assert_eq!(
        a.f32("logits").unwrap(),
        b.f32("logits").unwrap(),
        "the helper runs the same executor"
    );
}
