//! `coreml-bridge gates` end to end, over the Rust test helper (`COREML_HELPER`)
//! and a private cache: the JSON names the helper that ran (asked while it
//! still runs), holds gates A–D, and the checks that do not depend on the
//! machine's load hold (cache hits, schema, both hangs ended by their
//! deadline, every soak request answered, the breaker quiet, no descriptor
//! left over); gate C is "not measurable" with its reason, never a pass. An
//! impossible SLA makes gate B fail, the table say so, and the exit status 1.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

fn gates(cache: &Path, args: &[&str]) -> Output {
    let (tx, rx) = mpsc::channel();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.args(args)
        .env("COREML_HELPER", common::test_helper())
        .env_remove("COREML_HELPER_LAUNCHER")
        .env_remove("RUST_LOG")
        .env("COREML_BRIDGE_CACHE", cache)
        .env("COREML_BRIDGE_TELEMETRY_DIR", cache.join("telemetry"));
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run coreml-bridge"));
    });
    rx.recv_timeout(Duration::from_secs(240))
        .expect("watchdog: gates hung")
}

/// The verdict of check `name` of gate `gate`.
fn verdict<'a>(v: &'a serde_json::Value, gate: &str, name: &str) -> &'a serde_json::Value {
    let g = v["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == gate)
        .unwrap_or_else(|| panic!("gate {gate}"));
    let c = g["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name);
    c.unwrap_or_else(|| panic!("gate {gate} has no check {name:?}: {g}"))
}

#[test]
fn gates_run_against_the_test_helper() {
    let dir = tempfile::tempdir().unwrap();
    let short = ["--cycles", "200", "--inferences", "200", "--soak", "3"];
    let out = gates(dir.path(), &[&["--json", "gates"][..], &short].concat());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(
        v["subject"]
            .as_str()
            .unwrap()
            .starts_with("diagnostic helper"),
        "{}",
        v["subject"]
    );
    let names: Vec<_> = v["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B", "C", "D"]);
    for (gate, check) in [
        ("A", "cache hit ratio"),
        ("B", "output schema"),
        ("B", "parity (L∞ vs reference)"),
        ("B", "slow model ended by deadline"),
        ("B", "hang fault ended by deadline"),
        ("D", "inferences answered"),
        ("D", "breaker never tripped"),
        ("D", "supervisor fds"),
        ("D", "helper fds"),
    ] {
        assert_eq!(
            verdict(&v, gate, check)["verdict"],
            "pass",
            "{gate} {check}: {}",
            verdict(&v, gate, check)
        );
    }
    // 200 cycles are too few to judge growth: said, not projected.
    let growth = verdict(&v, "A", "supervisor RSS growth (fitted, per 10k)");
    assert_eq!(growth["verdict"], "not_measurable", "{growth}");
    assert!(
        growth["reason"].as_str().unwrap().contains("at least 1000"),
        "{growth}"
    );
    for check in ["speed-up over CPU", "Neural-Engine dispatch (compute plan)"] {
        let c = verdict(&v, "C", check);
        assert_eq!(c["verdict"], "not_measurable", "{c}");
        assert!(c["reason"].as_str().unwrap().contains("no Core ML"), "{c}");
    }
    // The exit status and `failed` follow the verdicts (some checks depend on the machine's load).
    let any_fail = v["gates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["checks"].as_array().unwrap())
        .any(|c| c["verdict"] == "fail");
    assert_eq!(
        out.status.success(),
        !any_fail,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = v["failed"].as_array().expect("failed gates listed");
    assert_eq!(failed.is_empty(), !any_fail, "{}", v["failed"]);

    let out = gates(
        dir.path(),
        &[&["gates", "--sla-ms", "0.0001"][..], &short].concat(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an impossible SLA must fail: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("B") && l.contains("FAIL")),
        "{text}"
    );
    // "error: gate B failed" (or "gate A, B, D failed": A and D may also fail on a loaded machine).
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: gate"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains('B') && line.ends_with("failed"), "{err}");
}
