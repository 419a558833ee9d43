// The Core ML calls the engine makes that need a real Core ML, gathered so tests on Linux can
// stand in for them. `CoreMLHooks.system` is what the helper uses; on Linux (type-check double)
// every one of those calls throws.
//
// Example:
//   let engine = CoreMLEngine(hooks: .system)
//   var hooks = CoreMLHooks.system; hooks.load = { _, _ in MyTestModel() }    // tests
#if canImport(CoreML)
@preconcurrency import CoreML
#else
import CoreMLTypeCheckDouble
#endif
import Foundation
import HelperCore

#if !canImport(ObjectiveC)
/// Linux has no autorelease pools; the engine's `autoreleasepool` calls just run their body.
@inline(__always)
func autoreleasepool<R>(invoking body: () throws -> R) rethrows -> R { try body() }
#endif

public struct CoreMLHooks: @unchecked Sendable {
    /// `MLModel.compileModel(at:)` (async, macOS 13): the compiled bundle in a temporary location.
    public var compile: (URL) async throws -> URL
    /// `MLModel.load(contentsOf:configuration:)`.
    public var load: (URL, MLModelConfiguration) async throws -> MLModel
    /// Loads the model's MLComputePlan and reduces it, or says why there is none.
    public var computePlan: (URL, MLModelConfiguration, UInt64) async throws -> ComputePlan
    /// Use the async prediction (macOS 14+, cancellable) instead of the synchronous one.
    public var asyncPrediction: Bool
    public var coremlVersion: String?
    public var computeUnits: [ComputeUnits]

    public init(compile: @escaping (URL) async throws -> URL,
                load: @escaping (URL, MLModelConfiguration) async throws -> MLModel,
                computePlan: @escaping (URL, MLModelConfiguration, UInt64) async throws -> ComputePlan,
                asyncPrediction: Bool, coremlVersion: String?, computeUnits: [ComputeUnits]) {
        self.compile = compile
        self.load = load
        self.computePlan = computePlan
        self.asyncPrediction = asyncPrediction
        self.coremlVersion = coremlVersion
        self.computeUnits = computeUnits
    }

    public static var system: CoreMLHooks {
        var asyncPrediction = false
        if #available(macOS 14.0, *) { asyncPrediction = true }
        return CoreMLHooks(
            compile: { url in try await MLModel.compileModel(at: url) },
            load: { url, config in try await MLModel.load(contentsOf: url, configuration: config) },
            computePlan: { url, config, modelId in
                if #available(macOS 14.4, *) {
                    let plan = try await MLComputePlan.load(contentsOf: url, configuration: config)
                    return ComputePlanReduction.reduce(plan, modelId: modelId)
                }
                return ComputePlan(modelId: modelId, ops: [], neCoverage: nil, unavailableReason: ComputePlanReduction.needsNewerOS)
            },
            asyncPrediction: asyncPrediction,
            coremlVersion: systemCoreMLVersion(),
            computeUnits: systemComputeUnits())
    }

    /// CoreML.framework's bundle version (macOS); nil without Core ML.
    static func systemCoreMLVersion() -> String? {
        #if canImport(CoreML)
        let info = Bundle(for: MLModel.self).infoDictionary
        return (info?["CFBundleShortVersionString"] as? String) ?? (info?["CFBundleVersion"] as? String)
        #else
        return nil
        #endif
    }

    /// The compute units this machine can honour: on macOS 14+ from MLModel.availableComputeDevices
    /// (no GPU: no cpuAndGPU; no Neural Engine: no cpuAndNeuralEngine); before that all four.
    static func systemComputeUnits() -> [ComputeUnits] {
        #if canImport(CoreML)
        if #available(macOS 14.0, *) {
            var gpu = false, ne = false
            for d in MLModel.availableComputeDevices {
                switch d {
                case .gpu: gpu = true
                case .neuralEngine: ne = true
                default: break
                }
            }
            return [.cpuOnly] + (gpu ? [.cpuAndGPU] : []) + [.all] + (ne ? [.cpuAndNeuralEngine] : [])
        }
        return ComputeUnits.allCases
        #else
        return []
        #endif
    }
}

extension ComputeUnits {
    var ml: MLComputeUnits {
        switch self {
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .all: return .all
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        }
    }
}
