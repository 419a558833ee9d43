//! A real ML Program package for the crash-isolation suite: the MIL-builder fixture
//! `tests/fixtures/mlpackage/small_cnn_fp32.mlpackage` (conv, batch norm, pooling,
//! linear) with its golden input and output, served by the Rust test helper, which
//! runs `.mlpackage` sources with the MIL executor (docs/diagnostics.md).
#![allow(dead_code)]

use std::path::PathBuf;

use coreml_supervisor::SupervisorConfig;

/// The fixture package (absolute path).
pub fn path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/mlpackage/small_cnn_fp32.mlpackage"
    ))
    .canonicalize()
    .expect("fixture package")
}

/// Its golden input `image` [1, 3, 8, 8] and output `logits` [1, 5] (NumPy, from
/// scripts/mil_fixtures.py), and the tolerance.
pub struct Golden {
    pub image: Vec<u8>,
    pub logits: Vec<f32>,
    pub atol: f32,
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

pub fn golden() -> Golden {
    let text = std::fs::read_to_string(path().with_extension("golden.json")).expect("golden");
    let g: serde_json::Value = serde_json::from_str(&text).expect("golden json");
    Golden {
        image: floats(&g["inputs"]["image"])
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        logits: floats(&g["outputs"]["logits"]),
        atol: g["atol"].as_f64().expect("atol") as f32,
    }
}

/// A `mil:` URI of the fixture with a fault query (docs/diagnostics.md).
pub fn uri(faults: &str) -> String {
    format!("mil:{}?{faults}", path().display())
}

/// `cfg` with the fixture directory readable by the sandboxed helper.
pub fn readable(cfg: SupervisorConfig) -> SupervisorConfig {
    let mut cfg = cfg;
    cfg.sandbox = cfg.sandbox.read_only(path().parent().expect("fixture dir"));
    cfg
}

/// The output bytes as f32, checked against the golden logits.
pub fn assert_golden(bytes: &[u8], g: &Golden, what: &str) {
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got.len(), g.logits.len(), "{what}: output length");
    let d = got
        .iter()
        .zip(&g.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        d <= g.atol,
        "{what}: L∞ {d} > {} ({got:?} vs {:?})",
        g.atol,
        g.logits
    );
}
