//! `coreml-test-helper`: a helper that speaks docs/protocol.md, hosts the diagnostic
//! models of docs/diagnostics.md and injects every fault listed there. Tests only.
//!
//! ```text
//! coreml-test-helper --ipc-fd 3                       # serve the protocol on fd 3
//! COREML_DIAG_FAULT=hang-handshake coreml-test-helper --ipc-fd 3
//! coreml-test-helper --probe-sandbox --ipc-fd 3       # write a sandbox report to fd 3, exit
//! ```

mod model;
mod probe;
mod serve;
mod sys;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut fd = None;
    let mut probe = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ipc-fd" => fd = it.next().and_then(|v| v.parse::<i32>().ok()),
            "--probe-sandbox" => probe = true,
            other => {
                eprintln!("coreml-test-helper: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let Some(fd) = fd else {
        eprintln!("usage: coreml-test-helper [--probe-sandbox] --ipc-fd N");
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
        probe::run(stream);
        return;
    }
    serve::run(stream);
}
