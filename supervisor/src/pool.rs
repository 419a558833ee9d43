//! A small pool of loaded instances of one model (1 to 4) behind a bounded
//! queue: a caller takes a free instance, waits in the queue for one until
//! its own deadline, or, when the queue is full, is turned away at once with
//! [`PoolError::Overloaded`] (back-pressure instead of unbounded waiting).
//!
//! ```no_run
//! use std::time::Duration;
//! use coreml_supervisor::pool::{ModelPool, PoolConfig};
//! use coreml_supervisor::{HelperCommand, Supervisor, SupervisorConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = Supervisor::start(SupervisorConfig::new(HelperCommand::new("coreml-test-helper"))).await?;
//! let pool = ModelPool::load(&sup, "diag:add?c=1&shape=4", None, PoolConfig { instances: 2, queue: 8 }).await?;
//! let x: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
//! let p = pool.predict(&[("x", &x)], Duration::from_millis(250)).await?;
//! assert_eq!(p.output("y").unwrap().to_f32(), vec![2.0, 3.0, 4.0, 5.0]);
//! pool.unload().await;
//! # Ok(()) }
//! ```
//!
//! Each instance is its own `Load` in the helper (its own `MLModel` on
//! macOS), so up to `instances` predictions of the model run at once; the
//! supervisor's own in-flight limit
//! ([`SupervisorConfig::max_in_flight`](crate::SupervisorConfig::max_in_flight))
//! still bounds the helper as a whole. Restarts are the supervisor's: every
//! instance is reloaded on a new helper like any model.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coreml_ipc_schema::ComputeUnits;
use tokio::sync::Semaphore;

use crate::{Error, ImageBytes, ModelId, ModelInfo, Prediction, Supervisor};

/// Most instances a pool holds.
pub const MAX_INSTANCES: usize = 4;

/// Sizing of a [`ModelPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Loaded instances, 1 to [`MAX_INSTANCES`].
    pub instances: usize,
    /// Callers that may wait for an instance; one more is turned away.
    pub queue: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            instances: 2,
            queue: 32,
        }
    }
}

/// Why a pooled request failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// `instances` outside 1 to [`MAX_INSTANCES`].
    #[error("a pool holds 1 to {MAX_INSTANCES} instances, not {0}")]
    BadSize(usize),
    /// Every instance is busy and the queue is full: try later.
    #[error("overloaded: {busy} instances busy and {queue} callers waiting")]
    Overloaded {
        /// Instances, all busy.
        busy: usize,
        /// The queue's capacity, full.
        queue: usize,
    },
    /// The caller's deadline passed while it waited for an instance (it never
    /// reached the helper).
    #[error("no instance became free within the deadline ({waited:?})")]
    QueueDeadline {
        /// How long it waited.
        waited: Duration,
    },
    /// The supervisor's error (the prediction reached the helper, or the load failed).
    #[error(transparent)]
    Supervisor(#[from] Error),
}

/// Hands an instance back when dropped, even if the caller's future is dropped.
struct Taken<'a> {
    pool: &'a ModelPool,
    id: ModelId,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.pool
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.id);
    }
}

/// See the module docs.
pub struct ModelPool {
    sup: Supervisor,
    infos: Vec<ModelInfo>,
    free: Mutex<Vec<ModelId>>,
    instances: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    cfg: PoolConfig,
}

impl ModelPool {
    /// Loads `cfg.instances` instances of `bundle_path`; on a failure the
    /// instances already loaded are unloaded.
    pub async fn load(
        sup: &Supervisor,
        bundle_path: &str,
        compute_units: Option<ComputeUnits>,
        cfg: PoolConfig,
    ) -> Result<Self, PoolError> {
        if !(1..=MAX_INSTANCES).contains(&cfg.instances) {
            return Err(PoolError::BadSize(cfg.instances));
        }
        let mut infos = Vec::with_capacity(cfg.instances);
        for _ in 0..cfg.instances {
            match sup.load(bundle_path, compute_units).await {
                Ok(info) => infos.push(info),
                Err(e) => {
                    for i in infos {
                        let _ = sup.unload(i.id).await;
                    }
                    return Err(e.into());
                }
            }
        }
        Self::from_loaded(sup, infos, cfg)
    }

    /// A pool over instances already loaded on `sup` (one per entry of
    /// `infos`, all of one model), for a caller that loads them itself (within
    /// its own deadlines). `BadSize` unless `infos.len() == cfg.instances`.
    pub fn from_loaded(
        sup: &Supervisor,
        infos: Vec<ModelInfo>,
        cfg: PoolConfig,
    ) -> Result<Self, PoolError> {
        if !(1..=MAX_INSTANCES).contains(&cfg.instances) || infos.len() != cfg.instances {
            return Err(PoolError::BadSize(infos.len()));
        }
        Ok(Self {
            sup: sup.clone(),
            free: Mutex::new(infos.iter().map(|i| i.id).collect()),
            infos,
            instances: Arc::new(Semaphore::new(cfg.instances)),
            admitted: Arc::new(Semaphore::new(cfg.instances + cfg.queue)),
            cfg,
        })
    }

    /// The instances (their schemas are the model's).
    pub fn instances(&self) -> &[ModelInfo] {
        &self.infos
    }

    /// Its sizing.
    pub fn config(&self) -> PoolConfig {
        self.cfg
    }

    /// One prediction on a free instance, ended with a result or a typed
    /// error within `deadline` (queueing included).
    pub async fn predict(
        &self,
        inputs: &[(&str, &[u8])],
        deadline: Duration,
    ) -> Result<Prediction, PoolError> {
        self.predict_images(inputs, &[], deadline).await
    }

    /// [`ModelPool::predict`] with image inputs
    /// ([`Supervisor::predict_images`]).
    pub async fn predict_images(
        &self,
        inputs: &[(&str, &[u8])],
        images: &[(&str, ImageBytes<'_>)],
        deadline: Duration,
    ) -> Result<Prediction, PoolError> {
        let start = Instant::now();
        let _admitted =
            self.admitted
                .clone()
                .try_acquire_owned()
                .map_err(|_| PoolError::Overloaded {
                    busy: self.cfg.instances,
                    queue: self.cfg.queue,
                })?;
        let permit = tokio::time::timeout(deadline, self.instances.clone().acquire_owned())
            .await
            .map_err(|_| PoolError::QueueDeadline {
                waited: start.elapsed(),
            })?
            .map_err(|_| PoolError::Supervisor(Error::ShuttingDown))?;
        let id = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        // A permit means a free instance; without one the pool was unloaded meanwhile.
        let id = id.ok_or(PoolError::Supervisor(Error::ShuttingDown))?;
        let taken = Taken { pool: self, id };
        let left = deadline.saturating_sub(start.elapsed());
        let r = self
            .sup
            .predict_images(taken.id, inputs, images, left)
            .await;
        drop(taken);
        drop(permit);
        Ok(r?)
    }

    /// Unloads every instance; later predictions fail with `ShuttingDown`.
    pub async fn unload(&self) {
        self.instances.close();
        for i in &self.infos {
            let _ = self.sup.unload(i.id).await;
        }
    }
}
