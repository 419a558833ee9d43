//! The Core ML side of the bridge: the [`engine::CoreMlEngine`] over the
//! supervised helper, compiling through the compiled-model cache
//! ([`crate::cache`], also reachable as `model_cache`), the conversions between wire and API types
//! ([`convert`]) and the supervisor events turned into telemetry and health
//! reports ([`events`]).
//!
//! ```
//! use coreml_bridge::coreml::model_cache::ModelCache;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cache = ModelCache::open(dir.path().join("cache")).unwrap();
//! assert!(cache.root().exists());
//! ```
//!
//! Owns: everything that knows the helper's protocol inside the bridge. It
//! must not make routing decisions: health goes to the router through the
//! [`HealthBus`](crate::health::HealthBus), failures are classified into the
//! [`taxonomy`](crate::taxonomy) and the router decides.

mod compile;
pub mod convert;
pub mod domain;
pub mod domain_policy;
pub mod engine;
pub mod events;
/// The compiled-model cache, now [`crate::cache`].
pub use crate::cache as model_cache;
pub mod image;
pub mod pooled;
pub mod revive;
