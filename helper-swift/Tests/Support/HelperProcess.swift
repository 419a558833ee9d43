// Test support: the coreml-helper executable as a child process on a listening Unix socket,
// with the supervisor's end of the connection (used by ProcessTests and, on macOS, by the
// Core ML integration suite).
//
// Example:
//   let h = try HelperProcess()            // runs `coreml-helper --socket <path>`
//   try h.accept()
//   guard case .hello(let hello) = try h.receive().message else { ... }
import Foundation
import HelperCore

public final class HelperProcess {
    public let process = Process()
    public let socketPath: String
    private let listenFD: Int32
    public private(set) var fd: Int32 = -1
    private var buffer: [UInt8] = []

    /// COREML_HELPER_BIN, else the coreml-helper that `swift test` built next to the test bundle.
    public static var binary: URL {
        if let p = ProcessInfo.processInfo.environment["COREML_HELPER_BIN"], !p.isEmpty { return URL(fileURLWithPath: p) }
        #if os(Linux)
        let tests = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        #else
        let tests = Bundle(for: HelperProcess.self).bundleURL    // .build/<config>/<package>PackageTests.xctest
        #endif
        return tests.deletingLastPathComponent().appendingPathComponent("coreml-helper")
    }

    public init(arguments: [String]? = nil, environment: [String: String] = [:]) throws {
        socketPath = "/tmp/cmbt-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        listenFD = try Sys.listenUnix(path: socketPath)
        process.executableURL = Self.binary
        process.arguments = arguments ?? ["--socket", socketPath]
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "COREML_DIAG_FAULT")
        env.merge(environment) { $1 }
        process.environment = env
        try process.run()
    }

    deinit {
        if process.isRunning { try? Sys.sendSignal(process.processIdentifier, SignalNumber.kill); process.waitUntilExit() }
        if fd >= 0 { try? Sys.closeFD(fd) }
        try? Sys.closeFD(listenFD)
        unlink(socketPath)
    }

    public func accept(timeout: TimeInterval = 10) throws {
        guard try Sys.waitReadable(listenFD, timeoutMs: Int32(timeout * 1000)) else { throw Peer.Timeout() }
        fd = try Sys.acceptConnection(listenFD)
    }

    public func send(_ id: UInt64, _ m: Message) throws {
        try FrameWriter(fd: fd).write(Envelope(requestId: id, message: m).encode())
    }

    /// Reads exactly `n` bytes (or fewer at end of stream).
    public func readBytes(_ n: Int, timeout: TimeInterval = 10) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        while buffer.count < n {
            let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            guard ms > 0, try Sys.waitReadable(fd, timeoutMs: ms) else { throw Peer.Timeout() }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let got = try chunk.withUnsafeMutableBytes { try Sys.receive(fd, $0) }
            if got == 0 { break }
            buffer += chunk[0..<got]
        }
        let out = Array(buffer.prefix(n))
        buffer.removeFirst(out.count)
        return out
    }

    public func receive(timeout: TimeInterval = 10) throws -> Envelope {
        let prefix = try readBytes(4, timeout: timeout)
        guard prefix.count == 4 else { throw Peer.Closed() }
        let body = try readBytes(prefix.reduce(0) { ($0 << 8) | Int($1) }, timeout: timeout)
        return try Envelope.decode(body)
    }

    /// Waits for the exit; nil if it is still running at the deadline.
    public func waitForExit(timeout: TimeInterval = 10) -> (Process.TerminationReason, Int32)? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(2000) }
        if process.isRunning { return nil }
        return (process.terminationReason, process.terminationStatus)
    }

    /// The single-letter process state (R, S, T, Z...): /proc/PID/stat on Linux, ps(1) elsewhere.
    public var state: String? {
        #if !os(Linux)
        let ps = Process()
        ps.executableURL = URL(fileURLWithPath: "/bin/ps")
        ps.arguments = ["-o", "stat=", "-p", "\(process.processIdentifier)"]
        let out = Pipe()
        ps.standardOutput = out
        guard (try? ps.run()) != nil else { return nil }
        ps.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines).first.map { String($0) }
        #else
        guard let text = try? Sys.readSmallFile("/proc/\(process.processIdentifier)/stat", limit: 4096) else { return nil }
        let s = String(decoding: text, as: UTF8.self)
        guard let close = s.lastIndex(of: ")") else { return nil }
        return s[s.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
        #endif
    }
}
