//! Seeded weights and inputs of the vision models: where the weights live, their pinned
//! sha256 (from `scripts/vision_weight_spec.json`), and the seeded input tensor that
//! `scripts/gen_parity_vision.py` and the benchmark also use.
//!
//! ```no_run
//! use coreml_candle::models::vision_assets::{seeded_input, weights_path, VisionModel};
//! let path = weights_path(VisionModel::ResNet50)?; // checks the sha256 pin
//! let x = seeded_input(20251125, &[1, 3, 224, 224])?;
//! assert_eq!(x.dims(), &[1, 3, 224, 224]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The weight spec written by `scripts/gen_parity_vision.py --write-spec`.
const SPEC: &str = include_str!("../../../scripts/vision_weight_spec.json");

/// Seed of the input tensor of the parity fixtures and the benchmark.
pub const INPUT_SEED: u64 = 20251125;

/// The vision models with seeded weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisionModel {
    /// torchvision `resnet50`.
    ResNet50,
    /// timm `fastvit_t8` (non-reparameterised names).
    FastVitT8,
}

impl VisionModel {
    /// The key in the spec and the fixture name.
    pub fn key(self) -> &'static str {
        match self {
            Self::ResNet50 => "resnet50",
            Self::FastVitT8 => "fastvit_t8",
        }
    }

    /// `(file name, sha256)` pinned in the spec.
    pub fn pinned_file(self) -> Result<(String, String)> {
        let spec: serde_json::Value =
            serde_json::from_str(SPEC).map_err(candle_core::Error::wrap)?;
        let m = &spec["models"][self.key()];
        match (m["file"].as_str(), m["sha256"].as_str()) {
            (Some(f), Some(h)) => Ok((f.to_string(), h.to_string())),
            _ => bail!("vision_weight_spec.json: no file/sha256 for {}", self.key()),
        }
    }
}

/// `${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}/weights`.
pub fn weights_dir() -> PathBuf {
    let root = std::env::var_os("COREML_BRIDGE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache").join("coreml-bridge")
        });
    root.join("weights")
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Path of the model's seeded weights, after checking their sha256 against the pin.
pub fn weights_path(model: VisionModel) -> Result<PathBuf> {
    let (file, want) = model.pinned_file()?;
    let path = weights_dir().join(file);
    let got = sha256_file(&path).map_err(|e| {
        candle_core::Error::Msg(format!(
            "{}: {e}; generate it with `python3 scripts/gen_vision_weights.py` \
             (needs numpy and safetensors)",
            path.display()
        ))
    })?;
    if got != want {
        bail!("{}: sha256 {got}, pinned {want}", path.display());
    }
    Ok(path)
}

/// Load a safetensors file into a `VarBuilder` (read into memory, no mmap).
pub fn load_var_builder(path: &Path, dev: &Device) -> Result<VarBuilder<'static>> {
    let tensors = candle_core::safetensors::load(path, dev)?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, dev))
}

/// The seeded input: splitmix64 output `z` mapped to `((z >> 40) / 2^24) · 4 − 2`, exact
/// in f32 and identical to `seeded_input()` in `scripts/gen_parity_vision.py`.
pub fn seeded_input(seed: u64, shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut state = seed;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / 16_777_216.0 * 4.0 - 2.0
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}
