//! `--alloc-burst MIB`: allocates and touches MIB MiB as fast as the machine
//! allows (64 MiB chunks, no pauses), reporting progress on the socket as
//! `allocated=N MiB at T ms` every 256 MiB, then `survived`. The memory-limit
//! test (supervisor/tests/memory_burst_killed.rs) expects the kernel to kill it.
//!
//! ```text
//! coreml-test-helper --alloc-burst 2048 --ipc-fd 3
//! allocated=256 MiB at 31 ms
//! ...
//! ```

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Instant;

const CHUNK: usize = 64 << 20;

pub fn run(mut out: UnixStream, mib: usize) {
    let start = Instant::now();
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    while total < mib << 20 {
        // vec![1; n] writes every byte, so every page is faulted in and charged.
        hoard.push(vec![1u8; CHUNK]);
        total += CHUNK;
        if total.is_multiple_of(256 << 20) {
            let _ = writeln!(
                out,
                "allocated={} MiB at {} ms",
                total >> 20,
                start.elapsed().as_millis()
            );
        }
    }
    let _ = writeln!(
        out,
        "survived {} MiB in {} ms",
        total >> 20,
        start.elapsed().as_millis()
    );
    std::hint::black_box(&hoard);
}
