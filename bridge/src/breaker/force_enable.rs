//! `COREML_FORCE_ENABLE`: which models Core ML must serve whatever their
//! breaker says.
//!
//! ```
//! use coreml_bridge::breaker::force_enable::ForceSet;
//!
//! assert!(ForceSet::parse("1").contains("anything"));
//! assert!(ForceSet::parse("all").contains("anything"));
//! let some = ForceSet::parse(" minilm , efficientnet-lite0 ");
//! assert!(some.contains("minilm") && !some.contains("resnet50"));
//! assert!(ForceSet::parse("0").is_empty() && ForceSet::parse("").is_empty());
//! ```
//!
//! Value format (read at every routing decision, so it can be set while a
//! process runs under a debugger, or changed between runs):
//!
//! | value | meaning |
//! |---|---|
//! | unset, empty, `0`, `false`, `no`, `off`, `none` | no model forced |
//! | `1`, `true`, `yes`, `on`, `all`, `*` | every model forced |
//! | `a,b,c` | the models named `a`, `b` and `c` (exact names, spaces around commas ignored) |
//!
//! A forced model's breaker is closed at once if it was open and stays
//! pinned closed while the model is listed; see docs/router.md.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The environment variable.
pub const FORCE_ENABLE_ENV: &str = "COREML_FORCE_ENABLE";

/// A parsed `COREML_FORCE_ENABLE` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ForceSet {
    /// No model.
    #[default]
    None,
    /// Every model.
    All,
    /// These models.
    Models(BTreeSet<String>),
}

impl ForceSet {
    /// Parses a value (see the module docs).
    pub fn parse(value: &str) -> Self {
        let v = value.trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "no" | "off" | "none" => ForceSet::None,
            "1" | "true" | "yes" | "on" | "all" | "*" => ForceSet::All,
            _ => {
                let names: BTreeSet<String> =
                    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
                if names.is_empty() {
                    ForceSet::None
                } else {
                    ForceSet::Models(names)
                }
            }
        }
    }

    /// Whether `model` is forced.
    pub fn contains(&self, model: &str) -> bool {
        match self {
            ForceSet::None => false,
            ForceSet::All => true,
            ForceSet::Models(m) => m.contains(model),
        }
    }

    /// Whether no model is forced.
    pub fn is_empty(&self) -> bool {
        *self == ForceSet::None
    }
}

/// Where the router reads the force set from.
#[derive(Debug, Clone, Default)]
pub enum ForceSource {
    /// The process environment, `COREML_FORCE_ENABLE`, read at each decision.
    #[default]
    Env,
    /// A value the caller controls (tests, or apps with their own config).
    Fixed(Arc<Mutex<ForceSet>>),
}

impl ForceSource {
    /// A caller-controlled source, initially empty, and its handle.
    pub fn fixed() -> (Self, Arc<Mutex<ForceSet>>) {
        let cell = Arc::new(Mutex::new(ForceSet::None));
        (ForceSource::Fixed(cell.clone()), cell)
    }

    /// The current set.
    pub fn current(&self) -> ForceSet {
        match self {
            ForceSource::Env => std::env::var(FORCE_ENABLE_ENV).map(|v| ForceSet::parse(&v)).unwrap_or_default(),
            ForceSource::Fixed(cell) => cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_spelling_parses() {
        for v in ["", "0", "false", "NO", "off", "none", "  ", ",", " , "] {
            assert!(ForceSet::parse(v).is_empty(), "{v:?}");
        }
        for v in ["1", "true", "Yes", "ON", "all", "ALL", "*"] {
            assert_eq!(ForceSet::parse(v), ForceSet::All, "{v:?}");
        }
        let s = ForceSet::parse("diag-add,,  minilm ");
        assert_eq!(s, ForceSet::Models(["diag-add".to_owned(), "minilm".to_owned()].into()));
        assert!(!s.contains("Minilm"), "names are exact");
    }

    #[test]
    fn fixed_source_follows_its_handle() {
        let (src, cell) = ForceSource::fixed();
        assert!(src.current().is_empty());
        *cell.lock().unwrap() = ForceSet::parse("m");
        assert!(src.current().contains("m"));
    }
}
