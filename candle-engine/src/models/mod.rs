//! Model implementations and the built-in registrations.
//!
//! ```
//! let names: Vec<_> = coreml_candle::models::builtin().iter().map(|r| r.architecture).collect();
//! assert!(names.contains(&"bert") && names.contains(&"distilbert") && names.contains(&"efficientnet-lite0"));
//! ```
//!
//! To add an architecture, see [`crate::registry`]: implement `CandleModel`,
//! export `registration()`, and add it to [`builtin`] below.

pub mod bert;
pub mod bert_encoder;
pub mod distilbert;
pub mod efficientnet;
// part B: vision models on the custom ops.
pub mod fastvit;
pub mod resnet;
pub mod vision_assets;
pub mod vision_model;

use crate::registry::Registration;

/// Every built-in architecture.
pub fn builtin() -> Vec<Registration> {
    vec![
        bert::registration(),
        distilbert::registration(),
        efficientnet::registration(),
        resnet::registration(),
        fastvit::registration(),
    ]
}
