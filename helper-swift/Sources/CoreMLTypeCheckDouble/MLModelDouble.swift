// CoreMLTypeCheckDouble (Linux only): MLModel and MLComputePlan signatures (fact sheet 1.1, 1.2,
// 1.6, 2). Every call that needs Core ML throws `notCoreML`; tests subclass MLModel to stand in
// for a loaded model.
//
// Example (a test):
//   final class Echo: MLModel {
//       override var modelDescription: MLModelDescription { ... }
//       override func prediction(from input: MLFeatureProvider, options: MLPredictionOptions) throws -> MLFeatureProvider { ... }
//   }
#if os(Linux)
import Foundation

open class MLModel {
    public init() {}

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

    open func prediction(from input: MLFeatureProvider) throws -> MLFeatureProvider {
        try prediction(from: input, options: MLPredictionOptions())
    }

    open func prediction(from input: MLFeatureProvider, options: MLPredictionOptions) throws -> MLFeatureProvider {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLModel.prediction(from:options:)")
    }

    @available(macOS 14.0, *)
    open func prediction(from input: MLFeatureProvider, options: MLPredictionOptions = MLPredictionOptions()) async throws -> MLFeatureProvider {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLModel.prediction(from:options:) async")
    }

    @available(macOS 14.0, *)
    open class var availableComputeDevices: [MLComputeDevice] { [] }
}

// MARK: compute devices (fact sheet 2)

// The public initialisers are double-only (tests).
public final class MLCPUComputeDevice: Sendable { public init() {} }
public final class MLGPUComputeDevice: Sendable { public init() {} }
public final class MLNeuralEngineComputeDevice: Sendable { public init() {} }

@available(macOS 14.0, *)
public enum MLComputeDevice: Sendable {
    case cpu(MLCPUComputeDevice)
    case gpu(MLGPUComputeDevice)
    case neuralEngine(MLNeuralEngineComputeDevice)

    public static var allComputeDevices: [MLComputeDevice] { [] }
}

// MARK: model structure (fact sheet 2)

@available(macOS 14.4, *)
public enum MLModelStructure: Sendable {
    case program(Program)
    case neuralNetwork(NeuralNetwork)
    case pipeline(Pipeline)

    public struct Program: Sendable {
        public var functions: [String: Function]

        public struct Function: Sendable {
            public var block: Block
        }

        public struct Block: Sendable {
            public var operations: [Operation]
        }

        /// Double-only: members of Argument and NamedValueType are not on the fact sheet.
        public struct Argument: Sendable {}
        public struct NamedValueType: Sendable {}

        public struct Operation: Sendable {
            public var operatorName: String
            public var inputs: [String: Argument]
            public var outputs: [NamedValueType]
            public var blocks: [Block]
        }
    }

    /// Double-only: members are not on the fact sheet and the engine does not use them.
    public struct NeuralNetwork: Sendable { public init() {} }
    public struct Pipeline: Sendable { public init() {} }
}

@available(macOS 14.4, *)
public struct MLComputePlan: Sendable {
    public struct DeviceUsage: Sendable {
        public let preferred: MLComputeDevice
        public let supported: [MLComputeDevice]
    }

    public struct Cost: Sendable {
        public let weight: Double
    }

    public let modelStructure: MLModelStructure

    public static func load(contentsOf url: URL, configuration: MLModelConfiguration) async throws -> MLComputePlan {
        throw CoreMLTypeCheckDoubleError.notCoreML("MLComputePlan.load(contentsOf:configuration:)")
    }

    public func deviceUsage(for operation: MLModelStructure.Program.Operation) -> MLComputePlan.DeviceUsage? { nil }

    public func estimatedCost(of operation: MLModelStructure.Program.Operation) -> MLComputePlan.Cost? { nil }
}

// MARK: double-only construction (tests)

@available(macOS 14.4, *)
extension MLModelStructure.Program.Operation {
    public init(doubleOperatorName name: String, blocks: [MLModelStructure.Program.Block] = []) {
        self.init(operatorName: name, inputs: [:], outputs: [], blocks: blocks)
    }
}

@available(macOS 14.4, *)
extension MLModelStructure.Program.Block {
    public init(doubleOperations operations: [MLModelStructure.Program.Operation]) { self.init(operations: operations) }
}

@available(macOS 14.4, *)
extension MLModelStructure.Program.Function {
    public init(doubleBlock block: MLModelStructure.Program.Block) { self.init(block: block) }
}

@available(macOS 14.4, *)
extension MLModelStructure.Program {
    public init(doubleFunctions functions: [String: MLModelStructure.Program.Function]) { self.init(functions: functions) }
}

@available(macOS 14.4, *)
extension MLComputePlan.DeviceUsage {
    public init(doublePreferred preferred: MLComputeDevice, supported: [MLComputeDevice]) {
        self.init(preferred: preferred, supported: supported)
    }
}

@available(macOS 14.4, *)
extension MLComputePlan.Cost {
    public init(doubleWeight weight: Double) { self.init(weight: weight) }
}
#endif
