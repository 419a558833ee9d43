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
//! [`TextTokenizer::encode_batch_counted`] also says which texts were cut;
//! [`limit`] finds the model's own token limit.
//!
//! Uses the `tokenizers` crate without its default features (no Oniguruma C
//! library, no network): `fancy-regex` handles the pre-tokeniser patterns.

use std::path::{Path, PathBuf};

use coreml_inference::{Tensor, TensorMap};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub mod limit;

/// A tokenizer that pads to the longest sequence of a batch and truncates to
/// a maximum length.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The same without truncation or padding: counts the tokens of cut texts.
    counter: Tokenizer,
    max_len: usize,
}

/// Model inputs and, per text, how many tokens it has before truncation.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub inputs: TensorMap,
    /// Tokens of each text, special tokens included, before truncation.
    pub tokens: Vec<usize>,
    /// The limit the inputs were truncated to.
    pub max_len: usize,
}

impl Encoded {
    /// `(index, tokens)` of every text longer than the limit.
    pub fn truncated(&self) -> Vec<(usize, usize)> {
        self.tokens
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > self.max_len)
            .map(|(i, &n)| (i, n))
            .collect()
    }
}

/// Tokenizer errors.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.json` could not be read or is not a tokenizer.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// Settings or texts the tokenizer refused.
    #[error("tokenizer: {0}")]
    Encode(String),
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; sequences longer than `max_len` tokens
    /// (special tokens included) are truncated.
    pub fn from_file(path: impl AsRef<Path>, max_len: usize) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let mut inner = Tokenizer::from_file(path).map_err(|e| TokenizerError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut counter = inner.clone();
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        // Keep the file's pad token when it has one; else BERT's or RoBERTa's.
        let (pad_id, pad_token) = match inner.get_padding() {
            Some(p) => (p.pad_id, p.pad_token.clone()),
            None => ["[PAD]", "<pad>"]
                .iter()
                .find_map(|t| inner.token_to_id(t).map(|id| (id, (*t).to_owned())))
                .unwrap_or((0, "[PAD]".to_owned())),
        };
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(Self {
            inner,
            counter,
            max_len,
        })
    }

    /// Maximum sequence length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// `input_ids` and `attention_mask` as `i64[B, T]`, `T` the longest
    /// sequence of the batch.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<TensorMap, TokenizerError> {
        Ok(self.encode_batch_counted(texts)?.inputs)
    }

    /// [`Self::encode_batch`], and how many tokens each text has before
    /// truncation (texts that fit are not tokenised twice).
    pub fn encode_batch_counted(&self, texts: &[&str]) -> Result<Encoded, TokenizerError> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut tokens = Vec::with_capacity(texts.len());
        for (text, e) in texts.iter().zip(&enc) {
            tokens.push(if e.get_overflowing().is_empty() {
                e.get_attention_mask().iter().filter(|&&m| m != 0).count()
            } else {
                self.counter
                    .encode(*text, true)
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?
                    .len()
            });
        }
        let t = enc.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(texts.len() * t);
        let mut mask = Vec::with_capacity(texts.len() * t);
        for e in &enc {
            ids.extend(e.get_ids().iter().map(|&i| i64::from(i)));
            mask.extend(e.get_attention_mask().iter().map(|&m| i64::from(m)));
        }
        let shape = vec![texts.len(), t];
        let err = |e: coreml_inference::TensorError| TokenizerError::Encode(e.to_string());
        let inputs = TensorMap::new()
            .with("input_ids", Tensor::new(shape.clone(), ids).map_err(err)?)
            .with("attention_mask", Tensor::new(shape, mask).map_err(err)?);
        Ok(Encoded {
            inputs,
            tokens,
            max_len: self.max_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal BERT-style tokenizer.json: lower-casing, WordPiece, [CLS] … [SEP].
    const TOKENIZER: &str = r###"{
      "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
      "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                     "strip_accents": null, "lowercase": true},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                           "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
      "decoder": null,
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100,
                "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "world": 5, "##s": 6}}
    }"###;

    fn tokenizer(max_len: usize) -> TextTokenizer {
        let dir = std::env::temp_dir().join(format!(
            "coreml-candle-tok-{}-{max_len}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, TOKENIZER).unwrap();
        TextTokenizer::from_file(&path, max_len).unwrap()
    }

    #[test]
    fn pads_to_the_longest_and_masks_padding() {
        let out = tokenizer(16)
            .encode_batch(&["Hello Worlds", "hello", "xyz"])
            .unwrap();
        let ids = out.get("input_ids").unwrap();
        assert_eq!(ids.shape(), &[3, 5]);
        assert_eq!(
            ids.as_slice::<i64>().unwrap(),
            &[2, 4, 5, 6, 3, 2, 4, 3, 0, 0, 2, 1, 3, 0, 0]
        );
        assert_eq!(
            out.i64("attention_mask").unwrap(),
            &[1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0]
        );
    }

    #[test]
    fn truncates_to_max_len_and_reports_bad_files() {
        let t = tokenizer(3);
        assert_eq!(t.max_len(), 3);
        let out = t.encode_batch(&["hello world hello"]).unwrap();
        assert_eq!(out.i64("input_ids").unwrap(), &[2, 4, 3]);
        assert!(TextTokenizer::from_file("/nonexistent/tokenizer.json", 8).is_err());
    }

    #[test]
    fn counts_tokens_before_truncation() {
        let t = tokenizer(4);
        let enc = t
            .encode_batch_counted(&["hello", "hello world hello worlds", "hello world"])
            .unwrap();
        // [CLS] hello world hello world ##s [SEP] = 7 tokens, cut to 4.
        assert_eq!(enc.tokens, vec![3, 7, 4]);
        assert_eq!(enc.truncated(), vec![(1, 7)]);
        assert_eq!(enc.inputs.get("input_ids").unwrap().shape(), &[3, 4]);
        assert_eq!(
            enc.inputs.i64("input_ids").unwrap(),
            &[2, 4, 3, 0, 2, 4, 5, 3, 2, 4, 5, 3]
        );
        assert!(tokenizer(16)
            .encode_batch_counted(&["hello world hello worlds"])
            .unwrap()
            .truncated()
            .is_empty());
    }
}
