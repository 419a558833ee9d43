//! `coreml-test-helper`: a helper that speaks docs/protocol.md, hosts the diagnostic
//! models of docs/diagnostics.md, runs `.mlpackage` models with the MIL executor
//! (`coreml-mil`), and injects every fault listed there into either.
//!
//! ```text
//! coreml-test-helper --ipc-fd 3                       # serve the protocol on fd 3
//! COREML_DIAG_FAULT=hang-handshake coreml-test-helper --ipc-fd 3
//! coreml-test-helper --probe-sandbox --ipc-fd 3       # write a sandbox report to fd 3, exit
//! coreml-test-helper --probe-escapes --ipc-fd 3       # try every sandbox escape, report each
//! coreml-test-helper --alloc-burst 2048 --ipc-fd 3    # allocate 2 GiB at once (memory-limit test)
//! coreml-test-helper --sandbox-read /m --ipc-fd 3     # accepted (and reported by the probe)
//! coreml-test-helper --mil-faults 'fault=segv&after=3&once=/c/x' --ipc-fd 3
//!                                      # faults for .mlpackage models loaded by path
//! ```

mod burst;
mod escape;
mod mil;
mod model;
mod probe;
mod serve;
mod sys;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut fd = None;
    let mut probe = false;
    let mut escapes = false;
    let mut burst = None;
    let mut mil_faults = String::new();
    // What the supervisor passes to helpers that sandbox themselves; this helper is
    // sandboxed by the supervisor, so it only reports them (`--probe-sandbox`).
    let mut self_sandbox = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ipc-fd" => fd = it.next().and_then(|v| v.parse::<i32>().ok()),
            "--probe-sandbox" => probe = true,
            "--probe-escapes" => escapes = true,
            "--alloc-burst" => burst = it.next().and_then(|v| v.parse::<usize>().ok()),
            flag @ ("--sandbox-read" | "--sandbox-write") => match it.next() {
                Some(p) => self_sandbox.push(format!("{flag} {p}")),
                None => {
                    eprintln!("coreml-test-helper: {flag} needs a path");
                    std::process::exit(2);
                }
            },
            "--no-sandbox" => self_sandbox.push("--no-sandbox".into()),
            "--mil-faults" => match it.next() {
                Some(q) => mil_faults = q.clone(),
                None => {
                    eprintln!(
                        "coreml-test-helper: --mil-faults needs a query (fault=segv&after=3)"
                    );
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!("coreml-test-helper: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let Some(fd) = fd else {
        eprintln!("usage: coreml-test-helper [--probe-sandbox | --probe-escapes | --alloc-burst MIB] [--sandbox-read P]... [--sandbox-write P]... [--no-sandbox] [--mil-faults QUERY] --ipc-fd N");
        std::process::exit(2);
    };
    let stream = match sys::stream_from_fd(fd) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("coreml-test-helper: fd {fd}: {e}");
            std::process::exit(2);
        }
    };
    if probe {
        probe::run(stream, &self_sandbox);
        return;
    }
    if escapes {
        escape::run(stream);
        return;
    }
    if let Some(mib) = burst {
        burst::run(stream, mib);
        return;
    }
    serve::run(stream, mil_faults);
}
