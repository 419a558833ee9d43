// Every libc call the helper makes, as thin wrappers. Nothing else in the package calls libc.
//
// Example:
//   let fd = try Sys.socketUnixStream()
//   try Sys.connectUnix(fd, path: "/tmp/helper.sock")
//   let n = try Sys.send(fd, UnsafeRawBufferPointer(start: p, count: len))
//
// Each wrapper throws `SysError(call, errno)` on failure and does nothing clever: EINTR is
// returned to the caller (the framing layer retries). In builds with DEBUG or
// COREML_DIAG_FAULTS, `SysFaults.inject` makes a named call fail with a chosen errno so tests
// can exercise every error path.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The wrapped calls, named for error messages and fault injection.
public enum SysCall: String, CaseIterable, Sendable {
    case socket, connect, recv, send, close, shmOpen, shmUnlink, mmap, munmap, ftruncate, fstat
    case kill, getrusage, open, read, write, fork, sysctl, mutex, nanosleep
}

#if canImport(Darwin)
// shm_open is variadic in Darwin's headers, so Swift cannot import it. The helper only opens
// existing objects (no O_CREAT), so the variadic mode argument is never needed; fixed
// arguments are passed identically for variadic and non-variadic callees.
@_silgen_name("shm_open") private func darwin_shm_open(_ name: UnsafePointer<CChar>, _ oflag: Int32) -> Int32
#endif

/// Signal numbers the helper raises or sends.
public enum SignalNumber {
    public static let segv = SIGSEGV
    public static let stop = SIGSTOP
    public static let cont = SIGCONT
    public static let kill = SIGKILL
    public static let term = SIGTERM
}

#if canImport(Darwin)
// Darwin's Swift overlay marks fork() unavailable; only the fork-child fault switch uses it,
// and the child only calls pause().
@_silgen_name("fork") private func darwin_fork() -> Int32
#endif

#if os(macOS)
// Not imported into Swift (sandbox.h marks them deprecated); declared as the fact sheet says.
@_silgen_name("sandbox_init")
private func darwin_sandbox_init(_ profile: UnsafePointer<CChar>, _ flags: UInt64,
                                 _ errorbuf: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32
@_silgen_name("sandbox_free_error")
private func darwin_sandbox_free_error(_ errorbuf: UnsafeMutablePointer<CChar>)
#endif

public enum Sys {
    @inline(__always)
    private static func fail(_ call: SysCall) -> SysError { SysError(call, Errno.current) }

    @inline(__always)
    private static func injected(_ call: SysCall) throws {
        #if DEBUG || COREML_DIAG_FAULTS
        if let e = SysFaults.take(call) { throw SysError(call, e) }
        #endif
    }

    // MARK: sockets

    public static func socketUnixStream() throws -> Int32 {
        try injected(.socket)
        #if canImport(Glibc)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw fail(.socket) }
        #if canImport(Darwin)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        #endif
        return fd
    }

    /// A connected pair of Unix stream sockets (tests, and a loopback transport).
    public static func socketPair() throws -> (Int32, Int32) {
        try injected(.socket)
        var fds: [Int32] = [-1, -1]
        #if canImport(Glibc)
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        #else
        let rc = socketpair(AF_UNIX, SOCK_STREAM, 0, &fds)
        #endif
        guard rc == 0 else { throw fail(.socket) }
        return (fds[0], fds[1])
    }

    /// `poll` for POLLIN: true when `fd` is readable (or at end of stream) within `timeoutMs`.
    public static func waitReadable(_ fd: Int32, timeoutMs: Int32) throws -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, timeoutMs)
        guard rc >= 0 else { throw fail(.recv) }
        return rc > 0
    }

    /// A listening Unix socket at `path` (tests of `--socket`; the helper itself only connects).
    public static func listenUnix(path: String) throws -> Int32 {
        let fd = try socketUnixStream()
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= maxSocketPathBytes else { throw SysError(.socket, .nameTooLong) }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            dst.copyBytes(from: bytes)
            dst[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(fd, 4) == 0 else {
            let e = fail(.socket)
            _ = close(fd)
            throw e
        }
        return fd
    }

    public static func acceptConnection(_ fd: Int32) throws -> Int32 {
        let c = accept(fd, nil, nil)
        guard c >= 0 else { throw fail(.socket) }
        return c
    }

    /// Longest usable `sun_path` (103 on macOS, 107 on Linux).
    public static var maxSocketPathBytes: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1 }

    public static func connectUnix(_ fd: Int32, path: String) throws {
        try injected(.connect)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= maxSocketPathBytes else { throw SysError(.connect, .nameTooLong) }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            dst.copyBytes(from: bytes)
            dst[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw fail(.connect) }
    }

    /// Returns the byte count; 0 means the peer closed the connection.
    public static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try injected(.recv)
        let n = recv(fd, buffer.baseAddress, buffer.count, 0)
        guard n >= 0 else { throw fail(.recv) }
        return n
    }

    public static func sendSome(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws -> Int {
        try injected(.send)
        #if canImport(Glibc)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        let n = send(fd, buffer.baseAddress, buffer.count, flags)
        guard n >= 0 else { throw fail(.send) }
        return n
    }

    // MARK: descriptor passing (docs/protocol.md, section 6)
    //
    // Shared-memory regions arrive as descriptors (SCM_RIGHTS) on the first byte of their
    // AttachRegion frame. The CMSG_* macros are not importable, so the control buffer is laid
    // out by hand: a cmsghdr, padded to the platform's alignment, then the descriptors.

    private static var cmsgAlignment: Int {
        #if canImport(Darwin)
        return 4
        #else
        return MemoryLayout<Int>.size
        #endif
    }

    private static func cmsgAlign(_ n: Int) -> Int { (n + cmsgAlignment - 1) & ~(cmsgAlignment - 1) }

    private static var cmsgHeader: Int { cmsgAlign(MemoryLayout<cmsghdr>.size) }

    /// Most descriptors taken from one `recvmsg` (the kernel closes any beyond).
    public static let maxDescriptorsPerReceive = 16

    /// `recvmsg`: bytes into `buffer`; every descriptor that came with them (SCM_RIGHTS) is
    /// appended to `descriptors`, close-on-exec, in arrival order.
    public static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer,
                               descriptors: inout [Int32]) throws -> Int {
        try injected(.recv)
        let controlSize = cmsgHeader + cmsgAlign(maxDescriptorsPerReceive * MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawPointer.allocate(byteCount: controlSize, alignment: 16)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: controlSize)
        var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        var msg = msghdr()
        let n: Int = withUnsafeMutablePointer(to: &iov) { iovp in
            msg.msg_iov = iovp
            msg.msg_iovlen = 1
            msg.msg_control = control
            msg.msg_controllen = numericCast(controlSize)
            #if canImport(Darwin)
            return recvmsg(fd, &msg, 0)
            #else
            return recvmsg(fd, &msg, Int32(MSG_CMSG_CLOEXEC))
            #endif
        }
        guard n >= 0 else { throw fail(.recv) }
        let used = Int(msg.msg_controllen)
        var offset = 0
        while offset + MemoryLayout<cmsghdr>.size <= used {
            let h = control.load(fromByteOffset: offset, as: cmsghdr.self)
            let len = Int(h.cmsg_len)
            guard len >= cmsgHeader, offset + len <= used else { break }
            if h.cmsg_level == SOL_SOCKET && h.cmsg_type == Int32(SCM_RIGHTS) {
                let count = (len - cmsgHeader) / MemoryLayout<Int32>.size
                for i in 0..<count {
                    let d = control.loadUnaligned(fromByteOffset: offset + cmsgHeader + i * 4, as: Int32.self)
                    #if canImport(Darwin)
                    _ = fcntl(d, F_SETFD, FD_CLOEXEC)
                    #endif
                    descriptors.append(d)
                }
            }
            offset += cmsgAlign(len)
        }
        return n
    }

    /// `sendmsg` of (a prefix of) `buffer` with `descriptor` attached (SCM_RIGHTS) to its
    /// first byte: what the supervisor does for AttachRegion (tests play the supervisor).
    public static func sendSome(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, passing descriptor: Int32) throws -> Int {
        try injected(.send)
        let controlSize = cmsgHeader + cmsgAlign(MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawPointer.allocate(byteCount: controlSize, alignment: 16)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: controlSize)
        var h = cmsghdr()
        h.cmsg_len = numericCast(cmsgHeader + MemoryLayout<Int32>.size)
        h.cmsg_level = SOL_SOCKET
        h.cmsg_type = Int32(SCM_RIGHTS)
        control.storeBytes(of: h, as: cmsghdr.self)
        control.storeBytes(of: descriptor, toByteOffset: cmsgHeader, as: Int32.self)
        var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.baseAddress), iov_len: buffer.count)
        var msg = msghdr()
        #if canImport(Glibc)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        let n: Int = withUnsafeMutablePointer(to: &iov) { iovp in
            msg.msg_iov = iovp
            msg.msg_iovlen = 1
            msg.msg_control = control
            msg.msg_controllen = numericCast(controlSize)
            return sendmsg(fd, &msg, flags)
        }
        guard n >= 0 else { throw fail(.send) }
        return n
    }

    /// `dup` with close-on-exec.
    public static func duplicate(_ fd: Int32) throws -> Int32 {
        try injected(.open)
        let d = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard d >= 0 else { throw fail(.open) }
        return d
    }

    /// Shuts down both directions (used by the `close-socket` fault and at shutdown).
    public static func shutdownSocket(_ fd: Int32) {
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }

    public static func closeFD(_ fd: Int32) throws {
        try injected(.close)
        guard close(fd) == 0 else { throw fail(.close) }
    }

    /// True when `fd` is an open socket (checks an inherited `--ipc-fd`).
    public static func isSocket(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return (st.st_mode & S_IFMT) == S_IFSOCK
    }

    /// Ignores SIGPIPE process-wide, so a closed peer is an EPIPE error, not a death.
    public static func ignoreSIGPIPE() {
        _ = signal(SIGPIPE, SIG_IGN)
    }

    // MARK: shared memory

    /// `shm_open`. On macOS `create` is unsupported (see above) and throws EINVAL.
    public static func shmOpen(_ name: String, readWrite: Bool, create: Bool = false, mode: UInt32 = 0o600) throws -> Int32 {
        try injected(.shmOpen)
        var flags = readWrite ? O_RDWR : O_RDONLY
        if create { flags |= O_CREAT | O_EXCL }
        // No O_CLOEXEC: POSIX has shm_open set FD_CLOEXEC itself, and macOS accepts only
        // O_RDONLY/O_RDWR/O_CREAT/O_EXCL/O_TRUNC here.
        #if canImport(Darwin)
        if create { throw SysError(.shmOpen, .invalid) }
        let fd = darwin_shm_open(name, flags)
        #else
        let fd = shm_open(name, flags, mode_t(mode))
        #endif
        guard fd >= 0 else { throw fail(.shmOpen) }
        return fd
    }

    public static func shmUnlink(_ name: String) throws {
        try injected(.shmUnlink)
        guard shm_unlink(name) == 0 else { throw fail(.shmUnlink) }
    }

    public static func setSize(_ fd: Int32, _ length: Int) throws {
        try injected(.ftruncate)
        guard ftruncate(fd, off_t(length)) == 0 else { throw fail(.ftruncate) }
    }

    /// The size of the object behind `fd` (`fstat().st_size`).
    public static func fileSize(_ fd: Int32) throws -> Int {
        try injected(.fstat)
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail(.fstat) }
        return Int(st.st_size)
    }

    /// `mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)` (read-only if asked).
    public static func mmapShared(_ fd: Int32, length: Int, writable: Bool) throws -> UnsafeMutableRawPointer {
        try injected(.mmap)
        let prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        let p = mmap(nil, length, prot, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else { throw fail(.mmap) }
        return p
    }

    public static func unmap(_ p: UnsafeMutableRawPointer, _ length: Int) throws {
        try injected(.munmap)
        guard munmap(p, length) == 0 else { throw fail(.munmap) }
    }

    public static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }

    // MARK: files (the `once` marker of docs/diagnostics.md, /proc/self/statm)

    public static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates (or truncates) an empty file.
    public static func createEmptyFile(_ path: String) throws {
        try injected(.open)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(0o644))
        guard fd >= 0 else { throw fail(.open) }
        _ = close(fd)
    }

    /// Reads a whole small file (at most `limit` bytes).
    public static func readSmallFile(_ path: String, limit: Int = 1 << 16) throws -> [UInt8] {
        try injected(.open)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail(.open) }
        defer { _ = close(fd) }
        var out = [UInt8](repeating: 0, count: limit)
        var used = 0
        while used < limit {
            try injected(.read)
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + used, limit - used) }
            if n < 0 {
                if Errno.current == .interrupted { continue }
                throw fail(.read)
            }
            if n == 0 { break }
            used += n
        }
        return Array(out[0..<used])
    }

    // MARK: process

    /// Writes a line to stderr (diagnostics for whoever captures the helper's stderr).
    public static func log(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0a)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && Errno.current == .interrupted { continue }
            if n <= 0 { return }
            off += n
        }
    }

    public static func pid() -> Int32 { Int32(getpid()) }

    /// `getppid`: 1 (or launchd's pid) once the parent has exited.
    public static func parentPID() -> Int32 { Int32(getppid()) }

    public static func sendSignal(_ pid: Int32, _ signal: Int32) throws {
        try injected(.kill)
        guard kill(pid_t(pid), signal) == 0 else { throw fail(.kill) }
    }

    public static func raiseSignal(_ signal: Int32) { _ = raise(signal) }

    /// Restores the default action for `signal`, then raises it: the Swift runtime's crash
    /// handler (backtracer) would otherwise turn a SIGSEGV into an abort.
    public static func raiseWithDefaultAction(_ sig: Int32) {
        _ = signal(sig, SIG_DFL)
        _ = raise(sig)
    }

    public static func abortProcess() -> Never { abort() }

    /// `_exit`: no atexit handlers, no stdio flush; the fault switches' "exit without replying".
    public static func exitImmediately(_ status: Int32) -> Never { _exit(status) }

    public static func forkProcess() throws -> Int32 {
        try injected(.fork)
        #if canImport(Darwin)
        let pid = darwin_fork()
        #else
        let pid = fork()
        #endif
        guard pid >= 0 else { throw fail(.fork) }
        return Int32(pid)
    }

    public static func env(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }

    public static func sleepNanos(_ nanoseconds: UInt64) {
        var req = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var rem = timespec()
        while nanosleep(&req, &rem) != 0 && Errno.current == .interrupted { req = rem }
    }

    public static func sleepForever() -> Never {
        while true { _ = pause() }
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        _ = clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Peak resident set size in bytes (`getrusage`; KiB on Linux, bytes on macOS).
    public static func peakRSSBytes() throws -> UInt64 {
        try injected(.getrusage)
        var ru = rusage()
        #if canImport(Glibc)
        let who = __rusage_who_t(RUSAGE_SELF.rawValue)
        #else
        let who = RUSAGE_SELF
        #endif
        guard getrusage(who, &ru) == 0 else { throw fail(.getrusage) }
        #if canImport(Darwin)
        return UInt64(ru.ru_maxrss)
        #else
        return UInt64(ru.ru_maxrss) * 1024
        #endif
    }

    /// Current resident set size in bytes (/proc/self/statm on Linux, task_info on macOS).
    public static func currentRSSBytes() throws -> UInt64 {
        #if canImport(Darwin)
        var info = mach_task_basic_info()
        var count = mach_msg_type_number_t(MemoryLayout<mach_task_basic_info>.size / MemoryLayout<natural_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(MACH_TASK_BASIC_INFO), $0, &count)
            }
        }
        guard kr == KERN_SUCCESS else { throw SysError(.getrusage, .invalid) }
        return UInt64(info.resident_size)
        #else
        let text = String(decoding: try readSmallFile("/proc/self/statm", limit: 256), as: UTF8.self)
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = UInt64(fields[1]) else { throw SysError(.read, .invalid) }
        return pages * UInt64(pageSize)
        #endif
    }

    // MARK: system description (Hello)

    /// `uname`: (sysname, release, version, machine).
    public static func systemInfo() -> (sysname: String, release: String, version: String, machine: String) {
        var u = utsname()
        _ = uname(&u)
        func field<T>(_ v: T) -> String {
            withUnsafeBytes(of: v) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return (field(u.sysname), field(u.release), field(u.version), field(u.machine))
    }

    #if canImport(Darwin)
    /// `sysctlbyname` for string values (kern.osproductversion, kern.osversion, machdep.cpu.brand_string).
    public static func sysctlString(_ name: String) -> String? {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buf = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buf, &size, nil, 0) == 0 else { return nil }
        return String(cString: buf)
    }
    #endif

    /// `realpath(3)`: the canonical path (symlinks resolved), or nil if it does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    #if os(macOS)
    /// `confstr(_CS_DARWIN_USER_TEMP_DIR)`: the per-user temporary directory compileModel writes to.
    public static func darwinUserTempDir() -> String? {
        var buf = [CChar](repeating: 0, count: 1024)
        guard confstr(_CS_DARWIN_USER_TEMP_DIR, &buf, buf.count) > 0 else { return nil }
        return String(cString: buf)
    }

    /// Applies a Seatbelt profile (SBPL text) to this process for good; nil on success,
    /// else the error text sandbox_init reported.
    public static func sandboxInit(profile: String) -> String? {
        var err: UnsafeMutablePointer<CChar>?
        let rc = profile.withCString { darwin_sandbox_init($0, 0, &err) }
        if rc == 0 { return nil }
        let message = err.map { String(cString: $0) } ?? "sandbox_init returned \(rc)"
        if let err { darwin_sandbox_free_error(err) }
        return message
    }
    #endif

    // MARK: mutex

    /// A heap-allocated pthread mutex; owned by `Lock`.
    public static func mutexCreate() -> UnsafeMutablePointer<pthread_mutex_t> {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        m.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(m, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
        return m
    }

    public static func mutexLock(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        let rc = pthread_mutex_lock(m)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
    }

    public static func mutexUnlock(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        let rc = pthread_mutex_unlock(m)
        precondition(rc == 0, "pthread_mutex_unlock failed: \(rc)")
    }

    public static func mutexDestroy(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        _ = pthread_mutex_destroy(m)
        m.deinitialize(count: 1)
        m.deallocate()
    }

    // MARK: randomness for the `garbage` fault

    public static func randomBytes(_ count: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
    }
}
