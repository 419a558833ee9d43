//! The tasks around one helper connection: the writer (drains the outbox), the
//! reader (dispatches replies, detects EOF and bad frames), the exit watcher (turns
//! the helper's exit into a death and frees what it held), and the memory watcher
//! thread (RSS over the limit is a death).
//!
//! ```text
//! tokio::spawn(read_loop(conn.clone(), reader));   // EOF / bad frame -> conn.die(..)
//! tokio::spawn(exit_watch(conn.clone()));          // exit -> conn.die(Crashed); reaped and socket closed -> release slots
//! tokio::spawn(deadline_keeper(weak, death, rx));  // abandoned request past its deadline -> conn.die(Timeout)
//! std::thread::spawn(move || memory_watch(weak, pid, limit, poll, high_water));
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::connection::inbox::Pumped;
use crate::connection::outbox::Outbox;
use crate::connection::{describe_exit, Abandoned, Connection};
use crate::error::DeathCause;
use crate::process::memwatch::MemoryWatcher;

pub(crate) async fn write_loop(conn: Weak<Connection>, outbox: Arc<Outbox>) {
    let e = outbox.run().await;
    if let Some(c) = conn.upgrade() {
        c.die(DeathCause::Crashed {
            detail: format!("socket write failed: {e}"),
        });
    }
}

pub(crate) async fn read_loop(conn: Arc<Connection>) {
    struct Ended<'a>(&'a Connection);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.reader_ended();
        }
    }
    let _ended = Ended(&conn);
    loop {
        let eof = match conn.inbox.readable().await {
            Err(_) => true,
            Ok(()) => match conn.inbox.pump(&|env| conn.dispatch(env)) {
                Pumped::Drained => false,
                // Let other tasks run before reading on.
                Pumped::Busy => {
                    tokio::task::yield_now().await;
                    false
                }
                Pumped::Eof => true,
                Pumped::Broken(cause) => return conn.die(cause),
            },
        };
        if !eof {
            continue;
        }
        if conn.death_cause().is_some() {
            return;
        }
        // EOF: prefer the exit status if the helper is dying anyway.
        let status = tokio::time::timeout(Duration::from_millis(200), conn.process.wait()).await;
        let detail = match status {
            Ok(s) => describe_exit(s),
            Err(_) => "closed its socket while still running".into(),
        };
        return conn.die(DeathCause::Crashed { detail });
    }
}

/// The helper's exit is a death; its slots are free once it is reaped *and* its
/// socket is closed by everyone (a child it forked out of its group may still
/// map our shared memory: then the generation is abandoned, see
/// [`Connection::abandon_generation`], and nothing is freed).
pub(crate) async fn exit_watch(conn: Arc<Connection>) {
    let status = conn.process.wait().await;
    conn.die(DeathCause::Crashed {
        detail: describe_exit(status),
    });
    conn.reader_closed().await;
    conn.helper_reaped();
}

pub(crate) fn memory_watch(
    conn: Weak<Connection>,
    pid: u32,
    limit: u64,
    poll: Duration,
    high_water: Arc<AtomicU64>,
) {
    let mut watcher = MemoryWatcher::new();
    loop {
        std::thread::sleep(poll);
        let Some(c) = conn.upgrade() else { return };
        if c.death_cause().is_some() {
            return;
        }
        let rss = watcher.sample(pid);
        c.rss.store(rss, Ordering::Relaxed);
        high_water.fetch_max(rss, Ordering::Relaxed);
        if rss > limit {
            c.die(DeathCause::MemoryLimit { rss, limit });
            return;
        }
    }
}

/// Keeps the deadlines of requests whose callers went away: one that is still in
/// flight when its deadline passes kills the helper exactly as if its caller had
/// waited (the request is the culprit). Ends with the connection.
pub(crate) async fn deadline_keeper(
    conn: Weak<Connection>,
    mut death: watch::Receiver<Option<DeathCause>>,
    mut abandoned: mpsc::UnboundedReceiver<Abandoned>,
) {
    let mut timers: BTreeMap<(Instant, u64), Abandoned> = BTreeMap::new();
    loop {
        let next = timers.keys().next().copied();
        let sleep = async {
            match next {
                Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            a = abandoned.recv() => match a {
                Some(a) => { timers.insert((a.deadline, a.id), a); }
                None => return,
            },
            _ = death.wait_for(Option::is_some) => return,
            _ = sleep => {
                let Some((_, a)) = timers.pop_first() else { continue };
                let Some(c) = conn.upgrade() else { return };
                if c.in_flight(a.id) {
                    tracing::warn!(generation = c.generation, request_id = a.id, stage = %a.stage,
                        "a request whose caller went away passed its deadline");
                    c.die(DeathCause::Timeout { request_id: a.id, stage: a.stage, after: a.budget });
                }
            }
        }
    }
}
