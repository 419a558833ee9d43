// Diagnostic models addressed by `diag:<model>?k=v&...` URIs (docs/diagnostics.md).
//
// Example:
//   let m = try DiagModel.parse("diag:add?c=2&shape=2x3")
//   // m.kind == .add, m.shape == [2, 3], m.constant == 2
//   m.run(x: boundX, y: boundY)        // y = x + 2, honouring both refs' strides
import HelperCore

public struct DiagModel: Sendable, Equatable {
    public enum Kind: String, Sendable { case echo, add, sleep }
    public enum At: String, Sendable { case load, predict }

    public var kind: Kind
    public var dtype: DType = .f32
    public var shape: [UInt64] = [4]
    public var constant: Float = 1
    public var sleepMs: UInt64 = 100
    public var fault: FaultKind?
    public var at: At = .predict
    public var after: UInt64 = 0
    public var once: String?
    /// Milliseconds the inputs stay referenced after the reply (`retain`, docs/diagnostics.md).
    public var retainMs: UInt64 = 0

    /// Parses a URI. Errors are `BAD_REQUEST`; a `fault` key in a build without the fault
    /// switches is `UNSUPPORTED`.
    public static func parse(_ uri: String, faultsEnabled: Bool = FaultKind.compiledIn) throws -> DiagModel {
        guard uri.hasPrefix("diag:") else { throw EngineError(.badRequest, "not a diag: URI: \(uri)") }
        let rest = uri.dropFirst(5)
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let kind = Kind(rawValue: String(parts[0])) else {
            throw EngineError(.badRequest, "unknown diagnostic model \(String(parts[0]).debugDescription)")
        }
        var m = DiagModel(kind: kind)
        let query = parts.count > 1 ? parts[1] : ""
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = String(kv[0]), v = kv.count > 1 ? String(kv[1]) : ""
            let bad = EngineError(.badRequest, "bad value \(v.debugDescription) for \(k)")
            switch k {
            case "dtype": m.dtype = try DType(name: v) ?? { throw bad }()
            case "shape":
                m.shape = v.isEmpty ? [] : try v.split(separator: "x", omittingEmptySubsequences: false).map {
                    try UInt64($0) ?? { throw bad }()
                }
            case "c":
                guard let c = Float(v), c.isFinite else { throw bad }
                m.constant = c
            case "ms": m.sleepMs = try UInt64(v) ?? { throw bad }()
            case "fault": m.fault = try FaultKind(rawValue: v) ?? { throw bad }()
            case "at": m.at = try At(rawValue: v) ?? { throw bad }()
            case "after": m.after = try UInt64(v) ?? { throw bad }()
            case "once": m.once = v
            case "retain": m.retainMs = try UInt64(v) ?? { throw bad }()
            default: throw EngineError(.badRequest, "unknown key \(k.debugDescription)")
            }
        }
        if m.kind == .add && m.dtype != .f32 { throw EngineError(.badRequest, "the add model takes f32 only") }
        guard m.shape.count <= ProtocolVersion.maxRank else { throw EngineError(.badRequest, "rank above 8") }
        if m.fault != nil && !faultsEnabled {
            throw EngineError(.unsupported, "fault switches exist only in helpers built with -D COREML_DIAG_FAULTS")
        }
        return m
    }

    /// The schema entry of `x` or `y`.
    public func spec(_ name: String) -> TensorSpec { TensorSpec(name: name, dtype: dtype, shape: shape) }

    /// Checks a bound tensor against the schema (validation against its region already happened).
    public func check(_ t: BoundTensor) throws {
        guard t.ref.dtype == dtype, t.ref.shape == shape else {
            throw EngineError(.schemaMismatch, "tensor \(t.name) is \(t.ref.dtype.name)\(t.ref.shape), the model wants \(dtype.name)\(shape)")
        }
    }

    /// y = x (echo, sleep) or y = x + c (add), honouring both layouts' strides.
    public func run(x: BoundTensor, y: BoundTensor) {
        if kind == .add {
            StridedCopy.addFloat32(shape: shape, constant: constant, from: x.base, strides: x.ref.strides,
                                   to: y.base, strides: y.ref.strides)
        } else {
            StridedCopy.copy(shape: shape, elementSize: Int(dtype.size), from: x.base, strides: x.ref.strides,
                             to: y.base, strides: y.ref.strides)
        }
    }
}
