//! Every error is one line on stderr, `error: <file>: <what is wrong>; <what to do>`,
//! naming the file once (and the same text under `"error"` with `--json`).

mod common;

use std::path::Path;
use std::process::Output;

use common::{cache, cli, fixture, minilm_dir};

/// The message of a failed run: exit 1, nothing on stdout, one `error: ` line.
fn error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("note: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    lines[0]
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned()
}

/// `<path>: <problem>; <advice>` with the path said once; returns the problem.
fn names_once(msg: &str, path: &Path, advice: &str) -> String {
    let p = path.display().to_string();
    let rest = msg
        .strip_prefix(&format!("{p}: "))
        .unwrap_or_else(|| panic!("starts with the file: {msg}"));
    assert_eq!(msg.matches(&p).count(), 1, "the file once: {msg}");
    let problem = rest
        .strip_suffix(&format!("; {advice}"))
        .unwrap_or_else(|| panic!("ends with what to do: {msg}"));
    assert!(!problem.is_empty() && !problem.contains("; "), "{msg}");
    problem.to_owned()
}

#[test]
fn a_non_image_names_the_file_once_and_says_what_to_give() {
    let readme = fixture("../../README.md");
    let tele = tempfile::tempdir().unwrap();
    let out = cli(tele.path(), &["classify", readme.to_str().unwrap()]);
    let msg = error_line(&out);
    let problem = names_once(&msg, &readme, "give a PNG or JPEG image");
    assert!(
        problem.contains("not recognized as an image format"),
        "{msg}"
    );

    // The same sentence as JSON.
    let out = cli(
        tele.path(),
        &["--json", "classify", readme.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"], msg.as_str());

    let missing = tele.path().join("cat.png");
    let msg = error_line(&cli(tele.path(), &["classify", missing.to_str().unwrap()]));
    names_once(&msg, &missing, "give a PNG or JPEG image");
}

#[test]
fn embed_errors_name_the_file_and_the_fix() {
    let dir = minilm_dir();
    let tele = tempfile::tempdir().unwrap();
    let msg = error_line(&cli(tele.path(), &["embed", "--max-len", "1000", "a cat"]));
    assert_eq!(
        msg,
        format!(
            "{}: the model has 512 positions, fewer than --max-len 1000; use --max-len 512 or less",
            dir.join("config.json").display()
        )
    );
    let msg = error_line(&cli(tele.path(), &["embed", "--max-len", "0", "a cat"]));
    assert_eq!(msg, "--max-len 0 leaves nothing to embed; use 1 or more");

    let empty = tele.path().join("no-model");
    let msg = error_line(&cli(
        tele.path(),
        &["embed", "--model-dir", empty.to_str().unwrap(), "a cat"],
    ));
    assert_eq!(
        msg,
        format!(
            "{}: no such file; --model-dir takes a directory with model.safetensors, \
             config.json and tokenizer.json",
            empty.join("tokenizer.json").display()
        )
    );
    assert!(cache().join("weights").exists());
}

#[test]
fn run_errors_name_the_file_once() {
    let dir = minilm_dir();
    let tele = tempfile::tempdir().unwrap();
    let readme = fixture("../../README.md");
    let out_file = tele.path().join("out.safetensors");
    let msg = error_line(&cli(
        tele.path(),
        &[
            "run",
            "--model",
            dir.join("model.safetensors").to_str().unwrap(),
            "--architecture",
            "bert",
            "--input",
            readme.to_str().unwrap(),
            "--output",
            out_file.to_str().unwrap(),
        ],
    ));
    names_once(
        &msg,
        &readme,
        "--input takes the model's input tensors as a safetensors file",
    );

    let input = fixture("parity/minilm.safetensors");
    let msg = error_line(&cli(
        tele.path(),
        &[
            "run",
            "--model",
            readme.to_str().unwrap(),
            "--architecture",
            "bert",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out_file.to_str().unwrap(),
        ],
    ));
    let problem = names_once(
        &msg,
        &readme,
        "give a .safetensors weights file, or a Core ML .mlpackage, .mlmodel or .mlmodelc",
    );
    assert_eq!(problem, "not a model file");
}

#[test]
fn report_names_a_corrupt_snapshot_once() {
    let tele = tempfile::tempdir().unwrap();
    let bad = tele.path().join("last-embed.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let msg = error_line(&cli(tele.path(), &["report"]));
    let problem = names_once(
        &msg,
        &bad,
        "delete it, or run its command again to replace it",
    );
    assert!(problem.starts_with("not a telemetry snapshot ("), "{msg}");
}
