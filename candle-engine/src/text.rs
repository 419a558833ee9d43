//! Tokenisation from a `tokenizer.json` into model inputs.
//!
//! ```no_run
//! use coreml_candle::text::TextTokenizer;
//!
//! let tok = TextTokenizer::from_file("weights/all-minilm-l6-v2/tokenizer.json", 128).unwrap();
//! let inputs = tok.encode_batch(&["A cat sits on the mat.", "Stocks fell."]).unwrap();
//! let ids = inputs.get("input_ids").unwrap();
//! assert_eq!(ids.shape()[0], 2); // padded to the longer sentence
//! assert!(inputs.contains("attention_mask"));
//! ```
//!
//! Uses the `tokenizers` crate without its default features (no Oniguruma C
//! library, no network): `fancy-regex` handles the pre-tokeniser patterns.

use std::path::Path;

use coreml_inference::{Tensor, TensorMap};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// A tokenizer that pads to the longest sequence of a batch and truncates to
/// a maximum length.
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
}

/// Tokenizer errors (file, format or encoding).
#[derive(Debug, thiserror::Error)]
#[error("tokenizer: {0}")]
pub struct TokenizerError(String);

impl TextTokenizer {
    /// Loads `tokenizer.json`; sequences longer than `max_len` tokens
    /// (special tokens included) are truncated.
    pub fn from_file(path: impl AsRef<Path>, max_len: usize) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| TokenizerError(format!("{}: {e}", path.display())))?;
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: "[PAD]".into(),
        }));
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| TokenizerError(e.to_string()))?;
        Ok(Self { inner, max_len })
    }

    /// Maximum sequence length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// `input_ids` and `attention_mask` as `i64[B, T]`, `T` the longest
    /// sequence of the batch.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<TensorMap, TokenizerError> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| TokenizerError(e.to_string()))?;
        let t = enc.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(texts.len() * t);
        let mut mask = Vec::with_capacity(texts.len() * t);
        for e in &enc {
            ids.extend(e.get_ids().iter().map(|&i| i64::from(i)));
            mask.extend(e.get_attention_mask().iter().map(|&m| i64::from(m)));
        }
        let shape = vec![texts.len(), t];
        let err = |e: coreml_inference::TensorError| TokenizerError(e.to_string());
        Ok(TensorMap::new()
            .with("input_ids", Tensor::new(shape.clone(), ids).map_err(err)?)
            .with("attention_mask", Tensor::new(shape, mask).map_err(err)?))
    }
}
