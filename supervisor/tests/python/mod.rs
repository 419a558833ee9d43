//! The protocol peer written from docs/protocol.md alone (`tests/peer/protocol_peer.py`,
//! Python 3, standard library only) as the helper of a real supervisor.
//!
//! The peer runs under the default sandbox (seccomp allow-list, Landlock, namespaces,
//! memory cgroup); the only additions are read access to the peer's own directory and
//! to the Python installation, which Landlock does not grant by default. A machine
//! without `python3` fails these tests: the peer is part of the suite.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use coreml_supervisor::{HelperCommand, ModelInfo, Supervisor, SupervisorConfig};

use crate::common;

/// The peer script.
pub fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/peer/protocol_peer.py")
        .canonicalize()
        .expect("tests/peer/protocol_peer.py is missing")
}

/// The real interpreter behind `python3` (not a shim script) and the installation
/// prefixes it reads its standard library from.
pub fn python() -> (PathBuf, Vec<PathBuf>) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix)",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for the protocol peer test and could not run: {e}")
        });
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("python3 printed UTF-8");
    let mut lines = text.lines().map(PathBuf::from);
    let exe = lines
        .next()
        .expect("sys.executable")
        .canonicalize()
        .expect("python exists");
    let mut prefixes: Vec<PathBuf> = lines.collect();
    prefixes.dedup();
    (exe, prefixes)
}

/// A supervisor configuration whose helper is the protocol peer, with the test
/// deadlines of `common::config`, the staging directory `staging` and the model
/// directory `models` (read-only).
pub fn peer_config(staging: &Path, models: &Path) -> SupervisorConfig {
    let (exe, prefixes) = python();
    let script = peer_script();
    let command = HelperCommand::new(&exe)
        .arg("-B")
        .arg(&script)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let h = common::HelperUnderTest {
        name: "python peer".into(),
        command,
    };
    let mut cfg = common::config(&h);
    cfg.staging_dir = staging.to_path_buf();
    cfg.sandbox = cfg
        .sandbox
        .read_only(script.parent().expect("peer directory"))
        .read_only(models)
        .read_write(staging);
    for p in prefixes {
        cfg.sandbox = cfg.sandbox.read_only(p);
    }
    cfg
}

/// Writes a toy model source (`{"op": ..., "shape": ..., "pad": ...}`) the peer
/// compiles; `pad` elements of row padding in its outputs (0: dense).
pub fn toy_model(dir: &Path, name: &str, op: &str, shape: &[u64], pad: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("{{\"op\": \"{op}\", \"shape\": {shape:?}, \"pad\": {pad}}}"),
    )
    .expect("write model");
    p
}

/// A supervisor over the peer with the default configuration of [`peer_config`].
pub async fn start(staging: &Path, models: &Path) -> Supervisor {
    Supervisor::start(peer_config(staging, models))
        .await
        .unwrap_or_else(|e| panic!("the protocol peer failed the handshake: {e}"))
}

/// Compiles the toy model at `source` through the peer and loads the bundle.
pub async fn compile_and_load(sup: &Supervisor, source: &Path) -> ModelInfo {
    let compiled = sup
        .compile(&source.display().to_string(), None)
        .await
        .expect("compile");
    sup.load(&compiled.bundle_path, None).await.expect("load")
}
