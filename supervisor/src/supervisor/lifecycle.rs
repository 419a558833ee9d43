//! Helper lifecycle: bringing up a generation (spawn, handshake, attach every
//! region, reload the registered models one by one, each within its own load
//! budget) and the manager that restarts a dead helper with backoff until the
//! restart budget is spent. A model whose reload fails is marked failed (its
//! predictions get [`Error::ModelFailed`](crate::Error::ModelFailed)); if its
//! reload killed the helper, the next generation comes back without it, and it
//! is tried again on a later one or by `Supervisor::reload`.
//!
//! ```text
//! let conn = inner.bring_up().await?;              // generation n, Ready only after reloads
//! tokio::spawn(manage(inner.clone(), conn));       // death -> reap -> backoff -> bring_up
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::connection::Connection;
use crate::error::{DeathCause, HandshakeError, Stage};
use crate::events::Event;
use crate::restart::RestartTracker;
use crate::supervisor::requests::{lock, Attempt, Inner, Phase};
use crate::supervisor::ModelInfo;

impl Inner {
    /// Spawns the next helper generation, attaches the arena and reloads every
    /// registered model before it is offered to requests.
    pub(crate) async fn bring_up(&self) -> Result<Arc<Connection>, HandshakeError> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Connection::spawn(
            &self.cfg,
            generation,
            self.high_water.clone(),
            self.fast_lane.clone(),
            self.graveyard.clone(),
        )
        .await?;
        let setup = async {
            let deadline = Instant::now() + self.cfg.deadlines.control;
            self.ensure_attached(&conn, deadline).await?;
            let mut models: Vec<ModelInfo> = lock(&self.models).values().cloned().collect();
            models.sort_by_key(|m| m.id);
            let mut reloaded = 0;
            for m in &models {
                // A model that failed the previous bring-up is left out of this
                // one (it would only fail it again); it is retried on a later one.
                let skip = lock(&self.failed)
                    .get(&m.id)
                    .is_some_and(|f| f.generation + 1 >= generation);
                if skip {
                    continue;
                }
                // Each model gets its own load budget.
                let deadline = Instant::now() + self.cfg.deadlines.load;
                match self.ensure_model(&conn, m, deadline).await {
                    Ok(()) => {
                        lock(&self.failed).remove(&m.id);
                        reloaded += 1;
                    }
                    Err(Attempt::Fatal(e)) => self.model_failed(m, generation, e.to_string()),
                    Err(Attempt::Died(n)) => {
                        // The reload killed the helper (crash, hang past its
                        // budget, memory): the model is blamed, the next
                        // generation comes back without it.
                        if n.culprit {
                            let e = n.cause.to_error(Stage::Load);
                            self.model_failed(m, generation, e.to_string());
                        }
                        return Err(Attempt::Died(n));
                    }
                }
            }
            Ok::<usize, Attempt>(reloaded)
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
impl Inner {
    /// Waits, at most the reap grace, until a dead generation is reaped and its
    /// socket closed by everyone; past the grace it is abandoned (see
    /// [`Connection::abandon_generation`]). Returns whether it was gone in time.
    pub(crate) async fn reap(&self, conn: &Connection) -> bool {
        let grace = self.cfg.deadlines.reap;
        if tokio::time::timeout(grace, conn.gone()).await.is_ok() {
            return true;
        }
        conn.abandon_generation();
        false
    }
}

/// Watches the current helper; on death, restarts with backoff within the budget.
pub(crate) async fn manage(inner: Arc<Inner>, mut conn: Arc<Connection>) {
    let mut tracker = RestartTracker::new(inner.cfg.restart);
    loop {
        let cause = conn.died().await;
        inner.set_phase(Phase::Restarting);
        inner.emit(Event::HelperDied {
            generation: conn.generation,
            pid: conn.process.pid(),
            cause: cause.clone(),
        });
        // The next helper starts only after this one is reaped (or, past the
        // grace, abandoned with its slots kept out of use).
        inner.reap(&conn).await;
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
