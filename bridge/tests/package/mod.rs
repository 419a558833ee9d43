//! A real ML Program package for the router and cache tests: a copy of the
//! MIL-builder fixture `tests/fixtures/mlpackage/small_cnn_fp32.mlpackage`
//! (`image` [1, 3, 8, 8] → `logits` [1, 5]) with its golden input and output. The
//! test helper runs `.mlpackage` sources with the MIL executor
//! (docs/diagnostics.md); the in-process `MilEngine` is the fallback.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use std::sync::Arc;

use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
use coreml_bridge::health::HealthBus;
use coreml_bridge::inference::{Tensor, TensorMap};
use coreml_bridge::telemetry::Telemetry;

pub const MODEL: &str = "small-cnn";

fn fixture() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/mlpackage/small_cnn_fp32.mlpackage"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Copies the fixture into `dir` (the sandboxed helper reads models only from
/// the directories it is given); returns the package path.
pub fn copy_into(dir: &Path) -> PathBuf {
    let p = dir.join("small_cnn.mlpackage");
    copy_tree(&fixture(), &p);
    p
}

pub struct Golden {
    pub image: Vec<f32>,
    pub logits: Vec<f32>,
    pub atol: f32,
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

pub fn golden() -> Golden {
    let text = std::fs::read_to_string(fixture().with_extension("golden.json")).unwrap();
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    Golden {
        image: floats(&g["inputs"]["image"]),
        logits: floats(&g["outputs"]["logits"]),
        atol: g["atol"].as_f64().unwrap() as f32,
    }
}

impl Golden {
    pub fn inputs(&self) -> TensorMap {
        TensorMap::new().with("image", Tensor::new(vec![1, 3, 8, 8], self.image.clone()).unwrap())
    }

    /// Panics unless `out` holds the golden logits.
    pub fn check(&self, out: &TensorMap, what: &str) {
        let got = out.f32("logits").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got.len(), self.logits.len(), "{what}");
        let d = got.iter().zip(&self.logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= self.atol, "{what}: L∞ {d} > {}", self.atol);
    }
}

/// The Core ML engine over the test helper with `--mil-faults faults`, the
/// package copied under `dir/models` (which the sandbox lets it read) and the
/// cache in `dir/cache`; returns the engine and the package path.
pub async fn engine_with_faults(
    dir: &Path,
    faults: &str,
    telemetry: Arc<Telemetry>,
    health: Arc<HealthBus>,
) -> (Arc<CoreMlEngine>, PathBuf) {
    let models = dir.join("models");
    let pkg = copy_into(&models);
    let mut cfg = crate::common::helper::supervisor_config(None);
    cfg.helper = cfg.helper.arg("--mil-faults").arg(faults);
    let opts = CoreMlOptions { cache_dir: Some(dir.join("cache")), model_dirs: vec![models], ..Default::default() };
    let engine = CoreMlEngine::start(cfg, opts, telemetry, health).await.expect("the test helper starts");
    (Arc::new(engine), pkg)
}
