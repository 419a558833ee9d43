//! The tasks around one helper connection: the writer (drains the outbox), the
//! reader (dispatches replies, detects EOF and bad frames), the exit watcher (turns
//! the helper's exit into a death and frees what it held), and the memory watcher
//! thread (RSS over the limit is a death).
//!
//! ```text
//! tokio::spawn(read_loop(conn.clone(), reader));   // EOF / bad frame -> conn.die(..)
//! tokio::spawn(exit_watch(conn.clone()));          // exit -> conn.die(Crashed), release slots
//! std::thread::spawn(move || memory_watch(weak, pid, limit, poll, high_water));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::connection::inbox::Pumped;
use crate::connection::outbox::Outbox;
use crate::connection::{describe_exit, Connection};
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

pub(crate) async fn exit_watch(conn: Arc<Connection>) {
    let status = conn.process.wait().await;
    conn.die(DeathCause::Crashed {
        detail: describe_exit(status),
    });
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
