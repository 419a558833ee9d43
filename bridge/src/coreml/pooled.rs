//! Several loaded instances of one model behind a bounded queue
//! ([`CoreMlOptions::pool`](crate::coreml::engine::CoreMlOptions::pool)): the
//! engine's side of the supervisor's [`ModelPool`]. It owns loading the extra
//! instances within the prepare deadline and turning the pool's refusals into
//! the engine's typed errors.
//!
//! ```
//! use coreml_bridge::coreml::pooled::pool_error;
//! use coreml_bridge::inference::InferError;
//! use coreml_bridge::taxonomy::reached_helper;
//! use coreml_supervisor::pool::PoolError;
//!
//! // A full queue never reached the helper: the router may answer on the CPU,
//! // and the model is not blamed for it.
//! let e = pool_error(PoolError::Overloaded { busy: 2, queue: 4 });
//! assert!(matches!(&e, InferError::Unavailable { message } if message.contains("overloaded")));
//! assert!(!reached_helper(&e));
//! ```

use std::time::{Duration, Instant};

use coreml_inference::{InferError, PrepareError};
use coreml_supervisor::pool::{ModelPool, PoolConfig, PoolError};
use coreml_supervisor::schema::ComputeUnits;
use coreml_supervisor::{ModelInfo, Supervisor};

use crate::coreml::convert::{infer_error, prepare_error};
use crate::taxonomy::{not_reached, FailureKind};

/// Loads the instances after the first (`first`, already loaded) within
/// `deadline` and builds the pool; on any failure every instance, the first
/// included, is unloaded.
pub(crate) async fn load_pool(
    sup: &Supervisor,
    bundle: &str,
    units: Option<ComputeUnits>,
    first: ModelInfo,
    cfg: PoolConfig,
    deadline: Instant,
    budget: Duration,
) -> Result<ModelPool, PrepareError> {
    let mut infos = vec![first];
    let mut failure = None;
    while infos.len() < cfg.instances {
        let left = deadline.saturating_duration_since(Instant::now());
        match sup.load_with_deadline(bundle, units, left).await {
            Ok(info) => infos.push(info),
            Err(e) => {
                failure = Some(prepare_error(e, budget));
                break;
            }
        }
    }
    let ids: Vec<_> = infos.iter().map(|i| i.id).collect();
    let result = match failure {
        Some(e) => Err(e),
        None => ModelPool::from_loaded(sup, infos, cfg).map_err(|e| PrepareError::Backend { message: e.to_string() }),
    };
    if result.is_err() {
        for id in ids {
            let _ = sup.unload(id).await;
        }
    }
    result
}

/// A pooled request's failure as the engine's error.
pub fn pool_error(e: PoolError) -> InferError {
    match e {
        // Turned away or still queued: it never reached the helper.
        PoolError::Overloaded { .. } => InferError::Unavailable { message: not_reached(FailureKind::Unavailable, e) },
        PoolError::QueueDeadline { waited } => {
            tracing::debug!(target: "coreml_bridge::coreml", ?waited, "no pooled instance within the deadline");
            InferError::DeadlineExceeded { elapsed: waited }
        }
        PoolError::Supervisor(e) => infer_error(e),
        PoolError::BadSize(_) => InferError::Backend { message: e.to_string() },
    }
}
