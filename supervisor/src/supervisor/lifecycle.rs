//! Helper lifecycle: bringing up a generation (spawn, handshake, attach every
//! region, reload every registered model) and the manager that restarts a dead
//! helper with backoff until the restart budget is spent.
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
        )
        .await?;
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
