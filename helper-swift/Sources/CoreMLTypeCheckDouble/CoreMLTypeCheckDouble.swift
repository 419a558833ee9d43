// CoreMLTypeCheckDouble: a TYPE-CHECK DOUBLE of the Core ML API, for Linux builds only.
// It is not an engine and runs no model.
//
// Example (CoreMLEngine sources):
//   #if canImport(CoreML)
//   @preconcurrency import CoreML
//   #else
//   import CoreMLTypeCheckDouble    // Linux: the same names and signatures, so the engine compiles
//   #endif
//
// Purpose: the Core ML engine (Sources/CoreMLEngine) compiles on Linux against exactly the Swift
// signatures it uses on macOS, taken from the project's Core ML API
// fact sheet (Apple's documented declarations), and its marshalling (strides,
// padding, float16, output backings, slot release) is unit-tested here. Data holders
// (MLMultiArray, MLFeatureValue, MLDictionaryFeatureProvider, MLPredictionOptions) keep what they
// are given and MLMultiArray calls its deallocator when it is freed, as documented; everything
// that would need Core ML itself (compiling, loading, predicting, compute plans) throws
// `CoreMLTypeCheckDoubleError.notCoreML`. Initialisers that real Core ML does not have are
// marked "double-only" and exist for tests.
//
// Not reachable on macOS: Package.swift links this target only `.when(platforms: [.linux])`, and
// every declaration below is inside `#if os(Linux)`, so on any other OS the module is empty.
#if os(Linux)
import Foundation

public enum CoreMLTypeCheckDoubleError: Error, CustomStringConvertible {
    case notCoreML(String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .notCoreML(let what): return "\(what): Core ML is not available (Linux type-check double)"
        case .invalidArgument(let why): return "invalid argument: \(why)"
        }
    }
}

// MARK: configuration and compute units (fact sheet 1.2)

public enum MLComputeUnits: Int, Sendable {
    case cpuOnly = 0
    case cpuAndGPU = 1
    case all = 2
    @available(macOS 13.0, *) case cpuAndNeuralEngine = 3
}

open class MLModelConfiguration {
    public var computeUnits: MLComputeUnits = .all
    public init() {}
}

// MARK: data types and multi-arrays (fact sheet 1.3, 1.4)

public enum MLMultiArrayDataType: Int, Sendable {
    case double = 65600       // 0x10000 | 64
    case float32 = 65568      // 0x10000 | 32
    @available(macOS 12.0, *) case float16 = 65552   // 0x10000 | 16
    case int32 = 131104       // 0x20000 | 32
    @available(macOS 26.0, *) case int8 = 131080     // 0x20000 | 8

    @available(macOS 11.0, *) public static var float64: MLMultiArrayDataType { .double }
    @available(macOS 11.0, *) public static var float: MLMultiArrayDataType { .float32 }
}

open class MLMultiArray {
    public let dataPointer: UnsafeMutableRawPointer
    public let shape: [NSNumber]
    public let strides: [NSNumber]
    public let dataType: MLMultiArrayDataType
    private let deallocator: ((UnsafeMutableRawPointer) -> Void)?

    /// Wraps existing memory without a copy; `deallocator` runs when the array is freed.
    public init(dataPointer: UnsafeMutableRawPointer, shape: [NSNumber], dataType: MLMultiArrayDataType,
                strides: [NSNumber], deallocator: ((UnsafeMutableRawPointer) -> Void)? = nil) throws {
        guard shape.count == strides.count else {
            throw CoreMLTypeCheckDoubleError.invalidArgument("shape and strides differ in rank")
        }
        self.dataPointer = dataPointer
        self.shape = shape
        self.strides = strides
        self.dataType = dataType
        self.deallocator = deallocator
    }

    /// A first-major contiguous array that owns its memory.
    public convenience init(shape: [NSNumber], dataType: MLMultiArrayDataType) throws {
        let dims = shape.map(\.intValue)
        var strides = [Int](repeating: 1, count: dims.count)
        for i in stride(from: dims.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * max(dims[i + 1], 1) }
        let bytes = max(1, dims.reduce(1, *) * MLMultiArray.elementSize(dataType))
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16384)
        try self.init(dataPointer: p, shape: shape, dataType: dataType, strides: strides.map { NSNumber(value: $0) },
                      deallocator: { $0.deallocate() })
    }

    deinit { deallocator?(dataPointer) }

    public var count: Int { shape.reduce(1) { $0 * $1.intValue } }

    /// Bytes from element zero to one past the last element (the double's notion of the buffer).
    private var spanBytes: Int {
        if shape.contains(where: { $0.intValue == 0 }) { return 0 }
        let last = zip(shape, strides).reduce(0) { $0 + ($1.0.intValue - 1) * $1.1.intValue }
        return (last + 1) * MLMultiArray.elementSize(dataType)
    }

    static func elementSize(_ t: MLMultiArrayDataType) -> Int {
        switch t {
        case .double: return 8
        case .float32, .int32: return 4
        case .float16: return 2
        case .int8: return 1
        }
    }

    @available(macOS 12.3, *)
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: dataPointer, count: spanBytes))
    }

    @available(macOS 12.3, *)
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer, [Int]) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: dataPointer, count: spanBytes), strides.map(\.intValue))
    }
}

// MARK: features (fact sheet 1.3, 1.5)

// Raw values of these two enums are not on the fact sheet and the engine never uses them.
public enum MLFeatureType: Sendable {
    case invalid, int64, double, string, image, multiArray, dictionary, sequence
    @available(macOS 15.0, *) case state
}

public enum MLMultiArrayShapeConstraintType: Sendable {
    case unspecified, enumerated, range
}

open class MLMultiArrayShapeConstraint {
    public let type: MLMultiArrayShapeConstraintType
    public let sizeRangeForDimension: [NSValue]
    public let enumeratedShapes: [[NSNumber]]

    /// Double-only initialiser (tests).
    public init(doubleType type: MLMultiArrayShapeConstraintType, sizeRangeForDimension: [NSValue] = [],
                enumeratedShapes: [[NSNumber]] = []) {
        self.type = type
        self.sizeRangeForDimension = sizeRangeForDimension
        self.enumeratedShapes = enumeratedShapes
    }
}

open class MLMultiArrayConstraint {
    public let shape: [NSNumber]
    public let dataType: MLMultiArrayDataType
    public let shapeConstraint: MLMultiArrayShapeConstraint

    /// Double-only initialiser (tests).
    public init(doubleShape shape: [NSNumber], dataType: MLMultiArrayDataType, shapeConstraint: MLMultiArrayShapeConstraint) {
        self.shape = shape
        self.dataType = dataType
        self.shapeConstraint = shapeConstraint
    }
}

open class MLFeatureValue {
    public let type: MLFeatureType
    public let multiArrayValue: MLMultiArray?

    public convenience init(multiArray value: MLMultiArray) {
        self.init(doubleType: .multiArray, multiArray: value)
    }

    init(doubleType type: MLFeatureType, multiArray: MLMultiArray?) {
        self.type = type
        self.multiArrayValue = multiArray
    }
}

open class MLFeatureDescription {
    public let name: String
    public let type: MLFeatureType
    public let isOptional: Bool
    public let multiArrayConstraint: MLMultiArrayConstraint?

    /// Double-only initialiser (tests).
    public init(doubleName name: String, type: MLFeatureType, isOptional: Bool = false,
                multiArrayConstraint: MLMultiArrayConstraint? = nil) {
        self.name = name
        self.type = type
        self.isOptional = isOptional
        self.multiArrayConstraint = multiArrayConstraint
    }

    /// Core ML checks shape and data type against the constraint; the double checks the data
    /// type and the default shape only.
    public func isAllowedValue(_ value: MLFeatureValue) -> Bool {
        guard let c = multiArrayConstraint, let a = value.multiArrayValue else { return value.type == type }
        return a.dataType == c.dataType && (c.shapeConstraint.type != .unspecified || a.shape == c.shape)
    }
}

public struct MLModelMetadataKey: Hashable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

open class MLModelDescription {
    public let inputDescriptionsByName: [String: MLFeatureDescription]
    public let outputDescriptionsByName: [String: MLFeatureDescription]
    public let metadata: [MLModelMetadataKey: Any]
    public let predictedFeatureName: String?

    /// Double-only initialiser (tests).
    public init(doubleInputs: [MLFeatureDescription], outputs: [MLFeatureDescription]) {
        inputDescriptionsByName = Dictionary(uniqueKeysWithValues: doubleInputs.map { ($0.name, $0) })
        outputDescriptionsByName = Dictionary(uniqueKeysWithValues: outputs.map { ($0.name, $0) })
        metadata = [:]
        predictedFeatureName = nil
    }
}

public protocol MLFeatureProvider {
    var featureNames: Set<String> { get }
    func featureValue(for featureName: String) -> MLFeatureValue?
}

open class MLDictionaryFeatureProvider: MLFeatureProvider {
    public let dictionary: [String: MLFeatureValue]

    public init(dictionary: [String: Any]) throws {
        var d: [String: MLFeatureValue] = [:]
        for (k, v) in dictionary {
            if let f = v as? MLFeatureValue { d[k] = f } else if let a = v as? MLMultiArray { d[k] = MLFeatureValue(multiArray: a) } else {
                throw CoreMLTypeCheckDoubleError.invalidArgument("value for \(k) is not a feature value")
            }
        }
        self.dictionary = d
    }

    public var featureNames: Set<String> { Set(dictionary.keys) }
    public func featureValue(for featureName: String) -> MLFeatureValue? { dictionary[featureName] }
}

// MARK: predictions (fact sheet 1.6, 1.7)

open class MLPredictionOptions {
    @available(macOS 11.0, *) public var outputBackings: [String: Any] = [:]
    public init() {}
}
#endif
