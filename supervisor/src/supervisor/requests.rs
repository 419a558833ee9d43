//! Shared supervisor state and the request machinery: the bounded queue, the
//! request lane, waiting for a ready helper, region attachment, lazy model loads,
//! and the generic request with its one retry on a restarted helper.
//!
//! ```text
//! let (reply, conn) = inner.request(Stage::Stats, Message::GetStats(GetStats {}), None).await?;
//! // queue permit -> lane (shared; exclusive for a suspect's retry) -> ready helper
//! // -> call -> on a death it did not cause: one retry on the next helper
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coreml_ipc_schema::{AttachRegion, Load, Message};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::config::SupervisorConfig;
use crate::connection::{Connection, DeathNotice, FastLaneCounters};
use crate::error::{DeathCause, Error, Stage};
use crate::events::Event;
use crate::shm::arena::Arena;
use crate::supervisor::{ModelId, ModelInfo};

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    pub next_id: AtomicU64,
    pub next_model: AtomicU64,
    pub generation: AtomicU64,
    pub models: Mutex<HashMap<ModelId, ModelInfo>>,
    pub queue: Arc<Semaphore>,
    /// Requests take it shared; a request retried after a death nobody could be
    /// blamed for takes it exclusively, so it runs alone and, if it kills the
    /// helper again, is known to be the culprit.
    pub lane: Arc<tokio::sync::RwLock<()>>,
    pub events: broadcast::Sender<Event>,
    pub counters: Counters,
    pub high_water: Arc<AtomicU64>,
    pub fast_lane: Arc<FastLaneCounters>,
    /// Per model: a moving average of the time the helper reports for a
    /// prediction (µs), which decides whether its callers spin for the reply.
    pub helper_time: Mutex<HashMap<u64, u64>>,
    pub manager: Mutex<Option<JoinHandle<()>>>,
    /// Models whose reload failed, with why and on which generation.
    pub failed: Mutex<HashMap<ModelId, ModelFailure>>,
    /// Serialises loads of registered models outside a bring-up.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Slots of abandoned generations, kept out of use for good.
    pub graveyard: Arc<Mutex<Vec<crate::shm::arena::Slot>>>,
}

/// Why a registered model is not loaded on the current helper.
#[derive(Debug, Clone)]
pub(crate) struct ModelFailure {
    pub reason: String,
    /// The generation whose bring-up (or load) failed it.
    pub generation: u64,
}

impl Inner {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The fast-lane budget of a request without tensors: small control requests
    /// spin, compile and load (seconds to minutes) never do.
    pub(crate) fn control_spin(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Ping | Stage::Stats | Stage::Unload | Stage::AttachRegion => self.cfg.reply_spin,
            _ => Duration::ZERO,
        }
    }

    /// The fast-lane budget of a prediction: spin only for models whose
    /// helper-side time has stayed under the budget (unknown models get one try).
    pub(crate) fn predict_spin(&self, model: u64) -> Duration {
        let budget = self.cfg.reply_spin;
        match lock(&self.helper_time).get(&model) {
            Some(&us) if Duration::from_micros(us) >= budget => Duration::ZERO,
            _ => budget,
        }
    }

    /// Folds the helper's reported time of one prediction into the model's average.
    pub(crate) fn observe_helper_time(&self, model: u64, us: u64) {
        // Not for a model unloaded meanwhile: its entry would never be removed.
        if !lock(&self.models).contains_key(&ModelId(model)) {
            return;
        }
        let mut t = lock(&self.helper_time);
        let avg = t.entry(model).or_insert(us);
        // Weight 1/4: a few fast answers bring a model back into the fast lane.
        *avg = avg.saturating_mul(3).saturating_add(us) / 4;
    }

    /// Sets the phase unless the supervisor is shut down.
    pub(crate) fn set_phase(&self, p: Phase) {
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
    pub(crate) fn stop(&self, cause: DeathCause) {
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
                size: r.len,
            });
            let deadline = deadline.min(Instant::now() + self.cfg.deadlines.control);
            // The region's descriptor rides on the frame's first byte (SCM_RIGHTS).
            match conn
                .call_passing(
                    self.next_id(),
                    Stage::AttachRegion,
                    msg,
                    deadline,
                    vec![],
                    self.cfg.reply_spin,
                    Some(r.region),
                )
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

    /// Marks a model failed on `generation` (its predictions get `ModelFailed`).
    pub(crate) fn model_failed(&self, model: &ModelInfo, generation: u64, reason: String) {
        tracing::warn!(model = model.id.0, bundle = %model.bundle_path, generation, %reason, "model failed to load");
        lock(&self.failed).insert(model.id, ModelFailure { reason, generation });
    }

    /// The typed error of a model marked failed, if it is.
    pub(crate) fn failure_of(&self, model: &ModelInfo) -> Option<Error> {
        lock(&self.failed)
            .get(&model.id)
            .map(|f| Error::ModelFailed {
                model: model.id.0,
                bundle_path: model.bundle_path.clone(),
                reason: f.reason.clone(),
            })
    }

    /// Makes sure a registered model is loaded on `conn` before a prediction,
    /// without ever loading it under the prediction's deadline: a model marked
    /// failed answers `ModelFailed` at once; one that is simply missing (it was
    /// registered while the helper restarted) is loaded in the background with
    /// its own load budget, and the caller waits for that until its own deadline
    /// (then `Timeout{Restart}`: the model is still being brought back).
    pub(crate) async fn model_ready(
        self: &Arc<Self>,
        conn: &Arc<Connection>,
        model: &ModelInfo,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(), Attempt> {
        if lock(&conn.models).contains(&model.id.0) {
            return Ok(());
        }
        if let Some(e) = self.failure_of(model) {
            return Err(Attempt::Fatal(e));
        }
        let (inner, c, m) = (self.clone(), conn.clone(), model.clone());
        let load = tokio::spawn(async move {
            let _one = inner.reload_lock.lock().await;
            let r = inner
                .ensure_model(&c, &m, Instant::now() + inner.cfg.deadlines.load)
                .await;
            match &r {
                Err(Attempt::Fatal(e)) => inner.model_failed(&m, c.generation, e.to_string()),
                Err(Attempt::Died(n)) if n.culprit => {
                    inner.model_failed(&m, c.generation, n.cause.to_error(Stage::Load).to_string())
                }
                _ => {}
            }
            r
        });
        match tokio::time::timeout_at(deadline.into(), load).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(Attempt::Fatal(_)))) => Err(Attempt::Fatal(
                self.failure_of(model)
                    .unwrap_or(Error::UnknownModel(model.id.0)),
            )),
            Ok(Ok(Err(Attempt::Died(n)))) if n.culprit => Err(Attempt::Fatal(
                self.failure_of(model)
                    .unwrap_or_else(|| n.cause.to_error(Stage::Load)),
            )),
            Ok(Ok(Err(Attempt::Died(n)))) => Err(Attempt::Died(n)),
            Ok(Err(_)) => Err(Attempt::Fatal(Error::ShuttingDown)),
            Err(_) => Err(Attempt::Fatal(Error::Timeout {
                stage: Stage::Restart,
                after: budget,
            })),
        }
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
            deadline_us: None,
        });
        match conn
            .call(
                self.next_id(),
                Stage::Load,
                msg,
                deadline,
                vec![],
                Duration::ZERO,
            )
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
    pub(crate) async fn request(
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
            // Compile and load can take minutes: they stay out of the lane, so a
            // suspect's exclusive retry never waits behind them (nor they behind it).
            let _lane = if matches!(stage, Stage::Compile | Stage::Load) {
                None
            } else {
                match self.lane(retried, deadline, budget).await {
                    Ok(g) => Some(g),
                    Err(e) => break Err(e),
                }
            };
            let conn = match self.ready_conn(deadline, budget).await {
                Ok(c) => c,
                Err(e) => break Err(e),
            };
            match conn
                .call(
                    self.next_id(),
                    stage,
                    msg.clone(),
                    deadline,
                    vec![],
                    self.control_spin(stage),
                )
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
}
