//! `cache-installer`: installs synthetic bundles through the compiled-model
//! cache, as a separate process that can be killed at any point. The cache
//! torture test (`bridge/tests/cache_survives_sigkill.rs`) runs it; it is
//! also a quick way to exercise a cache directory by hand.
//!
//! ```text
//! cache-installer ROOT loop FIRST [PAUSE_MS [norecover]]  # prepare keys FIRST, FIRST+1, ... until killed
//! cache-installer ROOT once N [PAUSE_MS [norecover]]      # prepare key N once; print one JSON line
//! ```
//!
//! `PAUSE_MS` is slept after each file the fake compiler writes; `norecover`
//! opens the cache without the start-up cleanup (so leftovers of killed
//! runs stay for the test to count and for its own start-up to remove).
//!
//! Key `N` and what its "compiler" writes are in `fixture.rs`, which the
//! test includes too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use coreml_bridge::cache::{CacheConfig, ModelCache, Prepared};

mod fixture;
use fixture::{expected_files, key};

fn compile(n: u64, staging: &Path, pause: Duration) -> std::io::Result<(PathBuf, String)> {
    let bundle = staging.join(format!("k{n}-{}.mlmodelc", std::process::id()));
    for (rel, bytes) in expected_files(n) {
        let p = bundle.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&bundle))?;
        std::fs::write(p, bytes)?;
        std::thread::sleep(pause);
    }
    Ok((bundle, "mlprogram".into()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: cache-installer ROOT (loop FIRST | once N) [PAUSE_MS [norecover]]");
        std::process::exit(2)
    };
    let (Some(root), Some(mode), Some(n)) = (args.get(1), args.get(2), args.get(3).and_then(|s| s.parse::<u64>().ok()))
    else {
        usage()
    };
    let pause = Duration::from_millis(args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0));
    let recover = args.get(5).map(String::as_str) != Some("norecover");
    let cache = match ModelCache::open_with(root, CacheConfig { recover, ..CacheConfig::default() }) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("error: opening the cache: {e}");
            std::process::exit(1)
        }
    };
    let compiled = std::cell::Cell::new(false);
    match mode.as_str() {
        "loop" => {
            for k in n.. {
                if let Err(e) = cache.get_or_install(&key(k), |s| compile(k, s, pause)) {
                    eprintln!("error: key {k}: {e}");
                    std::process::exit(1)
                }
            }
        }
        "once" => match cache.get_or_install(&key(n), |s| {
            compiled.set(true);
            compile(n, s, pause)
        }) {
            Ok(r) => {
                let how = match r.how {
                    Prepared::Hit => "hit",
                    Prepared::Installed => "installed",
                    Prepared::InstalledByOther => "installed_by_other",
                };
                let compiled = compiled.get();
                println!(
                    "{}",
                    serde_json::json!({ "how": how, "compiled": compiled, "bundle": r.entry.bundle, "key": r.entry.key })
                );
            }
            Err(e) => {
                eprintln!("error: key {n}: {e}");
                std::process::exit(1)
            }
        },
        _ => usage(),
    }
}
