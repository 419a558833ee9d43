//! BERT-family sentence encoders (all-MiniLM-L6-v2): our own encoder on the engine's
//! kernels ([`super::bert_encoder`]; candle-transformers' BERT for configs it does not
//! cover, and as the benchmark's reference row), then mean pooling over the attention mask
//! and L2 normalisation, as sentence-transformers does.
//!
//! ```no_run
//! use coreml_candle::CandleEngine;
//! use coreml_inference::{BlockingEngine, Deadline, ModelArtifact, PrepareOptions};
//!
//! let engine = BlockingEngine::new(CandleEngine::new()).unwrap();
//! let dir = std::path::Path::new("weights/all-minilm-l6-v2");
//! let model = engine
//!     .prepare(&ModelArtifact::from_path(dir.join("model.safetensors")).unwrap(), &PrepareOptions::default().with_architecture("bert"))
//!     .unwrap();
//! let tok = coreml_candle::text::TextTokenizer::from_file(dir.join("tokenizer.json"), 128).unwrap();
//! let out = engine.infer(&model, tok.encode_batch(&["hello"]).unwrap(), Deadline::after(std::time::Duration::from_secs(2))).unwrap();
//! assert_eq!(out.get("embedding").unwrap().shape(), &[1, 384]);
//! ```
//!
//! Inputs `input_ids`, `attention_mask`: `i64[B, T]`; output `embedding`:
//! `f32[B, hidden]`, unit length. Token types are all 0 (one segment).

use candle_core::{DType as CDType, Device, Tensor as CTensor, D};
use candle_transformers::models::bert::{BertModel, Config};
use coreml_inference::{DType, Dim, IoSchema, PrepareError, Tensor, TensorMap, TensorSpec};

use super::bert_encoder::BertEncoder;
use crate::registry::{invalid, CandleModel, LoadContext, Registration};
use crate::tensors::{from_candle, to_candle};

/// The registry entry.
pub fn registration() -> Registration {
    Registration {
        architecture: "bert",
        aliases: &["minilm", "all-minilm-l6-v2", "sentence-bert"],
        load,
        image_preprocessor: None,
    }
}

/// Which implementation runs the encoder.
enum Encoder {
    /// [`BertEncoder`]: fused QKV, vectorised GELU/softmax, weights laid out at load.
    Fast(BertEncoder),
    /// candle-transformers' `BertModel`.
    Reference(BertModel),
}

/// A loaded BERT sentence encoder.
pub struct BertEmbedder {
    model: Encoder,
    device: Device,
    hidden: usize,
    max_len: usize,
    max_batch: usize,
}

fn load(ctx: &LoadContext<'_>) -> Result<Box<dyn CandleModel>, PrepareError> {
    load_with(ctx, true)
}

/// Load with our encoder (`fast`) or candle-transformers' (the benchmark's reference row).
pub fn load_with(ctx: &LoadContext<'_>, fast: bool) -> Result<Box<dyn CandleModel>, PrepareError> {
    let config: Config = ctx.json("config.json")?;
    let vb = ctx.var_builder()?;
    let bad = |e: candle_core::Error| invalid(format!("bert weights: {e}"));
    let fast = if fast {
        BertEncoder::load(vb.clone(), &config).map_err(bad)?
    } else {
        None
    };
    let model = match fast {
        Some(enc) => Encoder::Fast(enc),
        None => Encoder::Reference(BertModel::load(vb, &config).map_err(bad)?),
    };
    Ok(Box::new(BertEmbedder {
        model,
        device: ctx.device.clone(),
        hidden: config.hidden_size,
        max_len: config.max_position_embeddings,
        max_batch: ctx.max_batch(),
    }))
}

/// Mean of `hidden` (`[B, T, H]`) over positions where `mask` (`[B, T]`) is
/// 1, then each row scaled to unit L2 norm (norm floored at 1e-12).
pub fn mean_pool_normalise(hidden: &CTensor, mask: &CTensor) -> candle_core::Result<CTensor> {
    let m = mask.to_dtype(CDType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    mean.broadcast_div(&norm)
}

impl CandleModel for BertEmbedder {
    fn schema(&self) -> IoSchema {
        let ids = |n: &str| {
            TensorSpec::new(
                n,
                DType::I64,
                vec![Dim::range(1, self.max_batch), Dim::range(1, self.max_len)],
            )
            .batch_capable()
        };
        IoSchema::new(
            vec![ids("input_ids"), ids("attention_mask")],
            vec![TensorSpec::new(
                "embedding",
                DType::F32,
                vec![Dim::range(1, self.max_batch), Dim::Fixed(self.hidden)],
            )
            .batch_capable()],
        )
    }

    fn forward(&self, inputs: &TensorMap) -> candle_core::Result<TensorMap> {
        let get = |n: &str| {
            inputs
                .get(n)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing {n}")))
        };
        let ids = to_candle(get("input_ids")?, &self.device)?;
        let mask = to_candle(get("attention_mask")?, &self.device)?;
        let hidden = match &self.model {
            Encoder::Fast(enc) => {
                let (b, t) = ids.dims2()?;
                if mask.dims() != [b, t] {
                    candle_core::bail!("attention_mask {:?}, input_ids {:?}", mask.dims(), [b, t]);
                }
                let ids_v = ids.to_dtype(CDType::I64)?.flatten_all()?.to_vec1::<i64>()?;
                let mask_v = mask
                    .to_dtype(CDType::I64)?
                    .flatten_all()?
                    .to_vec1::<i64>()?;
                let h = enc.forward(&ids_v, &mask_v, b, t)?;
                CTensor::from_vec(h, (b, t, enc.hidden()), &self.device)?
            }
            Encoder::Reference(m) => m.forward(&ids, &ids.zeros_like()?, Some(&mask))?,
        };
        let emb = mean_pool_normalise(&hidden, &mask)?;
        Ok(TensorMap::new().with("embedding", from_candle(&emb)?))
    }

    fn example_inputs(&self) -> candle_core::Result<TensorMap> {
        let t = self.max_len.min(128);
        let ids: Vec<i64> = (0..t)
            .map(|i| {
                if i == 0 {
                    101
                } else if i + 1 == t {
                    102
                } else {
                    1000 + i as i64
                }
            })
            .collect();
        let err = |e: coreml_inference::TensorError| candle_core::Error::Msg(e.to_string());
        Ok(TensorMap::new()
            .with("input_ids", Tensor::new(vec![1, t], ids).map_err(err)?)
            .with(
                "attention_mask",
                Tensor::new(vec![1, t], vec![1i64; t]).map_err(err)?,
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_masked_positions_and_normalises() {
        let dev = Device::Cpu;
        // B=1, T=3, H=2; the third position is padding with huge values.
        let h = CTensor::new(&[[[3f32, 0.], [1., 4.], [1000., 1000.]]], &dev).unwrap();
        let m = CTensor::new(&[[1i64, 1, 0]], &dev).unwrap();
        let out = mean_pool_normalise(&h, &m)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // mean = (2, 2) -> normalised (0.7071, 0.7071)
        assert!(
            (out[0][0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6,
            "{out:?}"
        );
        assert!(
            (out[0][1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6,
            "{out:?}"
        );
    }
}
