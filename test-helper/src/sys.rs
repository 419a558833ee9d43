//! Every raw system call of the test helper, each `unsafe` block with its `// SAFETY:`.
//!
//! ```text
//! let mut rd = sys::FdReader::new(stream);       // recvmsg: bytes, and descriptors aside
//! let fd = rd.take_fd().unwrap();                 // the one that came with an AttachRegion
//! let map = sys::Mapping::from_fd(fd, 65536)?;    // fstat + mmap
//! map.read(0, &mut buf); map.write(0, &buf);
//! ```

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;

/// A shared mapping of a region the supervisor passed as a descriptor.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Kept for the `shrink-region` fault (what a hostile helper would try).
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory; all access is through bounds-checked copies.
unsafe impl Send for Mapping {}
// SAFETY: see Send; `&Mapping` only allows copies through raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of the region behind `fd` read-write, after checking with
    /// `fstat` that it is at least that large.
    pub fn from_fd(fd: OwnedFd, len: usize) -> io::Result<Self> {
        // SAFETY: stat is plain old data; an all-zero value is valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer and `fd` is open for the call.
        let rc = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if (st.st_size as u64) < len as u64 {
            return Err(io::Error::other(format!(
                "region of {} bytes is smaller than the {len} announced",
                st.st_size
            )));
        }
        // SAFETY: a fresh kernel-chosen shared mapping of a valid fd; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(p.cast()).expect("mmap never returns null on success"),
            len,
            fd,
        })
    }

    /// Tries to resize the region (the `shrink-region` fault): sealed regions refuse.
    pub fn truncate(&self, len: u64) -> io::Result<()> {
        let len =
            libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: ftruncate on a descriptor we own, integer arguments only.
        if unsafe { libc::ftruncate(self.fd.as_raw_fd(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
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

/// Forks a child that leaves the process group (`setsid`), so a kill of the
/// helper's group misses it, and keeps every inherited fd and mapping for
/// `lifetime` before it exits. Returns in the parent.
pub fn fork_escapee(lifetime: std::time::Duration) -> io::Result<()> {
    let mut left = libc::timespec {
        tv_sec: lifetime.as_secs() as libc::time_t,
        tv_nsec: lifetime.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the child only calls setsid, nanosleep and _exit, all
    // async-signal-safe, so forking a multi-threaded process is sound.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: `left` is a valid timespec owned by this frame and used as both
            // request and remainder; `_exit` skips the parent's atexit handlers.
            unsafe {
                libc::setsid();
                let req: *mut libc::timespec = &mut left;
                while libc::nanosleep(req, req) != 0 {}
                libc::_exit(0)
            }
        }
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

/// The read side of the socket: `recvmsg`, keeping every descriptor that arrives
/// (`SCM_RIGHTS`, close-on-exec) in arrival order. Each `AttachRegion` frame
/// takes the oldest one: its descriptor arrives no later than its first byte.
pub struct FdReader {
    stream: UnixStream,
    fds: VecDeque<OwnedFd>,
}

/// Room for this many descriptors per `recvmsg` (more are closed by the kernel,
/// which the `AttachRegion` that misses one then reports).
const MAX_FDS_PER_READ: usize = 16;

impl FdReader {
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            fds: VecDeque::new(),
        }
    }

    /// The oldest descriptor received and not taken yet.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl io::Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // u64 elements keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 2 + MAX_FDS_PER_READ];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain old data; an all-zero value is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = loop {
            // SAFETY: `msg` points at `iov` (into `buf`) and `control`, all valid and
            // exclusively borrowed for the call.
            let n =
                unsafe { libc::recvmsg(self.stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        // SAFETY: the kernel filled `control` up to msg_controllen with well-formed
        // cmsghdrs; CMSG_FIRSTHDR/NXTHDR stay inside it and CMSG_DATA of an
        // SCM_RIGHTS message holds (cmsg_len - CMSG_LEN(0)) / 4 descriptors, which
        // are now ours.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let data = libc::CMSG_DATA(c).cast::<RawFd>();
                    for i in 0..bytes / std::mem::size_of::<RawFd>() {
                        let fd = std::ptr::read_unaligned(data.add(i));
                        self.fds.push_back(OwnedFd::from_raw_fd(fd));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(n)
    }
}

/// Private anonymous memory for the `--alloc-burst` mode, unmapped on drop: faulted
/// in page by page, or populated by the kernel in one call (`MADV_POPULATE_WRITE`),
/// optionally with transparent huge pages.
pub struct AnonMemory {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: private memory of this process; threads only write disjoint ranges of it.
unsafe impl Send for AnonMemory {}
// SAFETY: see Send; writes go through raw pointers to ranges each thread owns.
unsafe impl Sync for AnonMemory {}

impl AnonMemory {
    /// Reserves `len` bytes (nothing is charged until a page is touched).
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh kernel-chosen private anonymous mapping; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(p.cast()).expect("mmap never returns null on success"),
            len: len.max(1),
        })
    }

    /// Asks for transparent huge pages (`MADV_HUGEPAGE`).
    pub fn advise_huge(&self) -> io::Result<()> {
        self.advise(0, self.len, libc::MADV_HUGEPAGE)
    }

    /// Has the kernel fault in `[off, off + len)` writable in one call
    /// (`MADV_POPULATE_WRITE`, Linux 5.14).
    pub fn populate_write(&self, off: usize, len: usize) -> io::Result<()> {
        self.advise(off, len, libc::MADV_POPULATE_WRITE)
    }

    fn advise(&self, off: usize, len: usize, advice: libc::c_int) -> io::Result<()> {
        assert!(off.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: the range lies inside this mapping (asserted).
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().add(off).cast(), len, advice) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes one byte into every 4 KiB page of `[off, off + len)`: one page fault each.
    pub fn touch_pages(&self, off: usize, len: usize) {
        assert!(off.checked_add(len).is_some_and(|end| end <= self.len));
        for at in (off..off + len).step_by(4096) {
            // SAFETY: `at` is inside the mapping (asserted range), which is writable.
            unsafe { self.ptr.as_ptr().add(at).write_volatile(1) };
        }
    }

    /// Writes every byte of the mapping (the fault plus a full memset per page).
    pub fn fill(&self) {
        // SAFETY: the whole mapping is writable and owned by `self`.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr(), 1, self.len) };
    }
}

impl Drop for AnonMemory {
    fn drop(&mut self) {
        // SAFETY: exactly the pointer and length mmap returned.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
