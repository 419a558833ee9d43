//! Isolation domains: which Core ML models share a helper. Each domain is
//! one supervised helper with its own memory limit and restart budget; a
//! hang, crash, memory kill or protocol violation of one helper affects only
//! the models of its domain.
//!
//! ```
//! use coreml_bridge::coreml::domain_policy::DomainPolicy;
//!
//! // The default: one helper per model.
//! assert_eq!(DomainPolicy::default().domain_of("minilm"), "minilm");
//! // One helper for every model (the cheapest, no isolation).
//! assert_eq!(DomainPolicy::Shared.domain_of("minilm"), "shared");
//! // Named groups; a model in no group gets a helper of its own.
//! let p = DomainPolicy::groups([("text", ["minilm", "bert"].as_slice()), ("vision", &["resnet50"])]);
//! assert_eq!(p.domain_of("bert"), "text");
//! assert_eq!(p.domain_of("resnet50"), "vision");
//! assert_eq!(p.domain_of("whisper"), "whisper");
//! ```
//!
//! Plain data, like the supervisor's restart policy: the engine asks it for
//! a model's domain when it prepares the model and starts the domain's
//! helper the first time a model needs it.

use std::collections::BTreeMap;

/// The name of the one domain of [`DomainPolicy::Shared`].
pub const SHARED_DOMAIN: &str = "shared";

/// How models are assigned to helpers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DomainPolicy {
    /// One helper per model (the default): the strongest isolation; costs
    /// one helper process per model (see docs/benchmarks.md).
    #[default]
    PerModel,
    /// One helper for every model: the cheapest; a failure of one model's
    /// request affects every model.
    Shared,
    /// Named groups of models share a helper; a model in no group gets its own.
    Groups(BTreeMap<String, String>),
}

impl DomainPolicy {
    /// Named groups from `(domain, models)` pairs.
    pub fn groups<'a>(groups: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Self {
        let mut by_model = BTreeMap::new();
        for (domain, models) in groups {
            for m in models {
                by_model.insert((*m).to_owned(), domain.to_owned());
            }
        }
        DomainPolicy::Groups(by_model)
    }

    /// The domain of `model`.
    pub fn domain_of(&self, model: &str) -> String {
        match self {
            DomainPolicy::PerModel => model.to_owned(),
            DomainPolicy::Shared => SHARED_DOMAIN.to_owned(),
            DomainPolicy::Groups(by_model) => by_model.get(model).cloned().unwrap_or_else(|| model.to_owned()),
        }
    }

    /// A short description for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            DomainPolicy::PerModel => "one helper per model".into(),
            DomainPolicy::Shared => "one shared helper".into(),
            DomainPolicy::Groups(g) => {
                let domains: std::collections::BTreeSet<&str> = g.values().map(String::as_str).collect();
                let names: Vec<&str> = domains.into_iter().collect();
                format!("named groups ({}), one helper per other model", names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_group_wins_for_a_model_listed_twice_and_descriptions_name_the_groups() {
        let p = DomainPolicy::groups([("a", ["m"].as_slice()), ("b", &["m", "n"])]);
        assert_eq!(p.domain_of("m"), "b");
        assert_eq!(p.describe(), "named groups (b), one helper per other model");
        assert_eq!(DomainPolicy::PerModel.describe(), "one helper per model");
    }
}
