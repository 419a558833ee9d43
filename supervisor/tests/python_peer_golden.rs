//! docs/protocol.md against the golden vectors, through the independent peer's codec:
//! `tests/peer/check_golden.py` decodes every golden frame, re-encodes it, and encodes
//! its payload with each map in the order of its table on the page; the peer's own
//! doctests (codec, tensor-ref rules) pass. A table out of order or missing a field
//! fails here.
mod common;
mod python;

use std::process::Command;

#[test]
fn python_peer_golden() {
    let (exe, _) = python::python();
    let peer_dir = python::peer_script().parent().unwrap().to_path_buf();
    let run = |args: &[&str]| {
        let out = Command::new(&exe)
            .arg("-B")
            .args(args)
            .current_dir(&peer_dir)
            .output()
            .expect("run python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "python3 {args:?} failed:\n{text}");
        text
    };
    let text = run(&["check_golden.py"]);
    assert!(text.contains("golden vectors: decoded"), "{text}");
    run(&["-m", "doctest", "msgpack_codec.py", "peer_tensors.py"]);
}
