// Test support (target HelperTestSupport, used only by test targets): a supervisor-side peer
// on a socket pair in front of an in-process Dispatcher, and shared-memory regions created the
// way the supervisor creates them.
//
// Example:
//   let peer = try Peer(engine: DiagnosticEngine())
//   _ = try peer.receive()                                    // Hello
//   XCTAssertEqual(try peer.call(.ping(Ping(nonce: 1))), .pong(Pong(nonce: 1)))
import Foundation
import XCTest
import HelperCore

/// The supervisor's end of a connection to an in-process Dispatcher.
public final class Peer {
    public let fd: Int32
    public let dispatcher: Dispatcher
    public let finished = Locked<Int32?>(nil)
    private var buffer: [UInt8] = []
    private var nextId: UInt64 = 1

    public init(engine: Engine) throws {
        let (a, b) = try Sys.socketPair()
        fd = a
        dispatcher = Dispatcher(engine: engine, connection: Connection(fd: b))
        let hello = HelloInfo.make(engine: engine.descriptor, sandbox: SandboxStatus(applied: false, detail: "test"))
        let d = dispatcher, done = finished
        Thread {
            let status = d.run(hello: hello)
            done.withLock { $0 = status }
            try? Sys.closeFD(b)
        }.start()
    }

    deinit { try? Sys.closeFD(fd) }

    public func newId() -> UInt64 {
        defer { nextId += 1 }
        return nextId
    }

    public func send(_ id: UInt64, _ m: Message) throws {
        try FrameWriter(fd: fd).write(Envelope(requestId: id, message: m).encode())
    }

    /// Sends a frame with `descriptor` on its first byte, as the supervisor sends AttachRegion.
    public static func sendPassing(_ fd: Int32, _ id: UInt64, _ m: Message, descriptor: Int32) throws {
        let body = Envelope(requestId: id, message: m).encode()
        let n = UInt32(body.count)
        let frame = [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8),
                     UInt8(truncatingIfNeeded: n)] + body
        let first = try frame.withUnsafeBytes { try Sys.sendSome(fd, $0, passing: descriptor) }
        try FrameWriter(fd: fd).writeRaw(Array(frame[first...]))
    }

    /// AttachRegion for `region` (its descriptor passed with the frame), answered.
    public func attach(_ id: UInt32, _ region: TestRegion, size: UInt64? = nil) throws -> Message {
        let rid = newId()
        try Self.sendPassing(fd, rid, .attachRegion(AttachRegion(region: id, size: size ?? UInt64(region.size))),
                             descriptor: region.fd)
        let env = try receive()
        XCTAssertEqual(env.requestId, rid, "reply echoes the request id")
        return env.message
    }

    /// Sends a request with a fresh id and returns the id.
    @discardableResult
    public func request(_ m: Message) throws -> UInt64 {
        let id = newId()
        try send(id, m)
        return id
    }

    private func fill(_ n: Int, deadline: Date) throws -> Bool {
        while buffer.count < n {
            let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            guard ms > 0, try Sys.waitReadable(fd, timeoutMs: ms) else { throw Timeout() }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let got = try chunk.withUnsafeMutableBytes { try Sys.receive(fd, $0) }
            if got == 0 { return false }
            buffer += chunk[0..<got]
        }
        return true
    }

    public struct Timeout: Error { public init() {} }
    public struct Closed: Error { public init() {} }

    /// The next frame body, or throws Timeout / Closed.
    public func receiveBody(timeout: TimeInterval = 10) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        guard try fill(4, deadline: deadline) else { throw Closed() }
        let n = buffer.prefix(4).reduce(0) { ($0 << 8) | Int($1) }
        guard try fill(4 + n, deadline: deadline) else { throw Closed() }
        let body = Array(buffer[4..<4 + n])
        buffer.removeFirst(4 + n)
        return body
    }

    public func receive(timeout: TimeInterval = 10) throws -> Envelope { try Envelope.decode(try receiveBody(timeout: timeout)) }

    /// Whether nothing arrives within `seconds`.
    public func silent(for seconds: TimeInterval) throws -> Bool {
        if !buffer.isEmpty { return false }
        return try !Sys.waitReadable(fd, timeoutMs: Int32(seconds * 1000))
    }

    /// Sends and waits for the reply with the same id.
    public func call(_ m: Message, timeout: TimeInterval = 10) throws -> Message {
        let id = try request(m)
        let env = try receive(timeout: timeout)
        XCTAssertEqual(env.requestId, id, "reply echoes the request id")
        return env.message
    }
}

/// An anonymous shared-memory region as the supervisor makes one (a name unlinked at once),
/// kept as a descriptor to pass with AttachRegion and mapped for the test.
public final class TestRegion {
    public let fd: Int32
    public let size: Int
    public let map: SharedMemoryRegion

    public init(size: Int = 1 << 20) throws {
        let name = "/cmbt-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max))"
        self.size = size
        fd = try Sys.shmOpen(name, readWrite: true, create: true)
        try Sys.shmUnlink(name)
        try Sys.setSize(fd, size)
        map = try SharedMemoryRegion(descriptor: try Sys.duplicate(fd), size: size)
    }

    deinit { try? Sys.closeFD(fd) }

    public func write<T>(_ values: [T], at offset: Int) {
        values.withUnsafeBytes { (map.base + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    public func read<T>(_ type: T.Type, count: Int, at offset: Int) -> [T] {
        (0..<count).map { (map.base + offset + $0 * MemoryLayout<T>.stride).loadUnaligned(as: T.self) }
    }
}

public extension Message {
    var errorCode: ErrorCode? { if case .error(let e) = self { return e.code } else { return nil } }
}
