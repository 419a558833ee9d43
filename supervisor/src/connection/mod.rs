//! One helper generation: the process, the socket, requests in flight matched by
//! request id, and the single place where a helper is declared dead ([`Connection::die`]).
//!
//! ```text
//! let conn = Connection::spawn(&config, generation, high_water, fast_lane).await?; // spawn + Hello
//! let (reply, _) = conn.call(id, Stage::Ping, ping, deadline, vec![], spin).await;
//! // a missed deadline, EOF, a bad frame or the memory watcher calls conn.die(cause):
//! // the group is SIGKILLed and every request in flight gets the cause.
//! ```

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coreml_ipc_schema::{
    read_frame_async, Envelope, FrameError, Hello, Message, MAX_FRAME_LEN, UNSOLICITED,
};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::SupervisorConfig;
use crate::connection::inbox::Inbox;
use crate::connection::outbox::Outbox;
use crate::connection::watchers::{exit_watch, memory_watch, read_loop, write_loop};
use crate::error::{DeathCause, HandshakeError};
use crate::process::spawn::HelperProcess;
use crate::shm::arena::Slot;
use crate::shm::held::Held;

mod call;
pub(crate) mod inbox;
pub(crate) mod outbox;
pub(crate) mod watchers;

/// How a request on a connection ended without a reply.
#[derive(Debug, Clone)]
pub(crate) struct DeathNotice {
    pub cause: DeathCause,
    /// This request is the one the death is attributed to.
    pub culprit: bool,
}

type Reply = Result<Message, DeathNotice>;

struct Pending {
    tx: Option<oneshot::Sender<Reply>>,
    /// Slots of an abandoned (cancelled) request, held until the helper is done.
    orphan: Vec<Slot>,
}

/// Replies taken by a spinning caller (hits) and spins that ran out (misses),
/// over every helper generation.
#[derive(Debug, Default)]
pub(crate) struct FastLaneCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// A live (or dying) helper and its socket.
pub(crate) struct Connection {
    pub generation: u64,
    pub process: HelperProcess,
    pub hello: Hello,
    outbox: Arc<Outbox>,
    pub(crate) inbox: Inbox,
    fast_lane: Arc<FastLaneCounters>,
    pending: Mutex<HashMap<u64, Pending>>,
    death: watch::Sender<Option<DeathCause>>,
    held: Mutex<Held>,
    pub attached: Mutex<HashSet<u32>>,
    pub attach_lock: tokio::sync::Mutex<()>,
    pub models: Mutex<HashSet<u64>>,
    pub rss: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Describes an exit status for error messages.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!(
            "killed by signal {s}{}",
            if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        ),
        _ => format!("ended ({status})"),
    }
}

async fn first_frame(reader: &mut OwnedReadHalf) -> Result<Hello, HandshakeError> {
    match read_frame_async(reader, MAX_FRAME_LEN).await {
        Ok(Some(body)) => match Envelope::decode(&body) {
            Ok(Envelope {
                request_id: UNSOLICITED,
                message: Message::Hello(h),
            }) => Ok(h),
            Ok(other) => Err(HandshakeError::Garbage(format!(
                "expected Hello, got {:?}",
                other.message.tag()
            ))),
            Err(e) => Err(HandshakeError::Garbage(e.to_string())),
        },
        Ok(None) => Err(HandshakeError::Closed("end of stream".into())),
        Err(FrameError::Io(e)) => Err(HandshakeError::Closed(e.to_string())),
        Err(e) => Err(HandshakeError::Frame(e)),
    }
}

impl Connection {
    /// Spawns a helper, waits for its `Hello` (deadline, version check) and starts
    /// the reader, writer, exit and memory watchers.
    pub(crate) async fn spawn(
        cfg: &SupervisorConfig,
        generation: u64,
        high_water: Arc<AtomicU64>,
        fast_lane: Arc<FastLaneCounters>,
    ) -> Result<Arc<Connection>, HandshakeError> {
        let (process, sock) = HelperProcess::spawn(&cfg.helper, &cfg.sandbox)?;
        sock.set_nonblocking(true)
            .map_err(|e| HandshakeError::Closed(e.to_string()))?;
        let sock = UnixStream::from_std(sock).map_err(|e| HandshakeError::Closed(e.to_string()))?;
        let (mut reader, writer) = sock.into_split();
        let hello = match tokio::time::timeout(cfg.deadlines.handshake, first_frame(&mut reader))
            .await
        {
            Ok(Ok(h)) => h,
            Ok(Err(HandshakeError::Closed(why))) => {
                // Prefer the exit status when the helper died.
                let status = tokio::time::timeout(Duration::from_millis(500), process.wait()).await;
                return Err(HandshakeError::Closed(
                    status.map(describe_exit).unwrap_or(why),
                ));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(HandshakeError::Timeout(cfg.deadlines.handshake)),
        };
        hello.negotiate()?;
        cfg.sandbox
            .check_hello(hello.sandboxed)
            .map_err(crate::process::spawn::SpawnError::from)?;
        let mut report = process.sandbox().clone();
        report.helper_self_sandboxed = Some(hello.sandboxed);
        tracing::info!(generation, pid = process.pid(), engine = %hello.engine, sandbox = %report, "helper ready");

        let outbox = Outbox::new(writer);
        let (death, _) = watch::channel(None);
        let conn = Arc::new(Connection {
            generation,
            process,
            hello,
            outbox: outbox.clone(),
            inbox: Inbox::new(reader),
            fast_lane,
            pending: Mutex::new(HashMap::new()),
            death,
            held: Mutex::new(Held::default()),
            attached: Mutex::new(HashSet::new()),
            attach_lock: tokio::sync::Mutex::new(()),
            models: Mutex::new(HashSet::new()),
            rss: AtomicU64::new(0),
            writer: Mutex::new(None),
        });
        *lock(&conn.writer) = Some(tokio::spawn(write_loop(Arc::downgrade(&conn), outbox)));
        tokio::spawn(read_loop(conn.clone()));
        tokio::spawn(exit_watch(conn.clone()));
        if let Some(limit) = cfg.memory_limit {
            let weak = Arc::downgrade(&conn);
            let (poll, pid) = (cfg.memory_poll, conn.process.pid());
            let _ = std::thread::Builder::new()
                .name(format!("coreml-mem-{pid}"))
                .spawn(move || memory_watch(weak, pid, limit, poll, high_water));
        }
        Ok(conn)
    }

    /// The cause of death, if dead.
    pub(crate) fn death_cause(&self) -> Option<DeathCause> {
        self.death.borrow().clone()
    }

    /// Waits until the connection is dead.
    pub(crate) async fn died(&self) -> DeathCause {
        let mut rx = self.death.subscribe();
        let cause = match rx.wait_for(Option::is_some).await {
            Ok(c) => c.clone().expect("checked is_some"),
            Err(_) => DeathCause::Shutdown,
        };
        cause
    }

    /// Declares the helper dead (first cause wins): SIGKILL to its group, every
    /// request in flight fails with the cause.
    pub(crate) fn die(&self, cause: DeathCause) {
        // A crash that is the kernel's OOM kill at the hard limit (the helper's
        // memory cgroup) is a memory-limit death, whichever watcher saw it first.
        let cause = match (&cause, self.process.hard_limit_hit()) {
            (DeathCause::Crashed { .. }, Some((peak, limit))) => {
                DeathCause::MemoryLimit { rss: peak, limit }
            }
            _ => cause,
        };
        let first = self.death.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(cause.clone());
                true
            } else {
                false
            }
        });
        if !first {
            return;
        }
        tracing::warn!(generation = self.generation, pid = self.process.pid(), %cause, "helper dead");
        self.process.kill();
        if let Some(w) = lock(&self.writer).take() {
            w.abort();
        }
        let drained: Vec<(u64, Pending)> = lock(&self.pending).drain().collect();
        let culprit = cause.request_id().or(if drained.len() == 1 {
            Some(drained[0].0)
        } else {
            None
        });
        let mut orphans = Vec::new();
        for (id, p) in drained {
            if let Some(tx) = p.tx {
                let _ = tx.send(Err(DeathNotice {
                    cause: cause.clone(),
                    culprit: Some(id) == culprit,
                }));
            }
            orphans.extend(p.orphan);
        }
        self.quarantine(orphans);
    }

    /// Keeps slots until the helper is reaped (drops them at once if it is).
    pub(crate) fn quarantine(&self, slots: Vec<Slot>) {
        lock(&self.held).quarantine(slots);
    }

    /// Hands over the input slots of a prediction the helper still references.
    pub(crate) fn retain_inputs(&self, id: u64, slots: Vec<Slot>) {
        lock(&self.held).retain(id, slots);
    }

    /// The helper is gone: every slot it held is free again.
    pub(crate) fn helper_reaped(&self) {
        lock(&self.held).reaped();
    }

    pub(crate) fn dispatch(&self, env: Envelope) {
        let id = env.request_id;
        match env.message {
            Message::InputsReleased(_) => {
                if !lock(&self.held).release(id) {
                    self.die(DeathCause::ProtocolViolation {
                        request_id: None,
                        detail: format!("InputsReleased for request {id}, which holds no inputs"),
                    });
                }
                return;
            }
            Message::Error(e) if id == UNSOLICITED => {
                tracing::warn!(code = %e.code, message = %e.message, "helper could not attribute an error");
                return;
            }
            Message::Hello(_) => {
                return self.die(DeathCause::ProtocolViolation {
                    request_id: None,
                    detail: "second Hello".into(),
                });
            }
            _ => {}
        }
        let Some(p) = lock(&self.pending).remove(&id) else {
            let detail = format!(
                "{} for request id {id}, which is not in flight",
                env.message.tag().name()
            );
            return self.die(DeathCause::ProtocolViolation {
                request_id: None,
                detail,
            });
        };
        match p.tx {
            Some(tx) => {
                if matches!(&env.message, Message::Predicted(pr) if pr.inputs_retained) {
                    lock(&self.held).answered_retained(id);
                }
                let _ = tx.send(Ok(env.message));
            }
            None => match env.message {
                Message::Predicted(pr) if pr.inputs_retained => self.retain_inputs(id, p.orphan),
                _ => drop(p.orphan),
            },
        }
    }
}
