// Length-prefixed frames on a stream socket: u32 big-endian body length, then the body.
//
// Example:
//   let reader = FrameReader(fd: fd, maxFrameLength: 16 << 20)
//   while let body = try reader.next() { ... }          // nil = peer closed between frames
//   let region = reader.takeDescriptor()                 // the one an AttachRegion brought
//   let writer = FrameWriter(fd: fd)
//   try writer.write(body)                               // whole frame or an error; thread-safe
//
// The reader checks the claimed length against the maximum before it allocates anything,
// handles short reads and retries EINTR/EAGAIN. It reads with recvmsg and keeps every
// descriptor that arrives (SCM_RIGHTS) in arrival order: an AttachRegion's descriptor comes
// with the frame's first byte, so it is queued by the time the frame is returned, and each
// AttachRegion takes the oldest one. The writer sends header and body as one
// buffer under a lock so frames from concurrent tasks never interleave.

/// Why a frame could not be read or written.
public enum FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The length prefix exceeds the maximum frame length.
    case oversize(length: UInt32, max: UInt32)
    /// A zero-length frame (never valid: every body is a MessagePack envelope).
    case empty
    /// The peer closed the connection inside a frame (after `got` of `expected` bytes).
    case truncated(got: Int, expected: Int)
    /// A socket call failed.
    case io(SysError)

    public var description: String {
        switch self {
        case .oversize(let l, let m): return "frame length \(l) exceeds the maximum \(m)"
        case .empty: return "empty frame"
        case .truncated(let g, let e): return "connection closed inside a frame (\(g) of \(e) bytes)"
        case .io(let e): return "socket error: \(e)"
        }
    }
}

public final class FrameReader {
    public let fd: Int32
    public let maxFrameLength: UInt32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var descriptors: [Int32] = []

    public init(fd: Int32, maxFrameLength: UInt32, chunkSize: Int = 64 << 10) {
        self.fd = fd
        self.maxFrameLength = maxFrameLength
        self.buffer = [UInt8](repeating: 0, count: max(chunkSize, 8))
    }

    private var buffered: Int { end - start }

    /// Reads more bytes into the buffer; false on end of stream.
    private func fill(minimum: Int) throws -> Bool {
        if buffer.count - start < minimum {
            // Compact, then grow if a single frame needs more room than the buffer has.
            if start > 0 {
                buffer.withUnsafeMutableBytes { b in
                    b.baseAddress!.copyMemory(from: b.baseAddress! + start, byteCount: end - start)
                }
                end -= start
                start = 0
            }
            if buffer.count < minimum { buffer.append(contentsOf: repeatElement(0, count: minimum - buffer.count)) }
        }
        while true {
            do {
                let n = try buffer.withUnsafeMutableBytes { b in
                    try Sys.receive(fd, UnsafeMutableRawBufferPointer(rebasing: b[end...]), descriptors: &descriptors)
                }
                if n == 0 { return false }
                end += n
                return true
            } catch let e as SysError where e.errno.isTransient {
                continue
            } catch let e as SysError {
                throw FrameError.io(e)
            }
        }
    }

    /// The oldest descriptor received and not taken yet (the caller owns it).
    public func takeDescriptor() -> Int32? {
        descriptors.isEmpty ? nil : descriptors.removeFirst()
    }

    deinit { for d in descriptors { try? Sys.closeFD(d) } }

    /// The next frame body, or nil if the peer closed the connection cleanly between frames.
    public func next() throws -> [UInt8]? {
        while buffered < 4 {
            if !(try fill(minimum: 4)) {
                if buffered == 0 { return nil }
                throw FrameError.truncated(got: buffered, expected: 4)
            }
        }
        let length = buffer[start..<start + 4].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        guard length <= maxFrameLength else { throw FrameError.oversize(length: length, max: maxFrameLength) }
        guard length > 0 else { throw FrameError.empty }
        let total = 4 + Int(length)
        while buffered < total {
            if !(try fill(minimum: total)) { throw FrameError.truncated(got: buffered - 4, expected: Int(length)) }
        }
        let body = Array(buffer[start + 4 ..< start + total])
        start += total
        if start == end { start = 0; end = 0 }
        return body
    }
}

public final class FrameWriter: @unchecked Sendable {
    public let fd: Int32
    private let lock = Lock()

    public init(fd: Int32) { self.fd = fd }

    /// Prefixes `body` with its length and sends everything, or throws.
    public func write(_ body: [UInt8]) throws {
        var frame = [UInt8]()
        frame.reserveCapacity(body.count + 4)
        let n = UInt32(body.count)
        frame.append(contentsOf: [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16),
                                  UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)])
        frame.append(contentsOf: body)
        try writeRaw(frame)
    }

    /// Sends bytes as they are (the fault switches use it for garbage and oversize prefixes).
    public func writeRaw(_ bytes: [UInt8]) throws {
        try lock.withLock {
            try bytes.withUnsafeBytes { all in
                var sent = 0
                while sent < all.count {
                    do {
                        sent += try Sys.sendSome(fd, UnsafeRawBufferPointer(rebasing: all[sent...]))
                    } catch let e as SysError where e.errno.isTransient {
                        continue
                    } catch let e as SysError {
                        throw FrameError.io(e)
                    }
                }
            }
        }
    }
}
