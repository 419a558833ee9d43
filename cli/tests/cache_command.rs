//! `coreml-bridge cache ls|verify|gc|clear` on a cache this test fills: the
//! listing shows every entry, `verify` fails (exit 1) on a damaged one and
//! `--remove` evicts it, `gc` applies the size cap and the Core ML version,
//! `clear` keeps an entry a running process holds a lease on.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use coreml_bridge::cache::key::CompileKey;
use coreml_bridge::cache::ModelCache;
use coreml_bridge::inference::Sha256Digest;

fn cli(dir: &Path, args: &[&str]) -> Output {
    let (tx, rx) = mpsc::channel();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coreml-bridge"));
    cmd.arg("cache")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("COREML_HELPER");
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run coreml-bridge"));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("watchdog: the CLI hung")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn key(n: u8, version: &str) -> CompileKey {
    CompileKey::new(
        Sha256Digest([n; 32]),
        version,
        "all",
        "fp16",
        "default",
        "24A335",
    )
}

fn install(cache: &ModelCache, k: &CompileKey, bytes: usize) -> std::path::PathBuf {
    let staged = cache.staging_dir().unwrap().join("m.mlmodelc");
    std::fs::create_dir_all(staged.join("weights")).unwrap();
    std::fs::write(staged.join("weights/w.bin"), vec![1u8; bytes]).unwrap();
    cache.install(k, "mlprogram", &staged).unwrap()
}

#[test]
fn cache_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("compiled");
    let cache = ModelCache::open(&dir).unwrap();
    let a = install(&cache, &key(1, "8.0"), 1000);
    install(&cache, &key(2, "8.0"), 2000);
    install(&cache, &key(3, "7.0"), 3000);

    let ls = json(&cli(&dir, &["ls", "--json"]));
    let entries = ls["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{ls}");
    assert_eq!(
        entries
            .iter()
            .map(|e| e["bytes"].as_u64().unwrap())
            .sum::<u64>(),
        6000
    );
    assert!(entries.iter().any(|e| e["key"]
        .as_str()
        .unwrap()
        .contains(":7.0:mlprogram:all:fp16:default:24A335")));
    let text = cli(&dir, &["ls"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("3 entries, 6000 bytes"));

    // A flipped byte: only the full check sees it; verify fails until --remove.
    std::fs::write(a.join("weights/w.bin"), vec![2u8; 1000]).unwrap();
    assert!(json(&cli(&dir, &["verify", "--quick", "--json"]))["failed"] == 0);
    let v = cli(&dir, &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("does not match its sha256"),
        "{v:?}"
    );
    assert!(String::from_utf8_lossy(&v.stderr).contains("1 entries fail verification"));
    assert_eq!(
        json(&cli(&dir, &["verify", "--remove", "--json"]))["failed"],
        1
    );
    assert_eq!(json(&cli(&dir, &["verify", "--json"]))["failed"], 0);
    assert!(!a.exists());

    // gc: the Core ML 7.0 entry goes as a mismatch, then the cap takes the rest.
    let gc = json(&cli(
        &dir,
        &[
            "gc",
            "--coreml-version",
            "8.0",
            "--os-build",
            "24A335",
            "--json",
        ],
    ));
    let ev = gc["evicted"].as_array().unwrap();
    assert_eq!(ev.len(), 1, "{gc}");
    assert_eq!(ev[0]["reason"]["kind"], "version_mismatch");
    assert_eq!(ev[0]["bytes"], 3000);
    let gc = json(&cli(&dir, &["gc", "--max-bytes", "100", "--json"]));
    assert_eq!(gc["evicted"][0]["reason"]["kind"], "size_cap", "{gc}");
    assert!(json(&cli(&dir, &["ls", "--json"]))["entries"]
        .as_array()
        .unwrap()
        .is_empty());

    // clear keeps what a running process (this one) holds a lease on.
    install(&cache, &key(4, "8.0"), 10);
    install(&cache, &key(5, "8.0"), 10);
    let held = cache.lookup(&key(4, "8.0")).unwrap();
    let lease = cache.lease(&held).unwrap();
    let cleared = json(&cli(&dir, &["clear", "--json"]));
    assert_eq!(cleared["evicted"].as_array().unwrap().len(), 1, "{cleared}");
    assert_eq!(cleared["in_use_kept"], 1);
    assert!(held.bundle.exists());
    drop(lease);
    assert_eq!(json(&cli(&dir, &["clear", "--json"]))["in_use_kept"], 0);

    // A directory that cannot be a cache: a clear error, no panic.
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = cli(&file, &["ls"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).starts_with("error: "),
        "{bad:?}"
    );
}
