// Model I/O schema from `MLModel.modelDescription`, and the dtype mapping.
//
// Example:
//   let inputs = try CoreMLSchema.specs(model.modelDescription.inputDescriptionsByName)
//   // [TensorSpec(name: "image", dtype: .f16, shape: [1, 3, 224, 224], enumeratedShapes: [], ...)]
#if canImport(CoreML)
@preconcurrency import CoreML
#else
import CoreMLTypeCheckDouble
#endif
import Foundation
import HelperCore

public enum CoreMLSchema {
    /// The MLMultiArray data type of a protocol dtype, if Core ML has one (int8 needs macOS 26
    /// and an SDK that declares it, so it is not mapped).
    public static func dataType(_ d: DType) -> MLMultiArrayDataType? {
        switch d {
        case .f32: return .float32
        case .f16: return .float16
        case .f64: return .double
        case .i32: return .int32
        case .bf16, .i8, .i16, .i64, .u8: return nil
        }
    }

    public static func dtype(_ t: MLMultiArrayDataType) -> DType? {
        switch t {
        case .float32: return .f32
        case .float16: return .f16
        case .double: return .f64
        case .int32: return .i32
        default: return nil
        }
    }

    /// Specs of multi-array features, sorted by name (a description is a dictionary, so Core ML
    /// gives no order; sorting makes the order stable).
    public static func specs(_ features: [String: MLFeatureDescription]) throws -> [TensorSpec] {
        try features.keys.sorted().map { try spec(features[$0]!) }
    }

    public static func spec(_ f: MLFeatureDescription) throws -> TensorSpec {
        if f.type == .image { return try CoreMLImages.spec(f) }
        guard f.type == .multiArray, let c = f.multiArrayConstraint else {
            throw EngineError(.unsupported, "feature \(f.name.debugDescription) is neither a multi-array nor an image; no other feature type is supported")
        }
        guard let dtype = dtype(c.dataType) else {
            throw EngineError(.unsupported, "feature \(f.name.debugDescription) has a data type the protocol cannot carry")
        }
        let shape = c.shape.map { UInt64(max(0, $0.intValue)) }
        var enumerated: [[UInt64]] = []
        var ranges: [[UInt64]] = []
        switch c.shapeConstraint.type {
        case .enumerated:
            enumerated = c.shapeConstraint.enumeratedShapes.map { $0.map { UInt64(max(0, $0.intValue)) } }
        case .range:
            ranges = c.shapeConstraint.sizeRangeForDimension.map { bounds(of: $0.rangeValue) }
        case .unspecified:
            break
        @unknown default:
            break
        }
        return TensorSpec(name: f.name, dtype: dtype, shape: shape, enumeratedShapes: enumerated,
                          shapeRanges: ranges, optional: f.isOptional)
    }

    /// [min, max] of one dimension. NOT VERIFIED on macOS: whether Core ML encodes the upper
    /// bound as location+length or location+length-1, and how "unbounded" looks, is not on the
    /// fact sheet; taking location+length can only overstate the maximum by one, and a length
    /// that reaches Int.max (or NSNotFound) is reported as unbounded (u64::MAX).
    static func bounds(of r: NSRange) -> [UInt64] {
        let lower = UInt64(max(0, r.location))
        if r.length == NSNotFound || r.length >= Int.max - max(0, r.location) { return [lower, UInt64.max] }
        return [lower, lower + UInt64(max(0, r.length))]
    }

    /// Whether `shape` is one the spec allows: the default shape, one of the enumerated shapes,
    /// or inside every dimension's range.
    public static func accepts(_ spec: TensorSpec, shape: [UInt64]) -> Bool {
        if shape == spec.shape { return true }
        if spec.enumeratedShapes.contains(shape) { return true }
        if !spec.shapeRanges.isEmpty && spec.shapeRanges.count == shape.count {
            return zip(shape, spec.shapeRanges).allSatisfy { $0 >= $1[0] && $0 <= $1[1] }
        }
        return false
    }

    /// Checks the tensors of a Predict against the model's inputs: every required input present,
    /// no unknown names, dtype equal, shape allowed.
    static func checkInputs(_ tensors: [BoundTensor], against specs: [TensorSpec]) throws {
        let byName = Dictionary(specs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var seen = Set<String>()
        for t in tensors {
            guard let s = byName[t.name] else { throw EngineError(.schemaMismatch, "the model has no input \(t.name.debugDescription)") }
            guard seen.insert(t.name).inserted else { throw EngineError(.schemaMismatch, "input \(t.name.debugDescription) given twice") }
            try check(t, s, "input")
        }
        for s in specs where !s.optional && !seen.contains(s.name) {
            throw EngineError(.schemaMismatch, "input \(s.name.debugDescription) is missing")
        }
    }

    /// Output slots: known names, each at most once, dtype equal, and a shape the schema allows
    /// (the output Core ML writes may still have another allowed shape, protocol.md). An output
    /// whose default shape is empty and that has no enumerated shapes or ranges has a shape only
    /// Core ML knows: any slot is taken, and the result is copied into it if it fits.
    static func checkOutputs(_ tensors: [BoundTensor], against specs: [TensorSpec]) throws {
        let byName = Dictionary(specs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var seen = Set<String>()
        for t in tensors {
            guard let s = byName[t.name] else { throw EngineError(.schemaMismatch, "the model has no output \(t.name.debugDescription)") }
            guard seen.insert(t.name).inserted else { throw EngineError(.schemaMismatch, "output \(t.name.debugDescription) given twice") }
            guard t.ref.dtype == s.dtype else {
                throw EngineError(.schemaMismatch, "output \(t.name.debugDescription) is \(s.dtype.name), the slot is \(t.ref.dtype.name)")
            }
            let unknownShape = s.shape.isEmpty && s.enumeratedShapes.isEmpty && s.shapeRanges.isEmpty
            guard unknownShape || accepts(s, shape: t.ref.shape) else {
                throw EngineError(.schemaMismatch, "output slot \(t.name.debugDescription) has shape \(t.ref.shape), the model allows \(s.shape)")
            }
            try checkImage(t, s, "output slot")
        }
    }

    private static func check(_ t: BoundTensor, _ s: TensorSpec, _ what: String) throws {
        guard t.ref.dtype == s.dtype else {
            throw EngineError(.schemaMismatch, "\(what) \(t.name.debugDescription) must be \(s.dtype.name), got \(t.ref.dtype.name)")
        }
        guard accepts(s, shape: t.ref.shape) else {
            throw EngineError(.schemaMismatch, "\(what) \(t.name.debugDescription) has shape \(t.ref.shape), the model allows \(s.shape)")
        }
        try checkImage(t, s, what)
    }

    /// An image feature's ref must hold packed pixels of its format, rows at least a row apart.
    private static func checkImage(_ t: BoundTensor, _ s: TensorSpec, _ what: String) throws {
        guard let image = s.image else { return }
        do { try image.sized(for: s, ref: t.ref).checkRef(t.ref) } catch {
            throw EngineError(.schemaMismatch, "\(what) \(t.name.debugDescription): \(error)")
        }
    }
}
