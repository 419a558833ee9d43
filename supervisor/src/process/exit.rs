//! What the app's exit owes its helpers: none outlives it, and none leaves its
//! memory cgroup behind.
//!
//! Dropping a [`HelperProcess`](super::spawn::HelperProcess) only kills its
//! group; reaping and removing the cgroup happen on the helper's reaper
//! thread, so a drop never blocks an async runtime. An app that exits
//! (`std::process::exit`, or returning from `main`) can end before those
//! threads finish, or while it still holds handles. So every helper is
//! registered here while it lives, and a hook run by the C library's `exit`
//! kills the groups still running, waits (at most [`EXIT_WAIT`]) for their
//! reapers, and removes every memory cgroup still in use.
//!
//! `cli/tests/error_exits_release.rs` checks it: every error exit of the CLI
//! leaves no helper process and no helper cgroup.

use std::sync::{Arc, Condvar, Mutex, Once, Weak};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
type MemoryCgroup = super::cgroup::MemoryCgroup;
#[cfg(not(target_os = "linux"))]
type MemoryCgroup = ();

#[cfg(target_os = "linux")]
fn kill_all(g: &MemoryCgroup) {
    g.kill_all();
}
#[cfg(target_os = "linux")]
fn remove(g: &MemoryCgroup) {
    g.remove();
}
#[cfg(not(target_os = "linux"))]
fn kill_all(_: &MemoryCgroup) {}
#[cfg(not(target_os = "linux"))]
fn remove(_: &MemoryCgroup) {}

/// How long the exit hook waits for reapers: enough for killed processes to
/// be reaped, bounded for one the kernel cannot reap.
pub const EXIT_WAIT: Duration = Duration::from_secs(1);

struct Live {
    pid: u32,
    reaped: bool,
    cgroup: Weak<MemoryCgroup>,
}

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static REAPED: Condvar = Condvar::new();
static HOOK: Once = Once::new();

fn live() -> std::sync::MutexGuard<'static, Vec<Live>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a spawned helper (its group leader `pid` and its cgroup, if any)
/// and installs the exit hook on first use.
pub(crate) fn register(pid: u32, cgroup: Option<&Arc<MemoryCgroup>>) {
    HOOK.call_once(|| crate::sys::at_exit(on_exit));
    let mut l = live();
    // Entries whose helper is reaped and whose cgroup is gone have nothing left to do.
    l.retain(|h| !h.reaped || h.cgroup.strong_count() > 0);
    l.push(Live {
        pid,
        reaped: false,
        cgroup: cgroup.map_or_else(Weak::new, Arc::downgrade),
    });
}

/// Called by the reaper of `pid` once the helper is reaped.
pub(crate) fn reaped(pid: u32) {
    let mut l = live();
    if let Some(h) = l.iter_mut().find(|h| h.pid == pid && !h.reaped) {
        h.reaped = true;
    }
    drop(l);
    REAPED.notify_all();
}

/// The exit hook. Must not panic (it runs inside the C library's `exit`).
extern "C" fn on_exit() {
    let mut l = live();
    for h in l.iter().filter(|h| !h.reaped) {
        let _ = crate::sys::kill_group(h.pid, libc::SIGKILL);
        if let Some(g) = h.cgroup.upgrade() {
            kill_all(&g);
        }
    }
    let start = Instant::now();
    while l.iter().any(|h| !h.reaped) {
        let left = EXIT_WAIT.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        l = match REAPED.wait_timeout(l, left) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
    // Handles the app still holds keep their cgroups alive: remove those now.
    let groups: Vec<_> = l.iter().filter_map(|h| h.cgroup.upgrade()).collect();
    drop(l);
    for g in groups {
        remove(&g);
    }
}
