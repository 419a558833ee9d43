//! Benchmark cases for part A's models (MiniLM, EfficientNet-Lite0), built through the
//! engine's registry exactly as `CandleEngine::prepare` would, then run with
//! `CandleModel::forward` on the same inputs as scripts/bench_pytorch.py.
//!
//! ```text
//! load minilm:fast               -> all-minilm-l6-v2 as "bert", ids [1, 128]
//! load minilm:candle             -> the same on candle-transformers' BERT
//! load efficientnet_lite0:fast   -> pixel_values = the seeded 224×224 input
//! ```

use candle_core::{Device, Result};
use coreml_candle::models::vision_assets::{seeded_input, weights_dir, INPUT_SEED};
use coreml_candle::registry::{LoadContext, Registry};
use coreml_inference::{ModelArtifact, ModelFormat, PrepareOptions, Tensor, TensorMap};

/// Sequence length of the MiniLM case.
pub const SEQ: usize = 128;

/// `[CLS] t_1 … t_126 [SEP]` with `t_i = 1000 + (i·7919 mod 29000)`; same formula in
/// scripts/bench_pytorch.py.
pub fn minilm_ids() -> Vec<i64> {
    let mut ids = vec![101i64];
    ids.extend((1..SEQ - 1).map(|i| 1000 + ((i * 7919) % 29000) as i64));
    ids.push(102);
    ids
}

fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Build a case for a model outside part B's scope.
pub fn build(model: &str, variant: &str) -> Result<Box<dyn Fn() -> Result<()>>> {
    let (arch, file, inputs) = match model {
        "minilm" => {
            let ids = Tensor::new(vec![1, SEQ], minilm_ids()).map_err(err)?;
            let mask = Tensor::new(vec![1, SEQ], vec![1i64; SEQ]).map_err(err)?;
            let inputs = TensorMap::new()
                .with("input_ids", ids)
                .with("attention_mask", mask);
            ("bert", "all-minilm-l6-v2/model.safetensors", inputs)
        }
        "efficientnet_lite0" => {
            let x = seeded_input(INPUT_SEED, &[1, 3, 224, 224])?;
            let px = Tensor::new(vec![1, 3, 224, 224], x.flatten_all()?.to_vec1::<f32>()?)
                .map_err(err)?;
            let inputs = TensorMap::new().with("pixel_values", px);
            (
                "efficientnet-lite0",
                "efficientnet-lite0/model.safetensors",
                inputs,
            )
        }
        _ => candle_core::bail!("{model}: unknown benchmark model"),
    };
    let registry = Registry::builtin();
    let reg = registry
        .find(arch)
        .ok_or_else(|| err(format!("{arch} not registered")))?;
    let artifact = ModelArtifact::new(ModelFormat::Safetensors, weights_dir().join(file));
    let options = PrepareOptions::default()
        .with_architecture(arch)
        .with_max_batch(1);
    let ctx = LoadContext {
        artifact: &artifact,
        options: &options,
        device: &Device::Cpu,
    };
    let m = match (model, variant) {
        // candle-transformers' BERT: the reference row.
        ("minilm", "candle") => coreml_candle::models::bert::load_with(&ctx, false),
        (_, "fast") => (reg.load)(&ctx),
        _ => candle_core::bail!("{model}: unknown variant {variant}"),
    }
    .map_err(err)?;
    Ok(Box::new(move || m.forward(&inputs).map(|_| ())))
}
