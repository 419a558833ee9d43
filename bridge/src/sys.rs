//! Every raw system call of the bridge, each `unsafe` block with its `// SAFETY:`.
//!
//! Nothing outside this module uses `unsafe`. Today that is advisory file
//! locking (`flock(2)`), which the compiled-model cache uses for its per-key
//! install locks, its entry leases and its staging owners: the kernel drops
//! such a lock when its holder dies, SIGKILL included, so a crashed process
//! never leaves a lock behind.
//!
//! ```
//! use coreml_bridge::sys::{try_lock, Lock};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let a = std::fs::File::create(dir.path().join("l")).unwrap();
//! let b = std::fs::File::open(dir.path().join("l")).unwrap();
//! assert!(try_lock(&a, Lock::Exclusive).unwrap());
//! assert!(!try_lock(&b, Lock::Shared).unwrap(), "held by another open file");
//! drop(a);
//! assert!(try_lock(&b, Lock::Shared).unwrap());
//! ```

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The kind of an advisory lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Many holders at once (readers, leases).
    Shared,
    /// One holder (installer, evictor).
    Exclusive,
}

impl Lock {
    fn op(self) -> libc::c_int {
        match self {
            Lock::Shared => libc::LOCK_SH,
            Lock::Exclusive => libc::LOCK_EX,
        }
    }
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock takes a descriptor the `File` owns for the duration of the call and plain flags.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Takes the lock, waiting for other holders; it is released when `file`
/// (this open file description) is closed.
pub fn lock(file: &File, kind: Lock) -> io::Result<()> {
    flock(file, kind.op())
}

/// Takes the lock if nobody holds a conflicting one: `Ok(false)` when busy.
pub fn try_lock(file: &File, kind: Lock) -> io::Result<bool> {
    match flock(file, kind.op() | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}
