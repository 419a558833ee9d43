// The engine protocol: what the dispatcher asks of a model host (Core ML or diagnostic).
//
// Example:
//   final class MyEngine: Engine {
//       let descriptor = EngineDescriptor(name: "diagnostic", coremlVersion: nil, computeUnits: [.cpuOnly])
//       func predict(_ call: PredictCall, _ ctx: RequestContext) async throws -> PredictResult {
//           call.inputs[0].base.copyMemory(...)      // tensors are bound, validated and mapped
//           return PredictResult(outputs: call.outputs.map(\.named))
//       }
//       ...
//   }
//
// The dispatcher validates every tensor ref against its region before the engine sees it, keeps
// the regions mapped while the engine holds a `BoundTensor`, turns thrown errors into `Error`
// replies (an `EngineError` keeps its code), and enforces the Predict deadline by cancelling the
// engine's task.

/// What the helper tells the supervisor in `Hello` about its engine.
public struct EngineDescriptor: Sendable {
    public var name: String
    public var coremlVersion: String?
    public var computeUnits: [ComputeUnits]

    public init(name: String, coremlVersion: String?, computeUnits: [ComputeUnits]) {
        self.name = name
        self.coremlVersion = coremlVersion
        self.computeUnits = computeUnits
    }
}

/// A failure with a protocol error code.
public struct EngineError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Thrown by an engine that has answered the request itself (or deliberately never will):
/// the dispatcher then sends nothing. Only the fault switches use it.
public struct ReplySuppressed: Error, Sendable {
    public init() {}
}

/// A validated tensor ref with the mapping it lives in. Holding it keeps the region mapped.
public struct BoundTensor: @unchecked Sendable {
    public let name: String
    public let ref: TensorRef
    public let region: SharedMemoryRegion
    /// Address of element zero.
    public let base: UnsafeMutableRawPointer

    public init(name: String, ref: TensorRef, region: SharedMemoryRegion) throws {
        do {
            try ref.validate(regionSize: UInt64(region.size))
        } catch let e as TensorRefError {
            // docs/protocol.md (Predict): refs are validated with the schema; the Rust test
            // helper answers both kinds of failure with SCHEMA_MISMATCH, and so do we.
            throw EngineError(.schemaMismatch, "tensor \(name.debugDescription): \(e)")
        }
        self.name = name
        self.ref = ref
        self.region = region
        self.base = try region.pointer(offset: ref.offset, length: ref.len)
    }

    public var named: NamedTensor { NamedTensor(name: name, tensor: ref) }
    public var byteCount: Int { Int(ref.len) }
}

/// One prediction as the engine receives it.
public struct PredictCall: Sendable {
    public var modelId: UInt64
    public var inputs: [BoundTensor]
    public var outputs: [BoundTensor]
    /// CLOCK_MONOTONIC nanoseconds after which the work should stop; nil = none.
    public var deadlineNanos: UInt64?
    /// Tracks whether the engine still references the input slots.
    public var lease: InputLease

    public init(modelId: UInt64, inputs: [BoundTensor], outputs: [BoundTensor], deadlineNanos: UInt64?, lease: InputLease) {
        self.modelId = modelId
        self.inputs = inputs
        self.outputs = outputs
        self.deadlineNanos = deadlineNanos
        self.lease = lease
    }

    public func input(_ name: String) -> BoundTensor? { inputs.first { $0.name == name } }
    public func output(_ name: String) -> BoundTensor? { outputs.first { $0.name == name } }
}

/// What a prediction produced (the dispatcher adds model id and `inputs_retained`).
public struct PredictResult: Sendable {
    public var outputs: [NamedTensor]
    public var marshalInUs: UInt64
    public var predictUs: UInt64
    public var marshalOutUs: UInt64
    /// How many outputs the engine wrote straight into their slots (Core ML used the backing);
    /// nil when the engine does not tell (the diagnostic engine always writes in place).
    public var outputsInPlace: UInt64?

    public init(outputs: [NamedTensor], marshalInUs: UInt64 = 0, predictUs: UInt64 = 0, marshalOutUs: UInt64 = 0,
                outputsInPlace: UInt64? = nil) {
        self.outputs = outputs
        self.marshalInUs = marshalInUs
        self.predictUs = predictUs
        self.marshalOutUs = marshalOutUs
        self.outputsInPlace = outputsInPlace
    }
}

/// The request an engine call serves, and the connection (for the fault switches).
public struct RequestContext: Sendable {
    public var requestId: UInt64
    public var connection: Connection

    public init(requestId: UInt64, connection: Connection) {
        self.requestId = requestId
        self.connection = connection
    }
}

public protocol Engine: AnyObject, Sendable {
    var descriptor: EngineDescriptor { get }
    func compile(_ request: Compile, _ ctx: RequestContext) async throws -> Compiled
    func load(_ request: Load, _ ctx: RequestContext) async throws -> Loaded
    func unload(modelId: UInt64, _ ctx: RequestContext) async throws
    func computePlan(modelId: UInt64, _ ctx: RequestContext) async throws -> ComputePlan
    func predict(_ call: PredictCall, _ ctx: RequestContext) async throws -> PredictResult
    /// The same prediction run synchronously on the reader thread, for work that is quick and
    /// cannot block (the diagnostic echo and add); nil means "use `predict`". Default: nil.
    func predictInline(_ call: PredictCall, _ ctx: RequestContext) throws -> PredictResult?
    /// Whether a model is loaded under this id (Predict answers UNKNOWN_MODEL otherwise).
    func hasModel(_ modelId: UInt64) -> Bool
    /// Models loaded now (for `Stats`).
    var modelsLoaded: Int { get }
}

extension Engine {
    public func predictInline(_ call: PredictCall, _ ctx: RequestContext) throws -> PredictResult? { nil }
}

/// A process-wide switch for faults that must leave the helper alive but deaf
/// (`close-socket`, `garbage`, `oversize`): once engaged, the reader stops serving and
/// sleeps instead of exiting at end of stream.
public enum Freeze {
    private static let flag = Locked(false)
    public static func engage() { flag.withLock { $0 = true } }
    public static var isEngaged: Bool { flag.get() }
}

/// Microseconds between two CLOCK_MONOTONIC readings.
@inline(__always)
public func micros(from start: UInt64, to end: UInt64 = Sys.monotonicNanos()) -> UInt64 {
    end >= start ? (end - start) / 1000 : 0
}
