// The request loop: reads frames, answers control requests in order, runs engine work
// concurrently, and replies with the request's id (docs/protocol.md sections 2, 3, 7, 8).
//
// Example:
//   let d = Dispatcher(engine: DiagnosticEngine(), connection: Connection(fd: 3))
//   let status = d.run(hello: HelloInfo.make(engine: engine.descriptor, sandbox: .none("...")))
//   Sys.exitImmediately(status)
//
// Ordering: Ping, GetStats, AttachRegion, DetachRegion are answered on the reader thread in
// arrival order. Compile, Load, Unload, GetComputePlan and Predict each run in their own task,
// so pipelined predictions run concurrently and replies may come out of order. A request for a
// model whose Load is still running waits for that Load. Shutdown stops reading, waits for the
// tasks in flight, sends ShutdownAck and returns 0. End of stream returns 0; a framing error
// (oversize, empty or truncated frame) is fatal and returns 2.
import Dispatch

public final class Dispatcher: @unchecked Sendable {
    public let engine: Engine
    public let connection: Connection
    public let regions = RegionTable()
    let inFlight = DispatchGroup()
    let pendingLoads = Locked<[UInt64: Task<Void, Never>]>([:])
    let counters = Locked(Stats())
    /// The minor version both sides speak: ours until the supervisor's Welcome says less. A
    /// model whose schema needs a newer minor (image features: 2.1) is refused at load.
    let negotiatedMinor = Locked<UInt16>(ProtocolVersion.minor)

    public init(engine: Engine, connection: Connection) {
        self.engine = engine
        self.connection = connection
    }

    /// Serves until end of stream, Shutdown or a fatal framing error; returns the exit status.
    public func run(hello: Hello) -> Int32 {
        connection.send(Envelope(requestId: ProtocolVersion.unsolicited, message: .hello(hello)))
        let reader = FrameReader(fd: connection.fd, maxFrameLength: ProtocolVersion.maxFrameLength)
        while true {
            let body: [UInt8]
            do {
                guard let b = try reader.next() else {
                    if Freeze.isEngaged { Sys.sleepForever() }
                    return 0
                }
                body = b
            } catch {
                if Freeze.isEngaged { Sys.sleepForever() }
                Sys.log("coreml-helper: fatal framing error: \(error)")
                return 2
            }
            if Freeze.isEngaged { Sys.sleepForever() }
            counters.withLock { $0.requests += 1 }
            let envelope: Envelope
            do {
                envelope = try Envelope.decode(body)
            } catch let e as EnvelopeError {
                switch e {
                case .malformed: replyError(ProtocolVersion.unsolicited, .badRequest, "\(e)")
                case .unknownTag(_, let rid): replyError(rid, .unknownMessage, "\(e)")
                case .payload(_, let rid, _): replyError(rid, .badRequest, "\(e)")
                }
                continue
            } catch {
                replyError(ProtocolVersion.unsolicited, .internal, "\(error)")
                continue
            }
            // An AttachRegion's descriptor came with the frame's first byte.
            if case .attachRegion(let a) = envelope.message {
                attach(a, envelope.requestId, descriptor: reader.takeDescriptor())
                continue
            }
            if !handle(envelope) {
                inFlight.wait()
                connection.send(Envelope(requestId: envelope.requestId, message: .shutdownAck))
                return 0
            }
        }
    }

    /// Handles one request; false for Shutdown.
    private func handle(_ env: Envelope) -> Bool {
        let rid = env.requestId
        let ctx = RequestContext(requestId: rid, connection: connection)
        switch env.message {
        case .ping(let p):
            reply(rid, .pong(Pong(nonce: p.nonce)))
        case .getStats:
            reply(rid, .stats(currentStats()))
        case .attachRegion(let a):
            attach(a, rid, descriptor: nil)
        case .welcome(let w):
            // Not answered; fixes the minor both sides speak (2.1 fields only for a 2.1 supervisor).
            negotiatedMinor.withLock { $0 = min(w.protocolMinor, ProtocolVersion.minor) }
        case .detachRegion(let d):
            if regions.detach(id: UInt64(d.region)) {
                reply(rid, .regionDetached(d))
            } else {
                replyError(rid, .badRequest, "region \(d.region) is not attached")
            }
        case .shutdown:
            return false
        case .compile(let c):
            spawn(rid) { .compiled(try await self.engine.compile(c, ctx)) }
        case .load(let l):
            inFlight.enter()
            let task = Task {
                await self.serve(rid) {
                    let loaded = try await self.engine.load(l, ctx)
                    if let refusal = self.beyondNegotiatedMinor(loaded) {
                        try? await self.engine.unload(modelId: l.modelId, ctx)
                        throw refusal
                    }
                    return .loaded(loaded)
                }
                self.inFlight.leave()
            }
            pendingLoads.withLock { $0[l.modelId] = task }
            Task {
                await task.value
                self.pendingLoads.withLock { if $0[l.modelId] == task { $0[l.modelId] = nil } }
            }
        case .unload(let u):
            spawn(rid) {
                await self.waitForLoad(u.modelId)
                try await self.engine.unload(modelId: u.modelId, ctx)
                return .unloaded(u)
            }
        case .getComputePlan(let g):
            spawn(rid) {
                await self.waitForLoad(g.modelId)
                return .computePlan(try await self.engine.computePlan(modelId: g.modelId, ctx))
            }
        case .predict(let p):
            predict(p, rid, ctx)
        case .hello, .pong, .shutdownAck, .error, .regionAttached, .regionDetached, .compiled, .loaded,
             .unloaded, .computePlan, .predicted, .inputsReleased, .stats:
            replyError(rid, .badRequest, "\(env.message.tag.name) is not a request")
        }
        return true
    }

    private func attach(_ a: AttachRegion, _ rid: UInt64, descriptor: Int32?) {
        let id = UInt64(a.region)
        guard let fd = descriptor else {
            return replyError(rid, .shmFailed, "\(SharedMemoryError.missingDescriptor)")
        }
        guard regions.region(id) == nil else {
            try? Sys.closeFD(fd)
            return replyError(rid, .badRequest, "region \(a.region) is already attached")
        }
        guard let size = Int(exactly: a.size), size > 0 else {
            try? Sys.closeFD(fd)
            return replyError(rid, .badRequest, "region size \(a.size) is not usable")
        }
        do {
            regions.attach(id: id, region: try SharedMemoryRegion(descriptor: fd, size: size))
            reply(rid, .regionAttached(RegionId(region: a.region)))
        } catch {
            replyError(rid, .shmFailed, "\(error)")
        }
    }

    /// Why a loaded model cannot be described to this supervisor, if it cannot: image
    /// features are 2.1; a 2.0 supervisor gets UNSUPPORTED, as a 2.0 helper answered.
    func beyondNegotiatedMinor(_ l: Loaded) -> EngineError? {
        let minor = negotiatedMinor.get()
        guard minor < 1, let s = (l.inputs + l.outputs).first(where: { $0.image != nil }) else { return nil }
        return EngineError(.unsupported, "feature \(s.name.debugDescription) is an image, which needs protocol 2.1; the supervisor speaks 2.\(minor)")
    }

    func waitForLoad(_ modelId: UInt64) async {
        if let t = pendingLoads.withLock({ $0[modelId] }) { await t.value }
    }

    private func spawn(_ rid: UInt64, _ body: @escaping @Sendable () async throws -> Message) {
        inFlight.enter()
        Task {
            await self.serve(rid, body)
            self.inFlight.leave()
        }
    }

    private func serve(_ rid: UInt64, _ body: @Sendable () async throws -> Message) async {
        do {
            reply(rid, try await body())
        } catch is ReplySuppressed {
        } catch {
            let (code, message) = Self.classify(error, deadlinePassed: false)
            replyError(rid, code, message)
        }
    }

    /// Maps any error to a protocol error code and message.
    static func classify(_ error: Error, deadlinePassed: Bool) -> (ErrorCode, String) {
        if deadlinePassed { return (.timeout, "deadline passed: \(error)") }
        switch error {
        case let e as EngineError: return (e.code, e.message)
        case is CancellationError: return (.cancelled, "cancelled")
        case let e as SharedMemoryError: return (.shmFailed, "\(e)")
        case let e as TensorRefError: return (.badRequest, "\(e)")
        default: return (.internal, "\(error)")
        }
    }

    private func currentStats() -> Stats {
        var s = counters.get()
        s.rssBytes = (try? Sys.currentRSSBytes()) ?? 0
        s.peakRssBytes = max((try? Sys.peakRSSBytes()) ?? 0, s.rssBytes)
        s.modelsLoaded = UInt64(engine.modelsLoaded)
        s.regionsAttached = UInt64(regions.count)
        return s
    }

    func reply(_ rid: UInt64, _ m: Message) {
        connection.send(Envelope(requestId: rid, message: m))
    }

    func replyError(_ rid: UInt64, _ code: ErrorCode, _ message: String) {
        counters.withLock { $0.errors += 1 }
        reply(rid, .error(ErrorReply(code: code, message: message)))
    }
}
