//! How many tokens a text model reads: the limit sentence-transformers uses for
//! the model, or an explicit override.
//!
//! ```no_run
//! use coreml_candle::text::limit::{LimitSource, SeqLimit};
//!
//! let dir = std::path::Path::new("weights/all-minilm-l6-v2");
//! let limit = SeqLimit::for_model_dir(dir, None).unwrap();
//! assert_eq!(limit.tokens, 256); // sentence_bert_config.json: max_seq_length
//! assert_eq!(limit.source, LimitSource::SentenceBertConfig);
//! let short = SeqLimit::for_model_dir(dir, Some(128)).unwrap();
//! assert_eq!((short.tokens, short.source), (128, LimitSource::Override));
//! assert!(SeqLimit::for_model_dir(dir, Some(4096)).is_err()); // 512 positions
//! ```
//!
//! Order, as sentence-transformers' `Transformer` module: an override; else
//! `max_seq_length` of `sentence_bert_config.json`; else the smaller of
//! `config.json`'s `max_position_embeddings` and `tokenizer_config.json`'s
//! `model_max_length`. An override longer than the model's position
//! embeddings is an error (the model could not run it).

use std::fmt;
use std::path::{Path, PathBuf};

/// The file sentence-transformers reads the limit from.
pub const SENTENCE_BERT_CONFIG: &str = "sentence_bert_config.json";

/// A token limit (special tokens included) and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqLimit {
    pub tokens: usize,
    pub source: LimitSource,
}

/// Where a [`SeqLimit`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// Given by the caller (`--max-len`).
    Override,
    /// `max_seq_length` of `sentence_bert_config.json`.
    SentenceBertConfig,
    /// The model's position embeddings (`config.json`), capped by
    /// `tokenizer_config.json`'s `model_max_length`.
    Positions,
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Override => "--max-len",
            Self::SentenceBertConfig => "sentence_bert_config.json max_seq_length",
            Self::Positions => "config.json max_position_embeddings",
        })
    }
}

/// Why no limit could be found.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{} is not a valid model config ({message})", file.display())]
    BadConfig { file: PathBuf, message: String },
    #[error("a limit of {requested} tokens is longer than the {positions} positions the model has ({})", file.display())]
    TooLong {
        requested: usize,
        positions: usize,
        file: PathBuf,
    },
    #[error("a limit of 0 tokens leaves nothing to embed")]
    Zero,
    #[error("{} has no {SENTENCE_BERT_CONFIG} or config.json to read the token limit from", dir.display())]
    Unknown { dir: PathBuf },
}

/// A field of a JSON file in `dir`: `Ok(None)` when the file or the field is absent.
fn field(dir: &Path, file: &str, key: &str) -> Result<Option<usize>, LimitError> {
    let path = dir.join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let bad = |message: String| LimitError::BadConfig {
        file: path.clone(),
        message,
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad(format!("`{key}` is {n}, not a token count"))),
    }
}

impl SeqLimit {
    /// The limit for the model in `dir` (see the module docs), or `requested`
    /// when given and the model's positions allow it.
    pub fn for_model_dir(dir: &Path, requested: Option<usize>) -> Result<Self, LimitError> {
        let positions = field(dir, "config.json", "max_position_embeddings")?;
        if let Some(tokens) = requested {
            if tokens == 0 {
                return Err(LimitError::Zero);
            }
            return match positions {
                Some(p) if tokens > p => Err(LimitError::TooLong {
                    requested: tokens,
                    positions: p,
                    file: dir.join("config.json"),
                }),
                _ => Ok(Self {
                    tokens,
                    source: LimitSource::Override,
                }),
            };
        }
        if let Some(tokens) = field(dir, SENTENCE_BERT_CONFIG, "max_seq_length")? {
            return Ok(Self {
                tokens,
                source: LimitSource::SentenceBertConfig,
            });
        }
        let tokenizer_max = field(dir, "tokenizer_config.json", "model_max_length")?;
        match (positions, tokenizer_max) {
            (Some(p), t) => Ok(Self {
                tokens: t.map_or(p, |t| t.min(p)),
                source: LimitSource::Positions,
            }),
            (None, _) => Err(LimitError::Unknown {
                dir: dir.to_path_buf(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    const CONFIG: (&str, &str) = ("config.json", r#"{"max_position_embeddings": 512}"#);

    #[test]
    fn sentence_bert_config_wins_over_positions() {
        let d = dir(&[CONFIG, (SENTENCE_BERT_CONFIG, r#"{"max_seq_length": 256}"#)]);
        let l = SeqLimit::for_model_dir(d.path(), None).unwrap();
        assert_eq!((l.tokens, l.source), (256, LimitSource::SentenceBertConfig));
    }

    #[test]
    fn without_it_the_smaller_of_positions_and_tokenizer_max() {
        let d = dir(&[CONFIG]);
        let l = SeqLimit::for_model_dir(d.path(), None).unwrap();
        assert_eq!((l.tokens, l.source), (512, LimitSource::Positions));
        let d = dir(&[
            CONFIG,
            ("tokenizer_config.json", r#"{"model_max_length": 384}"#),
        ]);
        assert_eq!(SeqLimit::for_model_dir(d.path(), None).unwrap().tokens, 384);
    }

    #[test]
    fn override_is_checked_against_positions() {
        let d = dir(&[CONFIG, (SENTENCE_BERT_CONFIG, r#"{"max_seq_length": 256}"#)]);
        let l = SeqLimit::for_model_dir(d.path(), Some(100)).unwrap();
        assert_eq!((l.tokens, l.source), (100, LimitSource::Override));
        assert_eq!(
            SeqLimit::for_model_dir(d.path(), Some(512)).unwrap().tokens,
            512
        );
        let e = SeqLimit::for_model_dir(d.path(), Some(513)).unwrap_err();
        assert!(
            matches!(
                e,
                LimitError::TooLong {
                    requested: 513,
                    positions: 512,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            SeqLimit::for_model_dir(d.path(), Some(0)),
            Err(LimitError::Zero)
        ));
    }

    #[test]
    fn bad_or_missing_configs_are_typed_errors() {
        let d = dir(&[(SENTENCE_BERT_CONFIG, r#"{"max_seq_length": "long"}"#)]);
        let e = SeqLimit::for_model_dir(d.path(), None).unwrap_err();
        assert!(matches!(e, LimitError::BadConfig { .. }), "{e}");
        assert!(e.to_string().contains(SENTENCE_BERT_CONFIG), "{e}");
        let d = dir(&[("config.json", "{not json")]);
        assert!(matches!(
            SeqLimit::for_model_dir(d.path(), None),
            Err(LimitError::BadConfig { .. })
        ));
        let d = dir(&[]);
        assert!(matches!(
            SeqLimit::for_model_dir(d.path(), None),
            Err(LimitError::Unknown { .. })
        ));
    }
}
