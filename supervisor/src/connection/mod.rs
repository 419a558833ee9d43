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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coreml_ipc_schema::{
    encode_frame, read_frame_async, Envelope, ErrorCode, ErrorReply, FrameError, Hello, Message,
    Welcome, MAX_FRAME_LEN, PROTOCOL_MAJOR, PROTOCOL_MINOR, UNSOLICITED,
};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::SupervisorConfig;
use crate::connection::inbox::Inbox;
use crate::connection::outbox::Outbox;
use crate::connection::watchers::{
    deadline_keeper, exit_watch, memory_watch, read_loop, write_loop,
};
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

/// A request whose caller went away: its deadline is still kept (see
/// [`watchers::deadline_keeper`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abandoned {
    pub id: u64,
    pub stage: crate::error::Stage,
    pub deadline: std::time::Instant,
    pub budget: Duration,
}

/// Request ids the connection issues itself (the `Unload` of a late `Loaded`),
/// apart from the supervisor's.
const INTERNAL_IDS: u64 = 1 << 62;

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
    /// Deadlines of abandoned requests, kept by the deadline keeper task.
    keeper: tokio::sync::mpsc::UnboundedSender<Abandoned>,
    next_internal: AtomicU64,
    /// The budget of the connection's own small requests.
    control_budget: Duration,
    /// Set when the reader task ended (end of stream: every holder of the
    /// helper's end of the socket is gone, or we shut ours down).
    reader_done: watch::Sender<bool>,
    /// The generation could not be reaped in time and was abandoned.
    abandoned: std::sync::atomic::AtomicBool,
    /// Slots kept out of use for good (shared by every generation).
    graveyard: Arc<Mutex<Vec<Slot>>>,
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
        graveyard: Arc<Mutex<Vec<Slot>>>,
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
        if let Err(e) = hello.negotiate() {
            // Tell the helper why before it is stopped (best effort: it may be gone).
            let reply = Envelope::new(
                UNSOLICITED,
                Message::Error(ErrorReply {
                    code: ErrorCode::INCOMPATIBLE_VERSION,
                    message: e.to_string(),
                }),
            );
            if let Ok(frame) = encode_frame(&reply) {
                let _ = writer.try_write(&frame);
            }
            return Err(e.into());
        }
        cfg.sandbox
            .check_hello(hello.sandboxed)
            .map_err(crate::process::spawn::SpawnError::from)?;
        let mut report = process.sandbox().clone();
        report.helper_self_sandboxed = Some(hello.sandboxed);
        tracing::info!(generation, pid = process.pid(), engine = %hello.engine, sandbox = %report, "helper ready");

        let outbox = Outbox::new(writer);
        // The supervisor's version, before any request (docs/protocol.md, section 7).
        let welcome = Envelope::new(
            UNSOLICITED,
            Message::Welcome(Welcome {
                protocol_major: PROTOCOL_MAJOR,
                protocol_minor: PROTOCOL_MINOR,
                supervisor_version: env!("CARGO_PKG_VERSION").into(),
            }),
        );
        let sent = encode_frame(&welcome).map_err(|e| HandshakeError::Garbage(e.to_string()));
        outbox
            .send(sent?)
            .map_err(|e| HandshakeError::Closed(e.to_string()))?;
        let (death, _) = watch::channel(None);
        let (keeper, abandoned) = tokio::sync::mpsc::unbounded_channel();
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
            keeper,
            next_internal: AtomicU64::new(INTERNAL_IDS),
            control_budget: cfg.deadlines.control,
            reader_done: watch::channel(false).0,
            abandoned: std::sync::atomic::AtomicBool::new(false),
            graveyard,
        });
        tokio::spawn(deadline_keeper(
            Arc::downgrade(&conn),
            conn.death.subscribe(),
            abandoned,
        ));
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
        if self.abandoned.load(Ordering::Acquire) {
            return lock(&self.graveyard).extend(slots);
        }
        lock(&self.held).quarantine(slots);
    }

    /// Hands over the input slots of a prediction the helper still references.
    pub(crate) fn retain_inputs(&self, id: u64, slots: Vec<Slot>) {
        if self.abandoned.load(Ordering::Acquire) {
            return lock(&self.graveyard).extend(slots);
        }
        lock(&self.held).retain(id, slots);
    }

    /// The helper is gone: every slot it held is free again.
    pub(crate) fn helper_reaped(&self) {
        lock(&self.held).reaped();
    }

    /// The reader task ended.
    pub(crate) fn reader_ended(&self) {
        self.reader_done.send_replace(true);
    }

    /// Waits until the reader task has ended.
    pub(crate) async fn reader_closed(&self) {
        let _ = self.reader_done.subscribe().wait_for(|d| *d).await;
    }

    /// Waits until the helper is reaped and every holder of its socket is gone:
    /// nothing of this generation can touch our shared memory any more.
    pub(crate) async fn gone(&self) {
        self.process.wait().await;
        self.reader_closed().await;
    }

    /// Gives up on a dead generation that could not be reaped within the grace:
    /// closes our end of the socket (so the reader ends and the connection is
    /// freed) and keeps every slot it may still reference out of use for good.
    pub(crate) fn abandon_generation(&self) {
        if self.abandoned.swap(true, Ordering::AcqRel) {
            return;
        }
        let reaped = self.process.try_status().is_some();
        tracing::error!(
            generation = self.generation,
            pid = self.process.pid(),
            reaped,
            "helper generation not gone within the reap grace (a process still holds its socket, or it cannot be reaped): abandoning it, its slots stay out of use"
        );
        let slots = lock(&self.held).abandon();
        lock(&self.graveyard).extend(slots);
        let _ = crate::sys::shutdown_socket(self.inbox.fd());
        self.process.detach_stderr();
    }

    /// A `Loaded` came for a load whose caller went away: nobody will use the
    /// model, so it is unloaded at once (its reply is dropped like any answer to
    /// an abandoned request).
    fn unload_orphan(&self, model_id: u64) {
        let id = self.next_internal.fetch_add(1, Ordering::Relaxed);
        let msg = Message::Unload(coreml_ipc_schema::Unload { model_id });
        let frame = match coreml_ipc_schema::encode_frame(&Envelope::new(id, msg)) {
            Ok(f) => f,
            Err(_) => return,
        };
        let deadline = std::time::Instant::now() + self.control_budget;
        {
            let mut pending = lock(&self.pending);
            if self.death_cause().is_some() {
                return;
            }
            pending.insert(
                id,
                Pending {
                    tx: None,
                    orphan: Vec::new(),
                },
            );
        }
        tracing::info!(
            generation = self.generation,
            model_id,
            "unloading a model whose load was cancelled"
        );
        self.keep_deadline(Abandoned {
            id,
            stage: crate::error::Stage::Unload,
            deadline,
            budget: self.control_budget,
        });
        if let Err(e) = self.outbox.send(frame) {
            self.die(DeathCause::Crashed {
                detail: format!("socket write failed: {e}"),
            });
        }
    }

    /// Hands an abandoned request's deadline to the keeper.
    pub(crate) fn keep_deadline(&self, a: Abandoned) {
        let _ = self.keeper.send(a);
    }

    /// Whether request `id` still waits for its reply.
    pub(crate) fn in_flight(&self, id: u64) -> bool {
        lock(&self.pending).contains_key(&id)
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
                Message::Loaded(l) => {
                    drop(p.orphan);
                    self.unload_orphan(l.model_id);
                }
                _ => drop(p.orphan),
            },
        }
    }
}
