// The fault switches of docs/diagnostics.md. Parsing exists in every build (so a release build
// can refuse a fault with UNSUPPORTED); firing is compiled only with -D COREML_DIAG_FAULTS.
//
// Example (test-flag build):
//   COREML_DIAG_FAULT=wrong-version coreml-helper-faults --ipc-fd 3    // Hello with major 99
//   Load{bundle_path: "diag:echo?fault=segv&after=2"}                  // third Predict raises SIGSEGV
import HelperCore

public enum FaultKind: String, Sendable, CaseIterable {
    case segv, abort, exit, hang, sigstop, alloc, garbage, oversize
    case wrongId = "wrong-id", badRef = "bad-ref", closeSocket = "close-socket", forkChild = "fork-child"
    case releaseUnknown = "release-unknown"

    /// Whether this build can fire faults.
    public static var compiledIn: Bool {
        #if COREML_DIAG_FAULTS
        return true
        #else
        return false
        #endif
    }
}

/// Handshake faults, read from COREML_DIAG_FAULT before `Hello`.
public enum HandshakeFault: String, Sendable, CaseIterable {
    case hangHandshake = "hang-handshake", crashHandshake = "crash-handshake"
    case wrongVersion = "wrong-version", garbageHandshake = "garbage-handshake"

    /// Applies the environment's handshake fault, if any; may never return. Returns the
    /// Hello to send (possibly altered).
    public static func apply(to hello: Hello, connection: Connection) -> Hello {
        guard let raw = Sys.env("COREML_DIAG_FAULT"), !raw.isEmpty else { return hello }
        guard let fault = HandshakeFault(rawValue: raw) else {
            Sys.log("coreml-helper: unknown COREML_DIAG_FAULT \(raw.debugDescription), ignored")
            return hello
        }
        #if COREML_DIAG_FAULTS
        var h = hello
        switch fault {
        case .hangHandshake: Sys.sleepForever()
        case .crashHandshake: Sys.exitImmediately(5)
        case .wrongVersion: h.protocolMajor = 99
        case .garbageHandshake:
            Freeze.engage()
            connection.sendRaw(Faults.garbageFrame())
            Sys.sleepForever()
        }
        return h
        #else
        Sys.log("coreml-helper: COREML_DIAG_FAULT=\(fault.rawValue) ignored: this build has no fault switches")
        return hello
        #endif
    }
}

enum Faults {
    /// A frame with a valid length prefix (64) and 64 random bytes.
    static func garbageFrame() -> [UInt8] { [0, 0, 0, 64] + Sys.randomBytes(64) }

    private static let parked = Locked<[UnsafeContinuation<Void, Never>]>([])

    /// Suspends the calling task forever without holding a thread.
    static func suspendForever() async -> Never {
        while true {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in parked.withLock { $0.append(c) } }
        }
    }

    #if COREML_DIAG_FAULTS
    /// Fires a fault that does not shape a normal reply. Returns only for `sigstop` (after
    /// SIGCONT), for the reply-shaping faults (`wrong-id`, `bad-ref`), which the caller handles,
    /// and for `release-unknown` (a stray notification, then the normal reply).
    static func fire(_ fault: FaultKind, _ ctx: RequestContext) async {
        switch fault {
        case .segv:
            Sys.raiseWithDefaultAction(SignalNumber.segv)
            Sys.abortProcess()
        case .abort: Sys.abortProcess()
        case .exit: Sys.exitImmediately(3)
        case .hang: await suspendForever()
        case .sigstop: Sys.raiseSignal(SignalNumber.stop)
        case .alloc:
            while true {
                let chunk = UnsafeMutableRawPointer.allocate(byteCount: 16 << 20, alignment: 4096)
                chunk.initializeMemory(as: UInt8.self, repeating: 1, count: 16 << 20)
                parkedMemory.withLock { $0.append(chunk) }
                Sys.sleepNanos(10_000_000)
            }
        case .garbage:
            Freeze.engage()
            ctx.connection.sendRaw(garbageFrame())
            await suspendForever()
        case .oversize:
            Freeze.engage()
            ctx.connection.sendRaw([0xff, 0xff, 0xff, 0xf0])
            await suspendForever()
        case .closeSocket:
            Freeze.engage()
            ctx.connection.shutdown()
            await suspendForever()
        case .forkChild:
            if (try? Sys.forkProcess()) == 0 { Sys.sleepForever() }
            Sys.exitImmediately(4)
        case .releaseUnknown:
            ctx.connection.send(Envelope(requestId: UInt64.max - 1, message: .inputsReleased(ModelId(modelId: 0))))
        case .wrongId, .badRef:
            return
        }
    }

    private static let parkedMemory = Locked<[UnsafeMutableRawPointer]>([])
    #endif
}
