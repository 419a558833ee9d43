// The diagnostic engine: hosts the echo/add/sleep models of docs/diagnostics.md so the
// supervisor's crash-isolation suite runs against this helper exactly as against the Rust
// test helper.
//
// Example:
//   let engine = DiagnosticEngine()
//   let d = Dispatcher(engine: engine, connection: conn)
//   // Load{bundle_path: "diag:sleep?ms=50"} -> Loaded with x, y of f32[4]
import HelperCore

public final class DiagnosticEngine: Engine, @unchecked Sendable {
    private struct Entry {
        var model: DiagModel
        var successes: UInt64 = 0
    }

    private let models = Locked<[UInt64: Entry]>([:])

    public init() {}

    public var descriptor: EngineDescriptor {
        EngineDescriptor(name: "diagnostic", coremlVersion: nil, computeUnits: ComputeUnits.allCases)
    }

    public var modelsLoaded: Int { models.withLock { $0.count } }

    public func hasModel(_ modelId: UInt64) -> Bool { models.withLock { $0[modelId] != nil } }

    public func compile(_ request: Compile, _ ctx: RequestContext) async throws -> Compiled {
        _ = try DiagModel.parse(request.sourcePath)
        return Compiled(bundlePath: request.sourcePath, backend: .mlProgram, compileUs: 0)
    }

    public func load(_ request: Load, _ ctx: RequestContext) async throws -> Loaded {
        let start = Sys.monotonicNanos()
        let model = try DiagModel.parse(request.bundlePath)
        var replyId = ctx.requestId
        if let fault = Self.firing(model, .load, successes: 0) {
            #if COREML_DIAG_FAULTS
            await Faults.fire(fault, ctx)
            if fault == .wrongId { replyId = ctx.requestId &+ 1_000_000 }
            #endif
        }
        models.withLock { $0[request.modelId] = Entry(model: model) }
        let loaded = Loaded(modelId: request.modelId, inputs: [model.spec("x")], outputs: [model.spec("y")],
                            computeUnits: request.computeUnits, loadUs: micros(from: start))
        if replyId != ctx.requestId {
            ctx.connection.send(Envelope(requestId: replyId, message: .loaded(loaded)))
            throw ReplySuppressed()
        }
        return loaded
    }

    public func unload(modelId: UInt64, _ ctx: RequestContext) async throws {
        guard models.withLock({ $0.removeValue(forKey: modelId) }) != nil else {
            throw EngineError(.unknownModel, "no model is loaded under id \(modelId)")
        }
    }

    public func computePlan(modelId: UInt64, _ ctx: RequestContext) async throws -> ComputePlan {
        guard hasModel(modelId) else { throw EngineError(.unknownModel, "no model is loaded under id \(modelId)") }
        return ComputePlan(modelId: modelId, ops: [], neCoverage: nil,
                           unavailableReason: "diagnostic model: no Core ML compute plan")
    }

    /// echo and add without faults or `retain` are a bounded copy: answered on the reader
    /// thread, as the Rust test helper does.
    public func predictInline(_ call: PredictCall, _ ctx: RequestContext) throws -> PredictResult? {
        guard let entry = models.withLock({ $0[call.modelId] }), entry.model.kind != .sleep,
              entry.model.fault == nil, entry.model.retainMs == 0 else { return nil }
        let (x, y) = try Self.tensors(call, entry.model)
        models.withLock { $0[call.modelId]?.successes += 1 }
        let start = Sys.monotonicNanos()
        entry.model.run(x: x, y: y)
        return PredictResult(outputs: [y.named], predictUs: micros(from: start))
    }

    static func tensors(_ call: PredictCall, _ model: DiagModel) throws -> (BoundTensor, BoundTensor) {
        guard let x = call.input("x"), let y = call.output("y") else {
            throw EngineError(.schemaMismatch, "need input x and output y")
        }
        try model.check(x)
        try model.check(y)
        return (x, y)
    }

    public func predict(_ call: PredictCall, _ ctx: RequestContext) async throws -> PredictResult {
        guard let entry = models.withLock({ $0[call.modelId] }) else {
            throw EngineError(.unknownModel, "no model is loaded under id \(call.modelId)")
        }
        let model = entry.model
        let (x, y) = try Self.tensors(call, model)
        var output = y.named
        var replyId = ctx.requestId
        if let fault = Self.firing(model, .predict, successes: entry.successes) {
            #if COREML_DIAG_FAULTS
            await Faults.fire(fault, ctx)
            switch fault {
            case .wrongId: replyId = ctx.requestId &+ 1_000_000
            case .badRef: output.tensor.offset = UInt64(y.region.size)
            default: break
            }
            #endif
        }
        models.withLock { $0[call.modelId]?.successes += 1 }
        let start = Sys.monotonicNanos()
        if model.kind == .sleep {
            try await Task.sleep(nanoseconds: model.sleepMs.multipliedReportingOverflow(by: 1_000_000).partialValue)
        }
        try Task.checkCancellation()
        model.run(x: x, y: y)
        let result = PredictResult(outputs: [output], predictUs: micros(from: start))
        if model.retainMs > 0 { Self.retain(x, for: model.retainMs, lease: call.lease) }
        if replyId != ctx.requestId {
            // Inputs were never retained: the diagnostic models read them synchronously.
            ctx.connection.send(Envelope(requestId: replyId, message: .predicted(Predicted(
                modelId: call.modelId, outputs: result.outputs, inputsRetained: false,
                marshalInUs: 0, predictUs: result.predictUs, marshalOutUs: 0))))
            throw ReplySuppressed()
        }
        return result
    }

    /// Keeps referencing the input for `ms` after the reply (`retain`): the lease stays held, so
    /// the reply says inputs_retained = true and InputsReleased follows. At release time the
    /// input must be unchanged, or the supervisor reused a slot the helper still held: exit 7.
    static func retain(_ x: BoundTensor, for ms: UInt64, lease: InputLease) {
        let seen = Array(UnsafeRawBufferPointer(start: x.base, count: x.byteCount))
        lease.acquire()
        Task.detached {
            try? await Task.sleep(nanoseconds: ms.multipliedReportingOverflow(by: 1_000_000).partialValue)
            let now = Array(UnsafeRawBufferPointer(start: x.base, count: x.byteCount))
            if now != seen {
                Sys.log("coreml-helper: a retained input slot was overwritten before InputsReleased")
                Sys.exitImmediately(7)
            }
            lease.release()
        }
    }

    /// The fault to fire now, if any (consumes the `once` marker file).
    static func firing(_ m: DiagModel, _ at: DiagModel.At, successes: UInt64) -> FaultKind? {
        guard let fault = m.fault, m.at == at else { return nil }
        if at == .predict && successes < m.after { return nil }
        if let path = m.once {
            if Sys.fileExists(path) { return nil }
            try? Sys.createEmptyFile(path)
        }
        return fault
    }
}
