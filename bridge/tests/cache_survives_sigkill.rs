//! The compiled-model cache under SIGKILL: a separate process
//! (`cache-installer`) installs synthetic bundles one key after another and
//! is killed at a random moment, at least 200 times. After every kill, a
//! reader that does no cleanup of its own (another live process) must be
//! served only complete entries, byte for byte what the compiler wrote, and
//! no entry under `entries/` may fail full verification; the next start-up
//! removes what the killed process left. Then 4 processes prepare one model
//! at once: one compiles, the others wait for it, all four use the same entry.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coreml_bridge::cache::verify::verify_entry;
use coreml_bridge::cache::{CacheConfig, ModelCache, VerifyLevel};

const KILLS: usize = 220;

/// The same key and content as `cache-installer`.
#[path = "../src/bin/cache-installer/fixture.rs"]
mod fixture;
use fixture::{expected_files, key};

/// Exactly the files the compiler wrote, and nothing else.
fn check_bundle(n: u64, bundle: &Path) {
    let want = expected_files(n);
    let mut count = 0;
    for (rel, bytes) in &want {
        let got = std::fs::read(bundle.join(rel)).unwrap_or_else(|e| panic!("key {n}: {rel} unreadable: {e}"));
        assert!(got == *bytes, "key {n}: {rel} differs ({} bytes, {} expected)", got.len(), bytes.len());
        count += 1;
    }
    let on_disk = walk(bundle);
    assert_eq!(on_disk, count, "key {n}: extra files in {}", bundle.display());
}

fn walk(d: &Path) -> usize {
    std::fs::read_dir(d).unwrap().flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()
}

fn installer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cache-installer"))
}

/// A small xorshift: random kill points without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("watchdog: the torture test ran past {limit:?}");
        std::process::exit(101);
    });
}

#[test]
fn no_partial_entry_is_ever_served_across_200_sigkills() {
    watchdog(Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    // The reader: a live process that never runs the start-up cleanup itself.
    let (reader, _) = ModelCache::open_with(&root, CacheConfig { recover: false, ..Default::default() }).unwrap();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut rng = Rng(seed | 1);
    eprintln!("seed {seed}");
    let (mut next_key, mut served, mut leftovers_removed) = (0u64, 0usize, 0usize);
    let (mut mid_compile, mut mid_install) = (0usize, 0usize);
    let mut seen = HashSet::new();
    // Kill points spread over one whole install: calibrate on this machine (fsync costs vary).
    let t = Instant::now();
    let out = installer().arg(&root).arg("once").arg("0").arg("1").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let span_us = (t.elapsed().as_micros() as u64 * 2).clamp(2_000, 250_000);
    eprintln!("one install took {:?}; kills land within {span_us} µs of the start", t.elapsed());
    let started = Instant::now();
    for round in 0..KILLS {
        // Keys overlap between rounds, so kills also land while an earlier key is found or re-installed.
        let first = next_key.saturating_sub(rng.below(3));
        let mut child = installer()
            .arg(&root)
            .arg("loop")
            .arg(first.to_string())
            .arg("1") // a 1 ms pause per file written: kills land in the compile, too
            .arg("norecover") // leftovers stay until this test's own start-ups
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(200 + rng.below(span_us)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "round {round}: the installer exited by itself: {status:?}");
        // Every entry that appeared is complete: served, fully verified, the compiler's exact bytes.
        let window: HashMap<String, u64> = (first..first + 200).map(|n| (key(n).id(), n)).collect();
        for e in std::fs::read_dir(root.join("entries")).unwrap().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !seen.insert(id.clone()) {
                continue;
            }
            let n = *window.get(&id).unwrap_or_else(|| panic!("round {round}: entry {id} of no key installed now"));
            let got = reader.lookup(&key(n));
            let served_entry = got.unwrap_or_else(|| panic!("round {round}: entry of key {n} present but not served"));
            let full = verify_entry(&e.path(), VerifyLevel::Full);
            assert!(full.is_ok(), "round {round}: entry of key {n} fails full verification: {full:?}");
            check_bundle(n, &served_entry.bundle);
            served += 1;
            next_key = next_key.max(n + 1);
        }
        // Now and then a process starts (and cleans up after the dead).
        if round % 10 == 9 {
            let me = format!("{}-", std::process::id());
            for (sub, count) in [("staging", &mut mid_compile), ("install", &mut mid_install)] {
                for e in std::fs::read_dir(root.join(sub)).unwrap().flatten() {
                    let dead = !e.file_name().to_string_lossy().starts_with(&me);
                    if dead && e.path().is_dir() && std::fs::read_dir(e.path()).unwrap().next().is_some() {
                        *count += 1;
                    }
                }
            }
            for (id, r) in reader.verify_all(VerifyLevel::Full, false) {
                assert!(r.is_ok(), "round {round}: entry {id} fails verification: {r:?}");
            }
            let (_, rec) = ModelCache::open_with(&root, CacheConfig::default()).unwrap();
            assert!(rec.evicted.is_empty(), "round {round}: start-up found bad entries: {:?}", rec.evicted);
            leftovers_removed += rec.staging_removed;
            for sub in ["staging", "install"] {
                for e in std::fs::read_dir(root.join(sub)).unwrap().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    assert!(
                        name.starts_with(&format!("{}-", std::process::id())),
                        "round {round}: {sub}/{name} left by a dead process after start-up"
                    );
                }
            }
        }
    }
    eprintln!(
        "{KILLS} kills in {:?}: {served} entries served and checked, {next_key} keys installed, \
         {leftovers_removed} leftover directories removed; kills landed mid-compile {mid_compile}, \
         mid-install {mid_install} times",
        started.elapsed()
    );
    assert!(next_key >= 20, "too few installs completed ({next_key}) for the kills to mean anything");
    assert!(leftovers_removed >= KILLS / 4, "killed processes leave their staging directories ({leftovers_removed})");
    assert!(mid_install >= 10, "too few kills landed mid-install ({mid_install})");
    assert!(mid_compile >= 3, "too few kills landed mid-compile ({mid_compile})");
    // The cache still works: a fresh key installs and verifies, old ones are served.
    let (cache, _) = ModelCache::open_with(&root, CacheConfig::default()).unwrap();
    let out = installer().arg(&root).arg("once").arg("1000000").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_bundle(1_000_000, &cache.lookup(&key(1_000_000)).unwrap().bundle);
    check_bundle(0, &cache.lookup(&key(0)).unwrap().bundle);
    assert!(cache.verify_all(VerifyLevel::Full, false).iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn four_processes_preparing_one_model_share_one_entry() {
    watchdog(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    for n in [7u64, 8, 9] {
        // A 20 ms pause per file keeps the compile open long enough for all four to meet it.
        let children: Vec<_> = (0..4)
            .map(|_| {
                installer()
                    .arg(&root)
                    .arg("once")
                    .arg(n.to_string())
                    .arg("20")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<serde_json::Value> = children
            .into_iter()
            .map(|c| {
                let o = c.wait_with_output().unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                serde_json::from_slice(&o.stdout).unwrap()
            })
            .collect();
        let installed = outs.iter().filter(|o| o["how"] == "installed").count();
        assert_eq!(installed, 1, "exactly one process installs: {outs:?}");
        let compiled = outs.iter().filter(|o| o["compiled"] == true).count();
        assert_eq!(compiled, 1, "exactly one process compiles, the others wait for it: {outs:?}");
        let bundle = PathBuf::from(outs[0]["bundle"].as_str().unwrap());
        assert!(outs.iter().all(|o| o["bundle"] == outs[0]["bundle"]), "{outs:?}");
        check_bundle(n, &bundle);
    }
    let (cache, rec) = ModelCache::open_with(&root, CacheConfig::default()).unwrap();
    assert!(rec.evicted.is_empty());
    assert_eq!(cache.list().len(), 3);
    assert!(cache.verify_all(VerifyLevel::Full, false).iter().all(|(_, r)| r.is_ok()));
}
