//! The public handle: start a helper, compile, load, predict, stats, events, shut
//! down. Requests wait in a bounded queue, run against the current helper, and are
//! retried once on a restarted helper unless they caused the death.
//!
//! ```no_run
//! use coreml_supervisor::{Supervisor, SupervisorConfig, HelperCommand};
//!
//! # async fn demo() -> Result<(), coreml_supervisor::Error> {
//! let sup = Supervisor::start(SupervisorConfig::new(HelperCommand::new("coreml-helper"))).await?;
//! let model = sup.load("diag:add?c=2&shape=4", None).await?;
//! let x: Vec<u8> = [1f32, 2., 3., 4.].iter().flat_map(|v| v.to_le_bytes()).collect();
//! let out = sup.predict(model.id, &[("x", &x)]).await?;
//! assert_eq!(out.output("y").unwrap().to_f32(), vec![3., 4., 5., 6.]);
//! sup.shutdown().await;
//! # Ok(()) }
//! ```

//! Owns: the public handle, the request machinery ([`requests`]: queue, lanes,
//! waiting out restarts) and the lifecycle of helper generations
//! ([`lifecycle`]: bring-up, replay, restart). It must not touch the process or
//! the socket directly: that goes through [`crate::process`] and [`crate::connection`].

pub(crate) mod lifecycle;
pub(crate) mod requests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coreml_ipc_schema::{
    Compile, Compiled, ComputePlan, ComputeUnits, GetComputePlan, GetStats, Load, Loaded, Message,
    Ping, Shutdown, Stats, TensorSpec, Unload,
};
use tokio::sync::{broadcast, watch, Semaphore};

use crate::config::SupervisorConfig;
use crate::error::{DeathCause, Error, Stage};
use crate::events::{Event, HelperState, SupervisorStats};
use crate::shm::arena::Arena;
use crate::supervisor::lifecycle::manage;
use crate::supervisor::requests::{lock, Counters, Inner, Phase};

/// A model id chosen by the supervisor; stable across helper restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(pub u64);

/// A loaded model and its I/O schema.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Its id.
    pub id: ModelId,
    /// What was loaded (bundle path or `diag:` URI).
    pub bundle_path: String,
    /// Compute units actually configured.
    pub compute_units: ComputeUnits,
    /// Inputs in model order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs in model order.
    pub outputs: Vec<TensorSpec>,
    /// Load time reported by the helper (first load).
    pub load_us: u64,
}

/// Handle to a running supervisor. Cheap to clone; when the last clone drops, the
/// helper's process group is killed.
#[derive(Clone)]
pub struct Supervisor {
    pub(crate) inner: Arc<Inner>,
    _guard: Arc<DropGuard>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("stats", &self.stats())
            .finish()
    }
}

struct DropGuard(Arc<Inner>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.stop(DeathCause::Shutdown);
    }
}

impl Supervisor {
    /// Starts the first helper (spawn, sandbox, handshake) and the restart manager.
    pub async fn start(cfg: SupervisorConfig) -> Result<Supervisor, Error> {
        let arena = Arena::new(cfg.arena)?;
        let (events, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            queue: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            lane: Arc::new(tokio::sync::RwLock::new(())),
            cfg,
            arena,
            phase: watch::channel(Phase::Restarting).0,
            next_id: AtomicU64::new(1),
            next_model: AtomicU64::new(1),
            generation: AtomicU64::new(0),
            models: Mutex::new(HashMap::new()),
            events,
            counters: Counters::default(),
            high_water: Arc::new(AtomicU64::new(0)),
            fast_lane: Arc::default(),
            helper_time: Mutex::new(HashMap::new()),
            manager: Mutex::new(None),
            failed: Mutex::new(HashMap::new()),
            reload_lock: tokio::sync::Mutex::new(()),
            graveyard: Arc::default(),
        });
        let conn = inner.bring_up().await?;
        inner.phase.send_replace(Phase::Ready(conn.clone()));
        *lock(&inner.manager) = Some(tokio::spawn(manage(inner.clone(), conn)));
        Ok(Supervisor {
            _guard: Arc::new(DropGuard(inner.clone())),
            inner,
        })
    }

    /// Subscribes to lifecycle events (starts, deaths, restarts, unavailability).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SupervisorStats {
        let inner = &self.inner;
        let phase = inner.phase.borrow();
        let (state, conn) = match &*phase {
            Phase::Ready(c) => (HelperState::Ready, Some(c.clone())),
            Phase::Restarting => (HelperState::Restarting, None),
            Phase::Unavailable(r) => (HelperState::Unavailable(r.clone()), None),
            Phase::Shutdown => (HelperState::Shutdown, None),
        };
        let (fast_replies, slow_replies) = self.reply_lanes();
        SupervisorStats {
            state,
            generation: inner.generation.load(Ordering::Relaxed),
            pid: conn.as_ref().map_or(0, |c| c.process.pid()),
            restarts: inner.counters.restarts.load(Ordering::Relaxed),
            rss_bytes: conn.as_ref().map_or(0, |c| c.rss.load(Ordering::Relaxed)),
            rss_high_water: inner.high_water.load(Ordering::Relaxed),
            in_flight: inner.cfg.max_in_flight.max(1) - inner.queue.available_permits(),
            completed: inner.counters.completed.load(Ordering::Relaxed),
            failed: inner.counters.failed.load(Ordering::Relaxed),
            retried: inner.counters.retried.load(Ordering::Relaxed),
            fast_replies,
            slow_replies,
            models: lock(&inner.models).len(),
            shm_bytes: inner.arena.regions().iter().map(|r| r.len).sum(),
            shm_in_use: inner.arena.in_use(),
            sandbox: conn.as_ref().map(|c| {
                let mut s = c.process.sandbox().clone();
                s.helper_self_sandboxed = Some(c.hello.sandboxed);
                s
            }),
        }
    }

    /// Replies taken through the fast lane and replies that were eligible for it
    /// but came later, `(fast, slow)`: the same counters as
    /// [`SupervisorStats::fast_replies`] and [`SupervisorStats::slow_replies`],
    /// without the cost of a whole [`Supervisor::stats`].
    pub fn reply_lanes(&self) -> (u64, u64) {
        let lane = &self.inner.fast_lane;
        (
            lane.hits.load(Ordering::Relaxed),
            lane.misses.load(Ordering::Relaxed),
        )
    }

    /// The current helper's `Hello`, if one is ready.
    pub fn hello(&self) -> Option<coreml_ipc_schema::Hello> {
        match &*self.inner.phase.borrow() {
            Phase::Ready(c) => Some(c.hello.clone()),
            _ => None,
        }
    }

    /// Compiles a model source into the staging directory, within the configured
    /// compile budget.
    pub async fn compile(
        &self,
        source_path: &str,
        compute_units: Option<ComputeUnits>,
    ) -> Result<Compiled, Error> {
        self.compile_with_deadline(source_path, compute_units, self.inner.cfg.deadlines.compile)
            .await
    }

    /// [`Supervisor::compile`] within `budget` (at most the configured compile
    /// budget): queueing, waiting out a restart and the helper's work included. A
    /// helper still silent at the end of the budget is killed and restarted
    /// (`Timeout{Compile}`).
    pub async fn compile_with_deadline(
        &self,
        source_path: &str,
        compute_units: Option<ComputeUnits>,
        budget: Duration,
    ) -> Result<Compiled, Error> {
        if self.inner.cfg.precompiled_only && !source_path.starts_with("diag:") {
            return Err(Error::CompileRefused {
                source_path: source_path.into(),
            });
        }
        let msg = Message::Compile(Compile {
            source_path: source_path.into(),
            staging_dir: self.inner.cfg.staging_dir.display().to_string(),
            compute_units: compute_units.unwrap_or(self.inner.cfg.compute_units),
            deadline_us: None,
        });
        let budget = budget.min(self.inner.cfg.deadlines.compile);
        match self
            .inner
            .request(Stage::Compile, msg, Some(budget))
            .await?
        {
            (Message::Compiled(c), _) => Ok(c),
            (other, conn) => Err(self.inner.wrong_reply(&conn, Stage::Compile, &other)),
        }
    }

    /// Loads a compiled bundle (or `diag:` URI) within the configured load
    /// budget. The model is loaded again on every restarted helper before that
    /// helper takes new predictions.
    pub async fn load(
        &self,
        bundle_path: &str,
        compute_units: Option<ComputeUnits>,
    ) -> Result<ModelInfo, Error> {
        self.load_with_deadline(bundle_path, compute_units, self.inner.cfg.deadlines.load)
            .await
    }

    /// [`Supervisor::load`] within `budget` (at most the configured load budget):
    /// queueing, waiting out a restart and the helper's work included. A helper
    /// still silent at the end of the budget is killed and restarted
    /// (`Timeout{Load}`).
    pub async fn load_with_deadline(
        &self,
        bundle_path: &str,
        compute_units: Option<ComputeUnits>,
        budget: Duration,
    ) -> Result<ModelInfo, Error> {
        let id = ModelId(self.inner.next_model.fetch_add(1, Ordering::Relaxed));
        let cu = compute_units.unwrap_or(self.inner.cfg.compute_units);
        let msg = Message::Load(Load {
            model_id: id.0,
            bundle_path: bundle_path.into(),
            compute_units: cu,
            deadline_us: None,
        });
        let budget = budget.min(self.inner.cfg.deadlines.load);
        match self.inner.request(Stage::Load, msg, Some(budget)).await? {
            (Message::Loaded(l), conn) if l.model_id == id.0 => {
                let info = model_info(id, bundle_path, l);
                lock(&conn.models).insert(id.0);
                lock(&self.inner.models).insert(id, info.clone());
                Ok(info)
            }
            (other, conn) => Err(self.inner.wrong_reply(&conn, Stage::Load, &other)),
        }
    }

    /// Unloads a model and forgets it (no reload after restarts).
    pub async fn unload(&self, model: ModelId) -> Result<(), Error> {
        if lock(&self.inner.models).remove(&model).is_none() {
            return Err(Error::UnknownModel(model.0));
        }
        lock(&self.inner.helper_time).remove(&model.0);
        lock(&self.inner.failed).remove(&model);
        let msg = Message::Unload(Unload { model_id: model.0 });
        match self.inner.request(Stage::Unload, msg, None).await {
            Ok((Message::Unloaded(_), conn)) => {
                lock(&conn.models).remove(&model.0);
                Ok(())
            }
            Ok((other, conn)) => Err(self.inner.wrong_reply(&conn, Stage::Unload, &other)),
            Err(Error::Helper { code, .. })
                if code == coreml_ipc_schema::ErrorCode::UNKNOWN_MODEL =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Loads a registered model again on the current helper, with the load
    /// budget: the way back for a model whose reload after a restart failed
    /// ([`Error::ModelFailed`]). A no-op when the model is loaded.
    pub async fn reload(&self, model: ModelId) -> Result<(), Error> {
        let inner = &self.inner;
        let info = lock(&inner.models)
            .get(&model)
            .cloned()
            .ok_or(Error::UnknownModel(model.0))?;
        let budget = inner.cfg.deadlines.load;
        let deadline = Instant::now() + budget;
        let _permit = inner.permit(deadline, budget).await?;
        let conn = inner.ready_conn(deadline, budget).await?;
        let _one = inner.reload_lock.lock().await;
        let r = match inner.ensure_model(&conn, &info, deadline).await {
            Ok(()) => {
                lock(&inner.failed).remove(&model);
                Ok(())
            }
            Err(requests::Attempt::Fatal(e)) => Err(e),
            Err(requests::Attempt::Died(n)) => Err(n.cause.to_error(Stage::Load)),
        };
        if let Err(e) = &r {
            inner.model_failed(&info, conn.generation, e.to_string());
        }
        r
    }

    /// Models registered with the supervisor.
    pub fn models(&self) -> Vec<ModelInfo> {
        let mut v: Vec<_> = lock(&self.inner.models).values().cloned().collect();
        v.sort_by_key(|m| m.id);
        v
    }

    /// The per-operation device plan of a model.
    pub async fn compute_plan(&self, model: ModelId) -> Result<ComputePlan, Error> {
        let msg = Message::GetComputePlan(GetComputePlan { model_id: model.0 });
        match self.inner.request(Stage::ComputePlan, msg, None).await? {
            (Message::ComputePlan(p), _) => Ok(p),
            (other, conn) => Err(self.inner.wrong_reply(&conn, Stage::ComputePlan, &other)),
        }
    }

    /// The helper's own counters.
    pub async fn helper_stats(&self) -> Result<Stats, Error> {
        match self
            .inner
            .request(Stage::Stats, Message::GetStats(GetStats {}), None)
            .await?
        {
            (Message::Stats(s), _) => Ok(s),
            (other, conn) => Err(self.inner.wrong_reply(&conn, Stage::Stats, &other)),
        }
    }

    /// Round trip of a `Ping`.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let t = Instant::now();
        match self
            .inner
            .request(Stage::Ping, Message::Ping(Ping { nonce: 7 }), None)
            .await?
        {
            (Message::Pong(p), _) if p.nonce == 7 => Ok(t.elapsed()),
            (other, conn) => Err(self.inner.wrong_reply(&conn, Stage::Ping, &other)),
        }
    }

    /// Starts a fresh helper after the supervisor declared the helper unavailable,
    /// with a fresh restart budget (the router can call this when it wants to try
    /// Core ML again). A no-op when a helper is ready or restarting.
    pub async fn revive(&self) -> Result<(), Error> {
        let inner = &self.inner;
        match &*inner.phase.borrow() {
            Phase::Unavailable(_) => {}
            Phase::Shutdown => return Err(Error::ShuttingDown),
            Phase::Ready(_) | Phase::Restarting => return Ok(()),
        }
        let conn = inner.bring_up().await?;
        let mut installed = false;
        inner.phase.send_if_modified(|p| {
            if matches!(p, Phase::Unavailable(_)) {
                *p = Phase::Ready(conn.clone());
                installed = true;
            }
            installed
        });
        if !installed {
            conn.die(DeathCause::Shutdown);
            return Ok(());
        }
        *lock(&inner.manager) = Some(tokio::spawn(manage(inner.clone(), conn)));
        Ok(())
    }

    /// Kills the current helper as if it had crashed (tests, operators). It is
    /// restarted by the usual policy.
    pub fn kill_helper(&self) {
        if let Phase::Ready(c) = &*self.inner.phase.borrow() {
            c.die(DeathCause::Crashed {
                detail: "killed on request".into(),
            });
        }
    }

    /// Asks the helper to exit (`Shutdown`), kills it past the shutdown deadline,
    /// waits until it is reaped. Later requests fail with `ShuttingDown`. Returns
    /// within `deadlines.shutdown + deadlines.reap`: a helper that cannot be
    /// reaped by then (a process it forked out of its group still holds the
    /// socket, or it is stuck in the kernel) is abandoned and logged.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let conn = match inner.phase.send_replace(Phase::Shutdown) {
            Phase::Ready(c) => Some(c),
            _ => None,
        };
        if let Some(m) = lock(&inner.manager).take() {
            m.abort();
        }
        if let Some(conn) = conn {
            let deadline = Instant::now() + inner.cfg.deadlines.shutdown;
            let id = inner.next_id();
            let _ = tokio::time::timeout_at(
                deadline.into(),
                conn.call(
                    id,
                    Stage::Shutdown,
                    Message::Shutdown(Shutdown {}),
                    deadline,
                    vec![],
                    Duration::ZERO,
                ),
            )
            .await;
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, conn.process.wait()).await;
            conn.die(DeathCause::Shutdown);
            inner.reap(&conn).await;
        }
    }
}

fn model_info(id: ModelId, bundle_path: &str, l: Loaded) -> ModelInfo {
    ModelInfo {
        id,
        bundle_path: bundle_path.into(),
        compute_units: l.compute_units,
        inputs: l.inputs,
        outputs: l.outputs,
        load_us: l.load_us,
    }
}
