//! How many tokens a Core ML text package takes per sentence: `embed`
//! truncates to it, so that Core ML and Candle embed the same tokens (the
//! router pads shorter sentences up to a fixed length, converts the
//! tokenizer's i64 ids to the package's i32 and sends a batch row by row).
//!
//! ```text
//! $ coreml-bridge embed --coreml-model mil-builder.mlpackage "a sentence of 300 tokens ..."
//! note: sentence [0] has 300 tokens; only the first 128 are embedded (limit from the Core ML package's `input_ids`, mil-builder.mlpackage)
//! ```

use std::path::Path;

use coreml_mlpackage::description::{FeatureKind, ShapeFlexibility};
use coreml_mlpackage::Package;

use crate::app;

/// The token input every text package of the model set has.
pub const IDS: &str = "input_ids";

/// The longest sequence `path`'s `input_ids` takes (axis 1): `None` when the
/// package sets no bound, or is not an `.mlpackage` the reader can open
/// (a compiled `.mlmodelc`: the router still checks every request).
pub fn max_tokens(path: &Path) -> Result<Option<usize>, String> {
    if path.extension().and_then(|e| e.to_str()) != Some("mlpackage") {
        return Ok(None);
    }
    let pkg = Package::open(path).map_err(|e| {
        app::file_error(
            path,
            e,
            "--coreml-model takes the model's .mlpackage (or .mlmodelc)",
        )
    })?;
    let Some(feature) = pkg.description.inputs.iter().find(|f| f.name == IDS) else {
        let names: Vec<&str> = pkg
            .description
            .inputs
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        return Err(app::file_error(
            path,
            format!("the package has no `{IDS}` input (it takes {names:?})"),
            "give a text embedding package",
        ));
    };
    let FeatureKind::MultiArray(a) = &feature.kind else {
        return Err(app::file_error(
            path,
            format!("`{IDS}` is not a multi-array"),
            "give a text embedding package",
        ));
    };
    if a.shape.len() < 2 {
        return Ok(None);
    }
    let tokens = match &a.flexibility {
        None => Some(a.shape[1]),
        Some(ShapeFlexibility::Range(r)) => r.get(1).and_then(|&(_, upper)| upper),
        Some(ShapeFlexibility::Enumerated(shapes)) => {
            shapes.iter().filter_map(|s| s.get(1).copied()).max()
        }
    };
    Ok(tokens.map(|t| usize::try_from(t).unwrap_or(usize::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_is_not_a_package_sets_no_limit_and_a_broken_one_is_named() {
        assert_eq!(max_tokens(Path::new("model.mlmodelc")).unwrap(), None);
        let dir = std::env::temp_dir().join(format!("embed-package-{}", std::process::id()));
        let pkg = dir.join("broken.mlpackage");
        std::fs::create_dir_all(&pkg).unwrap();
        let e = max_tokens(&pkg).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.starts_with(&pkg.display().to_string()), "{e}");
        assert!(e.contains("Manifest.json"), "{e}");
    }
}
