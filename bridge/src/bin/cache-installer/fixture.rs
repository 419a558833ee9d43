//! The synthetic model of `cache-installer`, shared with the torture test
//! (`bridge/tests/cache_survives_sigkill.rs` includes this file): key `N` is
//! the source digest of the bytes `model-N`, and its "compiler" writes
//! content the test can check byte for byte.

use coreml_bridge::cache::key::CompileKey;
use coreml_bridge::inference::Sha256Digest;

/// The cache key of synthetic model `n`.
pub fn key(n: u64) -> CompileKey {
    CompileKey::new(Sha256Digest::of_bytes(format!("model-{n}").as_bytes()), "8.0", "all", "fp16", "default", "T1")
}

/// The files the fake compiler writes for key `n`: 12 files in 3 directories.
pub fn expected_files(n: u64) -> Vec<(String, Vec<u8>)> {
    (0..12u64)
        .map(|j| {
            let len = 256 * (1 + (n * 7 + j) % 16) as usize;
            let bytes = (0..len).map(|i| ((n * 31 + j * 17 + i as u64) % 251) as u8).collect();
            (format!("d{}/f{j}.bin", j % 3), bytes)
        })
        .collect()
}
