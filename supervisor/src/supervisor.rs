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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coreml_ipc_schema::{
    AttachRegion, Compile, Compiled, ComputePlan, ComputeUnits, GetComputePlan, GetStats, Load,
    Loaded, Message, Ping, Shutdown, Stats, TensorSpec, Unload,
};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::arena::Arena;
use crate::config::SupervisorConfig;
use crate::connection::{Connection, DeathNotice};
use crate::error::{DeathCause, Error, HandshakeError, Stage};
use crate::events::{Event, HelperState, SupervisorStats};
use crate::restart::RestartTracker;

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

pub(crate) enum Phase {
    Ready(Arc<Connection>),
    Restarting,
    Unavailable(String),
    Shutdown,
}

/// A place in the request lane (see `Inner::lane`).
#[allow(dead_code)]
pub(crate) enum LaneGuard {
    Shared(tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(tokio::sync::OwnedRwLockWriteGuard<()>),
}

/// How one attempt on one helper ended without a result.
pub(crate) enum Attempt {
    Died(DeathNotice),
    Fatal(Error),
}

#[derive(Default)]
pub(crate) struct Counters {
    pub restarts: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

pub(crate) struct Inner {
    pub cfg: SupervisorConfig,
    pub arena: Arena,
    pub phase: watch::Sender<Phase>,
    next_id: AtomicU64,
    next_model: AtomicU64,
    generation: AtomicU64,
    pub models: Mutex<HashMap<ModelId, ModelInfo>>,
    queue: Arc<Semaphore>,
    /// Requests take it shared; a request retried after a death nobody could be
    /// blamed for takes it exclusively, so it runs alone and, if it kills the
    /// helper again, is known to be the culprit.
    lane: Arc<tokio::sync::RwLock<()>>,
    events: broadcast::Sender<Event>,
    pub counters: Counters,
    high_water: Arc<AtomicU64>,
    manager: Mutex<Option<JoinHandle<()>>>,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
            manager: Mutex::new(None),
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

    /// The current helper's `Hello`, if one is ready.
    pub fn hello(&self) -> Option<coreml_ipc_schema::Hello> {
        match &*self.inner.phase.borrow() {
            Phase::Ready(c) => Some(c.hello.clone()),
            _ => None,
        }
    }

    /// Compiles a model source into the staging directory.
    pub async fn compile(
        &self,
        source_path: &str,
        compute_units: Option<ComputeUnits>,
    ) -> Result<Compiled, Error> {
        let msg = Message::Compile(Compile {
            source_path: source_path.into(),
            staging_dir: self.inner.cfg.staging_dir.display().to_string(),
            compute_units: compute_units.unwrap_or(self.inner.cfg.compute_units),
        });
        match self.inner.request(Stage::Compile, msg, None).await? {
            (Message::Compiled(c), _) => Ok(c),
            (other, conn) => Err(self.inner.wrong_reply(&conn, Stage::Compile, &other)),
        }
    }

    /// Loads a compiled bundle (or `diag:` URI). The model is loaded again on every
    /// restarted helper before that helper takes new predictions.
    pub async fn load(
        &self,
        bundle_path: &str,
        compute_units: Option<ComputeUnits>,
    ) -> Result<ModelInfo, Error> {
        let id = ModelId(self.inner.next_model.fetch_add(1, Ordering::Relaxed));
        let cu = compute_units.unwrap_or(self.inner.cfg.compute_units);
        let msg = Message::Load(Load {
            model_id: id.0,
            bundle_path: bundle_path.into(),
            compute_units: cu,
        });
        match self.inner.request(Stage::Load, msg, None).await? {
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
    /// waits until it is reaped. Later requests fail with `ShuttingDown`.
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
            let _ = conn
                .call(
                    id,
                    Stage::Shutdown,
                    Message::Shutdown(Shutdown {}),
                    deadline,
                    vec![],
                )
                .await;
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, conn.process.wait()).await;
            conn.die(DeathCause::Shutdown);
            conn.process.wait().await;
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

impl Inner {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sets the phase unless the supervisor is shut down.
    fn set_phase(&self, p: Phase) {
        self.phase.send_if_modified(|cur| {
            if matches!(cur, Phase::Shutdown) {
                false
            } else {
                *cur = p;
                true
            }
        });
    }

    pub(crate) fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Kills the helper and stops restarting (drop of the last handle).
    fn stop(&self, cause: DeathCause) {
        if let Some(m) = lock(&self.manager).take() {
            m.abort();
        }
        if let Phase::Ready(c) = self.phase.send_replace(Phase::Shutdown) {
            c.die(cause);
        }
    }

    /// A reply of the wrong kind: the helper is lying; kill it.
    pub(crate) fn wrong_reply(&self, conn: &Connection, stage: Stage, got: &Message) -> Error {
        let detail = format!("{} answered with {}", stage, got.tag().name());
        conn.die(DeathCause::ProtocolViolation {
            request_id: None,
            detail: detail.clone(),
        });
        Error::ProtocolViolation { stage, detail }
    }

    /// Waits for a free request slot until `deadline` (back-pressure).
    pub(crate) async fn permit(
        &self,
        deadline: Instant,
        budget: Duration,
    ) -> Result<OwnedSemaphorePermit, Error> {
        let wait = tokio::time::timeout_at(deadline.into(), self.queue.clone().acquire_owned());
        match wait.await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::Timeout {
                stage: Stage::Queue,
                after: budget,
            }),
        }
    }

    /// Enters the request lane: shared normally, exclusive for a suspect's retry.
    pub(crate) async fn lane(
        &self,
        exclusive: bool,
        deadline: Instant,
        budget: Duration,
    ) -> Result<LaneGuard, Error> {
        let lane = self.lane.clone();
        let fut = async move {
            if exclusive {
                LaneGuard::Exclusive(lane.write_owned().await)
            } else {
                LaneGuard::Shared(lane.read_owned().await)
            }
        };
        tokio::time::timeout_at(deadline.into(), fut)
            .await
            .map_err(|_| Error::Timeout {
                stage: Stage::Restart,
                after: budget,
            })
    }

    /// The current ready helper, waiting through a restart until `deadline`.
    pub(crate) async fn ready_conn(
        &self,
        deadline: Instant,
        budget: Duration,
    ) -> Result<Arc<Connection>, Error> {
        let mut rx = self.phase.subscribe();
        loop {
            {
                let phase = rx.borrow_and_update();
                match &*phase {
                    Phase::Ready(c) if c.death_cause().is_none() => return Ok(c.clone()),
                    Phase::Ready(_) | Phase::Restarting => {}
                    Phase::Unavailable(r) => {
                        return Err(Error::HelperUnavailable { reason: r.clone() })
                    }
                    Phase::Shutdown => return Err(Error::ShuttingDown),
                }
            }
            // A dead-but-not-yet-replaced helper: poll briefly as well as on change.
            let tick = tokio::time::sleep(Duration::from_millis(5));
            match tokio::time::timeout_at(deadline.into(), async {
                tokio::select! { r = rx.changed() => r.is_ok(), _ = tick => true }
            })
            .await
            {
                Ok(true) => continue,
                Ok(false) => return Err(Error::ShuttingDown),
                Err(_) => {
                    return Err(Error::Timeout {
                        stage: Stage::Restart,
                        after: budget,
                    })
                }
            }
        }
    }

    /// Maps every region of the arena in the helper (once per region and helper).
    pub(crate) async fn ensure_attached(
        &self,
        conn: &Connection,
        deadline: Instant,
    ) -> Result<(), Attempt> {
        let regions = self.arena.regions();
        if lock(&conn.attached).len() == regions.len() {
            return Ok(());
        }
        let _serial = conn.attach_lock.lock().await;
        for r in regions {
            if lock(&conn.attached).contains(&r.id) {
                continue;
            }
            let msg = Message::AttachRegion(AttachRegion {
                region: r.id,
                name: r.name,
                size: r.len,
            });
            let deadline = deadline.min(Instant::now() + self.cfg.deadlines.control);
            match conn
                .call(self.next_id(), Stage::AttachRegion, msg, deadline, vec![])
                .await
                .0
            {
                Ok(Message::RegionAttached(a)) if a.region == r.id => {
                    lock(&conn.attached).insert(r.id);
                }
                Ok(Message::Error(e)) => {
                    return Err(Attempt::Fatal(Error::Helper {
                        stage: Stage::AttachRegion,
                        code: e.code,
                        message: e.message,
                    }))
                }
                Ok(other) => {
                    return Err(Attempt::Fatal(self.wrong_reply(
                        conn,
                        Stage::AttachRegion,
                        &other,
                    )))
                }
                Err(n) => return Err(Attempt::Died(n)),
            }
        }
        Ok(())
    }

    /// Loads a registered model on `conn` if it is not there yet.
    pub(crate) async fn ensure_model(
        &self,
        conn: &Connection,
        model: &ModelInfo,
        deadline: Instant,
    ) -> Result<(), Attempt> {
        if lock(&conn.models).contains(&model.id.0) {
            return Ok(());
        }
        let msg = Message::Load(Load {
            model_id: model.id.0,
            bundle_path: model.bundle_path.clone(),
            compute_units: model.compute_units,
        });
        match conn
            .call(self.next_id(), Stage::Load, msg, deadline, vec![])
            .await
            .0
        {
            Ok(Message::Loaded(l)) if l.model_id == model.id.0 => {
                lock(&conn.models).insert(model.id.0);
                Ok(())
            }
            Ok(Message::Error(e)) => Err(Attempt::Fatal(Error::Helper {
                stage: Stage::Load,
                code: e.code,
                message: e.message,
            })),
            Ok(other) => Err(Attempt::Fatal(self.wrong_reply(conn, Stage::Load, &other))),
            Err(n) => Err(Attempt::Died(n)),
        }
    }

    /// Runs a request without tensors: queue, ready helper, call, one retry on a new
    /// helper unless this request caused the death.
    async fn request(
        &self,
        stage: Stage,
        msg: Message,
        budget: Option<Duration>,
    ) -> Result<(Message, Arc<Connection>), Error> {
        let budget = budget.unwrap_or(self.cfg.deadlines.for_stage(stage));
        let deadline = Instant::now() + budget;
        let _permit = self.permit(deadline, budget).await?;
        let mut retried = false;
        let result = loop {
            let _lane = match self.lane(retried, deadline, budget).await {
                Ok(g) => g,
                Err(e) => break Err(e),
            };
            let conn = match self.ready_conn(deadline, budget).await {
                Ok(c) => c,
                Err(e) => break Err(e),
            };
            match conn
                .call(self.next_id(), stage, msg.clone(), deadline, vec![])
                .await
                .0
            {
                Ok(Message::Error(e)) => {
                    break Err(Error::Helper {
                        stage,
                        code: e.code,
                        message: e.message,
                    })
                }
                Ok(m) => break Ok((m, conn)),
                Err(n) if n.culprit || retried || n.cause == DeathCause::Shutdown => {
                    break Err(n.cause.to_error(stage))
                }
                Err(_) => {
                    retried = true;
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        self.count(&result);
        result
    }

    pub(crate) fn count<T>(&self, r: &Result<T, Error>) {
        let c = if r.is_ok() {
            &self.counters.completed
        } else {
            &self.counters.failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Spawns the next helper generation, attaches the arena and reloads every
    /// registered model before it is offered to requests.
    async fn bring_up(&self) -> Result<Arc<Connection>, HandshakeError> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Connection::spawn(&self.cfg, generation, self.high_water.clone()).await?;
        let setup = async {
            let deadline = Instant::now() + self.cfg.deadlines.control;
            self.ensure_attached(&conn, deadline).await?;
            let models: Vec<ModelInfo> = lock(&self.models).values().cloned().collect();
            for m in &models {
                let deadline = Instant::now() + self.cfg.deadlines.load;
                match self.ensure_model(&conn, m, deadline).await {
                    Err(Attempt::Fatal(e)) => {
                        tracing::warn!(model = m.id.0, error = %e, "reload failed")
                    }
                    other => other?,
                }
            }
            Ok::<usize, Attempt>(models.len())
        };
        match setup.await {
            Ok(reloaded) => {
                let mut sandbox = conn.process.sandbox().clone();
                sandbox.helper_self_sandboxed = Some(conn.hello.sandboxed);
                self.emit(Event::HelperStarted {
                    generation,
                    pid: conn.process.pid(),
                    sandbox,
                    hello: Box::new(conn.hello.clone()),
                    models_reloaded: reloaded,
                });
                Ok(conn)
            }
            Err(a) => {
                let e = match a {
                    Attempt::Fatal(e) => e,
                    Attempt::Died(n) => n.cause.to_error(Stage::Load),
                };
                conn.die(DeathCause::Crashed {
                    detail: format!("setup failed: {e}"),
                });
                Err(HandshakeError::Setup(Box::new(e)))
            }
        }
    }
}

/// Watches the current helper; on death, restarts with backoff within the budget.
async fn manage(inner: Arc<Inner>, mut conn: Arc<Connection>) {
    let mut tracker = RestartTracker::new(inner.cfg.restart);
    loop {
        let cause = conn.died().await;
        inner.set_phase(Phase::Restarting);
        inner.emit(Event::HelperDied {
            generation: conn.generation,
            pid: conn.process.pid(),
            cause: cause.clone(),
        });
        // The next helper starts only after this one is reaped, so slots the dead
        // one referenced are free to reuse.
        conn.process.wait().await;
        let mut last = cause.to_string();
        loop {
            let Some(delay) = tracker.next_delay(Instant::now()) else {
                let reason = format!(
                    "restart budget spent ({} in {:?}); last failure: {last}",
                    inner.cfg.restart.max_restarts, inner.cfg.restart.window
                );
                inner.emit(Event::Unavailable {
                    reason: reason.clone(),
                });
                inner.set_phase(Phase::Unavailable(reason));
                return;
            };
            inner.emit(Event::Restarting {
                delay,
                recent_restarts: tracker.recent(),
            });
            tokio::time::sleep(delay).await;
            inner.counters.restarts.fetch_add(1, Ordering::Relaxed);
            match inner.bring_up().await {
                Ok(c) => {
                    conn = c;
                    inner.set_phase(Phase::Ready(conn.clone()));
                    break;
                }
                Err(e) => {
                    last = e.to_string();
                    inner.emit(Event::RestartFailed {
                        error: last.clone(),
                    });
                }
            }
        }
    }
}
