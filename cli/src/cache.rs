//! `cache`: the compiled-model cache (`$COREML_BRIDGE_CACHE/compiled`, or
//! `--dir`): list, verify, collect garbage, clear.
//!
//! ```text
//! $ coreml-bridge cache ls
//! ID                                BYTES      LAST USED (UTC)      USE  KEY
//! 3f0c...                           5242880    2026-11-29 12:00:01  -    9a1b...:8.0:mlprogram:all:fp16:default:24A335
//! 1 entries, 5242880 bytes
//! $ coreml-bridge cache verify          # every file's sha256; exit 1 if an entry fails
//! $ coreml-bridge cache gc --max-bytes 1000000000 --coreml-version 8.0 --os-build 24A335
//! $ coreml-bridge cache clear
//! ```
//!
//! Entries a running process holds a lease on are never removed; `gc` and
//! `clear` say how many bytes each eviction freed, and why.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use coreml_bridge::cache::{CacheConfig, Eviction, ModelCache, VerifyLevel};

use crate::app::{self, cache_root};
use crate::{out, Global};

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The cache directory (default: `$COREML_BRIDGE_CACHE/compiled`).
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The entries, least recently used first.
    Ls,
    /// Checks every entry against its metadata (every file's sha256 unless `--quick`).
    Verify {
        /// Lengths and file lists only.
        #[arg(long)]
        quick: bool,
        /// Evict entries that fail.
        #[arg(long)]
        remove: bool,
    },
    /// Start-up cleanup (leftovers of dead processes, entries failing the
    /// quick check), then the size cap, then entries of another Core ML
    /// version or OS build when both are given.
    Gc {
        /// Size cap in bytes (default 10 GiB).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// The helper's Core ML version: entries of others are evicted.
        #[arg(long, requires = "os_build")]
        coreml_version: Option<String>,
        /// The helper's OS build: entries of others are evicted.
        #[arg(long, requires = "coreml_version")]
        os_build: Option<String>,
    },
    /// Evicts every entry not in use.
    Clear,
}

fn open(
    dir: &std::path::Path,
    cfg: CacheConfig,
) -> Result<(ModelCache, coreml_bridge::cache::Recovery), String> {
    ModelCache::open_with(dir, cfg)
        .map_err(|e| app::file_error(dir, e, "check the directory is writable"))
}

fn evictions_json(ev: &[Eviction]) -> serde_json::Value {
    serde_json::to_value(ev).expect("plain data")
}

fn print_evictions(ev: &[Eviction]) {
    for e in ev {
        out!(
            "evicted {} ({} bytes): {}",
            e.key.as_deref().unwrap_or(&e.id),
            e.bytes,
            e.reason
        );
    }
    out!(
        "{} evicted, {} bytes freed",
        ev.len(),
        ev.iter().map(|e| e.bytes).sum::<u64>()
    );
}

fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn run(global: Global, args: CacheArgs) -> Result<(), String> {
    let dir = args.dir.unwrap_or_else(|| cache_root().join("compiled"));
    let inspect = CacheConfig {
        recover: false,
        ..Default::default()
    };
    match args.command {
        CacheCommand::Ls => {
            let (cache, _) = open(&dir, inspect)?;
            let list = cache.list();
            if global.json {
                app::print_json(&serde_json::json!({ "dir": dir, "entries": list }));
                return Ok(());
            }
            out!(
                "{:<33} {:>10}  {:<19}  {:<3}  KEY",
                "ID",
                "BYTES",
                "LAST USED (UTC)",
                "USE"
            );
            for e in &list {
                let key = e.key.as_deref().unwrap_or("(unreadable metadata)");
                let used = if e.in_use { "yes" } else { "-" };
                out!(
                    "{:<33} {:>10}  {:<19}  {:<3}  {key}",
                    e.id,
                    e.bytes,
                    utc(e.last_used_unix),
                    used
                );
            }
            out!(
                "{} entries, {} bytes in {}",
                list.len(),
                list.iter().map(|e| e.bytes).sum::<u64>(),
                dir.display()
            );
            Ok(())
        }
        CacheCommand::Verify { quick, remove } => {
            let (cache, _) = open(&dir, inspect)?;
            let level = if quick {
                VerifyLevel::Quick
            } else {
                VerifyLevel::Full
            };
            let results = cache.verify_all(level, remove);
            let bad = results.iter().filter(|(_, r)| r.is_err()).count();
            if global.json {
                let rows: Vec<_> = results
                    .iter()
                    .map(|(id, r)| serde_json::json!({ "id": id, "ok": r.is_ok(), "error": r.as_ref().err().map(ToString::to_string) }))
                    .collect();
                app::print_json(
                    &serde_json::json!({ "dir": dir, "entries": rows, "failed": bad, "removed": remove }),
                );
            } else {
                for (id, r) in &results {
                    match r {
                        Ok(()) => out!("ok    {id}"),
                        Err(e) => out!("FAIL  {id}: {e}{}", if remove { " (removed)" } else { "" }),
                    }
                }
                out!("{} entries, {bad} failed", results.len());
            }
            if bad > 0 && !remove {
                return Err(format!("{bad} entries fail verification; `coreml-bridge cache verify --remove` evicts them"));
            }
            Ok(())
        }
        CacheCommand::Gc {
            max_bytes,
            coreml_version,
            os_build,
        } => {
            let cfg = CacheConfig {
                max_bytes: max_bytes.or(CacheConfig::default().max_bytes),
                ..Default::default()
            };
            let (cache, rec) = open(&dir, cfg)?;
            let mut ev = rec.evicted.clone();
            if let (Some(v), Some(b)) = (coreml_version, os_build) {
                ev.extend(cache.evict_stale(&v, &b));
            }
            ev.extend(cache.enforce_cap(None));
            if global.json {
                app::print_json(&serde_json::json!({
                    "dir": dir,
                    "staging_removed": rec.staging_removed,
                    "legacy_removed": rec.legacy_removed,
                    "evicted": evictions_json(&ev),
                }));
            } else {
                out!(
                    "removed {} staging leftovers of processes that are gone",
                    rec.staging_removed
                );
                print_evictions(&ev);
            }
            Ok(())
        }
        CacheCommand::Clear => {
            let (cache, _) = open(&dir, inspect)?;
            let ev = cache.clear();
            let left = cache.list().len();
            if global.json {
                app::print_json(
                    &serde_json::json!({ "dir": dir, "evicted": evictions_json(&ev), "in_use_kept": left }),
                );
            } else {
                print_evictions(&ev);
                if left > 0 {
                    out!("{left} entries in use by running processes were kept");
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(951_782_400 + 3661), "2000-02-29 01:01:01");
        assert_eq!(super::utc(1_795_000_000), "2026-11-18 11:06:40");
    }
}
