//! `--alloc-burst MIB`: allocates MIB MiB as fast as the machine allows (64 MiB
//! chunks, no pauses), reporting on the socket after every chunk as
//! `allocated=N MiB at T us`, then `survived N MiB in T us`. The memory-limit test
//! (supervisor/tests/memory_burst_killed.rs) expects the kernel to kill it.
//!
//! How pages are made resident (`COREML_BURST_MODE`, default `fill`):
//! - `fill`: every byte written (a page fault, then a memset, per 4 KiB page);
//! - `touch`: one byte written per 4 KiB page (a page fault each, no memset);
//! - `populate`: the kernel populates each chunk in one `MADV_POPULATE_WRITE` call;
//! - `huge`: `populate` after `MADV_HUGEPAGE` (2 MiB pages where the kernel has them).
//!
//! `COREML_BURST_THREADS=N` (default 1) splits each chunk of `touch`, `populate` and
//! `huge` across N threads.
//!
//! ```text
//! COREML_BURST_MODE=huge COREML_BURST_THREADS=2 coreml-test-helper --alloc-burst 2048 --ipc-fd 3
//! mode=huge threads=2
//! allocated=64 MiB at 35120 us
//! ...
//! ```

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use crate::sys::AnonMemory;

const CHUNK: usize = 64 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fill,
    Touch,
    Populate,
    Huge,
}

impl Mode {
    fn from_env() -> Result<Self, String> {
        match std::env::var("COREML_BURST_MODE").as_deref() {
            Err(_) | Ok("fill") => Ok(Mode::Fill),
            Ok("touch") => Ok(Mode::Touch),
            Ok("populate") => Ok(Mode::Populate),
            Ok("huge") => Ok(Mode::Huge),
            Ok(other) => Err(format!("unknown COREML_BURST_MODE {other:?}")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Fill => "fill",
            Mode::Touch => "touch",
            Mode::Populate => "populate",
            Mode::Huge => "huge",
        }
    }
}

pub fn run(mut out: UnixStream, mib: usize) {
    let mode = match Mode::from_env() {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            std::process::exit(2);
        }
    };
    let threads = std::env::var("COREML_BURST_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 16);
    let _ = writeln!(out, "mode={} threads={threads}", mode.name());
    let start = Instant::now();
    let mut hoard: Vec<AnonMemory> = Vec::new();
    let mut total = 0usize;
    while total < mib << 20 {
        let chunk = match AnonMemory::new(CHUNK) {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(out, "error: mmap: {e}");
                std::process::exit(1);
            }
        };
        if let Err(e) = make_resident(&chunk, mode, threads) {
            let _ = writeln!(out, "error: {e}");
            std::process::exit(1);
        }
        hoard.push(chunk);
        total += CHUNK;
        let _ = writeln!(
            out,
            "allocated={} MiB at {} us",
            total >> 20,
            start.elapsed().as_micros()
        );
    }
    let _ = writeln!(
        out,
        "survived {} MiB in {} us",
        total >> 20,
        start.elapsed().as_micros()
    );
    std::hint::black_box(&hoard);
}

fn make_resident(chunk: &AnonMemory, mode: Mode, threads: usize) -> std::io::Result<()> {
    if mode == Mode::Fill {
        chunk.fill();
        return Ok(());
    }
    if mode == Mode::Huge {
        chunk.advise_huge()?;
    }
    // Page-aligned (2 MiB-aligned for huge pages) shares of the chunk, one per thread.
    let share = (CHUNK / threads).next_multiple_of(2 << 20);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..CHUNK)
            .step_by(share)
            .map(|off| {
                let len = share.min(CHUNK - off);
                s.spawn(move || match mode {
                    Mode::Touch => {
                        chunk.touch_pages(off, len);
                        Ok(())
                    }
                    _ => chunk.populate_write(off, len),
                })
            })
            .collect();
        parts
            .into_iter()
            .try_for_each(|p| p.join().expect("burst thread panicked"))
    })
}
