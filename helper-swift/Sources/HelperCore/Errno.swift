// An errno value as an open type.
//
// Example:
//   do { _ = try Sys.recv(fd, into: buffer) }
//   catch let e as Errno where e == .interrupted { /* retry */ }
//
// `Errno` is an open RawRepresentable struct rather than an enum: every value the C library
// can produce is representable, including ones this file has no name for. The named
// constants are the ones the helper reacts to.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public struct Errno: RawRepresentable, Hashable, Error, Sendable, CustomStringConvertible {
    public var rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// EINTR: a signal interrupted the call; retry it.
    public static let interrupted = Errno(rawValue: EINTR)
    /// EAGAIN / EWOULDBLOCK.
    public static let again = Errno(rawValue: EAGAIN)
    /// ENOENT: no such file, socket or shared-memory object.
    public static let noEntry = Errno(rawValue: ENOENT)
    /// EINVAL.
    public static let invalid = Errno(rawValue: EINVAL)
    /// ENOMEM.
    public static let noMemory = Errno(rawValue: ENOMEM)
    /// EBADF.
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    /// EACCES.
    public static let accessDenied = Errno(rawValue: EACCES)
    /// EPIPE: the peer closed the socket.
    public static let brokenPipe = Errno(rawValue: EPIPE)
    /// ECONNRESET.
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    /// ENAMETOOLONG (macOS shared-memory names longer than 31 bytes, socket paths).
    public static let nameTooLong = Errno(rawValue: ENAMETOOLONG)
    /// ENOTCONN.
    public static let notConnected = Errno(rawValue: ENOTCONN)
    /// ENOTSOCK.
    public static let notSocket = Errno(rawValue: ENOTSOCK)
    /// EMSGSIZE.
    public static let messageTooLong = Errno(rawValue: EMSGSIZE)
    /// ENOSPC.
    public static let noSpace = Errno(rawValue: ENOSPC)
    /// EEXIST.
    public static let exists = Errno(rawValue: EEXIST)
    /// ESRCH: no such process.
    public static let noSuchProcess = Errno(rawValue: ESRCH)
    /// EPERM.
    public static let notPermitted = Errno(rawValue: EPERM)

    /// The calling thread's current errno.
    public static var current: Errno { Errno(rawValue: errno) }

    /// True for errors after which the same call may simply be repeated.
    public var isTransient: Bool { self == .interrupted || self == .again }

    public var description: String {
        guard let message = strerror(rawValue) else { return "errno \(rawValue)" }
        return "\(String(cString: message)) (errno \(rawValue))"
    }
}

/// A failed libc call: which call, and the errno it left.
public struct SysError: Error, Hashable, Sendable, CustomStringConvertible {
    public var call: SysCall
    public var errno: Errno

    public init(_ call: SysCall, _ errno: Errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call.rawValue): \(errno)" }
}
