// CoreMLTypeCheckDouble (Linux only): MLModel, compute devices, MLModelStructure and
// MLComputePlan as the SDK declares them. Calls that need Core ML throw `notCoreML`; tests make
// a stand-in model by subclassing MLModel and overriding the double-only `doublePrediction`.
//
// Example (a test):
//   final class Echo: MLModel {
//       override var modelDescription: MLModelDescription { ... }
//       override func doublePrediction(from input: MLFeatureProvider, options: MLPredictionOptions) async throws -> MLFeatureProvider { ... }
//   }
//   // engine -> model.prediction(from:options:) -> backings checked like Core ML -> doublePrediction
#if os(Linux)
import Foundation

open class MLModel: NSObject {
    override public init() {}

    public convenience init(contentsOf url: URL, configuration: MLModelConfiguration) throws {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLModel(contentsOf:configuration:)")
    }

    @available(macOS 12.0, *)
    open class func load(contentsOf url: URL, configuration: MLModelConfiguration = MLModelConfiguration()) async throws -> MLModel {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLModel.load(contentsOf:configuration:)")
    }

    @available(macOS, introduced: 10.13, deprecated: 100000, message: "Use the asynchronous interface")
    open class func compileModel(at modelURL: URL) throws -> URL {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLModel.compileModel(at:)")
    }

    @available(macOS 13.0, *)
    open class func compileModel(at url: URL) async throws -> URL {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLModel.compileModel(at:) async")
    }

    open var modelDescription: MLModelDescription { MLModelDescription(doubleInputs: [], outputs: []) }

    open var configuration: MLModelConfiguration { MLModelConfiguration() }

    // The prediction entry points are `open` Objective-C methods in the SDK; here they are
    // `public`, so a stand-in cannot skip the framework's checks (the engine never subclasses
    // MLModel). Stand-ins override `doublePrediction`.

    public func prediction(from input: MLFeatureProvider) throws -> MLFeatureProvider {
        try prediction(from: input, options: MLPredictionOptions())
    }

    /// The synchronous prediction: runs `doublePrediction` to completion on this thread.
    public func prediction(from input: MLFeatureProvider, options: MLPredictionOptions) throws -> MLFeatureProvider {
        record("sync")
        try checkOutputBackings(options)
        let call = BlockingCall(model: self, input: input, options: options)
        return try call.run()
    }

    @available(macOS 14.0, *)
    public func prediction(from input: MLFeatureProvider, options: MLPredictionOptions = MLPredictionOptions()) async throws -> MLFeatureProvider {
        record("async")
        try checkOutputBackings(options)
        return try await doublePrediction(from: input, options: options)
    }

    @available(macOS 14.0, *)
    public static var availableComputeDevices: [MLComputeDevice] { [] }

    /// Double-only: the prediction entry points called so far ("sync", "async"), in order.
    public var doubleEntryPoints: [String] {
        entryLock.lock()
        defer { entryLock.unlock() }
        return entries
    }

    private let entryLock = NSLock()
    private var entries: [String] = []

    private func record(_ entry: String) {
        entryLock.lock()
        entries.append(entry)
        entryLock.unlock()
    }

    /// Double-only: what a stand-in model computes.
    open func doublePrediction(from input: MLFeatureProvider, options: MLPredictionOptions) async throws -> MLFeatureProvider {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLModel.prediction(from:options:)")
    }

    /// MLPredictionOptions.h: "The output backing object must satisfy the output feature
    /// description's -isAllowedValue: test, or the framework reports an error at the prediction
    /// time." Unknown feature names are ignored. (The FP16-CVPixelBuffer exception needs image
    /// support, which the double does not model yet.)
    private func checkOutputBackings(_ options: MLPredictionOptions) throws {
        let outputs = modelDescription.outputDescriptionsByName
        for (name, backing) in options.outputBackings.sorted(by: { $0.key < $1.key }) {
            guard let description = outputs[name] else { continue }
            // MLPredictionOptions.h: each backing is a CVPixelBuffer or an MLMultiArray matching
            // the feature's type.
            if description.type == .image {
                guard let buffer = backing as? CVPixelBuffer else {
                    throw CoreMLTypeCheckDoubleError.outputBackingRejected("\(name): an image output needs a CVPixelBuffer")
                }
                guard description.isAllowedValue(MLFeatureValue(pixelBuffer: buffer)) else {
                    throw CoreMLTypeCheckDoubleError.outputBackingRejected(
                        "\(name): a \(CVPixelBufferGetWidth(buffer))x\(CVPixelBufferGetHeight(buffer)) pixel buffer is not allowed by the output's constraint")
                }
                continue
            }
            guard let array = backing as? MLMultiArray else {
                throw CoreMLTypeCheckDoubleError.outputBackingRejected("\(name): not an MLMultiArray")
            }
            guard description.isAllowedValue(MLFeatureValue(multiArray: array)) else {
                throw CoreMLTypeCheckDoubleError.outputBackingRejected(
                    "\(name): shape \(array.shape.map(\.intValue)) or data type \(array.dataType) is not allowed by the output's constraint")
            }
        }
    }
}

/// Runs a stand-in's async prediction to completion for the synchronous entry point.
private final class BlockingCall: @unchecked Sendable {
    let model: MLModel
    let input: MLFeatureProvider
    let options: MLPredictionOptions
    private var result: Result<MLFeatureProvider, Error>?
    private let done = DispatchSemaphore(value: 0)

    init(model: MLModel, input: MLFeatureProvider, options: MLPredictionOptions) {
        self.model = model
        self.input = input
        self.options = options
    }

    func run() throws -> MLFeatureProvider {
        Task { await self.complete() }
        done.wait()
        return try result!.get()
    }

    private func complete() async {
        do { result = .success(try await model.doublePrediction(from: input, options: options)) } catch { result = .failure(error) }
        done.signal()
    }
}

// MARK: compute devices (MLComputeDevice.h, MLModel+MLComputeDevice.h; macOS 14)

// NSObject subclasses in the SDK; the public initialisers are double-only (tests). Their device
// properties (Metal device, core count) are not declared: the engine does not read them.
@available(macOS 14.0, *)
public final class MLCPUComputeDevice: NSObject, @unchecked Sendable { override public init() {} }
@available(macOS 14.0, *)
public final class MLGPUComputeDevice: NSObject, @unchecked Sendable { override public init() {} }
@available(macOS 14.0, *)
public final class MLNeuralEngineComputeDevice: NSObject, @unchecked Sendable { override public init() {} }

@available(macOS 14.0, *)
public enum MLComputeDevice: Equatable, Hashable, CustomStringConvertible, Sendable {
    case cpu(MLCPUComputeDevice)
    case gpu(MLGPUComputeDevice)
    case neuralEngine(MLNeuralEngineComputeDevice)

    public static var allComputeDevices: [MLComputeDevice] { [] }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .gpu: return "gpu"
        case .neuralEngine: return "neuralEngine"
        }
    }
}

// MARK: model structure (MLModelStructure*.h, Swift overlay; macOS 14.4)

@available(macOS 14.4, *)
public enum MLModelStructure: Sendable {
    case neuralNetwork(NeuralNetwork)
    case program(Program)
    case pipeline(Pipeline)
    case unsupported

    public struct Program: Sendable {
        public let functions: [String: Function]

        public struct Function: Sendable {
            public let inputs: [NamedValueType]
            public let block: Block
        }

        public struct Block: Sendable {
            public let inputs: [NamedValueType]
            public let outputNames: [String]
            public let operations: [Operation]
        }

        public struct Operation: Sendable {
            public let operatorName: String
            public let inputs: [String: Argument]
            public let outputs: [NamedValueType]
            public let blocks: [Block]
        }

        public struct Argument: Sendable {
            public let bindings: [Binding]
        }

        public enum Binding: Sendable {
            case name(String)
            case value(Value)
        }

        /// Members not transcribed (the engine does not read them).
        public struct Value: Sendable {}

        public struct NamedValueType: Sendable {
            public let name: String
            public let type: ValueType
        }

        /// Members not transcribed (the engine does not read them).
        public struct ValueType: Sendable {}
    }

    public struct NeuralNetwork: Sendable {
        public let layers: [Layer]

        public struct Layer: Sendable {
            public let name: String
            public let type: String
            public let inputNames: [String]
            public let outputNames: [String]
        }
    }

    public struct Pipeline: Sendable {
        public let subModelNames: [String]
        public let subModels: [MLModelStructure]
    }
}

// MARK: compute plan (MLComputePlan.h, Swift overlay; macOS 14.4)

/// A class in the SDK, explicitly not Sendable.
@available(macOS 14.4, *)
public class MLComputePlan {
    public struct DeviceUsage: Sendable {
        public let supported: [MLComputeDevice]
        public let preferred: MLComputeDevice
    }

    public struct Cost: Sendable {
        public let weight: Double
    }

    public let modelStructure: MLModelStructure

    init(modelStructure: MLModelStructure) { self.modelStructure = modelStructure }

    public static func load(contentsOf url: URL, configuration: MLModelConfiguration) async throws -> MLComputePlan {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLComputePlan.load(contentsOf:configuration:)")
    }

    public func deviceUsage(for operation: MLModelStructure.Program.Operation) -> MLComputePlan.DeviceUsage? { nil }

    public func deviceUsage(for layer: MLModelStructure.NeuralNetwork.Layer) -> MLComputePlan.DeviceUsage? { nil }

    public func estimatedCost(of operation: MLModelStructure.Program.Operation) -> MLComputePlan.Cost? { nil }
}

@available(*, unavailable)
extension MLComputePlan: Sendable {}

// MARK: double-only construction (tests)

@available(macOS 14.4, *)
extension MLModelStructure.Program.Operation {
    public init(doubleOperatorName name: String, blocks: [MLModelStructure.Program.Block] = []) {
        self.init(operatorName: name, inputs: [:], outputs: [], blocks: blocks)
    }
}

@available(macOS 14.4, *)
extension MLModelStructure.Program.Block {
    public init(doubleOperations operations: [MLModelStructure.Program.Operation]) {
        self.init(inputs: [], outputNames: [], operations: operations)
    }
}

@available(macOS 14.4, *)
extension MLModelStructure.Program.Function {
    public init(doubleBlock block: MLModelStructure.Program.Block) { self.init(inputs: [], block: block) }
}

@available(macOS 14.4, *)
extension MLModelStructure.Program {
    public init(doubleFunctions functions: [String: MLModelStructure.Program.Function]) { self.init(functions: functions) }
}

@available(macOS 14.4, *)
extension MLModelStructure.NeuralNetwork {
    public init(doubleLayers layers: [Layer]) { self.init(layers: layers) }
}

@available(macOS 14.4, *)
extension MLModelStructure.Pipeline {
    public init(doubleSubModels subModels: [String: MLModelStructure]) {
        let names = subModels.keys.sorted()
        self.init(subModelNames: names, subModels: names.map { subModels[$0]! })
    }
}

@available(macOS 14.4, *)
extension MLComputePlan.DeviceUsage {
    public init(doublePreferred preferred: MLComputeDevice, supported: [MLComputeDevice]) {
        self.init(supported: supported, preferred: preferred)
    }
}

@available(macOS 14.4, *)
extension MLComputePlan.Cost {
    public init(doubleWeight weight: Double) { self.init(weight: weight) }
}
#endif
