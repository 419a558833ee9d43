//! Every error exit of `coreml-bridge` releases what the Core ML helper held: the
//! CLI runs with the Rust test helper as its helper (`COREML_HELPER`), fails after
//! the helper started (a missing, a corrupt, an unknown-architecture model, and a
//! Core ML package the helper cannot compile), and once it has exited: no process
//! of that run is left (the helper inherits a marker variable that is searched
//! for in every process's environment), the helper's memory cgroup
//! (`coreml-helper-<cli pid>-<n>`) is gone, and `/dev/shm` holds no new
//! `cmlb-` object. Regions are sealed memfds (no name), so they vanish with the
//! last process that holds them: no process left means no region left.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use coreml_bridge::supervisor::cgroup::own_memory_dirs;

const MARK: &str = "COREML_EXIT_TEST_MARK";

/// Runs the CLI in `cwd` under a watchdog; returns its output and pid.
fn cli(cwd: &Path, mark: &str, helper: Option<&Path>, args: &[&str]) -> (Output, u32) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("COREML_HELPER_LAUNCHER")
        .env_remove("RUST_LOG")
        .env("COREML_BRIDGE_CACHE", common::cache())
        .env("COREML_BRIDGE_TELEMETRY_DIR", cwd.join("telemetry"))
        .env(MARK, mark)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match helper {
        Some(h) => cmd.env("COREML_HELPER", h),
        None => cmd.env_remove("COREML_HELPER"),
    };
    let child = cmd.spawn().expect("run coreml-bridge");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output().expect("wait for coreml-bridge"));
    });
    let out = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("watchdog: the CLI hung");
    (out, pid)
}

/// Processes whose environment holds `MARK=mark`.
fn marked_processes(mark: &str) -> Vec<String> {
    let needle = format!("{MARK}={mark}");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "pid {}: {}",
                e.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Memory cgroups named after the CLI process `pid`, in every hierarchy this
/// process belongs to (the CLI inherited them).
fn cgroups_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("coreml-helper-{pid}-");
    own_memory_dirs(Path::new("/"))
        .into_iter()
        .flat_map(|(_, dir)| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

fn named_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cmlb-"))
        .collect();
    v.sort();
    v
}

/// A valid safetensors file with one f32 tensor `x` of shape [1].
fn write_input(path: &Path) {
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&1.0f32.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn error_exits_leave_no_helper_cgroup_or_named_region() {
    let helper = common::test_helper();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_input(&d.join("in.safetensors"));
    std::fs::write(d.join("corrupt.safetensors"), b"not a safetensors file").unwrap();
    std::fs::create_dir_all(d.join("junk.mlpackage")).unwrap();
    std::fs::write(d.join("junk.mlpackage/Manifest.json"), b"{").unwrap();
    let shm_before = named_shm();
    let io = ["--input", "in.safetensors", "--output", "out.safetensors"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "missing model",
            [
                &[
                    "run",
                    "--model",
                    "missing.safetensors",
                    "--architecture",
                    "bert",
                ][..],
                &io,
            ]
            .concat(),
        ),
        (
            "corrupt model",
            [
                &[
                    "run",
                    "--model",
                    "corrupt.safetensors",
                    "--architecture",
                    "bert",
                ][..],
                &io,
            ]
            .concat(),
        ),
        (
            "unknown architecture",
            [
                &[
                    "run",
                    "--model",
                    "corrupt.safetensors",
                    "--architecture",
                    "no-such-arch",
                ][..],
                &io,
            ]
            .concat(),
        ),
        (
            "uncompilable Core ML package",
            [
                &[
                    "run",
                    "--coreml-model",
                    "junk.mlpackage",
                    "--model",
                    "missing.safetensors",
                ][..],
                &["--architecture", "bert"],
                &io,
            ]
            .concat(),
        ),
        (
            "missing model, --json",
            [
                &[
                    "--json",
                    "run",
                    "--model",
                    "missing.safetensors",
                    "--architecture",
                    "bert",
                ][..],
                &io,
            ]
            .concat(),
        ),
    ];
    for (i, (what, args)) in cases.iter().enumerate() {
        let mark = format!("{}-{i}", std::process::id());
        let (out, pid) = cli(d, &mark, Some(&helper), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{what}: exit {:?}\n{stderr}{stdout}", out.status.code());
        assert_eq!(out.status.code(), Some(1), "{what}: an error exit");
        assert!(
            stderr.contains("error: ") || stdout.contains("\"error\""),
            "{what}: says why"
        );
        // The helper started (else the CLI notes that Core ML is unavailable).
        assert!(
            !stderr.contains("coreml unavailable"),
            "{what}: the helper did not start: {stderr}"
        );
        assert_eq!(
            marked_processes(&mark),
            Vec::<String>::new(),
            "{what}: processes left"
        );
        assert_eq!(
            cgroups_of(pid),
            Vec::<PathBuf>::new(),
            "{what}: helper cgroup left"
        );
        assert_eq!(named_shm(), shm_before, "{what}: named shared memory left");
    }

    // Without a helper the CLI says so: the check above can see a helper that did not start.
    let (out, _) = cli(d, "control", None, &cases[0].1);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("coreml unavailable"));
}
