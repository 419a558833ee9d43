//! DistilBERT encoder in Hugging Face's weight names
//! (`embeddings.*`, `transformer.layer.N.attention.{q,k,v,out}_lin`,
//! `sa_layer_norm`, `ffn.lin1/lin2`, `output_layer_norm`).
//!
//! ```
//! use coreml_candle::models::distilbert::DistilBertConfig;
//! let c: DistilBertConfig = serde_json::from_str(r#"{"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64}"#).unwrap();
//! assert_eq!(c.activation, "gelu");
//! assert_eq!(c.vocab_size, 30522);
//! ```
//!
//! candle-transformers has a DistilBERT, but its `gelu` is the tanh
//! approximation where Hugging Face uses the exact erf form; the difference
//! (~1e-3) breaks 1e-4 parity, so this model runs on the engine's own encoder
//! ([`super::bert_encoder`]: exact erf GELU, fused QKV). Padded keys are left out of
//! the softmax, which equals Hugging Face's `f32::MIN` fill without its overflow risk.
//!
//! Inputs `input_ids`, `attention_mask`: `i64[B, T]`; output
//! `last_hidden_state`: `f32[B, T, dim]`.

use candle_core::{DType as CDType, Device, Tensor as CTensor};
use candle_nn::VarBuilder;
use coreml_inference::{DType, Dim, IoSchema, PrepareError, Tensor, TensorMap, TensorSpec};
use serde::Deserialize;

use super::bert_encoder::BertEncoder;
use crate::registry::{invalid, CandleModel, LoadContext, Registration};
use crate::tensors::{from_candle, to_candle};

/// The registry entry.
pub fn registration() -> Registration {
    Registration {
        architecture: "distilbert",
        aliases: &["distilbert-base-uncased"],
        load,
        image_preprocessor: None,
    }
}

fn d_vocab() -> usize {
    30522
}
fn d_pos() -> usize {
    512
}
fn d_act() -> String {
    "gelu".into()
}

/// The fields of Hugging Face's `DistilBertConfig` this model uses.
#[derive(Debug, Clone, Deserialize)]
pub struct DistilBertConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub hidden_dim: usize,
    #[serde(default = "d_act")]
    pub activation: String,
    #[serde(default = "d_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
}

/// A loaded DistilBERT, on the engine's transformer kernels ([`BertEncoder`]).
pub struct DistilBert {
    encoder: BertEncoder,
    config: DistilBertConfig,
    device: Device,
    max_batch: usize,
}

impl DistilBert {
    /// Builds the model from weights in Hugging Face naming.
    pub fn load(
        vb: VarBuilder<'_>,
        config: &DistilBertConfig,
        device: &Device,
        max_batch: usize,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            encoder: BertEncoder::load_distilbert(vb, config)?,
            config: config.clone(),
            device: device.clone(),
            max_batch,
        })
    }

    /// Hidden states `[B, T, dim]` of ids and mask (`[B, T]`, any integer dtype).
    pub fn hidden_states(&self, ids: &CTensor, mask: &CTensor) -> candle_core::Result<CTensor> {
        let (b, t) = ids.dims2()?;
        if mask.dims() != [b, t] {
            candle_core::bail!("attention_mask {:?}, input_ids {:?}", mask.dims(), [b, t]);
        }
        let ids = ids.to_dtype(CDType::I64)?.flatten_all()?.to_vec1::<i64>()?;
        let mask = mask
            .to_dtype(CDType::I64)?
            .flatten_all()?
            .to_vec1::<i64>()?;
        let h = self.encoder.forward(&ids, &mask, b, t)?;
        CTensor::from_vec(h, (b, t, self.config.dim), &self.device)
    }
}

fn load(ctx: &LoadContext<'_>) -> Result<Box<dyn CandleModel>, PrepareError> {
    let config: DistilBertConfig = ctx.json("config.json")?;
    if config.n_heads == 0 || !config.dim.is_multiple_of(config.n_heads) {
        return Err(invalid(format!(
            "dim {} not divisible by n_heads {}",
            config.dim, config.n_heads
        )));
    }
    let vb = ctx.var_builder()?;
    let m = DistilBert::load(vb, &config, ctx.device, ctx.max_batch())
        .map_err(|e| invalid(format!("distilbert weights: {e}")))?;
    Ok(Box::new(m))
}

impl CandleModel for DistilBert {
    fn schema(&self) -> IoSchema {
        let (bmax, tmax) = (self.max_batch, self.config.max_position_embeddings);
        let ids = |n: &str| {
            TensorSpec::new(
                n,
                DType::I64,
                vec![Dim::range(1, bmax), Dim::range(1, tmax)],
            )
            .batch_capable()
        };
        IoSchema::new(
            vec![ids("input_ids"), ids("attention_mask")],
            vec![TensorSpec::new(
                "last_hidden_state",
                DType::F32,
                vec![
                    Dim::range(1, bmax),
                    Dim::range(1, tmax),
                    Dim::Fixed(self.config.dim),
                ],
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
        let h = self.hidden_states(&ids, &mask)?;
        Ok(TensorMap::new().with("last_hidden_state", from_candle(&h)?))
    }

    fn example_inputs(&self) -> candle_core::Result<TensorMap> {
        let t = self.config.max_position_embeddings.min(128);
        let vocab = self.config.vocab_size as i64;
        let ids: Vec<i64> = (0..t as i64).map(|i| (101 + 37 * i) % vocab).collect();
        let err = |e: coreml_inference::TensorError| candle_core::Error::Msg(e.to_string());
        Ok(TensorMap::new()
            .with("input_ids", Tensor::new(vec![1, t], ids).map_err(err)?)
            .with(
                "attention_mask",
                Tensor::new(vec![1, t], vec![1i64; t]).map_err(err)?,
            ))
    }
}
