//! One forward of one vision model, for instruction-count profiles (callgrind).
//!
//! ```text
//! cargo build --release -p coreml-candle --example forward_once
//! valgrind --tool=callgrind target/release/examples/forward_once resnet50 1
//! ```
//!
//! Arguments: model (`resnet50`, `fastvit_t8`, `efficientnet_lite0`, or `minilm`: our BERT
//! encoder on 128 tokens) and the number of forwards (default 1). Weights come from
//! `$COREML_BRIDGE_CACHE/weights` (`make assets`).

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::Config;
use coreml_candle::models::bert_encoder::BertEncoder;
use coreml_candle::models::efficientnet::EfficientNetLite0;
use coreml_candle::models::fastvit::FastVit;
use coreml_candle::models::resnet::ResNet50;
use coreml_candle::models::vision_assets::{
    load_var_builder, seeded_input, weights_dir, weights_path, VisionModel,
};
use coreml_candle::ops::conv_layer::Kernels;
use coreml_candle::ops::runtime::init_cpu_runtime;

/// One model's forward pass.
type Forward = Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor>>;

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map(String::as_str).unwrap_or("resnet50");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    init_cpu_runtime(None);
    let dev = Device::Cpu;
    let x = seeded_input(1, &[1, 3, 224, 224])?;
    let forward: Forward = match model {
        "resnet50" => {
            let m = ResNet50::from_safetensors(
                &weights_path(VisionModel::ResNet50)?,
                Kernels::FAST,
                &dev,
            )?;
            Box::new(move |x| m.forward(x))
        }
        "fastvit_t8" => {
            let m = FastVit::t8_from_safetensors(
                &weights_path(VisionModel::FastVitT8)?,
                Kernels::FAST,
                &dev,
            )?;
            Box::new(move |x| m.forward(x))
        }
        "efficientnet_lite0" => {
            let path = weights_dir().join("efficientnet-lite0/model.safetensors");
            let vb = load_var_builder(&path, &dev)?;
            let m = EfficientNetLite0::load(&vb, &dev, 1)?;
            Box::new(move |x| m.logits(x))
        }
        "minilm" => {
            let dir = weights_dir().join("all-minilm-l6-v2");
            let config = std::fs::read_to_string(dir.join("config.json"))?;
            let config: Config = serde_json::from_str(&config).map_err(candle_core::Error::wrap)?;
            let vb = load_var_builder(&dir.join("model.safetensors"), &dev)?;
            let m = BertEncoder::load(vb, &config)?
                .ok_or_else(|| candle_core::Error::Msg("unsupported BERT config".into()))?;
            let seq = 128;
            let ids: Vec<i64> = (0..seq as i64).map(|i| 1000 + (i * 37) % 20000).collect();
            let mask = vec![1i64; seq];
            Box::new(move |_| {
                let h = m.forward(&ids, &mask, 1, seq)?;
                Tensor::from_vec(h, (seq, m.hidden()), &Device::Cpu)
            })
        }
        other => candle_core::bail!("unknown model {other}"),
    };
    let t = std::time::Instant::now();
    let mut sum = 0f32;
    for _ in 0..runs {
        sum += forward(&x)?.sum_all()?.to_scalar::<f32>()?;
    }
    println!(
        "{model}: {runs} forwards in {:?}, logit sum {sum}",
        t.elapsed()
    );
    Ok(())
}
