//! A BERT encoder of our own on the engine's kernels ([`crate::ops::transformer`]): the
//! query, key and value projections fused into one gemm with the attention scale folded
//! into the query weights, every weight laid out for the gemm at load, GELU in the first
//! FFN gemm's epilogue, bias and residual in the second's starting value, softmax with
//! the vectorised `exp`, and a padding mask that drops keys instead of adding `-inf`.
//!
//! ```no_run
//! use candle_core::Device;
//! use candle_nn::VarBuilder;
//! use coreml_candle::models::bert_encoder::BertEncoder;
//! let dir = std::path::Path::new("weights/all-minilm-l6-v2");
//! let config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
//! let bytes = std::fs::read(dir.join("model.safetensors"))?;
//! let vb = VarBuilder::from_buffered_safetensors(bytes, candle_core::DType::F32, &Device::Cpu)?;
//! let enc = BertEncoder::load(vb, &config)?.expect("supported config");
//! let hidden = enc.forward(&[101, 7592, 102], &[1, 1, 1], 1, 3)?;
//! assert_eq!(hidden.len(), 3 * 384);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Hugging Face's `BertModel` with `token_type_ids` all 0 and absolute positions; configs
//! with the tanh GELU return `None` from [`BertEncoder::load`] (the caller keeps
//! candle-transformers' model for those). DistilBERT has the same layers under other
//! names and no token types ([`BertEncoder::load_distilbert`]).

use candle_core::{bail, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::ops::activation::Activation;
use crate::ops::transformer::{attention, layer_norm_rows, Linear};

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: Linear,
    out: Linear,
    attn_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: Norm,
}

/// BERT's embeddings and encoder layers, weights as plain f32 arrays.
pub struct BertEncoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    /// `[vocab, hidden]`.
    word: Vec<f32>,
    /// `[max_positions, hidden]`, token type 0 already added.
    position: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
}

fn vec1(t: Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

fn linear(vb: &VarBuilder, d_in: usize, d_out: usize, act: Activation) -> Result<Linear> {
    let w = vec1(vb.get((d_out, d_in), "weight")?)?;
    let b = vec1(vb.get(d_out, "bias")?)?;
    Linear::new(&w, b, d_in, d_out, act)
}

fn norm(vb: &VarBuilder, width: usize) -> Result<Norm> {
    Ok(Norm {
        gamma: vec1(vb.get(width, "weight")?)?,
        beta: vec1(vb.get(width, "bias")?)?,
    })
}

impl BertEncoder {
    /// Load from Hugging Face's weight names (with or without the `bert.` prefix);
    /// `Ok(None)` if the config uses something this encoder does not implement.
    pub fn load(vb: VarBuilder, c: &Config) -> Result<Option<Self>> {
        let act = match c.hidden_act {
            HiddenAct::Gelu => Activation::Gelu,
            HiddenAct::Relu => Activation::Relu,
            HiddenAct::GeluApproximate => return Ok(None),
        };
        let (h, heads) = (c.hidden_size, c.num_attention_heads);
        if heads == 0 || h % heads != 0 {
            bail!("bert: hidden size {h} not divisible by {heads} heads");
        }
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let e = vb.pp("embeddings");
        let word = vec1(e.get((c.vocab_size, h), "word_embeddings.weight")?)?;
        let mut position =
            vec1(e.get((c.max_position_embeddings, h), "position_embeddings.weight")?)?;
        let types = vec1(e.get((c.type_vocab_size, h), "token_type_embeddings.weight")?)?;
        for row in position.chunks_exact_mut(h) {
            row.iter_mut().zip(&types[..h]).for_each(|(p, t)| *p += t);
        }
        let emb_norm = norm(&e.pp("LayerNorm"), h)?;
        let scale = 1.0 / ((h / heads) as f32).sqrt();
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let s = a.pp("self");
            let id = Activation::Identity;
            let mut qkv = Linear::concat(&[
                linear(&s.pp("query"), h, h, id)?,
                linear(&s.pp("key"), h, h, id)?,
                linear(&s.pp("value"), h, h, id)?,
            ])?;
            qkv.scale_outputs(0..h, scale);
            layers.push(Layer {
                qkv,
                out: linear(&a.pp("output.dense"), h, h, id)?,
                attn_norm: norm(&a.pp("output.LayerNorm"), h)?,
                ffn_in: linear(&l.pp("intermediate.dense"), h, c.intermediate_size, act)?,
                ffn_out: linear(&l.pp("output.dense"), c.intermediate_size, h, id)?,
                out_norm: norm(&l.pp("output.LayerNorm"), h)?,
            });
        }
        Ok(Some(Self {
            hidden: h,
            heads,
            eps: c.layer_norm_eps as f32,
            word,
            position,
            emb_norm,
            layers,
        }))
    }

    /// Load DistilBERT (Hugging Face names: `embeddings.*`, `transformer.layer.N.*`):
    /// the same post-norm layers without token types.
    pub fn load_distilbert(
        vb: VarBuilder,
        c: &super::distilbert::DistilBertConfig,
    ) -> Result<Self> {
        let act = match c.activation.as_str() {
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            other => bail!("unsupported activation {other}"),
        };
        if c.sinusoidal_pos_embds {
            bail!("sinusoidal position embeddings are not supported");
        }
        let (h, heads) = (c.dim, c.n_heads);
        if heads == 0 || h % heads != 0 {
            bail!("distilbert: dim {h} not divisible by {heads} heads");
        }
        let e = vb.pp("embeddings");
        let word = vec1(e.get((c.vocab_size, h), "word_embeddings.weight")?)?;
        let position = vec1(e.get((c.max_position_embeddings, h), "position_embeddings.weight")?)?;
        let emb_norm = norm(&e.pp("LayerNorm"), h)?;
        let scale = 1.0 / ((h / heads) as f32).sqrt();
        let id = Activation::Identity;
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let l = vb.pp(format!("transformer.layer.{i}"));
            let a = l.pp("attention");
            let mut qkv = Linear::concat(&[
                linear(&a.pp("q_lin"), h, h, id)?,
                linear(&a.pp("k_lin"), h, h, id)?,
                linear(&a.pp("v_lin"), h, h, id)?,
            ])?;
            qkv.scale_outputs(0..h, scale);
            layers.push(Layer {
                qkv,
                out: linear(&a.pp("out_lin"), h, h, id)?,
                attn_norm: norm(&l.pp("sa_layer_norm"), h)?,
                ffn_in: linear(&l.pp("ffn.lin1"), h, c.hidden_dim, act)?,
                ffn_out: linear(&l.pp("ffn.lin2"), c.hidden_dim, h, id)?,
                out_norm: norm(&l.pp("output_layer_norm"), h)?,
            });
        }
        Ok(Self {
            hidden: h,
            heads,
            eps: 1e-12,
            word,
            position,
            emb_norm,
            layers,
        })
    }

    /// Hidden width.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Last hidden state `[batch·seq, hidden]` for `ids` and `mask` (`[batch·seq]` each).
    pub fn forward(&self, ids: &[i64], mask: &[i64], batch: usize, seq: usize) -> Result<Vec<f32>> {
        let h = self.hidden;
        let rows = batch * seq;
        if ids.len() != rows || mask.len() != rows {
            bail!(
                "bert: ids {} / mask {} for {batch}×{seq}",
                ids.len(),
                mask.len()
            );
        }
        if seq * h > self.position.len() {
            bail!("bert: {seq} tokens, at most {}", self.position.len() / h);
        }
        let vocab = self.word.len() / h;
        let mut x = Vec::with_capacity(rows * h);
        for (i, &id) in ids.iter().enumerate() {
            let Some(tok) = usize::try_from(id).ok().filter(|&t| t < vocab) else {
                bail!("bert: token id {id} outside the vocabulary of {vocab}");
            };
            let pos = &self.position[(i % seq) * h..(i % seq + 1) * h];
            x.extend(
                self.word[tok * h..(tok + 1) * h]
                    .iter()
                    .zip(pos)
                    .map(|(w, p)| w + p),
            );
        }
        let ln = |x: &mut [f32], n: &Norm| layer_norm_rows(x, h, &n.gamma, &n.beta, self.eps);
        ln(&mut x, &self.emb_norm);
        let head_dim = h / self.heads;
        for l in &self.layers {
            let qkv = l.qkv.forward(&x, rows);
            let ctx = attention(&qkv, batch, seq, self.heads, head_dim, mask);
            drop(qkv);
            l.out.forward_add(&ctx, rows, &mut x);
            ln(&mut x, &l.attn_norm);
            let inner = l.ffn_in.forward(&x, rows);
            l.ffn_out.forward_add(&inner, rows, &mut x);
            ln(&mut x, &l.out_norm);
        }
        Ok(x)
    }
}
