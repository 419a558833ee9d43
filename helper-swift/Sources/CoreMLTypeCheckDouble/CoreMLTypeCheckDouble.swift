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
// Purpose: the Core ML engine (Sources/CoreMLEngine) compiles on Linux against the Swift
// declarations it uses on macOS, transcribed from Apple's real SDK (the Core ML Swift overlay
// and the Objective-C headers; see the fact sheet's "Checked against the real SDK"), and its
// marshalling (strides, padding, float16, output backings, slot release) is unit-tested here.
//
// How the double keeps the engine honest:
// - Declarations are a SUBSET of the SDK's, each with the SDK's kind (class or struct), Sendable
//   conformance (none where the SDK has none; `@available(*, unavailable)` where the SDK forbids
//   it), enum cases and raw values, `let` (Swift structs) or get-only `var` (Objective-C
//   properties), optionality, async/throws and availability. Anything the engine names that the
//   SDK lacks fails here; a member the double lacks fails here too, so add it only as declared.
// - The module is built with library evolution (Package.swift), so its enums are non-frozen like
//   the SDK's: switches in the engine need `@unknown default` exactly where they do on macOS,
//   and in Swift 6 mode a missing known case (e.g. `MLModelStructure.unsupported`) is an error.
// - Behaviour rules of the framework that the engine must follow are enforced, not assumed:
//   an output backing that fails the output description's `isAllowedValue` fails the whole
//   prediction (MLPredictionOptions.h), see `MLModel`.
// Initialisers real Core ML does not have start with `double` and exist for tests.
//
// Not reachable on macOS: Package.swift links this target only `.when(platforms: [.linux])`, and
// every declaration below is inside `#if os(Linux)`, so on any other OS the module is empty.
#if os(Linux)
import Foundation

public enum CoreMLTypeCheckDoubleError: Error, CustomStringConvertible {
    case notCoreML(String)
    case invalidArgument(String)
    /// What Core ML reports at prediction time for an output backing that fails `isAllowedValue`.
    case outputBackingRejected(String)

    public var description: String {
        switch self {
        case .notCoreML(let what): return "\(what): Core ML is not available (Linux type-check double)"
        case .invalidArgument(let why): return "invalid argument: \(why)"
        case .outputBackingRejected(let why): return "output backing rejected: \(why)"
        }
    }
}

// MARK: configuration and compute units (MLModelConfiguration.h)

/// NS_ENUM: imported as a non-frozen Int enum.
public enum MLComputeUnits: Int, @unchecked Sendable {
    case cpuOnly = 0
    case cpuAndGPU = 1
    case all = 2
    @available(macOS 13.0, *) case cpuAndNeuralEngine = 3
}

open class MLModelConfiguration: NSObject {
    public var computeUnits: MLComputeUnits = .all
    override public init() {}
}

// MARK: data types and multi-arrays (MLMultiArray.h)

/// The floor SDK (macOS 14.4) declares these cases; `int8` exists only in the macOS 26 SDK, so it
/// is absent here and the engine cannot name it.
public enum MLMultiArrayDataType: Int, @unchecked Sendable {
    case double = 65600       // 0x10000 | 64
    @available(macOS 12.0, *) case float16 = 65552   // 0x10000 | 16
    case float32 = 65568      // 0x10000 | 32
    case int32 = 131104       // 0x20000 | 32

    @available(macOS 11.0, *) public static var float64: MLMultiArrayDataType { .double }
    @available(macOS 11.0, *) public static var float: MLMultiArrayDataType { .float32 }
}

open class MLMultiArray: NSObject {
    private let storage: UnsafeMutableRawPointer
    private let shape_: [NSNumber]
    private let strides_: [NSNumber]
    private let dataType_: MLMultiArrayDataType
    private let deallocator: ((UnsafeMutableRawPointer) -> Void)?

    public var dataPointer: UnsafeMutableRawPointer { storage }
    public var shape: [NSNumber] { shape_ }
    public var strides: [NSNumber] { strides_ }
    public var dataType: MLMultiArrayDataType { dataType_ }
    public var count: Int { shape_.reduce(1) { $0 * $1.intValue } }

    /// Wraps existing memory without a copy; `deallocator` runs when the array is freed.
    public init(dataPointer: UnsafeMutableRawPointer, shape: [NSNumber], dataType: MLMultiArrayDataType,
                strides: [NSNumber], deallocator: ((UnsafeMutableRawPointer) -> Void)? = nil) throws {
        guard shape.count == strides.count else {
            throw CoreMLTypeCheckDoubleError.invalidArgument("shape and strides differ in rank")
        }
        storage = dataPointer
        shape_ = shape
        strides_ = strides
        dataType_ = dataType
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

    deinit { deallocator?(storage) }

    /// Bytes from element zero to one past the last element (the double's notion of the buffer).
    private var spanBytes: Int {
        if shape_.contains(where: { $0.intValue == 0 }) { return 0 }
        let last = zip(shape_, strides_).reduce(0) { $0 + ($1.0.intValue - 1) * $1.1.intValue }
        return (last + 1) * MLMultiArray.elementSize(dataType_)
    }

    static func elementSize(_ t: MLMultiArrayDataType) -> Int {
        switch t {
        case .double: return 8
        case .float32, .int32: return 4
        case .float16: return 2
        }
    }

    @available(macOS 12.3, *)
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage, count: spanBytes))
    }

    @available(macOS 12.3, *)
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer, [Int]) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: storage, count: spanBytes), strides_.map(\.intValue))
    }
}

// MARK: features (MLFeatureType.h, MLFeatureDescription.h, MLMultiArrayConstraint.h)

public enum MLFeatureType: Int, @unchecked Sendable {
    case invalid = 0
    case int64 = 1
    case double = 2
    case string = 3
    case image = 4
    case multiArray = 5
    case dictionary = 6
    @available(macOS 10.14, *) case sequence = 7
    @available(macOS 15.0, *) case state = 8
}

@available(macOS 10.14, *)
public enum MLMultiArrayShapeConstraintType: Int, @unchecked Sendable {
    case unspecified = 1
    case enumerated = 2
    case range = 3
}

@available(macOS 10.14, *)
open class MLMultiArrayShapeConstraint: NSObject {
    private let type_: MLMultiArrayShapeConstraintType
    private let ranges: [NSValue]
    private let enumerated: [[NSNumber]]

    public var type: MLMultiArrayShapeConstraintType { type_ }
    public var sizeRangeForDimension: [NSValue] { ranges }
    public var enumeratedShapes: [[NSNumber]] { enumerated }

    /// Double-only initialiser (tests).
    public init(doubleType type: MLMultiArrayShapeConstraintType, sizeRangeForDimension: [NSValue] = [],
                enumeratedShapes: [[NSNumber]] = []) {
        type_ = type
        ranges = sizeRangeForDimension
        enumerated = enumeratedShapes
    }
}

open class MLMultiArrayConstraint: NSObject {
    private let shape_: [NSNumber]
    private let dataType_: MLMultiArrayDataType
    private let shapeConstraint_: MLMultiArrayShapeConstraint

    public var shape: [NSNumber] { shape_ }
    public var dataType: MLMultiArrayDataType { dataType_ }
    @available(macOS 10.14, *) public var shapeConstraint: MLMultiArrayShapeConstraint { shapeConstraint_ }

    /// Double-only initialiser (tests).
    public init(doubleShape shape: [NSNumber], dataType: MLMultiArrayDataType, shapeConstraint: MLMultiArrayShapeConstraint) {
        shape_ = shape
        dataType_ = dataType
        shapeConstraint_ = shapeConstraint
    }
}

open class MLFeatureValue: NSObject {
    /// What the value holds (MLFeatureValue.h: a multi-array or an image, the types the engine uses).
    enum Storage {
        case multiArray(MLMultiArray)
        case image(CVPixelBuffer)
    }

    let storage: Storage

    public var type: MLFeatureType {
        switch storage {
        case .multiArray: return .multiArray
        case .image: return .image
        }
    }

    public var multiArrayValue: MLMultiArray? {
        switch storage {
        case .multiArray(let a): return a
        case .image: return nil
        }
    }

    /// `@property (readonly, nullable) CVPixelBufferRef imageBufferValue;`
    public var imageBufferValue: CVPixelBuffer? {
        switch storage {
        case .multiArray: return nil
        case .image(let b): return b
        }
    }

    public init(multiArray value: MLMultiArray) { storage = .multiArray(value) }

    /// `+ featureValueWithPixelBuffer:(CVPixelBufferRef)value`, imported as `init(pixelBuffer:)`.
    public init(pixelBuffer value: CVPixelBuffer) { storage = .image(value) }
}

/// MLImageSizeConstraintType.h (macOS 10.14): `NS_ENUM(NSInteger)`, values as declared.
@available(macOS 10.14, *)
public enum MLImageSizeConstraintType: Int, @unchecked Sendable {
    case unspecified = 0
    case enumerated = 2
    case range = 3
}

/// MLImageSize.h (macOS 10.14).
@available(macOS 10.14, *)
open class MLImageSize: NSObject {
    private let wide: Int
    private let high: Int

    public var pixelsWide: Int { wide }
    public var pixelsHigh: Int { high }

    /// Double-only initialiser (tests).
    public init(doublePixelsWide wide: Int, pixelsHigh high: Int) {
        self.wide = wide
        self.high = high
    }
}

/// MLImageSizeConstraint.h (macOS 10.14): the sizes a flexible image feature takes. A range is
/// read as `location ... location + length`, as for multi-arrays (unverified on macOS).
@available(macOS 10.14, *)
open class MLImageSizeConstraint: NSObject {
    private let type_: MLImageSizeConstraintType
    private let wideRange: NSRange
    private let highRange: NSRange
    private let enumerated: [MLImageSize]

    public var type: MLImageSizeConstraintType { type_ }
    public var pixelsWideRange: NSRange { wideRange }
    public var pixelsHighRange: NSRange { highRange }
    public var enumeratedImageSizes: [MLImageSize] { enumerated }

    /// Double-only initialiser (tests).
    public init(doubleType type: MLImageSizeConstraintType, pixelsWideRange: NSRange = NSRange(location: 0, length: 0),
                pixelsHighRange: NSRange = NSRange(location: 0, length: 0), enumeratedImageSizes: [MLImageSize] = []) {
        type_ = type
        wideRange = pixelsWideRange
        highRange = pixelsHighRange
        enumerated = enumeratedImageSizes
    }

    /// Whether an image of `wide`x`high` fits (the double's reading of Core ML's test).
    func allows(wide: Int, high: Int, default d: (Int, Int)) -> Bool {
        func within(_ n: Int, _ r: NSRange) -> Bool { n >= r.location && (r.length >= Int.max - r.location || n <= r.location + r.length) }
        switch type_ {
        case .unspecified: return (wide, high) == d
        case .enumerated: return enumerated.contains { $0.pixelsWide == wide && $0.pixelsHigh == high }
        case .range: return within(wide, wideRange) && within(high, highRange)
        }
    }
}

/// MLImageConstraint.h (macOS 10.13): the required or default size and the accepted pixel format
/// of an image feature; `sizeConstraint` (macOS 10.14) the sizes a flexible one takes.
open class MLImageConstraint: NSObject {
    private let high: Int
    private let wide: Int
    private let format: OSType
    private let sizeConstraint_: MLImageSizeConstraint

    public var pixelsHigh: Int { high }
    public var pixelsWide: Int { wide }
    public var pixelFormatType: OSType { format }
    @available(macOS 10.14, *) public var sizeConstraint: MLImageSizeConstraint { sizeConstraint_ }

    /// Double-only initialiser (tests).
    public init(doublePixelsWide wide: Int, pixelsHigh high: Int, pixelFormatType: OSType,
                sizeConstraint: MLImageSizeConstraint = MLImageSizeConstraint(doubleType: .unspecified)) {
        self.wide = wide
        self.high = high
        format = pixelFormatType
        sizeConstraint_ = sizeConstraint
    }
}

open class MLFeatureDescription: NSObject {
    private let name_: String
    private let type_: MLFeatureType
    private let optional_: Bool
    private let multiArrayConstraint_: MLMultiArrayConstraint?
    private let imageConstraint_: MLImageConstraint?

    public var name: String { name_ }
    public var type: MLFeatureType { type_ }
    public var isOptional: Bool { optional_ }
    public var multiArrayConstraint: MLMultiArrayConstraint? { multiArrayConstraint_ }
    public var imageConstraint: MLImageConstraint? { imageConstraint_ }

    /// Double-only initialiser (tests).
    public init(doubleName name: String, type: MLFeatureType, isOptional: Bool = false,
                multiArrayConstraint: MLMultiArrayConstraint? = nil, imageConstraint: MLImageConstraint? = nil) {
        name_ = name
        type_ = type
        optional_ = isOptional
        multiArrayConstraint_ = multiArrayConstraint
        imageConstraint_ = imageConstraint
    }

    /// Core ML's test, as the double models it for multi-arrays: the value's type and data type
    /// equal the description's, and its shape is the default shape (`unspecified`), one of the
    /// enumerated shapes, or inside every dimension's range. A range is read as
    /// `location ... location + length`, the engine's reading (unverified on macOS); strides are
    /// not part of the test. An image is allowed when its pixel buffer has the constraint's
    /// width, height and pixel format (bytesPerRow is not part of the test). Other feature types
    /// are not modelled: they are never allowed.
    public func isAllowedValue(_ value: MLFeatureValue) -> Bool {
        if type_ == .image, value.type == .image, let c = imageConstraint_, let b = value.imageBufferValue {
            return c.sizeConstraint.allows(wide: CVPixelBufferGetWidth(b), high: CVPixelBufferGetHeight(b),
                                           default: (c.pixelsWide, c.pixelsHigh))
                && CVPixelBufferGetPixelFormatType(b) == c.pixelFormatType
        }
        guard value.type == type_, type_ == .multiArray, let c = multiArrayConstraint_, let a = value.multiArrayValue,
              a.dataType == c.dataType else { return false }
        let shape = a.shape.map(\.intValue)
        switch c.shapeConstraint.type {
        case .unspecified:
            return shape == c.shape.map(\.intValue)
        case .enumerated:
            return c.shapeConstraint.enumeratedShapes.contains { $0.map(\.intValue) == shape }
        case .range:
            let ranges = c.shapeConstraint.sizeRangeForDimension.map(\.rangeValue)
            guard ranges.count == shape.count else { return false }
            return zip(shape, ranges).allSatisfy { n, r in
                n >= r.location && (r.length >= Int.max - r.location || n <= r.location + r.length)
            }
        }
    }
}

public struct MLModelMetadataKey: Hashable, RawRepresentable, @unchecked Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
}

open class MLModelDescription: NSObject {
    private let inputs: [String: MLFeatureDescription]
    private let outputs: [String: MLFeatureDescription]

    public var inputDescriptionsByName: [String: MLFeatureDescription] { inputs }
    public var outputDescriptionsByName: [String: MLFeatureDescription] { outputs }
    public var metadata: [MLModelMetadataKey: Any] { [:] }
    public var predictedFeatureName: String? { nil }

    /// Double-only initialiser (tests).
    public init(doubleInputs: [MLFeatureDescription], outputs: [MLFeatureDescription]) {
        inputs = Dictionary(uniqueKeysWithValues: doubleInputs.map { ($0.name, $0) })
        self.outputs = Dictionary(uniqueKeysWithValues: outputs.map { ($0.name, $0) })
    }
}

/// An Objective-C protocol in the SDK, hence class-bound.
public protocol MLFeatureProvider: AnyObject {
    var featureNames: Set<String> { get }
    func featureValue(for featureName: String) -> MLFeatureValue?
}

open class MLDictionaryFeatureProvider: NSObject, MLFeatureProvider {
    private let values: [String: MLFeatureValue]

    public var dictionary: [String: MLFeatureValue] { values }

    public init(dictionary: [String: Any]) throws {
        var d: [String: MLFeatureValue] = [:]
        for (k, v) in dictionary {
            if let f = v as? MLFeatureValue { d[k] = f } else if let a = v as? MLMultiArray { d[k] = MLFeatureValue(multiArray: a) } else {
                throw CoreMLTypeCheckDoubleError.invalidArgument("value for \(k) is not a feature value")
            }
        }
        values = d
    }

    public var featureNames: Set<String> { Set(values.keys) }
    public func featureValue(for featureName: String) -> MLFeatureValue? { values[featureName] }
}

// MARK: predictions (MLPredictionOptions.h)

open class MLPredictionOptions: NSObject {
    @available(macOS 11.0, *) public var outputBackings: [String: Any] = [:]
    override public init() {}
}
#endif
