// The helper's end of the socket: framed envelopes out, raw bytes for the fault switches.
//
// Example:
//   let conn = try Connection.connect(path: "/tmp/s")      // or Connection(fd: 3) for --ipc-fd 3
//   conn.send(Envelope(requestId: 0, message: .hello(hello)))
//
// Sending never throws to the caller: a failed send means the supervisor is gone, which the
// read loop sees as end of stream; the failure is logged once.
public final class Connection: @unchecked Sendable {
    public let fd: Int32
    private let writer: FrameWriter
    private let failed = Locked(false)

    public init(fd: Int32) {
        self.fd = fd
        self.writer = FrameWriter(fd: fd)
    }

    /// Connects to a listening Unix socket.
    public static func connect(path: String) throws -> Connection {
        let fd = try Sys.socketUnixStream()
        do {
            while true {
                do { try Sys.connectUnix(fd, path: path); break } catch let e as SysError where e.errno == .interrupted {}
            }
        } catch {
            try? Sys.closeFD(fd)
            throw error
        }
        return Connection(fd: fd)
    }

    /// Sends one envelope as a frame; false if the socket is gone.
    @discardableResult
    public func send(_ envelope: Envelope) -> Bool {
        sendBody(envelope.encode())
    }

    @discardableResult
    public func sendBody(_ body: [UInt8]) -> Bool {
        do {
            try writer.write(body)
            return true
        } catch {
            noteFailure(error)
            return false
        }
    }

    /// Sends bytes without framing (garbage and oversize-prefix faults).
    @discardableResult
    public func sendRaw(_ bytes: [UInt8]) -> Bool {
        do {
            try writer.writeRaw(bytes)
            return true
        } catch {
            noteFailure(error)
            return false
        }
    }

    /// Shuts the socket down in both directions (the descriptor stays allocated).
    public func shutdown() { Sys.shutdownSocket(fd) }

    private func noteFailure(_ error: Error) {
        let first = failed.withLock { f -> Bool in
            defer { f = true }
            return !f
        }
        if first { Sys.log("coreml-helper: send failed: \(error)") }
    }
}
