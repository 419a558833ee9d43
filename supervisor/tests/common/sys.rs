//! The test harness's only raw system calls.

use std::os::fd::{AsRawFd, BorrowedFd};

/// Clears close-on-exec on `fd`, as a careless library in the app might leave a
/// descriptor: without the sandbox's `close_range` the helper would inherit it.
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: fcntl with F_SETFD and an integer flag on a descriptor the caller
    // borrows for the duration of the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
