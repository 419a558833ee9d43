//! One request on a connection: send, the fast lane, the wait until the deadline,
//! and what happens to its slots when the caller gives up.
//!
//! ```text
//! let (reply, slots) = conn.call(id, Stage::Predict, msg, deadline, slots, spin).await;
//! // dropped mid-call: the PendingGuard marks the request abandoned (slots kept,
//! // its deadline handed to the keeper, which kills the helper if it passes)
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use coreml_ipc_schema::{Envelope, Message};
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;

use super::{lock, Abandoned, Connection, DeathNotice, Pending, Reply};
use crate::error::{DeathCause, Stage};
use crate::shm::arena::Slot;
use crate::shm::Region;

impl Connection {
    /// Sends one request and waits for its reply until `deadline`. A missed deadline
    /// kills the helper; the request is the culprit. `slots` are the shared-memory
    /// slots the request names: they come back with the outcome, and if the caller
    /// cancels the call they stay with the connection until the helper is done.
    /// For up to `spin` the caller reads the socket itself instead of sleeping
    /// (see [`Inbox::spin`]).
    pub(crate) async fn call(
        &self,
        id: u64,
        stage: Stage,
        msg: Message,
        deadline: Instant,
        slots: Vec<Slot>,
        spin: Duration,
    ) -> (Result<Message, DeathNotice>, Vec<Slot>) {
        self.call_passing(id, stage, msg, deadline, slots, spin, None)
            .await
    }

    /// As [`Connection::call`], with `region`'s descriptor passed along with the
    /// request's first byte (`AttachRegion`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call_passing(
        &self,
        id: u64,
        stage: Stage,
        msg: Message,
        deadline: Instant,
        slots: Vec<Slot>,
        spin: Duration,
        region: Option<Arc<Region>>,
    ) -> (Result<Message, DeathNotice>, Vec<Slot>) {
        let frame = match coreml_ipc_schema::encode_frame(&Envelope::new(id, msg)) {
            Ok(f) => f,
            Err(e) => {
                let detail = format!("cannot encode request: {e}");
                let cause = DeathCause::ProtocolViolation {
                    request_id: Some(id),
                    detail,
                };
                return (
                    Err(DeathNotice {
                        cause,
                        culprit: true,
                    }),
                    slots,
                );
            }
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if let Some(cause) = self.death_cause() {
                return (
                    Err(DeathNotice {
                        cause,
                        culprit: false,
                    }),
                    slots,
                );
            }
            pending.insert(
                id,
                Pending {
                    tx: Some(tx),
                    orphan: Vec::new(),
                },
            );
        }
        let start = Instant::now();
        let budget = deadline.saturating_duration_since(start);
        let mut guard = PendingGuard {
            conn: self,
            slots,
            armed: true,
            abandoned: Abandoned {
                id,
                stage,
                deadline,
                budget,
            },
        };
        let tdl = tokio::time::Instant::from_std(deadline);
        let outcome = tokio::time::timeout_at(tdl, async {
            let sent = match region {
                Some(r) => self.outbox.send_with_fd(frame, r),
                None => self.outbox.send(frame),
            };
            let written = match sent {
                Ok(w) => w,
                Err(e) => {
                    self.die(DeathCause::Crashed {
                        detail: format!("socket write failed: {e}"),
                    });
                    return None;
                }
            };
            // A queued frame waits for the writer task, which may need this very
            // thread: no reply can come while we spin.
            let spin = if written {
                spin.min(budget)
            } else {
                Duration::ZERO
            };
            let mut rx = rx;
            if let Some(r) = self.spin_for_reply(&mut rx, spin) {
                return r;
            }
            rx.await.ok()
        })
        .await;
        guard.armed = false;
        let slots = std::mem::take(&mut guard.slots);
        let result = match outcome {
            Ok(Some(reply)) => reply,
            Ok(None) => Err(DeathNotice {
                cause: self.death_cause().unwrap_or(DeathCause::Crashed {
                    detail: "connection closed".into(),
                }),
                culprit: false,
            }),
            Err(_) => {
                self.die(DeathCause::Timeout {
                    request_id: id,
                    stage,
                    after: budget,
                });
                let cause = self.death_cause().expect("just died");
                let culprit = cause.request_id() == Some(id);
                Err(DeathNotice { cause, culprit })
            }
        };
        (result, slots)
    }

    /// The fast lane of `call`: `Some(outcome)` when the reply (or the end of the
    /// receiver) came within `spin`, `None` to wait for it the usual way.
    fn spin_for_reply(
        &self,
        rx: &mut oneshot::Receiver<Reply>,
        spin: Duration,
    ) -> Option<Option<Reply>> {
        if spin.is_zero() {
            return None;
        }
        let got = self.inbox.spin(
            spin,
            || match rx.try_recv() {
                Ok(r) => Some(Some(r)),
                Err(TryRecvError::Closed) => Some(None),
                Err(TryRecvError::Empty) => None,
            },
            &|env| self.dispatch(env),
            |cause| self.die(cause),
        );
        let counter = match got {
            Some(Some(_)) => &self.fast_lane.hits,
            _ => &self.fast_lane.misses,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        got
    }

    /// Marks a request abandoned by its caller, keeping `slots` until the helper is
    /// done with them, and its deadline: an abandoned request that passes it kills
    /// the helper just like one whose caller waits.
    pub(crate) fn abandon(&self, a: Abandoned, slots: Vec<Slot>) {
        let id = a.id;
        let mut pending = lock(&self.pending);
        if let Some(p) = pending.get_mut(&id) {
            p.tx = None;
            p.orphan.extend(slots);
            drop(pending);
            self.keep_deadline(a);
            return;
        }
        drop(pending);
        if self.death_cause().is_some() {
            // Failed by a death: the helper may not be reaped yet.
            return self.quarantine(slots);
        }
        // Answered, but the caller went away before reading the reply.
        let mut held = lock(&self.held);
        if held.awaits_handover(id) {
            held.retain(id, slots);
        }
    }
}

/// Turns a cancelled `call` into an abandoned request.
struct PendingGuard<'a> {
    conn: &'a Connection,
    slots: Vec<Slot>,
    armed: bool,
    abandoned: Abandoned,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn
                .abandon(self.abandoned, std::mem::take(&mut self.slots));
        }
    }
}
