// Linux only: a stand-in for a loaded Core ML model, built on the type-check double, so the
// Core ML engine's real code paths (marshalling, backings, release, deadlines) run in tests.
// The double's MLModel checks output backings as Core ML does before the stand-in runs.
#if os(Linux)
import CoreMLTypeCheckDouble
import CoreMLEngine
import Foundation
import HelperCore

/// Feature descriptions for tests.
func feature(_ name: String, _ type: MLMultiArrayDataType, _ shape: [Int], optional: Bool = false,
             constraint: MLMultiArrayShapeConstraint = MLMultiArrayShapeConstraint(doubleType: .unspecified)) -> MLFeatureDescription {
    MLFeatureDescription(doubleName: name, type: .multiArray, isOptional: optional,
                         multiArrayConstraint: MLMultiArrayConstraint(doubleShape: shape.map { NSNumber(value: $0) },
                                                                      dataType: type, shapeConstraint: constraint))
}

/// A model whose prediction is a closure; it can keep inputs alive after returning, as Core ML may.
final class StandInModel: MLModel, @unchecked Sendable {
    typealias Behaviour = @Sendable (MLFeatureProvider, MLPredictionOptions) async throws -> MLFeatureProvider
    let description_: MLModelDescription
    let behaviour: Behaviour
    let stash = Locked<[MLMultiArray]>([])
    /// Addresses of the input arrays' data (not the arrays: holding them would retain the slots).
    let seenInputs = Locked<[UnsafeMutableRawPointer]>([])
    /// The output names offered as backings, per prediction.
    let offeredBackings = Locked<[[String]]>([])

    init(inputs: [MLFeatureDescription], outputs: [MLFeatureDescription], behaviour: @escaping Behaviour) {
        description_ = MLModelDescription(doubleInputs: inputs, outputs: outputs)
        self.behaviour = behaviour
        super.init()
    }

    override var modelDescription: MLModelDescription { description_ }

    /// The entry points the engine called ("sync", "async").
    var calls: [String] { doubleEntryPoints }

    override func doublePrediction(from input: MLFeatureProvider, options: MLPredictionOptions) async throws -> MLFeatureProvider {
        for n in input.featureNames.sorted() {
            if let a = input.featureValue(for: n)?.multiArrayValue { seenInputs.withLock { $0.append(a.dataPointer) } }
        }
        offeredBackings.withLock { $0.append(options.outputBackings.keys.sorted()) }
        return try await behaviour(input, options)
    }

    /// Keeps the inputs referenced after the prediction returns (Core ML can, for about a second).
    func holdInputs(_ input: MLFeatureProvider) {
        for n in input.featureNames {
            if let a = input.featureValue(for: n)?.multiArrayValue { stash.withLock { $0.append(a) } }
        }
    }

    func dropHeldInputs() { stash.withLock { $0.removeAll() } }
}

/// What Core ML does for an output: writes into the backing it was offered, else into an array
/// it allocates itself (contiguous, of `shape`).
func coreMLOutput(_ name: String, _ options: MLPredictionOptions, shape: [Int], _ type: MLMultiArrayDataType) throws -> MLMultiArray {
    if let backing = options.outputBackings[name] as? MLMultiArray { return backing }
    return try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: type)
}

/// Test hooks: a given model for every load, a compile that fakes an .mlmodelc.
func hooks(model: MLModel, asyncPrediction: Bool = true,
           plan: @escaping @Sendable (URL, MLModelConfiguration, UInt64) async throws -> ComputePlan = { _, _, id in
               ComputePlan(modelId: id, ops: [], neCoverage: nil, unavailableReason: "test") }) -> CoreMLHooks {
    let m = model
    return CoreMLHooks(compile: { _ in throw CoreMLTypeCheckDoubleError.notCoreML("compile") },
                       load: { _, _ in m }, computePlan: plan, asyncPrediction: asyncPrediction,
                       coremlVersion: "test", computeUnits: [.cpuOnly])
}
#endif
