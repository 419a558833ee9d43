use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use coreml_inference::Sha256Digest;

use super::*;

fn key(v: &str) -> CompileKey {
    CompileKey::new(Sha256Digest([0xcd; 32]), v, "cpu_and_ne", "unspecified", "default", "24A335")
}

fn stage(cache: &ModelCache, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let staged = cache.staging_dir().unwrap().join(name);
    for (rel, bytes) in files {
        let p = staged.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    staged
}

fn set_used(entry: &Path, t: SystemTime) {
    let f = std::fs::OpenOptions::new().write(true).open(entry.parent().unwrap().join(LEASE_FILE)).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn install_keeps_the_first_entry_and_version_changes_evict() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::open(dir.path()).unwrap();
    let first = stage(&cache, "m0.mlmodelc", &[("weights/w.bin", &[0; 8])]);
    let p = cache.install(&key("8.0"), "mlprogram", &first).unwrap();
    assert!(!first.exists(), "moved, not copied");
    // A second install of the same key does not replace (nor rename) the entry in place.
    let second = stage(&cache, "m1.mlmodelc", &[("weights/w.bin", &[1; 8])]);
    let again = cache.install_entry(&key("8.0"), "mlprogram", &second).unwrap();
    assert!(!again.won);
    assert_eq!(again.entry.bundle, p);
    assert_eq!(std::fs::read(p.join("weights/w.bin")).unwrap(), vec![0u8; 8]);
    assert!(!second.exists(), "the loser's bundle is dropped");
    let e = cache.lookup(&key("8.0")).unwrap();
    assert_eq!(e.key, format!("{}:8.0:mlprogram:cpu_and_ne:unspecified:default:24A335", "cd".repeat(32)));
    assert!(cache.lookup(&key("9.0")).is_none(), "another Core ML version is another key");
    assert!(cache.evict_stale("8.0", "24A335").is_empty());
    assert_eq!(cache.evict_mismatched("9.0", "24A335"), vec![e.key]);
    assert!(cache.lookup(&key("8.0")).is_none());
    assert_eq!(std::fs::read_dir(dir.path().join(TRASH)).unwrap().count(), 0);
}

#[test]
fn ambiguous_keys_and_bundles_with_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::open(dir.path()).unwrap();
    let staged = stage(&cache, "m.mlmodelc", &[("a", b"x")]);
    let bad = CompileKey { shape_key: "1:2".into(), ..key("8.0") };
    assert!(matches!(cache.install_entry(&bad, "mlprogram", &staged), Err(InstallError::Refused(_))));
    std::os::unix::fs::symlink("/etc/passwd", staged.join("link")).unwrap();
    assert!(matches!(cache.install_entry(&key("8.0"), "mlprogram", &staged), Err(InstallError::Refused(_))));
    assert!(cache.list().is_empty(), "nothing under entries/ after a failed install");
    assert_eq!(std::fs::read_dir(&cache.owner.install).unwrap().count(), 0, "its temporary is gone");
}

/// The helper names the bundle; the cache never moves anything outside the
/// staging directory it was given.
#[test]
fn bundle_paths_outside_the_staging_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::open(dir.path().join("cache")).unwrap();
    let staging = cache.staging_dir().unwrap();
    let victim = dir.path().join("victim.mlmodelc");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("secret"), b"app data").unwrap();
    std::os::unix::fs::symlink(&victim, staging.join("link.mlmodelc")).unwrap();
    std::fs::create_dir_all(staging.join("sub")).unwrap();
    std::os::unix::fs::symlink(dir.path(), staging.join("up")).unwrap();
    let other_owner = ModelCache::open(dir.path().join("cache")).unwrap();
    let theirs = stage(&other_owner, "theirs.mlmodelc", &[("a", b"x")]);
    let hostile = [
        victim.clone(),                               // absolute, elsewhere
        staging.join("../../victim.mlmodelc"),        // staging/../..
        staging.join("link.mlmodelc"),                // a symlink out
        staging.join("up/victim.mlmodelc"),           // a symlinked parent out
        staging.join("sub/../../../victim.mlmodelc"), // dots after a real directory
        staging.clone(),                              // the staging directory itself
        staging.join(".."),
        PathBuf::from("victim.mlmodelc"), // relative
        theirs.clone(),                   // another process's staging directory
    ];
    for p in &hostile {
        assert!(cache.confine(p).is_err(), "{} accepted", p.display());
        let e = cache.install(&key("8.0"), "mlprogram", p).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{}: {e}", p.display());
    }
    assert_eq!(std::fs::read(victim.join("secret")).unwrap(), b"app data", "the victim was moved");
    assert!(theirs.exists());
    assert!(cache.lookup(&key("8.0")).is_none());
    // Inside, via a path with `..` that stays inside: fine.
    let ok = staging.join("sub/m.mlmodelc");
    std::fs::create_dir_all(&ok).unwrap();
    let via_dots = staging.join("sub/../sub/m.mlmodelc");
    assert_eq!(cache.confine(&via_dots).unwrap(), std::fs::canonicalize(&ok).unwrap());
    cache.install(&key("8.0"), "mlprogram", &via_dots).unwrap();
    assert!(!ok.exists());
}

#[test]
fn damaged_entries_are_never_served() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage, VerifyLevel); 6] = [
        ("truncated file", |b| std::fs::write(b.join("weights/w.bin"), b"short").unwrap(), VerifyLevel::Quick),
        ("extra file", |b| std::fs::write(b.join("extra"), b"").unwrap(), VerifyLevel::Quick),
        ("missing file", |b| std::fs::remove_file(b.join("model.mil")).unwrap(), VerifyLevel::Quick),
        ("no metadata", |b| std::fs::remove_file(b.parent().unwrap().join("entry.json")).unwrap(), VerifyLevel::Quick),
        (
            "bad metadata",
            |b| std::fs::write(b.parent().unwrap().join("entry.json"), b"{\"format\":").unwrap(),
            VerifyLevel::Quick,
        ),
        ("flipped byte", |b| std::fs::write(b.join("weights/w.bin"), [9u8; 16]).unwrap(), VerifyLevel::Full),
    ];
    for (what, damage, level) in damages {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::open(dir.path()).unwrap();
        let staged = stage(&cache, "m.mlmodelc", &[("weights/w.bin", &[1; 16]), ("model.mil", b"program")]);
        let bundle = cache.install(&key("8.0"), "mlprogram", &staged).unwrap();
        damage(&bundle);
        let bad = cache.verify_all(level, false);
        assert!(bad[0].1.is_err(), "{what}: verify passed");
        if level == VerifyLevel::Quick {
            assert!(cache.lookup(&key("8.0")).is_none(), "{what}: served");
            assert!(!bundle.exists(), "{what}: a failing entry found by lookup is evicted");
        } else {
            // A flipped byte passes the quick check; the full check of `cache verify --remove` and of a
            // start-up configured with `VerifyLevel::Full` evicts it.
            let (_, rec) = ModelCache::open_with(
                dir.path(),
                CacheConfig { verify_on_open: VerifyLevel::Full, ..Default::default() },
            )
            .unwrap();
            assert_eq!(rec.evicted.len(), 1, "{what}");
            assert!(matches!(rec.evicted[0].reason, EvictReason::FailedVerification { .. }));
            assert!(cache.lookup(&key("8.0")).is_none(), "{what}: served");
        }
    }
}

#[test]
fn threads_installing_one_key_end_with_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::open(dir.path()).unwrap();
    let results: Vec<Installed> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u8)
            .map(|i| {
                let cache = cache.clone();
                s.spawn(move || {
                    let staged = stage(&cache, &format!("m{i}.mlmodelc"), &[("w.bin", &[i; 4096])]);
                    cache.install_entry(&key("8.0"), "mlprogram", &staged).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.won).count(), 1);
    assert!(results.iter().all(|r| r.entry == results[0].entry));
    assert_eq!(cache.list().len(), 1);
    assert!(cache.verify_all(VerifyLevel::Full, false).iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn get_or_install_compiles_once_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::open(dir.path()).unwrap();
    let compiles = std::sync::atomic::AtomicUsize::new(0);
    let hows: Vec<Prepared> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                let (cache, compiles) = (cache.clone(), &compiles);
                s.spawn(move || {
                    let r = cache.get_or_install(&key("8.0"), |staging| -> std::io::Result<_> {
                        compiles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        let b = staging.join(format!("{}.mlmodelc", staging::unique("c")));
                        std::fs::create_dir_all(&b)?;
                        std::fs::write(b.join("model.mil"), b"p")?;
                        Ok((b, "mlprogram".into()))
                    });
                    r.unwrap().how
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(compiles.load(std::sync::atomic::Ordering::SeqCst), 1, "{hows:?}");
    assert_eq!(hows.iter().filter(|h| **h == Prepared::Installed).count(), 1);
}

#[test]
fn size_cap_evicts_least_recently_used_but_not_leased_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) =
        ModelCache::open_with(dir.path(), CacheConfig { max_bytes: Some(250), ..Default::default() }).unwrap();
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    let mut bundles = Vec::new();
    for (i, v) in ["1", "2"].iter().enumerate() {
        let staged = stage(&cache, "m.mlmodelc", &[("w.bin", &[0; 100])]);
        let b = cache.install(&key(v), "mlprogram", &staged).unwrap();
        set_used(&b, t0 + Duration::from_secs(i as u64 * 60));
        bundles.push(b);
    }
    // "1" is older but leased; "2" goes when "3" overflows the cap.
    let one = cache.lookup(&key("1")).unwrap();
    set_used(&bundles[0], t0);
    let lease = cache.lease(&one).unwrap();
    let staged = stage(&cache, "m.mlmodelc", &[("w.bin", &[0; 100])]);
    cache.install(&key("3"), "mlprogram", &staged).unwrap();
    let keys: Vec<_> = cache.list().into_iter().map(|e| e.key.unwrap()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(":2:")), "{keys:?}");
    assert!(cache.list().iter().any(|e| e.in_use));
    // Without the lease, a gc brings it under the cap... it already is; a smaller cap evicts "1" first.
    drop(lease);
    let (small, _) =
        ModelCache::open_with(dir.path(), CacheConfig { max_bytes: Some(150), ..Default::default() }).unwrap();
    let ev = small.enforce_cap(None);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].reason, EvictReason::SizeCap { max_bytes: 150 });
    assert_eq!(ev[0].bytes, 100);
    assert!(ev[0].key.as_deref().unwrap().contains(":1:"), "{ev:?}");
    // Clear skips nothing in use now, and reports every byte.
    let cleared = small.clear();
    assert_eq!(cleared.iter().map(|e| e.bytes).sum::<u64>(), 100);
    assert!(small.list().is_empty());
}

#[test]
fn startup_removes_leftovers_of_dead_processes_only() {
    let dir = tempfile::tempdir().unwrap();
    let live = ModelCache::open(dir.path()).unwrap();
    let live_staged = stage(&live, "busy.mlmodelc", &[("a", b"x")]);
    // A dead process's staging and install directories (no lock held) and an old-layout entry.
    for d in ["staging/123-dead-0/m.mlmodelc", "install/123-dead-0/i1/model.mlmodelc", "trash/x-1/model.mlmodelc"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    std::fs::write(dir.path().join("staging/123-dead-0.lock"), b"").unwrap();
    let old = dir.path().join("0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(old.join("model.mlmodelc")).unwrap();
    std::fs::write(old.join("key.txt"), b"k").unwrap();
    std::fs::create_dir_all(dir.path().join(".tmp-x")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
    let (_second, rec) = ModelCache::open_with(dir.path(), CacheConfig::default()).unwrap();
    assert_eq!(rec.staging_removed, 2, "{rec:?}");
    assert_eq!(rec.legacy_removed, 2, "{rec:?}");
    assert!(!dir.path().join("staging/123-dead-0").exists());
    assert!(!dir.path().join("staging/123-dead-0.lock").exists());
    assert!(!dir.path().join("install/123-dead-0").exists());
    assert_eq!(std::fs::read_dir(dir.path().join("trash")).unwrap().count(), 0);
    assert!(live_staged.exists(), "a live process's staging directory is kept");
    assert!(dir.path().join("notes.txt").exists(), "files the cache did not make are kept");
    drop(live);
    assert!(!live_staged.exists(), "an owner removes its staging directory when it closes");
}
