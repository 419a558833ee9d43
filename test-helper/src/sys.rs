//! Every raw system call of the test helper, each `unsafe` block with its `// SAFETY:`.
//!
//! ```text
//! let map = sys::Mapping::open("/cmlb-1-0000abcd-0", 65536)?; // shm_open + mmap
//! map.read(0, &mut buf); map.write(0, &buf);
//! ```

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;

/// A shared mapping of a region the supervisor created.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all access is through bounds-checked copies.
unsafe impl Send for Mapping {}
// SAFETY: see Send; `&Mapping` only allows copies through raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Opens `name` read-write and maps `len` bytes.
    pub fn open(name: &str, len: usize) -> io::Result<Self> {
        let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a valid descriptor we own; fstat writes into a zeroed stat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer.
        let rc = unsafe { libc::fstat(fd, &mut st) };
        if rc != 0 || (st.st_size as u64) < len as u64 {
            // SAFETY: closing the fd we just opened.
            unsafe { libc::close(fd) };
            return Err(io::Error::other("region smaller than announced"));
        }
        // SAFETY: a fresh kernel-chosen shared mapping of a valid fd; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        // SAFETY: the mapping keeps the object alive; the fd is no longer needed.
        unsafe { libc::close(fd) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(p.cast()).expect("mmap never returns null on success"),
            len,
        })
    }

    /// Region length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Copies `dst.len()` bytes from `offset`. Panics when out of range.
    pub fn read(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset.checked_add(dst.len()).is_some_and(|e| e <= self.len),
            "read outside region"
        );
        // SAFETY: the source range is inside the mapping (checked), `dst` is a distinct slice.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        }
    }

    /// Copies `src` to `offset`. Panics when out of range.
    pub fn write(&self, offset: usize, src: &[u8]) {
        assert!(
            offset.checked_add(src.len()).is_some_and(|e| e <= self.len),
            "write outside region"
        );
        // SAFETY: the destination range is inside the mapping (checked), `src` is distinct.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        }
    }
}

impl Mapping {
    /// Copies `len` bytes from `src_off` of `self` to `dst_off` of `dst` (memmove).
    pub fn copy_to(&self, src_off: usize, dst: &Mapping, dst_off: usize, len: usize) {
        assert!(
            src_off.checked_add(len).is_some_and(|e| e <= self.len),
            "read outside region"
        );
        assert!(
            dst_off.checked_add(len).is_some_and(|e| e <= dst.len),
            "write outside region"
        );
        // SAFETY: both ranges are inside live mappings (checked); `copy` tolerates overlap
        // when source and destination are the same region.
        unsafe {
            std::ptr::copy(
                self.ptr.as_ptr().add(src_off),
                dst.ptr.as_ptr().add(dst_off),
                len,
            )
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the pointer and length mmap returned.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len.max(1)) };
    }
}

/// Takes ownership of an inherited descriptor as a Unix stream.
pub fn stream_from_fd(fd: RawFd) -> io::Result<UnixStream> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl F_GETFD only queries flags, validating that fd is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked) and was handed to us by the parent; nothing else owns it.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
}

/// Raises a signal in this process with its default action (Rust's runtime installs
/// a SIGSEGV handler for stack overflows, which would otherwise swallow a raised one).
pub fn raise(sig: libc::c_int) {
    // SAFETY: restoring the default disposition of a signal; no handler code is involved.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
    // SAFETY: raise takes an integer signal number.
    unsafe { libc::raise(sig) };
}

/// Whether the socket has a byte to read, without taking it or blocking.
pub fn readable_now(fd: RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: `b` is valid for one byte for the whole call; MSG_PEEK leaves the
    // byte in the socket and MSG_DONTWAIT keeps the call from blocking.
    let n = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    // 0 is end of stream: "readable" too (the blocking read then sees it).
    n >= 0
}

/// Shuts the socket down both ways without closing the descriptor.
pub fn shutdown(fd: RawFd) {
    // SAFETY: shutdown on an fd we hold; integer arguments only.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Forks a child that only sleeps forever (holding every inherited fd open).
/// Returns in the parent.
pub fn fork_sleeper() -> io::Result<()> {
    // SAFETY: the child only calls pause() in a loop, which is async-signal-safe,
    // so forking a multi-threaded process is sound.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => loop {
            // SAFETY: pause has no arguments.
            unsafe { libc::pause() };
        },
        _ => Ok(()),
    }
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf takes an integer name.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(4096) as u64
}

// ---- Sandbox escape attempts (`--probe-escapes`, see escape.rs) ----

/// One raw system call with up to six integer arguments; `Ok` is the return value.
/// Only the escape probe uses it, to try calls the sandbox must refuse.
pub fn raw_syscall(nr: libc::c_long, a: [usize; 6]) -> io::Result<i64> {
    // SAFETY: every call made through here passes integers or pointers to live
    // buffers owned by the caller for the duration of the call (see escape.rs).
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Forks a child that starts a new session and sleeps; returns its pid in the parent.
pub fn fork_setsid_sleeper() -> io::Result<libc::pid_t> {
    // SAFETY: the child only calls setsid() and pause() (async-signal-safe).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => loop {
            // SAFETY: setsid and pause take no arguments.
            unsafe {
                libc::setsid();
                libc::pause();
            }
        },
        child => Ok(child),
    }
}

/// Replaces this process with `path` (no arguments); returns only on failure.
pub fn exec(path: &str) -> io::Error {
    let Ok(c) = CString::new(path) else {
        return io::Error::from(io::ErrorKind::InvalidInput);
    };
    let argv = [c.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: `c`, `argv` and `envp` are valid NUL-/NULL-terminated arrays for the call.
    unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Reads a word from the parent's memory with `process_vm_readv`.
pub fn read_parent_memory(pid: libc::pid_t, addr: usize) -> io::Result<isize> {
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` points at `buf`, live for the call; the remote side is only read
    // by the kernel (and fails cleanly if unmapped or forbidden).
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}
